"""Asking a model many questions under a lease, as golden sets and evaluations do.

Each answer is stored the moment it arrives, in the same transaction that extends the lease on the
work's row, so a replica that dies mid-way leaves every answer it got, and the one that takes over
asks only what is missing. Rate limits are waited out on the injected clock; the first error that
is not about one question stops the rest, to be resumed later.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import timedelta

from bot.clock import Clock
from bot.models import serving
from bot.providers.types import FineTuneProvider, ProviderError, ProviderErrorKind
from bot.services import Services
from storage import repositories
from storage.db import Session
from storage.repositories import Leased

RATE_LIMIT_ATTEMPTS = 5
FIRST_WAIT_SECONDS = 0.5
# At most this often, progress is worth an edit of the work's message.
PROGRESS_EVERY_SECONDS = 2.0


@dataclass(frozen=True)
class Answer:
    """A model's answer, or the provider's refusal of this one question (``error``)."""

    text: str
    error: str
    prompt_tokens: int
    completion_tokens: int


async def complete_patiently(
    provider: FineTuneProvider,
    clock: Clock,
    *,
    model: str,
    messages: list[dict[str, str]],
    max_tokens: int,
    served_as: str | None = None,
) -> Answer:
    """One whole answer; a rate limit is waited out, doubling the wait, before its error is raised.

    The SDK already honours Retry-After a couple of times; this covers the longer bursts of a batch.
    """
    for attempt in range(RATE_LIMIT_ATTEMPTS):
        try:
            text, usage = await provider.complete_chat(
                model=model, messages=messages, max_tokens=max_tokens, served_as=served_as
            )
            return Answer(text, "", usage.prompt_tokens, usage.completion_tokens)
        except ProviderError as error:
            if error.kind != ProviderErrorKind.RATE_LIMITED or attempt == RATE_LIMIT_ATTEMPTS - 1:
                raise
            await clock.sleep(FIRST_WAIT_SECONDS * 2**attempt)
    raise AssertionError("unreachable: the last attempt returns or raises")


class LeasedBatch:
    """Questions asked at most ``concurrency`` at a time, for the row ``work_id`` of ``table``, held under a lease."""

    def __init__(
        self,
        services: Services,
        *,
        table: Leased,
        work_id: int,
        team_id: str,
        lease: timedelta,
        concurrency: int,
        per_question_errors: Collection[ProviderErrorKind] = (),
    ) -> None:
        self._services = services
        self._table = table
        self._work_id = work_id
        self._team_id = team_id
        # Each model's deployment name (where its provider needs one), looked up once per batch.
        self._served: dict[tuple[str, str], str | None] = {}
        self._lease = lease
        self._slots = asyncio.Semaphore(concurrency)
        self._per_question_errors = frozenset(per_question_errors)
        self._last_progress = services.clock.monotonic()
        self.failure: ProviderError | None = None

    async def ask(
        self,
        model: str,
        messages: list[dict[str, str]],
        *,
        provider: str,
        keep: Callable[[Session, Answer], Awaitable[object]],
    ) -> Answer | None:
        """Ask ``model`` at ``provider``, then ``keep`` the answer and renew the lease in one transaction; None
        once the batch stopped."""
        services = self._services
        async with self._slots:
            if self.failure is not None:
                return None
            try:
                answer = await complete_patiently(
                    services.providers.get(provider),
                    services.clock,
                    model=model,
                    messages=messages,
                    max_tokens=services.settings.finetune_chat_max_tokens,
                    served_as=await self._served_as(provider, model),
                )
            except serving.NotServing as missing:
                self.failure = serving.provider_error_for(missing)
                return None
            except ProviderError as error:
                if error.kind not in self._per_question_errors:
                    self.failure = error
                    return None
                answer = Answer("", error.provider_message, 0, 0)
            async with services.db.session() as session, session.begin():
                await keep(session, answer)
                await repositories.renew_leases(
                    session,
                    self._table,
                    owner=services.owner,
                    ids=[self._work_id],
                    expires_at=services.clock.now() + self._lease,
                )
            return answer

    async def _served_as(self, provider: str, model: str) -> str | None:
        key = (provider, model)
        if key not in self._served:
            self._served[key] = await serving.served_as(
                self._services, team_id=self._team_id, provider=provider, model=model
            )
        return self._served[key]

    def progress_due(self) -> bool:
        """Whether enough time passed since the last progress shown (and, if so, that it is shown now)."""
        now = self._services.clock.monotonic()
        if now - self._last_progress < PROGRESS_EVERY_SECONDS:
            return False
        self._last_progress = now
        return True


async def resume_orphans(
    services: Services,
    claim: Callable[[Session], Awaitable[list[int]]],
    work: Callable[[int], Awaitable[None]],
) -> int:
    """A tick's part: lease the rows whose runner is gone (a restart, a killed replica), and finish each."""
    async with services.db.session() as session, session.begin():
        claimed = await claim(session)
    for row_id in claimed:
        await work(row_id)
    return len(claimed)
