"""Training jobs, their events at the provider, and the models they made."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import (
    JobEvent,
    TrainingJob,
)
from storage.repositories.common import claim_expired, insert_new


async def add_job(session: AsyncSession, *, job: TrainingJob) -> tuple[TrainingJob, bool]:
    """Insert a job request; if its request id exists already (a double submit), return that row and False."""
    try:
        async with session.begin_nested():
            session.add(job)
    except IntegrityError:
        existing = await get_job_by_request_id(session, request_id=job.request_id)
        assert existing is not None
        return existing, False
    return job, True


async def get_job_by_request_id(session: AsyncSession, *, request_id: str) -> TrainingJob | None:
    return (await session.exec(select(TrainingJob).where(TrainingJob.request_id == request_id))).first()


async def get_job(session: AsyncSession, *, team_id: str, job_id: int) -> TrainingJob | None:
    job = await session.get(TrainingJob, job_id)
    return job if job is not None and job.team_id == team_id else None


async def move_job_status(
    session: AsyncSession, *, job_id: int, expected: str, new: str, now: datetime, **changes: object
) -> bool:
    """Change a job's status only if it is still ``expected``: two clicks racing, one wins."""
    statement = (
        update(TrainingJob)
        .where(col(TrainingJob.id) == job_id, col(TrainingJob.status) == expected)
        .values(status=new, updated_at=now, **changes)
    )
    result = await session.exec(statement)
    return bool(result.rowcount)


async def committed_spend(session: AsyncSession, *, team_id: str, since: datetime, exclude: tuple[str, ...]) -> float:
    """Estimated cost of the team's jobs created since ``since``, leaving out the statuses in ``exclude``."""
    statement = select(func.coalesce(func.sum(TrainingJob.estimated_cost_usd), 0.0)).where(
        TrainingJob.team_id == team_id,
        col(TrainingJob.created_at) >= since,
        col(TrainingJob.status).not_in(exclude),
    )
    total = (await session.exec(statement)).one()
    return float(total or 0.0)


async def claim_due_jobs(
    session: AsyncSession, *, owner: str, now: datetime, lease: timedelta, statuses: tuple[str, ...], limit: int
) -> list[int]:
    """Lease up to ``limit`` due jobs to ``owner``, most overdue first; replicas sharing a database never get
    the same job, and an expired lease is free to take."""
    due = col(TrainingJob.status).in_(statuses) & (col(TrainingJob.next_poll_at) <= now)
    return await claim_expired(
        session, TrainingJob, due, owner=owner, now=now, lease=lease, limit=limit, order=col(TrainingJob.next_poll_at)
    )


async def release_job(session: AsyncSession, *, job_id: int, owner: str, next_poll_at: datetime | None) -> bool:
    """Give the lease back (only if still ours) and say when the job is due again."""
    statement = (
        update(TrainingJob)
        .where(col(TrainingJob.id) == job_id, col(TrainingJob.lease_owner) == owner)
        .values(lease_owner=None, lease_expires_at=None, next_poll_at=next_poll_at)
    )
    return bool((await session.exec(statement)).rowcount)


async def claim_stalled_starts(
    session: AsyncSession, *, owner: str, now: datetime, lease: timedelta, status: str, limit: int
) -> list[int]:
    """Lease jobs still in ``status`` (starting) whose launcher's lease ran out: it died or lost its database.

    The launcher holds the lease from the moment the row is written, and its replica's ticks renew it.
    """
    return await claim_expired(
        session, TrainingJob, col(TrainingJob.status) == status, owner=owner, now=now, lease=lease, limit=limit
    )


async def mark_job_due(session: AsyncSession, *, provider: str, provider_job_id: str, now: datetime) -> bool:
    """A webhook's nudge: poll this job at the next tick."""
    statement = (
        update(TrainingJob)
        .where(col(TrainingJob.provider) == provider, col(TrainingJob.provider_job_id) == provider_job_id)
        .values(next_poll_at=now)
    )
    return bool((await session.exec(statement)).rowcount)


async def add_job_events(session: AsyncSession, *, events: list[JobEvent]) -> int:
    """Record provider events, each once per job (repeats from an overlapping poll are skipped), in one statement."""
    return await insert_new(session, events)


