"""Keyword-only async data-access functions.

Each function takes the session it works in, so the caller decides the transaction. Functions that
guard an invariant (an event handled once, …) rely on the database's unique constraints, which
hold across processes and replicas, rather than on a read-then-write check.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import (
    AuditEntry,
    Candidate,
    CandidateStatus,
    ChatThread,
    ChatTurn,
    Dataset,
    EvalStatus,
    Evaluation,
    EvaluationAnswer,
    FileIntake,
    GoldenAnswer,
    GoldenSet,
    GoldenSetStatus,
    HomeViewer,
    JobEvent,
    Notification,
    NotificationStatus,
    SlackEvent,
    Team,
    TrainingJob,
)

# The tables whose rows are worked on under a lease (owner, expiry), so that one replica works on each.
Leased = type[TrainingJob] | type[FileIntake] | type[GoldenSet] | type[Evaluation]
# At most this many unfinished recordings or evaluations are resumed by one tick.
ORPHANS = 100


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


async def add_job(session: AsyncSession, *, job: TrainingJob) -> tuple[TrainingJob, bool]:
    """Insert a job request; if its request id exists already (a double submit), return that row and False."""
    try:
        async with session.begin_nested():
            session.add(job)
    except IntegrityError:
        existing = await get_job_by_request_id(session, request_id=job.request_id)
        assert existing is not None
        return existing, False
    return job, True


async def get_job_by_request_id(session: AsyncSession, *, request_id: str) -> TrainingJob | None:
    return (await session.exec(select(TrainingJob).where(TrainingJob.request_id == request_id))).first()


async def get_job(session: AsyncSession, *, team_id: str, job_id: int) -> TrainingJob | None:
    job = await session.get(TrainingJob, job_id)
    return job if job is not None and job.team_id == team_id else None


async def move_job_status(
    session: AsyncSession, *, job_id: int, expected: str, new: str, now: datetime, **changes: object
) -> bool:
    """Change a job's status only if it is still ``expected``: two clicks racing, one wins."""
    statement = (
        update(TrainingJob)
        .where(col(TrainingJob.id) == job_id, col(TrainingJob.status) == expected)
        .values(status=new, updated_at=now, **changes)
    )
    result = await session.exec(statement)
    return bool(result.rowcount)


async def committed_spend(session: AsyncSession, *, team_id: str, since: datetime, exclude: tuple[str, ...]) -> float:
    """Estimated cost of the team's jobs created since ``since``, leaving out the statuses in ``exclude``."""
    statement = select(func.coalesce(func.sum(TrainingJob.estimated_cost_usd), 0.0)).where(
        TrainingJob.team_id == team_id,
        col(TrainingJob.created_at) >= since,
        col(TrainingJob.status).not_in(exclude),
    )
    total = (await session.exec(statement)).one()
    return float(total or 0.0)


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


# --- following jobs ---------------------------------------------------------------------------------


async def claim_due_jobs(
    session: AsyncSession, *, owner: str, now: datetime, lease: timedelta, statuses: tuple[str, ...], limit: int
) -> list[int]:
    """Lease up to ``limit`` due jobs to ``owner``, most overdue first; replicas sharing a database never get
    the same job, and an expired lease is free to take."""
    due = col(TrainingJob.status).in_(statuses) & (col(TrainingJob.next_poll_at) <= now)
    return await _claim_expired(
        session, TrainingJob, due, owner=owner, now=now, lease=lease, limit=limit, order=col(TrainingJob.next_poll_at)
    )


async def release_job(session: AsyncSession, *, job_id: int, owner: str, next_poll_at: datetime | None) -> bool:
    """Give the lease back (only if still ours) and say when the job is due again."""
    statement = (
        update(TrainingJob)
        .where(col(TrainingJob.id) == job_id, col(TrainingJob.lease_owner) == owner)
        .values(lease_owner=None, lease_expires_at=None, next_poll_at=next_poll_at)
    )
    return bool((await session.exec(statement)).rowcount)


