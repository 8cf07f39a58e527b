"""The flywheel's candidates: examples collected in chat threads for a dataset's next version."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import (
    Candidate,
    CandidateStatus,
)
from storage.repositories.common import insert_new


async def keep_candidate(session: AsyncSession, *, candidate: Candidate) -> tuple[Candidate, bool]:
    """Store a vote once; a withdrawn one given again is pending again. Returns it and whether it changed."""
    inserted = await insert_new(session, [candidate])
    statement = select(Candidate).where(
        Candidate.channel_id == candidate.channel_id,
        Candidate.message_ts == candidate.message_ts,
        Candidate.kind == candidate.kind,
        Candidate.contributor == candidate.contributor,
    )
    stored = (await session.exec(statement)).one()
    if inserted:
        return stored, True
    if stored.status == CandidateStatus.WITHDRAWN:
        stored.status, stored.example, stored.updated_at = (
            CandidateStatus.PENDING,
            candidate.example,
            candidate.updated_at,
        )
        session.add(stored)
        return stored, True
    return stored, False


async def withdraw_candidate(
    session: AsyncSession, *, channel_id: str, message_ts: str, kind: str, contributor: str, now: datetime
) -> Candidate | None:
    """The vote taken back: a pending candidate becomes withdrawn (a published or dropped one stays)."""
    statement = select(Candidate).where(
        Candidate.channel_id == channel_id,
        Candidate.message_ts == message_ts,
        Candidate.kind == kind,
        Candidate.contributor == contributor,
        Candidate.status == CandidateStatus.PENDING,
    )
    candidate = (await session.exec(statement)).first()
    if candidate is None:
        return None
    candidate.status, candidate.updated_at = CandidateStatus.WITHDRAWN, now
    session.add(candidate)
    return candidate


async def pending_candidates_on(session: AsyncSession, *, channel_id: str, message_ts: str) -> int:
    """Examples still kept from one message (by anyone), not counting a lone 👎."""
    statement = select(func.count()).where(
        Candidate.channel_id == channel_id,
        Candidate.message_ts == message_ts,
        Candidate.status == CandidateStatus.PENDING,
        Candidate.kind != "rejected",
    )
    return int((await session.exec(statement)).one())


async def pending_votes(session: AsyncSession, *, channel_id: str, message_ts: str, contributor: str) -> set[str]:
    statement = select(Candidate.kind).where(
        Candidate.channel_id == channel_id,
        Candidate.message_ts == message_ts,
        Candidate.contributor == contributor,
        Candidate.status == CandidateStatus.PENDING,
    )
    return set((await session.exec(statement)).all())


async def pending_candidates(session: AsyncSession, *, team_id: str, dataset_id: int) -> list[Candidate]:
    """A dataset's candidates waiting for its next version (a lone 👎 is not one), oldest first."""
    statement = (
        select(Candidate)
        .where(
            Candidate.team_id == team_id,
            Candidate.dataset_id == dataset_id,
            Candidate.status == CandidateStatus.PENDING,
            Candidate.kind != "rejected",
        )
        .order_by(col(Candidate.id))
    )
    return list((await session.exec(statement)).all())


async def get_candidate(session: AsyncSession, *, team_id: str, candidate_id: int) -> Candidate | None:
    candidate = await session.get(Candidate, candidate_id)
    return candidate if candidate is not None and candidate.team_id == team_id else None


async def set_candidate_status(
    session: AsyncSession, *, candidate_id: int, from_status: str, to_status: str, now: datetime
) -> bool:
    statement = (
        update(Candidate)
        .where(col(Candidate.id) == candidate_id, col(Candidate.status) == from_status)
        .values(status=to_status, updated_at=now)
    )
    return bool((await session.exec(statement)).rowcount)


async def publish_candidates(
    session: AsyncSession, *, candidate_ids: list[int], dataset_id: int, now: datetime
) -> None:
    statement = (
        update(Candidate)
        .where(col(Candidate.id).in_(candidate_ids), col(Candidate.status) == CandidateStatus.PENDING)
        .values(status=CandidateStatus.PUBLISHED, published_dataset_id=dataset_id, updated_at=now)
    )
    await session.exec(statement)
