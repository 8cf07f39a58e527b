"""Evaluations and their answers."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import (
    EvalStatus,
    Evaluation,
    EvaluationAnswer,
)
from storage.repositories.common import ORPHANS, claim_expired, insert_new


async def add_evaluation(session: AsyncSession, *, evaluation: Evaluation) -> Evaluation:
    session.add(evaluation)
    await session.flush()
    return evaluation


async def get_evaluation(session: AsyncSession, *, team_id: str, evaluation_id: int) -> Evaluation | None:
    evaluation = await session.get(Evaluation, evaluation_id)
    return evaluation if evaluation is not None and evaluation.team_id == team_id else None


async def move_evaluation(
    session: AsyncSession, *, evaluation_id: int, from_status: str, values: dict[str, Any]
) -> bool:
    """Change an evaluation only if it is still in ``from_status``: a second click finds it moved on."""
    statement = (
        update(Evaluation)
        .where(col(Evaluation.id) == evaluation_id, col(Evaluation.status) == from_status)
        .values(**values)
    )
    return bool((await session.exec(statement)).rowcount)


async def add_evaluation_answers(session: AsyncSession, *, answers: list[EvaluationAnswer]) -> int:
    """Store answers, each (example, side) once: a resumed evaluation never asks or counts twice."""
    return await insert_new(session, answers)


async def list_evaluation_answers(session: AsyncSession, *, evaluation_id: int) -> list[EvaluationAnswer]:
    statement = (
        select(EvaluationAnswer)
        .where(EvaluationAnswer.evaluation_id == evaluation_id)
        .order_by(col(EvaluationAnswer.position), col(EvaluationAnswer.side))
    )
    return list((await session.exec(statement)).all())


async def claim_evaluations(session: AsyncSession, *, owner: str, now: datetime, lease: timedelta) -> list[int]:
    """Lease running evaluations nobody is running."""
    return await claim_expired(
        session,
        Evaluation,
        col(Evaluation.status) == EvalStatus.RUNNING,
        owner=owner,
        now=now,
        lease=lease,
        limit=ORPHANS,
    )


async def recent_evaluations(session: AsyncSession, *, team_id: str, limit: int = 50) -> list[Evaluation]:
    """The team's evaluations that were confirmed (run, running or ended), newest first."""
    statement = (
        select(Evaluation)
        .where(Evaluation.team_id == team_id, col(Evaluation.status) != EvalStatus.AWAITING_CONFIRMATION)
        .order_by(col(Evaluation.id).desc())
        .limit(limit)
    )
    return list((await session.exec(statement)).all())
