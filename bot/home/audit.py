"""`/finetune audit`: the team's decisions, for admins."""

from __future__ import annotations

import json
import logging
from typing import Any

from bot import policy, slack_blocks
from bot.errors import NotAllowed
from bot.mrkdwn import escape
from bot.services import Services
from storage import repositories

logger = logging.getLogger(__name__)


async def audit_blocks(services: Services, *, team_id: str, user_id: str, limit: int) -> list[dict[str, Any]]:
    if not policy.is_admin(services.settings, user_id):
        raise NotAllowed("Only admins (FINETUNE_ADMINS) can read the audit log.")
    async with services.db.session() as session:
        entries = await repositories.list_audit_entries(session, team_id=team_id, limit=limit)
    if not entries:
        return [slack_blocks.section("The audit log is empty.")]
    lines = [
        f"`{entry.created_at:%Y-%m-%d %H:%M} UTC` <@{entry.actor}> *{escape(entry.action)}* {escape(entry.subject)}"
        + (f" — {escape(json.dumps(entry.detail, ensure_ascii=False)[:200])}" if entry.detail else "")
        for entry in entries
    ]
    return [
        slack_blocks.section(f"*Last {len(entries)} audit entries*"),
        *(slack_blocks.section(p) for p in slack_blocks.split_text("\n".join(lines))),
    ]
