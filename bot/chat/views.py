"""How a chat thread looks in Slack."""

from __future__ import annotations

from bot.mrkdwn import escape
from bot.slack_blocks import Block, context, section, shorten


def chat_root(
    *, model: str, compare_model: str | None, system_prompt: str | None, user: str
) -> tuple[str, list[Block]]:
    """The root message of a chat (or compare) thread: which model(s), which system prompt, how to talk."""
    if compare_model:
        text = f"⚖️ Compare `{escape(model)}` with `{escape(compare_model)}`"
        how = "Reply in this thread: each message is answered by both models, one after the other."
    else:
        text = f"💬 Chat with `{escape(model)}`"
        how = "Reply in this thread (or mention me in it) to talk to the model."
    prompt = f"*System prompt:* _{shorten(escape(system_prompt), 1500)}_" if system_prompt else "*System prompt:* none"
    return text, [section(text), section(prompt), context(f"{how} Started by <@{user}>.")]
