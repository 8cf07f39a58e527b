"""The outbox: what the bot owes Slack, delivered once, retried with backoff."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import (
    Notification,
    NotificationStatus,
)


async def enqueue_notification(session: AsyncSession, *, notification: Notification) -> bool:
    """Add to the outbox unless the same (subject, kind, key) is already there; False for a repeat."""
    try:
        async with session.begin_nested():
            session.add(notification)
    except IntegrityError:
        return False
    return True


def _deliverable(now: datetime) -> Any:
    """Pending and not waiting out a retry delay (kept in ``claimed_until``), or claimed by a poster that vanished.

    A notification waiting to retry is skipped, so one that keeps failing never holds up the others."""
    waited = col(Notification.claimed_until).is_(None) | (col(Notification.claimed_until) < now)
    return ((col(Notification.status) == NotificationStatus.PENDING) & waited) | (
        (col(Notification.status) == NotificationStatus.SENDING) & (col(Notification.claimed_until) < now)
    )


async def pending_notifications(session: AsyncSession, *, now: datetime, limit: int = 100) -> list[Notification]:
    """Notifications to post: pending ones, and ones whose poster vanished while posting."""
    statement = select(Notification).where(_deliverable(now)).order_by(col(Notification.id)).limit(limit)
    return list((await session.exec(statement)).all())


async def claim_notification(
    session: AsyncSession, *, notification_id: int, owner: str, now: datetime, lease: timedelta
) -> int | None:
    """Take a notification for posting; returns its attempt number, or None if someone else has it."""
    statement = (
        update(Notification)
        .where(col(Notification.id) == notification_id, _deliverable(now))
        .values(
            status=NotificationStatus.SENDING,
            claimed_until=now + lease,
            claimed_by=owner,
            attempts=Notification.attempts + 1,
        )
        .returning(col(Notification.attempts))
    )
    row = (await session.exec(statement)).first()
    return None if row is None else int(row[0])


async def finish_notification(
    session: AsyncSession,
    *,
    notification_id: int,
    status: str,
    now: datetime,
    slack_ts: str | None = None,
    retry_at: datetime | None = None,
) -> None:
    """Record the outcome: ``sent`` (with its ts), ``failed`` for good, or ``pending`` to retry from ``retry_at``."""
    values: dict[str, Any] = {
        "status": status,
        "claimed_until": retry_at if status == NotificationStatus.PENDING else None,
    }
    if status == NotificationStatus.SENT:
        values |= {"slack_ts": slack_ts, "sent_at": now}
    await session.exec(update(Notification).where(col(Notification.id) == notification_id).values(**values))
