"""Time is injected: the bot asks a clock, so tests move time instead of sleeping."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait: for real on the system clock; a frozen clock moves on at once instead."""
        ...

    def monotonic(self) -> float:
        """Seconds for measuring intervals (pacing): never goes back."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class FrozenClock:
    """A clock that moves only when told to; for tests and the demo.

    Its monotonic seconds are the real ones plus every advance: work that really takes time (a model
    streaming an answer) is still measured, and a sleep passes at once."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FrozenClock needs a timezone-aware start time")
        self._now = start
        self._skipped = 0.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return time.monotonic() + self._skipped

    def advance(self, delta: timedelta) -> None:
        self._now += delta
        self._skipped += delta.total_seconds()

    async def sleep(self, seconds: float) -> None:
        self.advance(timedelta(seconds=seconds))
        await asyncio.sleep(0)  # still let the other tasks run, as a real wait would