async def list_job_events(session: AsyncSession, *, job_id: int, kind: str | None = None) -> list[JobEvent]:
    statement = select(JobEvent).where(JobEvent.job_id == job_id)
    if kind is not None:
        statement = statement.where(JobEvent.type == kind)
    statement = statement.order_by(col(JobEvent.created_at), col(JobEvent.id))
    return list((await session.exec(statement)).all())


async def list_jobs(
    session: AsyncSession, *, team_id: str, limit: int = 15, statuses: tuple[str, ...] | None = None
) -> list[TrainingJob]:
    statement = select(TrainingJob).where(TrainingJob.team_id == team_id)
    if statuses is not None:
        statement = statement.where(col(TrainingJob.status).in_(statuses))
    statement = statement.order_by(col(TrainingJob.created_at).desc(), col(TrainingJob.id).desc()).limit(limit)
    return list((await session.exec(statement)).all())


async def find_job_by_model(session: AsyncSession, *, team_id: str, model: str) -> TrainingJob | None:
    statement = select(TrainingJob).where(TrainingJob.team_id == team_id, TrainingJob.fine_tuned_model == model)
    return (await session.exec(statement)).first()


async def list_models(session: AsyncSession, *, team_id: str, include_deleted: bool = False) -> list[TrainingJob]:
    """The team's fine-tuned models (as the jobs that made them), newest first."""
    statement = select(TrainingJob).where(
        TrainingJob.team_id == team_id, col(TrainingJob.fine_tuned_model).is_not(None)
    )
    if not include_deleted:
        statement = statement.where(col(TrainingJob.model_deleted_at).is_(None))
    statement = statement.order_by(col(TrainingJob.finished_at).desc(), col(TrainingJob.id).desc())
    return list((await session.exec(statement)).all())


async def models_retiring(session: AsyncSession, *, on_or_before: date) -> list[TrainingJob]:
    """Every team's live models whose retirement day is on or before ``on_or_before``."""
    statement = select(TrainingJob).where(
        col(TrainingJob.fine_tuned_model).is_not(None),
        col(TrainingJob.model_deleted_at).is_(None),
        col(TrainingJob.model_retires).is_not(None),
        col(TrainingJob.model_retires) <= on_or_before,
    )
    return list((await session.exec(statement)).all())


async def trainers_at(session: AsyncSession, *, provider: str, base_models: list[str]) -> list[tuple[str, str, str]]:
    """(team, base model, who trained) for every job that reached ``provider`` on one of ``base_models``."""
    statement = (
        select(TrainingJob.team_id, TrainingJob.base_model, TrainingJob.requested_by)
        .where(
            TrainingJob.provider == provider,
            col(TrainingJob.base_model).in_(base_models),
            col(TrainingJob.provider_job_id).is_not(None),
        )
        .distinct()
    )
    return [(team, base, user) for team, base, user in (await session.exec(statement)).all()]


async def month_spend(session: AsyncSession, *, team_id: str, since: datetime) -> float:
    """What the team's jobs cost since ``since``: actual cost where known, else the estimate."""
    statement = select(
        func.coalesce(func.sum(func.coalesce(TrainingJob.actual_cost_usd, TrainingJob.estimated_cost_usd)), 0.0)
    ).where(
        TrainingJob.team_id == team_id,
        col(TrainingJob.created_at) >= since,
        col(TrainingJob.provider_job_id).is_not(None),
    )
    total = (await session.exec(statement)).one()
    return float(total or 0.0)


async def latest_job_for_dataset(session: AsyncSession, *, team_id: str, dataset_id: int) -> TrainingJob | None:
    """The newest job that trained on a dataset: its settings are the next version's defaults."""
    statement = (
        select(TrainingJob)
        .where(TrainingJob.team_id == team_id, TrainingJob.dataset_id == dataset_id)
        .order_by(col(TrainingJob.id).desc())
    )
    return (await session.exec(statement)).first()


async def count_active_jobs(session: AsyncSession, *, statuses: tuple[str, ...]) -> int:
    statement = select(func.count()).where(col(TrainingJob.status).in_(statuses))
    return int((await session.exec(statement)).one())
