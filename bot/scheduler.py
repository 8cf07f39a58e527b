"""APScheduler wiring only: it triggers the ticks; the database, not the scheduler, holds the state."""

from __future__ import annotations

import asyncio
import contextlib

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot import ticks
from bot.services import Services


def start_scheduler(services: Services) -> AsyncIOScheduler:
    """Run ``ticks.tick`` every FINETUNE_POLL_SECONDS in the running event loop."""
    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_job(
        _tick_as_own_work,
        IntervalTrigger(seconds=services.settings.finetune_poll_seconds),
        kwargs={"services": services, "owner": services.owner},
        id="tick",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=None,
    )
    scheduler.start()
    return scheduler


async def _tick_as_own_work(services: Services, owner: str) -> None:
    """A tick is the bot's own work, like a reply being written: a shutdown lets it finish within the grace
    period, then cuts it off and frees what it held, instead of the tick dying at once."""
    tick = services.track(ticks.tick(services, owner=owner))
    # The scheduler cancels its running jobs when it shuts down (and would log a traceback for each): the
    # shielded tick carries on as tracked work, which the shutdown drains, cuts off and counts.
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.shield(tick)
