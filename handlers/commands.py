"""`/finetune <subcommand> …`: ack at once, parse, call one use-case, answer.

Each feature contributes its subcommands as ``Subcommand`` entries; ``handlers.register`` puts them
in one table, and `/finetune help` is rendered from that same table so it never drifts.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot import slack_blocks
from bot.errors import refusal_of
from bot.mrkdwn import escape, unescape
from bot.services import Services

COMMAND = "/finetune"
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CommandRequest:
    """What a subcommand handler gets: who asked, where, the words after the subcommand, how to answer."""

    services: Services
    team_id: str
    channel_id: str
    user_id: str
    args: str
    respond: AsyncRespond
    subcommands: Sequence[Subcommand]
    trigger_id: str | None = None


SubcommandHandler = Callable[[CommandRequest], Awaitable[None]]


@dataclass(frozen=True)
class Subcommand:
    name: str
    usage: str
    summary: str
    handler: SubcommandHandler


async def show_help(request: CommandRequest) -> None:
    entries = [(entry.usage, entry.summary) for entry in request.subcommands]
    await request.respond(
        text=slack_blocks.help_text(COMMAND, entries),
        blocks=slack_blocks.help_blocks(COMMAND, entries),
        response_type="ephemeral",
    )


HELP = Subcommand("help", "help", "show this list", show_help)


def make_dispatcher(services: Services, subcommands: Sequence[Subcommand]) -> Callable[..., Awaitable[None]]:
    """The one `/finetune` listener: ack first, then route to the named subcommand."""
    by_name = {entry.name: entry for entry in subcommands}

    async def dispatch(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        name, _, args = unescape(command.get("text") or "").strip().partition(" ")
        entry = by_name.get(name.lower() or "help")
        request = CommandRequest(
            services=services,
            team_id=command.get("team_id", ""),
            channel_id=command.get("channel_id", ""),
            user_id=command.get("user_id", ""),
            args=args.strip(),
            respond=respond,
            subcommands=subcommands,
            trigger_id=command.get("trigger_id"),
        )
        if entry is None:
            await respond(
                text=f"I don't know `{COMMAND} {escape(name)}`. Try `{COMMAND} help` for the list of what I can do.",
                response_type="ephemeral",
            )
            return
        try:
            await entry.handler(request)
        except Exception as error:
            sentence = refusal_of(error)
            if sentence is None:
                reference = uuid.uuid4().hex[:8]
                logger.exception("%s %s failed (reference %s)", COMMAND, entry.name, reference)
                sentence = (
                    f"Sorry, `{COMMAND} {entry.name}` failed on our side (reference `{escape(reference)}`). "
                    "Nothing was changed; please try again, and tell your admin the reference if it keeps failing."
                )
            await respond(text=sentence, response_type="ephemeral")

    return dispatch
