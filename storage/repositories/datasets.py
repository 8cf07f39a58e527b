"""Shared files: the datasets kept from them and each share's intake."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import (
    Dataset,
    FileIntake,
)
from storage.repositories.common import claim_expired


async def find_dataset_by_sha(session: AsyncSession, *, team_id: str, sha256: str) -> Dataset | None:
    statement = select(Dataset).where(Dataset.team_id == team_id, Dataset.sha256 == sha256)
    return (await session.exec(statement)).first()


async def add_dataset(session: AsyncSession, *, dataset: Dataset) -> tuple[Dataset, bool]:
    """Insert ``dataset``; if the team already has the same bytes, return that row instead (and False)."""
    try:
        async with session.begin_nested():
            session.add(dataset)
    except IntegrityError:
        existing = await find_dataset_by_sha(session, team_id=dataset.team_id, sha256=dataset.sha256)
        assert existing is not None
        return existing, False
    return dataset, True


async def get_dataset(session: AsyncSession, *, team_id: str, dataset_id: int) -> Dataset | None:
    dataset = await session.get(Dataset, dataset_id)
    return dataset if dataset is not None and dataset.team_id == team_id else None


async def find_datasets_by_name(session: AsyncSession, *, team_id: str, filename: str) -> list[Dataset]:
    statement = (
        select(Dataset)
        .where(Dataset.team_id == team_id, Dataset.filename == filename)
        .order_by(col(Dataset.created_at).desc(), col(Dataset.id).desc())
    )
    return list((await session.exec(statement)).all())


async def list_datasets(session: AsyncSession, *, team_id: str, limit: int = 10) -> list[Dataset]:
    statement = (
        select(Dataset)
        .where(Dataset.team_id == team_id)
        .order_by(col(Dataset.created_at).desc(), col(Dataset.id).desc())
        .limit(limit)
    )
    return list((await session.exec(statement)).all())


async def claim_stalled_intakes(
    session: AsyncSession, *, owner: str, now: datetime, lease: timedelta, status: str, limit: int
) -> list[int]:
    """Lease intakes still in ``status`` (running) whose replica's lease ran out, counting the new attempt."""
    return await claim_expired(
        session,
        FileIntake,
        col(FileIntake.status) == status,
        owner=owner,
        now=now,
        lease=lease,
        limit=limit,
        attempts=col(FileIntake.attempts) + 1,
        updated_at=now,
    )


async def add_file_intake(session: AsyncSession, *, intake: FileIntake) -> bool:
    """Claim one share of a file for intake; False when another delivery or replica has it already."""
    try:
        async with session.begin_nested():
            session.add(intake)
    except IntegrityError:
        return False
    return True


async def finish_file_intake(session: AsyncSession, *, intake_id: int, status: str, now: datetime) -> None:
    await session.exec(
        update(FileIntake)
        .where(col(FileIntake.id) == intake_id)
        .values(status=status, lease_owner=None, lease_expires_at=None, updated_at=now)
    )
