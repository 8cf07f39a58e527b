"""Keyword-only async data-access functions.

Each function takes the session it works in, so the caller decides the transaction. Functions that
guard an invariant (an event handled once, …) rely on the database's unique constraints, which
hold across processes and replicas, rather than on a read-then-write check.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import SlackEvent, Team


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
