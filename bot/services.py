"""Composition root: everything the handlers, ticks and use-cases need, built once and passed in."""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import Coroutine
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from multiprocessing import get_context
from typing import Any

from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.asker import Asker, tell
from bot.clock import Clock, SystemClock
from bot.datasets.tokens import TokenCounter
from bot.errors import MalformedRequest, refusal_of
from bot.metrics import Metrics
from bot.pacing import SlackPacer
from bot.providers.registry import Providers, build_providers
from bot.providers.types import BaseModelInfo, ProviderError
from bot.settings import Settings
from bot.workspaces import Installations, WorkspaceClient
from storage.db import Database

logger = logging.getLogger(__name__)
BASE_MODELS_TTL = timedelta(minutes=10)


@dataclass
class SlackState:
    """What the bot learned about its Slack workspace while running."""

    connected: bool = False
    detail: str = "not connected yet"
    bot_user_id: str = ""
    workspace_url: str = "https://slack.com/"  # for links to threads; auth.test gives the real one
    # Cleared the first time Slack refuses chat.startStream: answers are then edited in place.
    streaming_supported: bool = True


@dataclass
class Runtime:
    """What one running bot holds and learns: its work in flight, its locks and its caches. Mutable, unlike
    the wiring around it, and never shared between two bots (a test's replicas each have their own)."""

    slack_state: SlackState = field(default_factory=SlackState)
    # One validation at a time: it uses every core already, and a second would only add memory.
    validation_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))
    # Jobs this process is starting right now: its ticks keep their leases alive.
    launches: set[int] = field(default_factory=set)
    # Shares of files this process is taking in right now (their intakes' ids), likewise.
    intakes: set[int] = field(default_factory=set)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    home_locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    token_counters: dict[str, TokenCounter] = field(default_factory=dict)
    slack_clients: dict[tuple[str, bool], AsyncWebClient] = field(default_factory=dict)
    validation_pool: ProcessPoolExecutor | None = None
    # Each provider's base models, with when they were asked.
    base_models: dict[str, tuple[datetime, list[BaseModelInfo]]] = field(default_factory=dict)
    pacer: SlackPacer | None = None


