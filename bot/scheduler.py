"""APScheduler wiring only: it triggers the ticks; the database, not the scheduler, holds the state."""

from __future__ import annotations

import socket
import uuid

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot import ticks
from bot.services import Services


def replica_name() -> str:
    """Who holds a lease: this host and process, unique across restarts."""
    return f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"


def start_scheduler(services: Services) -> AsyncIOScheduler:
    """Run ``ticks.tick`` every FINETUNE_POLL_SECONDS in the running event loop."""
    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_job(
        ticks.tick,
        IntervalTrigger(seconds=services.settings.finetune_poll_seconds),
        kwargs={"services": services, "owner": replica_name()},
        id="tick",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=None,
    )
    scheduler.start()
    return scheduler
