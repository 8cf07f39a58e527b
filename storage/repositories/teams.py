"""Workspaces, the Slack events they sent (each handled once), their audit log and Home tab viewers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import (
    AuditEntry,
    HomeViewer,
    SlackEvent,
    Team,
)


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
    return await claim_slack_events(session, keys=[event_id], team_id=team_id, now=now)


async def has_slack_event(session: AsyncSession, *, event_id: str) -> bool:
    return await session.get(SlackEvent, event_id) is not None


async def claim_slack_events(session: AsyncSession, *, keys: list[str], team_id: str, now: datetime) -> bool:
    """Record every key as handled, all or none; False when any already was."""
    try:
        async with session.begin_nested():
            session.add_all([SlackEvent(event_id=key, team_id=team_id, received_at=now) for key in keys])
    except IntegrityError:
        return False
    return True


async def add_audit_entry(
    session: AsyncSession,
    *,
    team_id: str,
    actor: str,
    action: str,
    subject: str,
    now: datetime,
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    entry = AuditEntry(
        team_id=team_id, actor=actor, action=action, subject=subject, detail=detail or {}, created_at=now
    )
    session.add(entry)
    await session.flush()
    return entry


async def list_audit_entries(session: AsyncSession, *, team_id: str, limit: int = 20) -> list[AuditEntry]:
    statement = (
        select(AuditEntry)
        .where(AuditEntry.team_id == team_id)
        .order_by(col(AuditEntry.created_at).desc(), col(AuditEntry.id).desc())
        .limit(limit)
    )
    return list((await session.exec(statement)).all())


async def record_home_viewer(session: AsyncSession, *, team_id: str, user_id: str, now: datetime) -> None:
    viewer = await session.get(HomeViewer, (team_id, user_id))
    if viewer is None:
        session.add(HomeViewer(team_id=team_id, user_id=user_id, opened_at=now))
    else:
        viewer.opened_at = now
        session.add(viewer)


async def recent_home_viewers(session: AsyncSession, *, team_id: str, since: datetime) -> list[str]:
    statement = select(HomeViewer.user_id).where(HomeViewer.team_id == team_id, col(HomeViewer.opened_at) >= since)
    return list((await session.exec(statement)).all())
