"""Keyword-only async data-access functions.

Each function takes the session it works in, so the caller decides the transaction. Functions that
guard an invariant (an event handled once, …) rely on the database's unique constraints, which
hold across processes and replicas, rather than on a read-then-write check.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Dataset, SlackEvent, Team


async def ensure_team(session: AsyncSession, *, team_id: str, name: str = "") -> Team:
    """Return the team row, creating it on first sight."""
    team = await session.get(Team, team_id)
    if team is not None:
        if name and team.name != name:
            team.name = name
            session.add(team)
            await session.flush()
        return team
    try:
        async with session.begin_nested():
            team = Team(team_id=team_id, name=name)
            session.add(team)
    except IntegrityError:  # another request created it between our read and our insert
        found = await session.get(Team, team_id)
        assert found is not None
        return found
    return team


async def claim_slack_event(session: AsyncSession, *, event_id: str, team_id: str, now: datetime) -> bool:
    """Record ``event_id`` as handled; False when it already was (a Slack retry or a double delivery)."""
    try:
        async with session.begin_nested():
            session.add(SlackEvent(event_id=event_id, team_id=team_id, received_at=now))
    except IntegrityError:
        return False
    return True


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
