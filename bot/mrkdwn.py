"""Slack's mrkdwn, made safe for text the bot did not write.

Slack reads ``&``, ``<`` and ``>`` as control characters everywhere in mrkdwn, inside backticks too
(formatting reference, "Escaping text"): ``<!channel>`` in a file, a prompt or a model's answer would
ping a whole channel, and ``<https://evil.example|Slack SSO>`` would become a disguised link. Every
value that comes from a file, a person, a provider or a model goes through :func:`escape` at the point
where it enters mrkdwn; the bot's own markup (``<@U…>``, links it builds) never does.
"""

from __future__ import annotations


def escape(text: object) -> str:
    """``text`` as Slack shows it literally: no link, mention or broken bracket can come out of it."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def unescape(text: str) -> str:
    """Text as the person typed it: Slack sends ``&``, ``<`` and ``>`` encoded in messages and commands."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
