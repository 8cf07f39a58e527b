"""Runs the bot: migrations, the Slack connection (Socket Mode or HTTP), and the health endpoints.

Both modes serve ``GET /healthz`` (the process is up) and ``GET /readyz`` (the database answers and
Slack is connected) on PORT; HTTP mode also receives Slack's requests at ``POST /slack/events``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier

from bot.app import SlackApp, SocketMode, build_app, events_handler, install_routes, socket_mode
from bot.errors import ConfigError
from bot.numbers import whole_number
from bot.providers import ProviderError
from bot.scheduler import start_scheduler
from bot.services import Services
from storage import repositories

logger = logging.getLogger(__name__)

SLACK_EVENTS_PATH = "/slack/events"
WEBHOOK_PATH = "/webhooks/openai"


@dataclass
class RunningBot:
    """A started bot; ``port`` is the one actually bound (useful when asked for port 0)."""

    app: SlackApp
    port: int
    runner: web.AppRunner
    socket_mode: SocketMode | None
    scheduler: AsyncIOScheduler | None

    async def stop(self) -> None:
        """Stop taking work: no more ticks, no more Slack requests (in-flight HTTP ones are answered)."""
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        if self.socket_mode is not None:
            await self.socket_mode.close_async()  # type: ignore[no-untyped-call]
        await self.runner.cleanup()

    async def shutdown(self, services: Services) -> None:
        """SIGTERM: stop taking work, let in-flight work finish for the grace period, free every lease.

        What is still running after the grace period is cut off; its leases are freed all the same,
        so another replica resumes it at its next tick instead of after the lease expires.
        """
        await self.stop()
        unfinished = await services.drain(timeout=services.settings.shutdown_grace_seconds)
        await services.cancel_background()
        async with services.db.session() as session, session.begin():
            released = await repositories.release_leases(session, owner=services.owner, now=services.clock.now())
        logger.info(
            "stopped: in-flight work finished (%d cut off after %.0f s); %d lease(s) released",
            unfinished,
            services.settings.shutdown_grace_seconds,
            released,
        )


async def check_slack(services: Services) -> None:
    """Call auth.test once at start, so a wrong token fails now with a clear line, not at first use.

    A multi-workspace bot has no token of its own: each workspace's is checked as it is used."""
    if services.installations is not None:
        services.slack_state.connected = True
        services.slack_state.detail = "multi-workspace: tokens come from each workspace's installation"
        return
    try:
        identity = await services.slack_for("").auth_test()
    except SlackApiError as error:
        raise ConfigError(
            f"Slack rejected SLACK_BOT_TOKEN ({error.response.get('error')}): copy the Bot User OAuth Token "
            "again from the Slack app settings (OAuth & Permissions)."
        ) from None
    services.slack_state.connected = True
    services.slack_state.detail = f"connected to {identity.get('team', '?')} as {identity.get('user', '?')}"
    services.slack_state.bot_user_id = str(identity.get("user_id") or "")
    services.slack_state.workspace_url = str(identity.get("url") or services.slack_state.workspace_url)


def health_routes(services: Services, socket_mode: SocketMode | None) -> list[web.RouteDef]:
    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_request: web.Request) -> web.Response:
        problems = []
        try:
            await services.db.ping()
        except Exception as error:  # any driver error means "not ready"; the reason is logged
            logger.warning("readiness: database unreachable: %s", type(error).__name__)
            problems.append("database unreachable")
        connected = services.slack_state.connected
        if socket_mode is not None:
            connected = connected and await socket_mode.client.is_connected()
        if not connected:
            problems.append(f"slack: {services.slack_state.detail}")
        # A provider that is down or misconfigured is reported, never made the bot's own unreadiness:
        # the other providers, and everything else, still work.
        providers = {provider.name: services.metrics.last_outcome(provider.name) for provider in services.providers}
        left_out = services.providers.left_out
        if problems:
            body = {"status": "unavailable", "problems": problems, "providers": providers, "left_out": left_out}
            return web.json_response(body, status=503)
        body = {"status": "ready", "slack": services.slack_state.detail, "providers": providers, "left_out": left_out}
        return web.json_response(body)

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(body=services.metrics.render(), content_type="text/plain", charset="utf-8")

    return [web.get("/healthz", healthz), web.get("/readyz", readyz), web.get("/metrics", metrics)]


