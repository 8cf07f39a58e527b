"""Builds the Bolt app from services: middleware, the error hook, then every listener."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.response import BoltResponse

import handlers
from bot.services import Services
from storage import repositories

logger = logging.getLogger(__name__)


def build_app(services: Services) -> AsyncApp:
    settings = services.settings
    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
    app = AsyncApp(
        client=services.slack,
        # Socket Mode requests are not signed; Bolt skips verification for them by itself.
        signing_secret=secret,
        process_before_response=False,
        raise_error_for_unhandled_request=False,
    )
    app.middleware(_provide_services(services))
    app.middleware(_deduplicate_events(services))
    app.error(_log_unhandled_error)
    handlers.register(app, services)
    return app


def _provide_services(services: Services) -> Callable[..., Awaitable[None]]:
    """Make ``services`` an argument every listener can ask for, as Bolt does for ``client`` or ``say``."""

    async def provide(context: dict[str, Any], next: Callable[[], Awaitable[None]]) -> None:
        context["services"] = services
        await next()

    return provide


def _deduplicate_events(services: Services) -> Callable[..., Awaitable[BoltResponse | None]]:
    """Drop an Events API delivery whose event_id was already handled.

    Slack re-sends an event when the first delivery was slow or failed (X-Slack-Retry-Num), and
    Bolt does not deduplicate. The claim is a unique row in the database, so it holds across
    restarts and replicas.
    """

    async def deduplicate(body: dict[str, Any], next: Callable[[], Awaitable[None]]) -> BoltResponse | None:
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        if event_id:
            team_id = body.get("team_id") or ""
            async with services.db.session() as session, session.begin():
                await repositories.ensure_team(session, team_id=team_id)
                fresh = await repositories.claim_slack_event(
                    session, event_id=event_id, team_id=team_id, now=services.clock.now()
                )
            if not fresh:
                logger.info("event %s already handled; dropping the repeat", event_id)
                return BoltResponse(status=200, body="")
        await next()
        return None

    return deduplicate


async def _log_unhandled_error(error: Exception, body: dict[str, Any]) -> None:
    logger.error("unhandled error for a %s request", body.get("type", "?"), exc_info=error)
