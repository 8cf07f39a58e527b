"""Builds the Bolt app from services: middleware, the error hook, then every listener."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.response import BoltResponse

import handlers
from bot.errors import MalformedRequest
from bot.logging import request_id
from bot.metrics import Metrics
from bot.services import Services
from bot.workspaces import BOT_SCOPES
from handlers.clicks import answers_from_views
from storage import repositories
from storage.db import OUTAGE_ERRORS

logger = logging.getLogger(__name__)
# How long an install begun at /slack/install may take to come back from Slack's approval page.
OAUTH_STATE_SECONDS = 600


# What bot/server.py holds of Bolt, without importing it: the app, and its Socket Mode connection.
SlackApp = AsyncApp
SocketMode = AsyncSocketModeHandler


def socket_mode(app: SlackApp, app_token: str) -> SocketMode:
    return AsyncSocketModeHandler(app, app_token)


def events_handler(
    app: SlackApp, refuse: Callable[[web.Request, bytes], web.Response | None]
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """POST /slack/events: ``refuse`` answers what Slack never sends; Bolt takes the rest."""

    async def slack_events(request: web.Request) -> web.Response:
        refusal = refuse(request, await request.read())
        if refusal is not None:
            return refusal
        return await to_aiohttp_response(await app.async_dispatch(await to_bolt_request(request)))

    return slack_events


def install_routes(app: SlackApp) -> list[web.RouteDef]:
    """GET /slack/install sends a person to Slack's approval page; Slack sends them back to
    /slack/oauth_redirect, where Bolt exchanges the code and stores the workspace's installation."""
    flow = app.oauth_flow
    if flow is None:
        return []

    async def install(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await flow.handle_installation(await to_bolt_request(request)))

    async def redirect(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await flow.handle_callback(await to_bolt_request(request)))

    return [web.get(flow.install_path, install), web.get(flow.redirect_uri_path, redirect)]


def build_app(services: Services) -> AsyncApp:
    settings = services.settings
    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
    app = AsyncApp(
        # Multi-workspace: Bolt gives each request a client with its workspace token, from the installation.
        client=services.slack_for(""),
        # Socket Mode requests are not signed; Bolt skips verification for them by itself.
        signing_secret=secret,
        oauth_settings=_oauth_settings(services),
        process_before_response=False,
        raise_error_for_unhandled_request=False,
    )
    app.middleware(_observe(services))
    app.middleware(_provide_services(services))
    app.middleware(_answer_clicks_from_views)
    app.middleware(_deduplicate_events(services))
    app.error(_log_unhandled_error)
    handlers.register(app, services)
    return app


def _oauth_settings(services: Services) -> AsyncOAuthSettings | None:
    """Multi-workspace mode: /slack/install and /slack/oauth_redirect, with installations and the
    OAuth states in the bot's own database (so any replica can finish an install another began)."""
    settings = services.settings
    if services.installations is None or settings.slack_client_secret is None:
        return None
    return AsyncOAuthSettings(
        client_id=settings.slack_client_id,
        client_secret=settings.slack_client_secret.get_secret_value(),
        scopes=list(BOT_SCOPES),
        redirect_uri=settings.slack_redirect_uri,
        installation_store=services.installations.store,
        state_store=services.db.oauth_state_store(expiration_seconds=OAUTH_STATE_SECONDS),
        install_page_rendering_enabled=False,  # /slack/install sends the browser straight to Slack
    )


def _kind(body: dict[str, Any]) -> str:
    if body.get("type") == "event_callback":
        return f"event:{(body.get('event') or {}).get('type', '?')}"
    if body.get("command"):
        return "command"
    return str(body.get("type") or "other")


class _TimedAck(AsyncAck):
    """Bolt's ack, which also records how long the request waited for it (Slack allows 3 s)."""

    def __init__(self, metrics: Metrics, started: float) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._metrics = metrics
        self._started = started

    async def __call__(self, *args: Any, **kwargs: Any) -> BoltResponse:
        if self.response is None:
            self._metrics.ack_seconds.observe(time.perf_counter() - self._started)
        return await super().__call__(*args, **kwargs)


