"""Scheduled ticks: plain async functions. The scheduler calls them; tests call them with a frozen clock.

The database is the truth; a tick only looks at what is due. Each tick leases the jobs it polls,
so replicas sharing one database never poll the same job at once, and one job's failure never
stops the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from bot import notifier
from bot.datasets import intake
from bot.evaluation import run as evaluation_run
from bot.home import tab as home_tab
from bot.models import golden, lifecycle, serving
from bot.providers import ProviderError
from bot.services import Services
from bot.training import launch, poller
from bot.training.status import ACTIVE
from storage import repositories
from storage.models import TrainingJob

logger = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)
BATCH = 200
CONCURRENCY = 16


async def poll_due_jobs(services: Services, *, owner: str, limit: int = BATCH) -> int:
    """Poll every due active job this replica can lease; returns how many it polled.

    Teams whose jobs finished get their App Home refreshed.
    """
    now = services.clock.now()
    async with services.db.session() as session, session.begin():
        claimed = await repositories.claim_due_jobs(
            session, owner=owner, now=now, lease=LEASE, statuses=tuple(ACTIVE), limit=limit
        )
    interval = timedelta(seconds=services.settings.finetune_poll_seconds)
    slots = asyncio.Semaphore(CONCURRENCY)
    finished: set[int] = set()

    async def poll(job_id: int) -> None:
        async with slots:
            next_poll: timedelta | None = interval
            try:
                active = await poller.follow_job(services, job_id)
                if not active:
                    next_poll = None
                    finished.add(job_id)
            except ProviderError as error:
                failures = await poller.record_failure(services, job_id, error)
                next_poll = poller.backoff(failures, interval)
            except Exception:  # one job's bug must not stop the others; it is retried later
                logger.exception("following job %s failed", job_id)
                next_poll = poller.backoff(1, interval)
            async with services.db.session() as session, session.begin():
                await repositories.release_job(
                    session,
                    job_id=job_id,
                    owner=owner,
                    next_poll_at=None if next_poll is None else services.clock.now() + next_poll,
                )

    await asyncio.gather(*(poll(job_id) for job_id in claimed))
    if finished:
        async with services.db.session() as session:
            teams = {job.team_id for job_id in finished if (job := await session.get(TrainingJob, job_id))}
        for team_id in teams:
            await home_tab.refresh_homes(services, team_id=team_id)
    return len(claimed)


async def tick(services: Services, *, owner: str) -> None:
    """What the scheduler runs every FINETUNE_POLL_SECONDS: settle interrupted starts, resume interrupted
    intakes, follow jobs, resume recordings and evaluations, owe reminders, then post what is owed. Each part
    fails alone."""
    with services.metrics.tick_seconds.time():
        await _tick(services, owner=owner)


async def _tick(services: Services, *, owner: str) -> None:
    # Each part is started only when its turn comes, so a tick cut off by a shutdown leaves none half-made.
    parts: tuple[tuple[str, Callable[[], Awaitable[object]]], ...] = (
        ("settling stalled starts", lambda: launch.resolve_stalled_starts(services, owner=owner)),
        ("resuming interrupted intakes", lambda: intake.resume_interrupted_intakes(services, owner=owner)),
        ("polling jobs", lambda: poll_due_jobs(services, owner=owner)),
        ("following deployments", lambda: serving.check_deployments(services)),
        ("resuming golden sets", lambda: golden.resume_recordings(services)),
        ("resuming evaluations", lambda: evaluation_run.resume_evaluations(services)),
        ("queueing retirement reminders", lambda: lifecycle.queue_reminders(services)),
        ("queueing end-of-training reminders", lambda: lifecycle.queue_training_reminders(services)),
    )
    for part, work in parts:
        try:
            await work()
        except Exception:
            logger.exception("%s failed", part)
    try:
        await notifier.deliver_pending(services)
    except Exception:
        logger.exception("delivering notifications failed")
    try:
        async with services.db.session() as session:
            active = await repositories.count_active_jobs(session, statuses=tuple(ACTIVE))
        services.metrics.active_jobs.set(active)
    except Exception:
        logger.exception("counting active jobs failed")
