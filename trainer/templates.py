"""Chat templates for training: the model's own rendering, with ``{% generation %}`` around what the
loss may learn (assistant turns whose OpenAI ``weight`` is not 0), so that TRL's assistant-only loss
trains on exactly those tokens. Tools and tool calls are rendered as JSON in the ChatML way."""

from __future__ import annotations

# ChatML (SmolLM2, Qwen, the tiny test model): <|im_start|>role\ncontent<|im_end|>\n
CHATML_TRAINING = (
    "{% if tools %}<|im_start|>system\n"
    "{% if messages[0].role == 'system' %}{{ messages[0].content }}\n\n{% endif %}"
    "You may call these tools:\n<tools>\n{% for tool in tools %}{{ tool | tojson }}\n{% endfor %}</tools><|im_end|>\n"
    "{% endif %}"
    "{% for message in messages %}"
    "{% if not (tools and loop.first and message.role == 'system') %}"
    "<|im_start|>{{ message.role }}\n"
    "{% if message.role == 'assistant' and message.get('weight', 1) != 0 %}{% generation %}"
    "{% if message.content %}{{ message.content }}{% endif %}"
    "{% for call in message.get('tool_calls') or [] %}<tool_call>{{ call.function | tojson }}</tool_call>{% endfor %}"
    # trim_blocks (transformers renders with it) would eat a newline written right after the tag.
    "<|im_end|>{% endgeneration %}{{ '\\n' }}"
    "{% else %}"
    "{% if message.content %}{{ message.content }}{% endif %}"
    "{% for call in message.get('tool_calls') or [] %}<tool_call>{{ call.function | tojson }}</tool_call>{% endfor %}"
    "<|im_end|>\n"
    "{% endif %}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
