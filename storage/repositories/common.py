"""What every aggregate's data access shares: leases on rows worked on by one replica, and insert-once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import (
    Evaluation,
    FileIntake,
    GoldenSet,
    Notification,
    NotificationStatus,
    TrainingJob,
)

# The tables whose rows are worked on under a lease (owner, expiry), so that one replica works on each.
Leased = type[TrainingJob] | type[FileIntake] | type[GoldenSet] | type[Evaluation]
# At most this many unfinished recordings or evaluations are resumed by one tick.
ORPHANS = 100


async def claim_expired(
    session: AsyncSession,
    model: Leased,
    condition: Any,
    *,
    owner: str,
    now: datetime,
    lease: timedelta,
    limit: int,
    order: Any = None,
    **changes: Any,
) -> list[int]:
    """Lease up to ``limit`` rows matching ``condition`` whose lease is free or expired, in ``order`` (else by id).

    PostgreSQL skips rows another replica has locked (FOR UPDATE SKIP LOCKED); SQLite serialises
    writers, so the same UPDATE is atomic there.
    """
    expired = (col(model.lease_expires_at).is_(None)) | (col(model.lease_expires_at) < now)
    free = (
        select(model.id).where(condition, expired).order_by(order if order is not None else col(model.id)).limit(limit)
    )
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        free = free.with_for_update(skip_locked=True)
    statement = (
        update(model)
        .where(col(model.id).in_(free.scalar_subquery()))
        .values(lease_owner=owner, lease_expires_at=now + lease, **changes)
        .returning(col(model.id))
    )
    return [int(row) for row in (await session.exec(statement)).scalars()]


async def renew_leases(
    session: AsyncSession,
    model: Leased,
    *,
    owner: str,
    ids: Sequence[int],
    expires_at: datetime,
) -> int:
    """Extend ``owner``'s leases on these rows (work on them is still running in this replica)."""
    if not ids:
        return 0
    statement = (
        update(model)
        .where(col(model.id).in_(list(ids)), col(model.lease_owner) == owner)
        .values(lease_expires_at=expires_at)
    )
    return int((await session.exec(statement)).rowcount)


async def insert_new(session: AsyncSession, rows: Sequence[SQLModel]) -> int:
    """INSERT … ON CONFLICT DO NOTHING of rows of one table, in one statement; returns how many were new.

    The table's unique constraints decide what "already there" means, across processes and replicas.
    """
    if not rows:
        return 0
    assert session.bind is not None
    insert = postgresql_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
    table = type(rows[0]).__table__  # type: ignore[attr-defined]
    statement = insert(table).on_conflict_do_nothing().values([row.model_dump(exclude={"id"}) for row in rows])
    result: Any = await session.exec(statement)
    return int(result.rowcount or 0)


async def release_leases(session: AsyncSession, *, owner: str, now: datetime) -> int:
    """A replica shutting down frees what it held, so others take over now rather than at expiry.

    A notification it was posting becomes deliverable at once; whoever takes it looks in Slack first,
    since the cut-off post may have gone through."""
    released = 0
    tables: tuple[Leased, ...] = (TrainingJob, FileIntake, GoldenSet, Evaluation)
    for table in tables:
        statement = update(table).where(col(table.lease_owner) == owner).values(lease_owner=None, lease_expires_at=None)
        released += int((await session.exec(statement)).rowcount or 0)
    posting = (
        update(Notification)
        .where(col(Notification.status) == NotificationStatus.SENDING, col(Notification.claimed_by) == owner)
        .values(claimed_until=now - timedelta(microseconds=1), claimed_by=None)
    )
    released += int((await session.exec(posting)).rowcount or 0)
    return released
