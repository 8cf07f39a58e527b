"""Holding a call's answer back, as a dead caller or a broken network would see it; shared by the emulators."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass
class Hold:
    """Let ``skip`` calls through, then keep the next one waiting until ``released``.

    By default the call's work is done first (the platform acted, the answer never arrived);
    ``before_work`` holds it before it has any effect (the caller died mid-request).
    """

    skip: int = 0
    before_work: bool = False
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)

    async def stop_here(self) -> None:
        """Where a held call waits; every call after the held one passes."""
        if self.reached.is_set():
            return
        if self.skip > 0:
            self.skip -= 1
            return
        self.reached.set()
        await self.released.wait()
