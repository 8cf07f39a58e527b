"""APScheduler wiring only: it triggers the ticks; the database, not the scheduler, holds the state."""

from __future__ import annotations

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot import ticks
from bot.services import Services


def start_scheduler(services: Services) -> AsyncIOScheduler:
    """Run ``ticks.tick`` every FINETUNE_POLL_SECONDS in the running event loop."""
    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_job(
        ticks.tick,
        IntervalTrigger(seconds=services.settings.finetune_poll_seconds),
        kwargs={"services": services, "owner": services.owner},
        id="tick",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=None,
    )
    scheduler.start()
    return scheduler
