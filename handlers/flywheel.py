"""Flywheel listeners: 👍/👎 on answers, `correct:` replies, `/finetune candidates` and `/finetune dataset next`."""

from __future__ import annotations

from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.asker import Asker
from bot.errors import UsageError
from bot.flywheel import candidates, publish
from bot.mrkdwn import escape
from bot.services import Services
from handlers.clicks import answer_clicker, clicked_id, team_of
from handlers.commands import CommandRequest, Subcommand


async def _reaction(event: dict[str, Any], body: dict[str, Any], services: Services, *, added: bool) -> None:
    item = event.get("item") or {}
    if item.get("type") != "message":
        return
    reaction = candidates.Reaction(
        team_id=str(body.get("team_id") or ""),
        user=str(event.get("user") or ""),
        name=str(event.get("reaction") or ""),
        channel_id=str(item.get("channel") or ""),
        ts=str(item.get("ts") or ""),
        added=added,
    )
    services.background(
        candidates.on_reaction(services, reaction), asker=Asker(reaction.team_id, reaction.user, reaction.channel_id)
    )


async def reaction_added(event: dict[str, Any], body: dict[str, Any], services: Services) -> None:
    await _reaction(event, body, services, added=True)


async def reaction_removed(event: dict[str, Any], body: dict[str, Any], services: Services) -> None:
    await _reaction(event, body, services, added=False)


async def candidates_command(request: CommandRequest) -> None:
    words = request.args.split()
    if len(words) != 1:
        raise UsageError(f"Usage: `{escape('/finetune candidates <dataset>')}` (the dataset a model was trained on).")
    text, listing = await candidates.candidates_view(
        request.services, team_id=request.team_id, user_id=request.user_id, reference=words[0]
    )
    await request.respond(text=text, blocks=listing, response_type="ephemeral")


async def dataset_command(request: CommandRequest) -> None:
    words = request.args.split()
    if len(words) != 2 or words[0].lower() != "next":
        raise UsageError(
            f"Usage: `{escape('/finetune dataset next <dataset>')}` builds its next version from the candidates."
        )
    sentence = await publish.publish_next(
        request.services, team_id=request.team_id, user_id=request.user_id, reference=words[1]
    )
    await request.respond(text=sentence, response_type="ephemeral")


SUBCOMMANDS = [
    Subcommand(
        "candidates",
        "candidates <dataset>",
        "examples the team kept in chats (👍, `correct: …`, compare 👍/👎) for the next version",
        candidates_command,
    ),
    Subcommand(
        "dataset",
        "dataset next <dataset>",
        "publish the next version: the data plus the kept examples, validated, with a Train… button",
        dataset_command,
    ),
]


async def drop_button(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, services: Services) -> None:
    await ack()
    await answer_clicker(
        respond,
        candidates.drop(services, team_id=team_of(body), user_id=body["user"]["id"], candidate_id=clicked_id(body)),
    )
