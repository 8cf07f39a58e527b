"""The team's own fine-tuning server: OpenAI's fine-tuning API over real LoRA training (TRL + PEFT).

A separate process with its own dependencies (trainer/requirements.txt, installed by `./dev server`),
never part of the bot's install. The bot reaches it as one more OpenAI-compatible provider.
"""
