"""Golden sets: a model's answers recorded before it retires."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import (
    GoldenAnswer,
    GoldenSet,
    GoldenSetStatus,
)
from storage.repositories.common import ORPHANS, claim_expired, insert_new


async def add_golden_answers(session: AsyncSession, *, answers: list[GoldenAnswer]) -> int:
    """Store answers, each prompt once (a resumed recording never duplicates one)."""
    return await insert_new(session, answers)


async def golden_positions_done(session: AsyncSession, *, golden_set_id: int) -> set[int]:
    statement = select(GoldenAnswer.position).where(GoldenAnswer.golden_set_id == golden_set_id)
    return set((await session.exec(statement)).all())


async def list_golden_answers(session: AsyncSession, *, golden_set_id: int) -> list[GoldenAnswer]:
    statement = (
        select(GoldenAnswer).where(GoldenAnswer.golden_set_id == golden_set_id).order_by(col(GoldenAnswer.position))
    )
    return list((await session.exec(statement)).all())


async def claim_golden_sets(session: AsyncSession, *, owner: str, now: datetime, lease: timedelta) -> list[int]:
    """Lease unfinished recordings nobody is running."""
    return await claim_expired(
        session,
        GoldenSet,
        col(GoldenSet.status) == GoldenSetStatus.RUNNING,
        owner=owner,
        now=now,
        lease=lease,
        limit=ORPHANS,
    )


async def latest_golden_set(session: AsyncSession, *, team_id: str, model: str) -> GoldenSet | None:
    statement = (
        select(GoldenSet)
        .where(GoldenSet.team_id == team_id, GoldenSet.model == model, GoldenSet.status == GoldenSetStatus.DONE)
        .order_by(col(GoldenSet.id).desc())
    )
    return (await session.exec(statement)).first()
