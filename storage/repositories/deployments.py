"""Deployments: a fine-tuned model served under a name of its own, from Deploy to Stop serving."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import LIVE_DEPLOYMENT, Deployment


async def add_deployment(session: AsyncSession, *, deployment: Deployment) -> tuple[Deployment, bool]:
    """Insert a live deployment; if the model already has one (a second click), return it instead (and False)."""
    try:
        async with session.begin_nested():
            session.add(deployment)
    except IntegrityError:
        existing = await live_deployment(session, job_id=deployment.job_id)
        assert existing is not None
        return existing, False
    return deployment, True


async def live_deployment(session: AsyncSession, *, job_id: int) -> Deployment | None:
    """The model's deployment that is deploying or active, if any."""
    statement = select(Deployment).where(Deployment.live_job_id == job_id)
    return (await session.exec(statement)).first()


async def deployments_in(
    session: AsyncSession, *, statuses: Collection[str], team_id: str | None = None, limit: int = 200
) -> list[Deployment]:
    """Deployments in ``statuses``, oldest first; a team's only when ``team_id`` is given."""
    statement = select(Deployment).where(col(Deployment.status).in_(list(statuses)))
    if team_id is not None:
        statement = statement.where(Deployment.team_id == team_id)
    statement = statement.order_by(col(Deployment.id)).limit(limit)
    return list((await session.exec(statement)).all())


async def move_deployment(
    session: AsyncSession, *, deployment_id: int, expected: Collection[str], new: str, now: datetime, **changes: object
) -> bool:
    """Change a deployment's status only if it is still one of ``expected`` (a tick and a click racing: one
    wins). Leaving the live statuses frees the model for its next deployment."""
    if new not in LIVE_DEPLOYMENT:
        changes = {"live_job_id": None, "ended_at": now, **changes}
    statement = (
        update(Deployment)
        .where(col(Deployment.id) == deployment_id, col(Deployment.status).in_(list(expected)))
        .values(status=new, updated_at=now, **changes)
    )
    result = await session.exec(statement)
    return bool(result.rowcount)
