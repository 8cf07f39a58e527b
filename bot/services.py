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
from bot.providers.openai_compatible import build_provider
from bot.providers.types import BaseModelInfo, FineTuneProvider
from bot.settings import Settings
from bot.workspaces import Installations, WorkspaceClient, current_team
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
class Services:
    settings: Settings
    db: Database
    slack: AsyncWebClient
    # For posts that must not be repeated: only a 429 (which Slack did not act on) is retried.
    slack_once: AsyncWebClient
    clock: Clock
    provider: FineTuneProvider
    metrics: Metrics = field(default_factory=Metrics)
    # Multi-workspace mode only: the installed workspaces' bot tokens.
    installations: Installations | None = None
    slack_state: SlackState = field(default_factory=SlackState)
    # One validation at a time: it uses every core already, and a second would only add memory.
    validation_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}")
    # Jobs this process is starting right now: its ticks keep their leases alive.
    launches: set[int] = field(default_factory=set)
    # Shares of files this process is taking in right now (their intakes' ids), likewise.
    intakes: set[int] = field(default_factory=set)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _home_locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _token_counters: dict[str, TokenCounter] = field(default_factory=dict)
    _validation_pool: ProcessPoolExecutor | None = None
    _base_models: tuple[datetime, list[BaseModelInfo]] | None = None
    _pacer: SlackPacer | None = None

    @property
    def pacer(self) -> SlackPacer:
        """The bot's own pace for Slack's rate tiers, shared by every answer being written."""
        if self._pacer is None:
            self._pacer = SlackPacer(self.clock)
        return self._pacer

    async def bot_token(self) -> str:
        """The bot token of the workspace being served, for what goes around the Web API (file downloads)."""
        if self.installations is not None:
            return await self.installations.bot_token(current_team.get())
        return self.settings.slack_bot_token.get_secret_value() if self.settings.slack_bot_token else ""

    def token_counter(self, encoding: str) -> TokenCounter:
        """One counter (tables and cache) per encoding for the process, not one per chat message."""
        if encoding not in self._token_counters:
            self._token_counters[encoding] = TokenCounter(encoding)
        return self._token_counters[encoding]

    def home_lock(self, team_id: str) -> asyncio.Lock:
        """One Home render at a time per team, so a slower, older render never lands after a newer one."""
        return self._home_locks.setdefault(team_id, asyncio.Lock())

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
            await tell(self.slack, asker, sentence)

    def track(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``work`` as the bot's own work: a shutdown gives it the grace period, then cuts it off."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
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

    async def base_models(self) -> list[BaseModelInfo]:
        """The provider's trainable base models, asked at most every 10 minutes (pickers open often)."""
        now = self.clock.now()
        if self._base_models is None or now - self._base_models[0] > BASE_MODELS_TTL:
            self._base_models = (now, await self.provider.list_base_models())
        return self._base_models[1]

    def validation_pool(self) -> ProcessPoolExecutor:
        """A process for large validations, so they never hold the event loop (spawned: no inherited loop)."""
        if self._validation_pool is None:
            self._validation_pool = ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"))
        return self._validation_pool

    @classmethod
    def create(cls, settings: Settings, *, clock: Clock | None = None) -> Services:
        clock = clock or SystemClock()
        db = Database(settings.effective_database_url)
        installations = None
        if settings.slack_multi_workspace:
            store = db.installation_store(client_id=settings.slack_client_id or "")
            installations = Installations(store, clock)

        def client(*retry_handlers: Any) -> AsyncWebClient:
            if installations is not None:
                return WorkspaceClient(
                    installations, base_url=settings.slack_api_url, retry_handlers=list(retry_handlers)
                )
            token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
            return AsyncWebClient(token=token, base_url=settings.slack_api_url, retry_handlers=list(retry_handlers))

        metrics = Metrics()
        return cls(
            settings=settings,
            db=db,
            slack=client(
                AsyncRateLimitErrorRetryHandler(max_retry_count=2), AsyncServerErrorRetryHandler(max_retry_count=1)
            ),
            slack_once=client(AsyncRateLimitErrorRetryHandler(max_retry_count=2)),
            clock=clock,
            provider=build_provider(settings, observe=metrics.provider_call),
            metrics=metrics,
            installations=installations,
        )

    async def drain(self, *, timeout: float) -> int:
        """Let background work finish (a shutdown's grace period); returns how many were still running."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        # Work that finishes may start more (a reply posts its notifications): wait for those too.
        while self._tasks and (left := deadline - loop.time()) > 0:
            await asyncio.wait(list(self._tasks), timeout=left)
        return len(self._tasks)

    async def cancel_background(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def aclose(self) -> None:
        await self.cancel_background()
        if self._validation_pool is not None:
            self._validation_pool.shutdown(wait=False, cancel_futures=True)
        await self.provider.aclose()
        await self.db.dispose()
