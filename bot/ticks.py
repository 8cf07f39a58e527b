"""Scheduled ticks: plain async functions. The scheduler calls them; tests call them with a frozen clock.

The database is the truth; a tick only looks at what is due. Each tick leases the jobs it polls,
so replicas sharing one database never poll the same job at once, and one job's failure never
stops the others.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from bot import following, notifier
from bot.jobs import ACTIVE
from bot.providers import ProviderError
from bot.services import Services
from storage import repositories

logger = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)
BATCH = 200
CONCURRENCY = 16


async def poll_due_jobs(services: Services, *, owner: str, limit: int = BATCH) -> int:
    """Poll every due active job this replica can lease; returns how many it polled."""
    now = services.clock.now()
    async with services.db.session() as session, session.begin():
        claimed = await repositories.claim_due_jobs(
            session, owner=owner, now=now, lease=LEASE, statuses=tuple(ACTIVE), limit=limit
        )
    interval = timedelta(seconds=services.settings.finetune_poll_seconds)
    slots = asyncio.Semaphore(CONCURRENCY)

    async def poll(job_id: int) -> None:
        async with slots:
            next_poll: timedelta | None = interval
            try:
                active = await following.follow_job(services, job_id)
                if not active:
                    next_poll = None
            except ProviderError as error:
                failures = await following.record_failure(services, job_id, error)
                next_poll = following.backoff(failures, interval)
            except Exception:  # one job's bug must not stop the others; it is retried later
                logger.exception("following job %s failed", job_id)
                next_poll = following.backoff(1, interval)
            async with services.db.session() as session, session.begin():
                await repositories.release_job(
                    session,
                    job_id=job_id,
                    owner=owner,
                    next_poll_at=None if next_poll is None else services.clock.now() + next_poll,
                )

    await asyncio.gather(*(poll(job_id) for job_id in claimed))
    return len(claimed)


async def tick(services: Services, *, owner: str) -> None:
    """What the scheduler runs every FINETUNE_POLL_SECONDS: follow jobs, then post what is owed."""
    try:
        await poll_due_jobs(services, owner=owner)
    except Exception:
        logger.exception("polling jobs failed")
    try:
        await notifier.deliver_pending(services)
    except Exception:
        logger.exception("delivering notifications failed")
