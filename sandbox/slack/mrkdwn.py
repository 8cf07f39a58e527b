"""How Slack reads mrkdwn's control sequences, for the emulator's transcript and the tests.

Slack's formatting reference ("Escaping text", "Linking to URLs", "Mentioning users", "Special
mentions"): ``&``, ``<`` and ``>`` are control characters everywhere, inside backticks too. Between
``<`` and ``>`` Slack reads a user mention (``<@U…>``), a channel link (``<#C…|name>``), a special
mention (``<!here>``, ``<!channel>``, ``<!everyone>``, ``<!subteam^S…>``, ``<!date^…|fallback>``) or
a link (``<https://…|label>``); ``&lt;``, ``&gt;`` and ``&amp;`` show as the characters themselves.

This module imports nothing from the bot: it is the outside world.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

_ENTITY = re.compile(r"<([^<>]*)>")
_ESCAPES = {"&lt;": "<", "&gt;": ">", "&amp;": "&"}
SPECIAL_MENTIONS = {"here", "channel", "everyone"}


@dataclass(frozen=True)
class Entity:
    """One control sequence as Slack reads it: ``kind`` is user, channel, special, usergroup, date or link."""

    kind: str
    target: str
    label: str | None = None


def _entity(inner: str) -> Entity:
    target, _, label = inner.partition("|")
    if target.startswith("@"):
        return Entity("user", target[1:], label or None)
    if target.startswith("#"):
        return Entity("channel", target[1:], label or None)
    if target.startswith("!subteam^"):
        return Entity("usergroup", target.removeprefix("!subteam^"), label or None)
    if target.startswith("!date^"):
        return Entity("date", target, label or None)
    if target.startswith("!"):
        return Entity("special", target[1:], label or None)
    return Entity("link", target, label or None)


def entities(text: str) -> list[Entity]:
    """Every mention and link Slack would make of ``text``."""
    return [_entity(match.group(1)) for match in _ENTITY.finditer(text)]


def stray_brackets(text: str) -> int:
    """Brackets Slack cannot pair: a ``<`` never closed, or a ``>`` that is neither a closing one nor a
    quote marker at the start of a line. Each is markup broken by text that was not escaped."""
    rest = _ENTITY.sub("", text)
    quotes = re.sub(r"(?m)^>", "", rest)
    return quotes.count("<") + quotes.count(">")


def render(text: str, *, user_name: Callable[[str], str], channel_name: Callable[[str], str]) -> str:
    """``text`` as a person reads it in Slack: mentions as @name, links as their label."""

    def show(match: re.Match[str]) -> str:
        entity = _entity(match.group(1))
        if entity.kind == "user":
            return "@" + user_name(entity.target)
        if entity.kind == "channel":
            return "#" + (entity.label or channel_name(entity.target))
        if entity.kind == "special":
            return "@" + entity.target if entity.target in SPECIAL_MENTIONS else entity.label or entity.target
        if entity.kind in ("usergroup", "date"):
            return entity.label or "@group"
        return entity.label or entity.target

    shown = _ENTITY.sub(show, text)
    return re.sub(r"&(lt|gt|amp);", lambda match: _ESCAPES[match.group(0)], shown)


def mrkdwn_texts(value: object) -> Iterator[str]:
    """Every string Slack reads as mrkdwn in a message's text, its blocks or a view (plain_text is not)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, tuple | list):
        for item in value:
            yield from mrkdwn_texts(item)
    elif isinstance(value, dict):
        if value.get("type") == "plain_text":
            return
        for key, item in value.items():
            if key in ("text", "fields", "elements", "blocks", "accessory", "confirm", "title"):
                yield from mrkdwn_texts(item)


def markup_of(value: object) -> tuple[list[tuple[str, str]], int]:
    """The mentions and links Slack makes of ``value`` (kind, target), and its stray brackets."""
    found: list[tuple[str, str]] = []
    strays = 0
    for text in mrkdwn_texts(value):
        found += [(entity.kind, entity.target) for entity in entities(text)]
        strays += stray_brackets(text)
    return found, strays


_MENTION = re.compile(r"(<@[UW][A-Z0-9]+>)")


def as_typed(text: str) -> str:
    """What Slack sends for text a person typed: ``&``, ``<`` and ``>`` encoded, except the ``<@U…>`` that
    the composer makes of a chosen @mention."""
    pieces = _MENTION.split(text)
    return "".join(
        piece if _MENTION.fullmatch(piece) else piece.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        for piece in pieces
    )
