"""Pure Block Kit builders: data in, Slack blocks out. No I/O, so every view is unit-testable."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Block = dict[str, Any]

# Slack rejects a section whose text is longer than this (invalid_blocks).
SECTION_TEXT_LIMIT = 3000


def section(text: str) -> Block:
    if len(text) > SECTION_TEXT_LIMIT:
        raise ValueError(f"section text is {len(text)} characters; Slack allows {SECTION_TEXT_LIMIT}")
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def help_blocks(command: str, entries: Sequence[tuple[str, str]]) -> list[Block]:
    """The `/finetune help` answer: one line per subcommand, usage then what it does."""
    lines = [f"`{command} {usage}` — {summary}" for usage, summary in entries]
    return [
        section(f"*What `{command}` can do*"),
        section("\n".join(lines)),
        context("Drop a `.jsonl` file in a channel I'm in and I'll validate it in its thread."),
    ]


def help_text(command: str, entries: Sequence[tuple[str, str]]) -> str:
    """Plain-text fallback of help_blocks, for notifications and screen readers."""
    return "\n".join([f"What {command} can do:", *(f"{command} {usage} — {summary}" for usage, summary in entries)])
