"""Chat listeners: thread replies and mentions, `/finetune chat|compare`, and the result's buttons."""

from __future__ import annotations

from collections.abc import Awaitable, Coroutine
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.asker import Asker
from bot.chat import answers, threads
from bot.errors import UsageError
from bot.flywheel import candidates
from bot.mrkdwn import escape, unescape
from bot.services import Services
from handlers import arguments
from handlers.clicks import answer_clicker, clicked_value, team_of
from handlers.commands import CommandRequest, Subcommand

CHAT_USAGE = '/finetune chat <model|job> [system="…"]'
COMPARE_USAGE = "/finetune compare <model|job> [with <other model>]"


# A reply also sent to the channel is a turn like any other; edits, deletions and joins are not.
HUMAN_SUBTYPES = (None, "thread_broadcast")


def is_from_a_person(event: dict[str, Any]) -> bool:
    """Not another app's bot: answering one would start two bots talking to each other for ever."""
    return not event.get("bot_id") and not event.get("bot_profile") and event.get("subtype") != "bot_message"


async def is_thread_reply(event: dict[str, Any]) -> bool:
    """A person's message inside a thread (not an edit, a deletion, a bot; file shares go to intake first)."""
    in_thread = bool(event.get("thread_ts")) and event["thread_ts"] != event.get("ts")
    return in_thread and event.get("subtype") in HUMAN_SUBTYPES and is_from_a_person(event)


async def on_thread_message(event: dict[str, Any], body: dict[str, Any], services: Services) -> None:
    incoming = _incoming(event, body)
    services.background(_route(services, incoming), asker=_asker(incoming))


async def on_mention(event: dict[str, Any], body: dict[str, Any], services: Services) -> None:
    if not event.get("thread_ts") or not is_from_a_person(event):
        return  # a mention outside a chat thread is not a question to a model, and bots get no answer
    incoming = _incoming(event, body)
    services.background(_route(services, incoming), asker=_asker(incoming))


def _asker(incoming: threads.Incoming) -> Asker:
    return Asker(incoming.team_id, incoming.user_id, incoming.channel_id, incoming.thread_ts)


def _route(services: Services, incoming: threads.Incoming) -> Coroutine[Any, Any, None]:
    """``correct: …`` teaches (the flywheel keeps it); anything else is a question to the model."""
    if candidates.is_correction(incoming.text):
        return candidates.on_correction(
            services,
            team_id=incoming.team_id,
            channel_id=incoming.channel_id,
            thread_ts=incoming.thread_ts,
            ts=incoming.ts,
            user=incoming.user_id,
            text=incoming.text,
        )
    return answers.on_message(services, incoming)


def _incoming(event: dict[str, Any], body: dict[str, Any]) -> threads.Incoming:
    return threads.Incoming(
        team_id=str(body.get("team_id") or event.get("team") or ""),
        channel_id=event["channel"],
        thread_ts=event["thread_ts"],
        ts=event["ts"],
        user_id=str(event.get("user") or ""),
        text=unescape(str(event.get("text") or "")),
        # Streaming goes to the person's own workspace: a Slack Connect member's is not the installing one.
        user_team_id=str(event.get("user_team") or event.get("team") or body.get("team_id") or ""),
    )


async def chat_command(request: CommandRequest) -> None:
    words, options = arguments.parse(request.args, allowed={"system"}, usage=CHAT_USAGE)
    if len(words) != 1:
        raise UsageError(f"Which model? Usage: `{escape(CHAT_USAGE)}`")
    await answers.start_chat(
        request.services,
        team_id=request.team_id,
        channel_id=request.channel_id,
        user_id=request.user_id,
        reference=words[0],
        system=options.get("system"),
    )


async def compare_command(request: CommandRequest) -> None:
    words, _ = arguments.parse(request.args, allowed=set(), usage=COMPARE_USAGE)
    if len(words) == 1:
        other = "base"
    elif len(words) == 3 and words[1].lower() == "with":
        other = words[2]
    else:
        raise UsageError(f"Usage: `{escape(COMPARE_USAGE)}`")
    await answers.start_chat(
        request.services,
        team_id=request.team_id,
        channel_id=request.channel_id,
        user_id=request.user_id,
        reference=words[0],
        compare_with=other,
    )


SUBCOMMANDS = [
    Subcommand("chat", 'chat <model|job> [system="…"]', "talk to a model in a new thread", chat_command),
    Subcommand("compare", "compare <model|job> [with <model>]", "answer each message with two models", compare_command),
]


async def _from_button(
    ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, services: Services, *, compare: bool
) -> None:
    await ack()
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id", "")
    started = answers.start_chat(
        services,
        team_id=team_of(body),
        channel_id=channel,
        user_id=body["user"]["id"],
        reference=clicked_value(body),
        compare_with="base" if compare else None,
    )
    await answer_clicker(respond, _quietly(started))


async def chat_button(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, services: Services) -> None:
    await _from_button(ack, body, respond, services, compare=False)


async def compare_button(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, services: Services) -> None:
    await _from_button(ack, body, respond, services, compare=True)


async def _quietly(started: Awaitable[str]) -> None:
    """A chat that starts speaks for itself in the channel; only a refusal is said to the clicker."""
    await started