def _observe(services: Services) -> Callable[..., Awaitable[BoltResponse | None]]:
    """Count each Slack request, time its acknowledgement, and tag its log lines with a request id."""

    async def observe(
        body: dict[str, Any], context: dict[str, Any], next: Callable[[], Awaitable[BoltResponse | None]]
    ) -> BoltResponse | None:
        started = time.perf_counter()
        # Not reset afterwards: Bolt runs the listeners after every middleware has returned, in tasks
        # that copy this context, so that is how their log lines get the id. Each request sets it anew.
        request_id.set(str(body.get("event_id") or body.get("trigger_id") or uuid.uuid4().hex[:12]))
        services.metrics.slack_requests.labels(kind=_kind(body)).inc()
        context["ack"] = _TimedAck(services.metrics, started)
        return await next()

    return observe


def _provide_services(services: Services) -> Callable[..., Awaitable[None]]:
    """Make ``services`` an argument every listener can ask for, as Bolt does for ``client`` or ``say``."""

    async def provide(context: AsyncBoltContext, next: Callable[[], Awaitable[None]]) -> None:
        context["services"] = services
        await next()

    return provide


async def _answer_clicks_from_views(
    body: dict[str, Any], context: AsyncBoltContext, next: Callable[[], Awaitable[None]]
) -> None:
    """A click on the Home tab or in a modal has no response_url, so Bolt's ``respond()`` would raise and
    the person would see nothing: there, listeners answer by direct message instead."""
    direct = answers_from_views(body, context.client)
    if direct is not None:
        context["respond"] = direct
    await next()


def _deduplicate_events(services: Services) -> Callable[..., Awaitable[BoltResponse | None]]:
    """Drop an Events API delivery whose event_id was already handled.

    Slack re-sends an event when the first delivery was slow or failed (X-Slack-Retry-Num), and
    Bolt does not deduplicate. A thread reply that mentions the bot comes twice more, as a
    ``message`` and an ``app_mention`` with different event ids: the post itself is claimed too, so
    whichever arrives first is the one acted on. The claims are unique rows in the database, so they
    hold across restarts and replicas, and they are taken before the acknowledgement: when the
    database is down the delivery fails and Slack sends it again later, instead of its work being
    lost after a 200.
    """

    async def deduplicate(body: dict[str, Any], next: Callable[[], Awaitable[None]]) -> BoltResponse | None:
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        if event_id:
            team_id = body.get("team_id") or ""
            keys = [event_id, *_post_key(body.get("event") or {})]
            async with services.db.session() as session, session.begin():
                await repositories.ensure_team(session, team_id=team_id)
                fresh = await repositories.claim_slack_events(
                    session, keys=keys, team_id=team_id, now=services.clock.now()
                )
            if not fresh:
                logger.info("event %s already handled; dropping the repeat", event_id)
                return BoltResponse(status=200, body="")
        await next()
        return None

    return deduplicate


def _post_key(event: dict[str, Any]) -> list[str]:
    """The key of a thread reply that may arrive as both a message and an app_mention (files aside:
    a file_share message goes to intake, the mention to the chat, and both must run)."""
    in_thread = bool(event.get("thread_ts")) and event.get("thread_ts") != event.get("ts")
    is_reply = event.get("type") == "app_mention" or (event.get("type") == "message" and "subtype" not in event)
    if in_thread and is_reply and not event.get("files"):
        return [f"msg:{event.get('channel')}:{event.get('ts')}"]
    return []


async def _log_unhandled_error(error: Exception, body: dict[str, Any]) -> None:
    if isinstance(error, MalformedRequest):
        logger.warning("ignored a malformed %s request: %s", body.get("type", "?"), error)
        return
    if isinstance(error, OSError) and error.filename:
        # A file the bot keeps (the data folder full or read-only): name it, not the database.
        logger.error(
            "cannot use %s for a %s request: %s", error.filename, body.get("type", "?"), error.strerror or error
        )
        return
    if isinstance(error, OUTAGE_ERRORS):
        # An outage, not a bug: the request fails, Slack sends it again, and one line says why.
        cause = type(getattr(error, "orig", None) or error).__name__
        logger.warning("database unavailable for a %s request (%s); Slack will retry", body.get("type", "?"), cause)
        return
    logger.error("unhandled error for a %s request", body.get("type", "?"), exc_info=error)
