"""Block Kit pieces every feature shares, and the limits Slack enforces on them. Pure: data in, blocks out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.mrkdwn import escape

Block = dict[str, Any]
# Slack rejects a section whose text is longer than this (invalid_blocks).
SECTION_TEXT_LIMIT = 3000
FIELD_TEXT_LIMIT = 2000
# A message's top-level text is truncated by Slack past 4,000 characters (msg_too_long past 40,000).
FALLBACK_TEXT_LIMIT = 3000
CONFIRM_TEXT_LIMIT = 300
# An input's label and hint.
INPUT_TEXT_LIMIT = 2000


def section(text: str) -> Block:
    """A mrkdwn section; text past Slack's 3,000 characters is cut with an ellipsis rather than refused
    (callers split what must be shown whole: split_text)."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": shorten(text, SECTION_TEXT_LIMIT)}}


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": shorten(text, SECTION_TEXT_LIMIT)}]}


def help_blocks(command: str, entries: Sequence[tuple[str, str]]) -> list[Block]:
    """The `/finetune help` answer: one line per subcommand, usage then what it does."""
    lines = [f"`{escape(command)} {escape(usage)}` — {escape(summary)}" for usage, summary in entries]
    return [
        section(f"*What `{escape(command)}` can do*"),
        section("\n".join(lines)),
        context("Drop a `.jsonl` file in a channel I'm in and I'll validate it in its thread."),
    ]


def help_text(command: str, entries: Sequence[tuple[str, str]]) -> str:
    """Plain-text fallback of help_blocks, for notifications and screen readers."""
    lines = [f"What {command} can do:", *(f"{command} {usage} — {summary}" for usage, summary in entries)]
    return escape("\n".join(lines))


def fields_section(texts: Sequence[str]) -> Block:
    """A section of two-column fields: at most ten, each cut at Slack's 2,000 characters."""
    return {
        "type": "section",
        "fields": [{"type": "mrkdwn", "text": shorten(text, FIELD_TEXT_LIMIT)} for text in list(texts)[:10]],
    }


def header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": text[:150], "emoji": True}}


def button(text: str, action_id: str, value: str, *, style: str | None = None) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": text, "emoji": True},
        "action_id": action_id,
        "value": value,
    }
    if style:
        element["style"] = style
    return element


def confirm_dialog(*, title: str, text: str, yes: str, no: str) -> dict[str, Any]:
    """A button's "are you sure?": Slack takes a title and buttons of 30 characters at most and a text of 300
    (the text is cut, as it may quote a file name or a model id)."""
    return {
        "title": plain(title[:30]),
        "text": {"type": "mrkdwn", "text": shorten(text, CONFIRM_TEXT_LIMIT)},
        "confirm": plain(yes[:30]),
        "deny": plain(no[:30]),
    }


def safe_cut(text: str, limit: int) -> int:
    """Where to cut ``text`` at most ``limit`` characters in, never inside an escape such as ``&lt;``."""
    entity = text.rfind("&", max(0, limit - 5), limit)
    if entity != -1 and ";" not in text[entity:limit]:
        return entity or limit
    return limit


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis, never inside an escape such as ``&lt;``."""
    if len(text) <= limit:
        return text
    return text[: safe_cut(text, limit - 1)] + "…"


def split_text(text: str, limit: int = SECTION_TEXT_LIMIT) -> list[str]:
    """Split on line breaks into pieces Slack accepts; a single overlong line is cut at ``limit``."""
    pieces: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:
            if current:
                pieces.append(current)
                current = ""
            cut = safe_cut(line, limit)
            pieces.append(line[:cut])
            line = line[cut:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            pieces.append(current)
            current = line
        else:
            current = candidate
    if current:
        pieces.append(current)
    return pieces


def money(value: float | None) -> str:
    if value is None:
        return "unknown"
    return f"${value:,.2f}" if value >= 0.01 else "under $0.01"


def precise_money(value: float | None) -> str:
    """Money for small sums (an evaluation costs fractions of a cent): ``$0.0041`` rather than "under $0.01"."""
    if value is None:
        return "unknown"
    return f"${value:,.2f}" if value >= 0.01 or value == 0 else f"${value:.4f}"


def option(text: str, value: str) -> dict[str, Any]:
    return {"text": {"type": "plain_text", "text": text[:75], "emoji": True}, "value": value}


def select_input(
    block_id: str,
    label: str,
    *,
    action_id: str,
    options: list[dict[str, Any]],
    selected: str | None,
    dispatch: bool = False,
    optional: bool = False,
    groups: list[tuple[str, list[dict[str, Any]]]] | None = None,
) -> Block:
    """An input block holding a static select; ``selected`` is the value shown first, when it is an option.
    ``groups`` (label, options) replaces ``options`` with option groups."""
    element: dict[str, Any] = {"type": "static_select", "action_id": action_id}
    if groups is not None:
        element["option_groups"] = [{"label": plain(label[:75]), "options": grouped} for label, grouped in groups]
        options = [o for _, grouped in groups for o in grouped]
    else:
        element["options"] = options
    initial = next((o for o in options if o["value"] == selected), None)
    if initial is not None:
        element["initial_option"] = initial
    block: Block = {"type": "input", "block_id": block_id, "element": element, "label": plain(label)}
    if dispatch:
        block["dispatch_action"] = True
    if optional:
        block["optional"] = True
    return block


def modal(*, callback_id: str, title: str, submit: str, private_metadata: str, blocks: list[Block]) -> Block:
    return {
        "type": "modal",
        "callback_id": callback_id,
        "title": plain(title),
        "submit": plain(submit),
        "close": plain("Cancel"),
        "private_metadata": private_metadata,
        "blocks": blocks,
    }


def plain(text: str) -> dict[str, str]:
    return {"type": "plain_text", "text": text}


def text_input(
    block_id: str,
    label: str,
    *,
    initial: str,
    hint: str,
    optional: bool = False,
    max_length: int | None = None,
    dispatch_on_enter: str | None = None,
) -> Block:
    element: dict[str, Any] = {"type": "plain_text_input", "action_id": dispatch_on_enter or block_id}
    if initial:
        element["initial_value"] = initial
    if max_length:
        element["max_length"] = max_length
    block: Block = {
        "type": "input",
        "block_id": block_id,
        "optional": optional,
        "label": plain(label[:INPUT_TEXT_LIMIT]),
        "hint": plain(shorten(hint, INPUT_TEXT_LIMIT)),
        "element": element,
    }
    if dispatch_on_enter:
        element["dispatch_action_config"] = {"trigger_actions_on": ["on_enter_pressed"]}
        block["dispatch_action"] = True
    return block


EVAL_EXCERPT_CHARS = 240


def short_model(model: str) -> str:
    """A column header for a model: a fine-tune's suffix (``ft:base:org:suffix:id``), else the id."""
    if model.startswith("ft:"):
        parts = model.split(":")
        return (parts[3] if len(parts) > 3 and parts[3] else parts[-1])[:20]
    return model[:24]


def excerpt(text: str, limit: int = EVAL_EXCERPT_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