async def start_bot(
    services: Services, *, host: str = "0.0.0.0", port: int | None = None, schedule: bool = True
) -> RunningBot:
    """Migrate, connect to Slack and start serving; returns once the bot is up.

    ``schedule=False`` leaves the ticks to the caller (tests call them directly with a frozen clock).
    """
    settings = services.settings
    before, after = await services.db.migrate()
    if before != after:
        logger.info("database migrated from %s to %s", before or "empty", after)
    app = build_app(services)
    await check_slack(services)

    connection = None
    if settings.slack_app_token is not None:
        connection = socket_mode(app, settings.slack_app_token.get_secret_value())

    web_app = web.Application()
    web_app.add_routes(health_routes(services, connection))
    if connection is None:
        verifier = SignatureVerifier(
            settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
        )
        slack_events = events_handler(app, lambda request, body: front_door(verifier, request.headers, body))
        web_app.add_routes([web.post(SLACK_EVENTS_PATH, slack_events), web.post(WEBHOOK_PATH, _webhook(services))])
    web_app.add_routes(install_routes(app))

    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, settings.port if port is None else port)
    await site.start()
    bound_port = runner.addresses[0][1]
    if connection is not None:
        await connection.connect_async()  # type: ignore[no-untyped-call]
        logger.info("connected to Slack in Socket Mode; health on port %s", bound_port)
    else:
        logger.info("listening for Slack on http://%s:%s%s", host, bound_port, SLACK_EVENTS_PATH)
    scheduler = start_scheduler(services) if schedule else None
    return RunningBot(app=app, port=bound_port, runner=runner, socket_mode=connection, scheduler=scheduler)


def front_door(verifier: SignatureVerifier, headers: Mapping[str, str], body: bytes) -> web.Response | None:
    """Refuse, with one warning line, what Slack never sends: 401 unsigned (or a timestamp that is not a
    number), 400 signed but malformed. Bolt would answer those with a 500 and a traceback."""
    stamp = headers.get("X-Slack-Request-Timestamp", "")
    if whole_number(stamp) is None or not verifier.is_valid(body, stamp, headers.get("X-Slack-Signature", "")):
        logger.warning("refused a Slack request: not signed with SLACK_SIGNING_SECRET, or too old")
        return web.json_response({"error": "invalid signature"}, status=401)
    problem = _malformed(headers.get("Content-Type", ""), body)
    if problem is not None:
        logger.warning("refused a signed Slack request: %s", problem)
        return web.json_response({"error": problem}, status=400)
    return None


def _malformed(content_type: str, body: bytes) -> str | None:
    """What is wrong with a signed request's shape, or None when Bolt can take it."""
    try:
        text = body.decode("utf-8")
        if content_type.startswith("application/json"):
            event = json.loads(text)
            return None if isinstance(event, dict) else "the JSON body is not an object"
        form = parse_qs(text, keep_blank_values=True)
        if "payload" not in form:
            return None  # a slash command
        payload = json.loads(form["payload"][0])
    except (UnicodeDecodeError, ValueError):
        return "the body is not JSON where Slack sends JSON"
    if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
        return "the payload is not an object with a type"
    if payload["type"] == "block_actions":
        actions = payload.get("actions")
        if not isinstance(actions, list) or not actions or not all(isinstance(a, dict) for a in actions):
            return "block_actions without actions"
    if payload["type"] in ("view_submission", "view_closed"):
        view = payload.get("view")
        if not isinstance(view, dict) or not isinstance(view.get("type"), str):
            return f"{payload['type']} without a view"
    return None


def _webhook(services: Services) -> Any:
    """POST /webhooks/openai: a verified event only marks its job due now; polling stays the truth."""

    async def receive(request: web.Request) -> web.Response:
        secret = services.settings.openai_webhook_secret
        if secret is None:
            return web.json_response({"error": "webhooks are not configured (OPENAI_WEBHOOK_SECRET)"}, status=404)
        body = await request.read()
        try:
            event = services.providers.default.verify_webhook(
                body, dict(request.headers), secret=secret.get_secret_value()
            )
        except ProviderError as error:
            logger.warning("rejected a webhook: %s", error.provider_message)
            return web.json_response({"error": "invalid signature"}, status=400)
        job_id = str((event.get("data") or {}).get("id") or "")
        if event.get("type", "").startswith("fine_tuning.job.") and job_id:
            # The event names the job by the host's id, unique at each host; whichever provider ran it polls now.
            async with services.db.session() as session, session.begin():
                for provider in services.providers:
                    await repositories.mark_job_due(
                        session, provider=provider.name, provider_job_id=job_id, now=services.clock.now()
                    )
        return web.json_response({"ok": True})

    return receive