async def claim_stalled_starts(
    session: AsyncSession, *, owner: str, now: datetime, lease: timedelta, status: str, limit: int
) -> list[int]:
    """Lease jobs still in ``status`` (starting) whose launcher's lease ran out: it died or lost its database.

    The launcher holds the lease from the moment the row is written, and its replica's ticks renew it.
    """
    return await _claim_expired(
        session, TrainingJob, col(TrainingJob.status) == status, owner=owner, now=now, lease=lease, limit=limit
    )


async def claim_stalled_intakes(
    session: AsyncSession, *, owner: str, now: datetime, lease: timedelta, status: str, limit: int
) -> list[int]:
    """Lease intakes still in ``status`` (running) whose replica's lease ran out, counting the new attempt."""
    return await _claim_expired(
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


async def _claim_expired(
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


async def mark_job_due(session: AsyncSession, *, provider: str, provider_job_id: str, now: datetime) -> bool:
    """A webhook's nudge: poll this job at the next tick."""
    statement = (
        update(TrainingJob)
        .where(col(TrainingJob.provider) == provider, col(TrainingJob.provider_job_id) == provider_job_id)
        .values(next_poll_at=now)
    )
    return bool((await session.exec(statement)).rowcount)


async def _insert_new(session: AsyncSession, rows: Sequence[SQLModel]) -> int:
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


async def add_job_events(session: AsyncSession, *, events: list[JobEvent]) -> int:
    """Record provider events, each once per job (repeats from an overlapping poll are skipped), in one statement."""
    return await _insert_new(session, events)


async def list_job_events(session: AsyncSession, *, job_id: int, kind: str | None = None) -> list[JobEvent]:
    statement = select(JobEvent).where(JobEvent.job_id == job_id)
    if kind is not None:
        statement = statement.where(JobEvent.type == kind)
    statement = statement.order_by(col(JobEvent.created_at), col(JobEvent.id))
    return list((await session.exec(statement)).all())


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


async def list_jobs(
    session: AsyncSession, *, team_id: str, limit: int = 15, statuses: tuple[str, ...] | None = None
) -> list[TrainingJob]:
    statement = select(TrainingJob).where(TrainingJob.team_id == team_id)
    if statuses is not None:
        statement = statement.where(col(TrainingJob.status).in_(statuses))
    statement = statement.order_by(col(TrainingJob.created_at).desc(), col(TrainingJob.id).desc()).limit(limit)
    return list((await session.exec(statement)).all())


# --- chat threads -------------------------------------------------------------------------------------


async def add_chat_thread(session: AsyncSession, *, thread: ChatThread) -> ChatThread:
    session.add(thread)
    await session.flush()
    return thread


async def add_chat_turn(session: AsyncSession, *, turn: ChatTurn) -> bool:
    """Keep a message of a chat thread once (a Slack retry or a replica records it again: no-op)."""
    return await _insert_new(session, [turn]) == 1


async def mark_thread_recorded(session: AsyncSession, *, thread_id: int, recorded: bool = True) -> None:
    """Whether chat_turn holds the whole thread (False: read it from Slack next time)."""
    await session.exec(update(ChatThread).where(col(ChatThread.id) == thread_id).values(records_turns=recorded))


async def list_chat_turns(session: AsyncSession, *, thread_id: int) -> list[ChatTurn]:
    """The thread's messages in Slack's order (by ts)."""
    statement = select(ChatTurn).where(ChatTurn.thread_id == thread_id)
    turns = list((await session.exec(statement)).all())
    return sorted(turns, key=lambda turn: float(turn.ts))


async def get_chat_thread(session: AsyncSession, *, channel_id: str, thread_ts: str) -> ChatThread | None:
    statement = select(ChatThread).where(ChatThread.channel_id == channel_id, ChatThread.thread_ts == thread_ts)
    return (await session.exec(statement)).first()


async def find_job_by_model(session: AsyncSession, *, team_id: str, model: str) -> TrainingJob | None:
    statement = select(TrainingJob).where(TrainingJob.team_id == team_id, TrainingJob.fine_tuned_model == model)
    return (await session.exec(statement)).first()


# --- models, home, golden sets ---------------------------------------------------------------------


async def list_models(session: AsyncSession, *, team_id: str, include_deleted: bool = False) -> list[TrainingJob]:
    """The team's fine-tuned models (as the jobs that made them), newest first."""
    statement = select(TrainingJob).where(
        TrainingJob.team_id == team_id, col(TrainingJob.fine_tuned_model).is_not(None)
    )
    if not include_deleted:
        statement = statement.where(col(TrainingJob.model_deleted_at).is_(None))
    statement = statement.order_by(col(TrainingJob.finished_at).desc(), col(TrainingJob.id).desc())
    return list((await session.exec(statement)).all())


async def models_retiring(session: AsyncSession, *, on_or_before: date) -> list[TrainingJob]:
    """Every team's live models whose retirement day is on or before ``on_or_before``."""
    statement = select(TrainingJob).where(
        col(TrainingJob.fine_tuned_model).is_not(None),
        col(TrainingJob.model_deleted_at).is_(None),
        col(TrainingJob.model_retires).is_not(None),
        col(TrainingJob.model_retires) <= on_or_before,
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


async def month_spend(session: AsyncSession, *, team_id: str, since: datetime) -> float:
    """What the team's jobs cost since ``since``: actual cost where known, else the estimate."""
    statement = select(
        func.coalesce(func.sum(func.coalesce(TrainingJob.actual_cost_usd, TrainingJob.estimated_cost_usd)), 0.0)
    ).where(
        TrainingJob.team_id == team_id,
        col(TrainingJob.created_at) >= since,
        col(TrainingJob.provider_job_id).is_not(None),
    )
    total = (await session.exec(statement)).one()
    return float(total or 0.0)


async def add_golden_answers(session: AsyncSession, *, answers: list[GoldenAnswer]) -> int:
    """Store answers, each prompt once (a resumed recording never duplicates one)."""
    return await _insert_new(session, answers)


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
    return await _claim_expired(
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


# --- evaluations -----------------------------------------------------------------------------------


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
    return await _insert_new(session, answers)


async def list_evaluation_answers(session: AsyncSession, *, evaluation_id: int) -> list[EvaluationAnswer]:
    statement = (
        select(EvaluationAnswer)
        .where(EvaluationAnswer.evaluation_id == evaluation_id)
        .order_by(col(EvaluationAnswer.position), col(EvaluationAnswer.side))
    )
    return list((await session.exec(statement)).all())


async def claim_evaluations(session: AsyncSession, *, owner: str, now: datetime, lease: timedelta) -> list[int]:
    """Lease running evaluations nobody is running."""
    return await _claim_expired(
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


# --- flywheel candidates -----------------------------------------------------------------------------


async def keep_candidate(session: AsyncSession, *, candidate: Candidate) -> tuple[Candidate, bool]:
    """Store a vote once; a withdrawn one given again is pending again. Returns it and whether it changed."""
    inserted = await _insert_new(session, [candidate])
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


async def latest_job_for_dataset(session: AsyncSession, *, team_id: str, dataset_id: int) -> TrainingJob | None:
    """The newest job that trained on a dataset: its settings are the next version's defaults."""
    statement = (
        select(TrainingJob)
        .where(TrainingJob.team_id == team_id, TrainingJob.dataset_id == dataset_id)
        .order_by(col(TrainingJob.id).desc())
    )
    return (await session.exec(statement)).first()


# --- operations ------------------------------------------------------------------------------------


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


async def count_active_jobs(session: AsyncSession, *, statuses: tuple[str, ...]) -> int:
    statement = select(func.count()).where(col(TrainingJob.status).in_(statuses))
    return int((await session.exec(statement)).one())
