"""Multi-workspace installs: a workspace that removes the app, or revokes its bot token, is forgotten."""

from __future__ import annotations

import logging
from typing import Any

from bot.services import Services

logger = logging.getLogger(__name__)


async def app_uninstalled(body: dict[str, Any], services: Services) -> None:
    await _forget(services, str(body.get("team_id") or ""), "the app was uninstalled")


async def tokens_revoked(event: dict[str, Any], body: dict[str, Any], services: Services) -> None:
    if (event.get("tokens") or {}).get("bot"):
        await _forget(services, str(body.get("team_id") or ""), "its bot token was revoked")


async def _forget(services: Services, team_id: str, reason: str) -> None:
    if services.installations is None:
        return  # single-workspace mode: the token is SLACK_BOT_TOKEN, nothing is stored
    await services.installations.forget(team_id)
    # Its datasets, jobs and audit log stay: a reinstall finds them again.
    logger.info("workspace %s forgotten: %s", team_id, reason)
