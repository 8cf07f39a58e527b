"""App Home listeners: the Home tab and its pager, `/finetune export|audit`."""

from __future__ import annotations

import json
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck

from bot.errors import MalformedRequest, UsageError
from bot.home import audit, export
from bot.home import tab as home_tab
from bot.mrkdwn import escape
from bot.numbers import whole_number
from bot.services import Services
from handlers.clicks import clicked_value, team_of
from handlers.commands import CommandRequest, Subcommand


async def home_opened(event: dict[str, Any], body: dict[str, Any], services: Services) -> None:
    if event.get("tab", "home") != "home":
        return
    await home_tab.home_opened(services, team_id=str(body.get("team_id") or ""), user_id=event["user"])


async def home_page(ack: AsyncAck, body: dict[str, Any], services: Services) -> None:
    await ack()
    try:
        asked = json.loads(clicked_value(body))
        pages = {str(key): whole_number(str(value), low=1, high=10_000) or 1 for key, value in asked.items()}
    except (ValueError, AttributeError):
        raise MalformedRequest("a Home tab pager whose value is not the bot's") from None
    await home_tab.publish_home(services, team_id=team_of(body), user_id=body["user"]["id"], pages=pages)


async def export_command(request: CommandRequest) -> None:
    words = request.args.split()
    if len(words) != 1:
        raise UsageError(f"Usage: `{escape('/finetune export <dataset|model>')}`")
    sentence = await export.export(request.services, team_id=request.team_id, reference=words[0])
    await request.respond(text=sentence, response_type="ephemeral")


async def audit_command(request: CommandRequest) -> None:
    words = request.args.split()
    limit = whole_number(words[0], low=1, high=200) if len(words) == 1 else (20 if not words else None)
    if limit is None:
        raise UsageError("Usage: `/finetune audit [n]`: the last n entries, n from 1 to 200 (20 by default).")
    listing = await audit.audit_blocks(request.services, team_id=request.team_id, user_id=request.user_id, limit=limit)
    await request.respond(text="Audit log", blocks=listing, response_type="ephemeral")


SUBCOMMANDS = [
    Subcommand(
        "export",
        "export <dataset|model>",
        "upload the stored data (and a model's golden set) to its thread",
        export_command,
    ),
    Subcommand(
        "audit",
        "audit [n]",
        "the last n decisions: starts, approvals, cancellations, deletions (admins)",
        audit_command,
    ),
]
