"""Team views: the App Home, `/finetune models|record|export|audit`."""

from __future__ import annotations

import json
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck

from bot import golden, team_views
from bot.errors import MalformedRequest, UsageError
from bot.mrkdwn import escape
from bot.numbers import whole_number
from bot.services import Services
from handlers.clicks import clicked_value, team_of
from handlers.commands import CommandRequest, Subcommand


async def home_opened(event: dict[str, Any], body: dict[str, Any], services: Services) -> None:
    if event.get("tab", "home") != "home":
        return
    await team_views.home_opened(services, team_id=str(body.get("team_id") or ""), user_id=event["user"])


async def home_page(ack: AsyncAck, body: dict[str, Any], services: Services) -> None:
    await ack()
    try:
        asked = json.loads(clicked_value(body))
        pages = {str(key): whole_number(str(value), low=1, high=10_000) or 1 for key, value in asked.items()}
    except (ValueError, AttributeError):
        raise MalformedRequest("a Home tab pager whose value is not the bot's") from None
    await team_views.publish_home(services, team_id=team_of(body), user_id=body["user"]["id"], pages=pages)


async def models(request: CommandRequest) -> None:
    text, listing = await team_views.models_blocks(request.services, team_id=request.team_id)
    await request.respond(text=text, blocks=listing, response_type="ephemeral")


async def record(request: CommandRequest) -> None:
    words = request.args.split()
    if len(words) not in (1, 2):
        raise UsageError(
            f"Usage: `{escape('/finetune record <model|job> [dataset]')}` (default: the model's training prompts)."
        )
    recording = await golden.start_recording(
        request.services,
        team_id=request.team_id,
        user_id=request.user_id,
        reference=words[0],
        dataset_reference=words[1] if len(words) == 2 else None,
    )
    await request.respond(
        text=f"Recording {recording.total:,} prompts through `{escape(recording.model)}`; progress is in its thread.",
        response_type="ephemeral",
    )


async def export(request: CommandRequest) -> None:
    words = request.args.split()
    if len(words) != 1:
        raise UsageError(f"Usage: `{escape('/finetune export <dataset|model>')}`")
    sentence = await team_views.export(request.services, team_id=request.team_id, reference=words[0])
    await request.respond(text=sentence, response_type="ephemeral")


async def audit(request: CommandRequest) -> None:
    words = request.args.split()
    limit = whole_number(words[0], low=1, high=200) if len(words) == 1 else (20 if not words else None)
    if limit is None:
        raise UsageError("Usage: `/finetune audit [n]`: the last n entries, n from 1 to 200 (20 by default).")
    listing = await team_views.audit_blocks(
        request.services, team_id=request.team_id, user_id=request.user_id, limit=limit
    )
    await request.respond(text="Audit log", blocks=listing, response_type="ephemeral")


SUBCOMMANDS = [
    Subcommand("models", "models", "the team's fine-tuned models with their retirement dates", models),
    Subcommand(
        "record", "record <model> [dataset]", "record a model's answers as a golden set, before it retires", record
    ),
    Subcommand(
        "export", "export <dataset|model>", "upload the stored data (and a model's golden set) to its thread", export
    ),
    Subcommand(
        "audit", "audit [n]", "the last n decisions: starts, approvals, cancellations, deletions (admins)", audit
    ),
]
