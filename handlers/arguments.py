"""Parsing what people type after a subcommand: words and ``key=value`` options (quotes allowed)."""

from __future__ import annotations

import shlex

from bot.errors import UsageError
from bot.mrkdwn import escape

# Slack's desktop clients turn straight quotes into typographic ones.
SMART_QUOTES = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'"})


def parse(text: str, *, allowed: set[str], usage: str) -> tuple[list[str], dict[str, str]]:
    """Split ``text`` into positional words and ``key=value`` options; unknown keys are usage errors."""
    try:
        tokens = shlex.split(text.translate(SMART_QUOTES))
    except ValueError:
        raise UsageError(f"I could not read that (an unclosed quote?). Usage: `{escape(usage)}`") from None
    words: list[str] = []
    options: dict[str, str] = {}
    for token in tokens:
        key, separator, value = token.partition("=")
        if not separator:
            words.append(token)
            continue
        if key not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise UsageError(
                f"`{escape(key)}` is not an option here (options: {escape(known)}). Usage: `{escape(usage)}`"
            )
        options[key] = value
    return words, options