@dataclass(frozen=True)
class Services:
    """The wiring, fixed once built; what changes while the bot runs is in ``runtime``."""

    settings: Settings
    db: Database
    clock: Clock
    providers: Providers
    metrics: Metrics = field(default_factory=Metrics)
    # Multi-workspace mode only: the installed workspaces' bot tokens.
    installations: Installations | None = None
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}")
    runtime: Runtime = field(default_factory=Runtime)

    @property
    def slack_state(self) -> SlackState:
        return self.runtime.slack_state

    def slack_for(self, team_id: str, *, once: bool = False) -> AsyncWebClient:
        """The Web API client that acts in ``team_id``'s workspace (with its bot token in multi-workspace
        mode; the one token otherwise). ``once`` is for posts that must not be repeated: only a 429, which
        Slack did not act on, is retried."""
        key = (team_id if self.installations is not None else "", once)
        if key not in self.runtime.slack_clients:
            retries: list[Any] = [AsyncRateLimitErrorRetryHandler(max_retry_count=2)]
            if not once:
                retries.append(AsyncServerErrorRetryHandler(max_retry_count=1))
            self.runtime.slack_clients[key] = self._client(key[0], retries)
        return self.runtime.slack_clients[key]

    def _client(self, team_id: str, retries: list[Any]) -> AsyncWebClient:
        url = self.settings.slack_api_url
        if self.installations is not None:
            return WorkspaceClient(self.installations, team_id, base_url=url, retry_handlers=retries)
        token = self.settings.slack_bot_token
        return AsyncWebClient(token=token.get_secret_value() if token else None, base_url=url, retry_handlers=retries)

    @property
    def pacer(self) -> SlackPacer:
        """The bot's own pace for Slack's rate tiers, shared by every answer being written."""
        if self.runtime.pacer is None:
            self.runtime.pacer = SlackPacer(self.clock)
        return self.runtime.pacer

    async def bot_token(self, team_id: str) -> str:
        """``team_id``'s bot token, for what goes around the Web API (file downloads)."""
        if self.installations is not None:
            return await self.installations.bot_token(team_id)
        return self.settings.slack_bot_token.get_secret_value() if self.settings.slack_bot_token else ""

    def token_counter(self, encoding: str) -> TokenCounter:
        """One counter (tables and cache) per encoding for the process, not one per chat message."""
        counters = self.runtime.token_counters
        if encoding not in counters:
            counters[encoding] = TokenCounter(encoding)
        return counters[encoding]

    def home_lock(self, team_id: str) -> asyncio.Lock:
        """One Home render at a time per team, so a slower, older render never lands after a newer one."""
        return self.runtime.home_locks.setdefault(team_id, asyncio.Lock())

    def background(self, work: Coroutine[Any, Any, None], *, asker: Asker | None = None) -> None:
        """Run ``work`` after the current request has been answered; the bot stops it cleanly on shutdown.

        This is the one mapping of background refusals: one that ``work`` raises reaches ``asker`` (ephemeral
        where they asked), so no use-case has to remember to post its own."""
        self.track(work if asker is None else self.answering(work, asker))

    async def answering(self, work: Coroutine[Any, Any, None], asker: Asker) -> None:
        """Await ``work``; a refusal it raises is told to ``asker`` instead (for work that learns late who
        asked where, like a form whose job's thread is read first)."""
        try:
            await work
        except Exception as error:
            sentence = refusal_of(error)
            if sentence is None:
                raise
            logger.info("refused a request of %s: %s", asker.user_id, type(error).__name__)
            await tell(self.slack_for(asker.team_id), asker, sentence)

    def track(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``work`` as the bot's own work: a shutdown gives it the grace period, then cuts it off."""
        task = asyncio.create_task(work)
        self.runtime.tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.runtime.tasks.discard(task)
        error = None if task.cancelled() else task.exception()
        if error is None:
            return
        if isinstance(error, MalformedRequest):
            logger.warning("ignored a malformed request: %s", error)
            return
        if (refusal := refusal_of(error)) is not None:  # nobody to tell (a tick's work): the log line is all
            logger.warning("background work refused: %s", refusal)
            return
        logger.error("background work failed", exc_info=error)

    async def base_models(self, provider: str | None = None) -> list[BaseModelInfo]:
        """A provider's trainable base models (the default provider's for None), asked at most every 10
        minutes (pickers open often)."""
        name = self.providers.name_of(provider)
        now = self.clock.now()
        cached = self.runtime.base_models.get(name)
        if cached is None or now - cached[0] > BASE_MODELS_TTL:
            try:
                cached = self.runtime.base_models[name] = (now, await self.providers.get(name).list_base_models())
            except ProviderError:
                if cached is None:
                    raise
                logger.info("%s did not list its models; using the list of %s", name, cached[0])
                # Asked again in a minute, not at every picker meanwhile.
                self.runtime.base_models[name] = (now - BASE_MODELS_TTL + timedelta(minutes=1), cached[1])
        return cached[1]

    def validation_pool(self) -> ProcessPoolExecutor:
        """A process for large validations, so they never hold the event loop (spawned: no inherited loop)."""
        if self.runtime.validation_pool is None:
            self.runtime.validation_pool = ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"))
        return self.runtime.validation_pool

    @classmethod
    def create(cls, settings: Settings, *, clock: Clock | None = None) -> Services:
        clock = clock or SystemClock()
        db = Database(settings.effective_database_url)
        installations = None
        if settings.slack_multi_workspace:
            store = db.installation_store(client_id=settings.slack_client_id or "")
            installations = Installations(store, clock)
        metrics = Metrics()
        return cls(
            settings=settings,
            db=db,
            clock=clock,
            providers=build_providers(settings, clock=clock, observe=metrics.provider_call),
            metrics=metrics,
            installations=installations,
        )

    async def drain(self, *, timeout: float) -> int:
        """Let background work finish (a shutdown's grace period); returns how many were still running."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        # Work that finishes may start more (a reply posts its notifications): wait for those too.
        tasks = self.runtime.tasks
        while tasks and (left := deadline - loop.time()) > 0:
            await asyncio.wait(list(tasks), timeout=left)
        return len(tasks)

    async def cancel_background(self) -> None:
        for task in list(self.runtime.tasks):
            task.cancel()
        await asyncio.gather(*self.runtime.tasks, return_exceptions=True)

    async def aclose(self) -> None:
        await self.cancel_background()
        if self.runtime.validation_pool is not None:
            self.runtime.validation_pool.shutdown(wait=False, cancel_futures=True)
        await self.providers.aclose()
        await self.db.dispose()
