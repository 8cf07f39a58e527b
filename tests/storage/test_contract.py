"""One contract suite for the data-access layer, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import functools
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from bot.clock import FrozenClock
from storage import repositories
from storage.db import Database, head_revision
from storage.models import ChatThread, ChatTurn, Dataset, Deployment, Notification, SlackEvent, Team, TrainingJob


async def test_migrate_creates_the_schema_and_is_harmless_when_repeated(database_url: str) -> None:
    database = Database(database_url)
    try:
        before, after = await database.migrate()
        assert before is None
        assert after == head_revision()
        again = await database.migrate()
        assert again == (after, after)
        await database.ping()
    finally:
        await database.dispose()


async def test_schema_matches_the_models(db: Database) -> None:
    """A model change without its migration would pass on SQLite create_all and fail in production."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlmodel import SQLModel

    from storage.db import include_in_migrations

    def diff(connection: object) -> list[object]:
        options = {"compare_type": True, "include_object": include_in_migrations}
        context = MigrationContext.configure(connection, opts=options)  # type: ignore[arg-type]
        return list(compare_metadata(context, SQLModel.metadata))

    async with db.engine.connect() as connection:
        assert await connection.run_sync(diff) == []


async def test_ensure_team_creates_once_and_updates_the_name(db: Database) -> None:
    async with db.session() as session, session.begin():
        first = await repositories.ensure_team(session, team_id="T1")
        assert first.name == ""
    async with db.session() as session, session.begin():
        renamed = await repositories.ensure_team(session, team_id="T1", name="Acme")
        assert renamed.name == "Acme"
    async with db.session() as session:
        assert (await session.get(Team, "T1")) is not None


async def test_an_event_and_its_post_are_claimed_all_or_none(db: Database, clock: FrozenClock) -> None:
    """A message and the app_mention of the same post: whichever comes first is the one acted on."""
    async with db.session() as session, session.begin():
        await repositories.ensure_team(session, team_id="T1")
        claim = repositories.claim_slack_events
        assert await claim(session, keys=["EvMessage", "msg:C1:1.2"], team_id="T1", now=clock.now())
        assert not await claim(session, keys=["EvMention", "msg:C1:1.2"], team_id="T1", now=clock.now())
    async with db.session() as session:
        claimed = set((await session.exec(select(SlackEvent.event_id))).all())
    assert claimed == {"EvMessage", "msg:C1:1.2"}, "the refused claim left no row behind"


async def test_a_slack_event_is_claimed_once(db: Database, clock: FrozenClock) -> None:
    async with db.session() as session, session.begin():
        await repositories.ensure_team(session, team_id="T1")
        assert await repositories.claim_slack_event(session, event_id="Ev1", team_id="T1", now=clock.now())
        assert not await repositories.claim_slack_event(session, event_id="Ev1", team_id="T1", now=clock.now())
        assert await repositories.claim_slack_event(session, event_id="Ev2", team_id="T1", now=clock.now())
    async with db.session() as session, session.begin():
        assert not await repositories.claim_slack_event(session, event_id="Ev2", team_id="T1", now=clock.now())


async def test_timestamps_come_back_timezone_aware_utc(db: Database, clock: FrozenClock) -> None:
    async with db.session() as session, session.begin():
        session.add(Team(team_id="T1", created_at=clock.now() + timedelta(hours=1)))
    async with db.session() as session:
        team = await session.get(Team, "T1")
        assert team is not None
        assert team.created_at.utcoffset() == timedelta(0)
        assert team.created_at == clock.now() + timedelta(hours=1)


def _dataset(**overrides: object) -> Dataset:
    values: dict[str, object] = {
        "team_id": "T1",
        "channel_id": "C1",
        "message_ts": "1.1",
        "uploaded_by": "U1",
        "filename": "train.jsonl",
        "bytes": 10,
        "sha256": "a" * 64,
    }
    values.update(overrides)
    return Dataset(**values)  # type: ignore[arg-type]


async def test_the_database_enforces_the_design_invariants(db: Database) -> None:
    """DESIGN.md's invariants are unique constraints, checked here on each backend."""
    async with db.session() as session, session.begin():
        await repositories.ensure_team(session, team_id="T1")
        session.add(_dataset())
    with pytest.raises(IntegrityError):
        async with db.session() as session, session.begin():
            session.add(_dataset(message_ts="2.2"))  # same team, same sha256

    async with db.session() as session, session.begin():
        dataset = _dataset(sha256="b" * 64)
        session.add(dataset)
        await session.flush()
        assert dataset.id is not None
        job = {"team_id": "T1", "dataset_id": dataset.id, "provider": "openai", "base_model": "gpt-4o-mini"}
        job |= {"requested_by": "U1", "channel_id": "C1", "thread_ts": "1.1"}
        session.add(TrainingJob(request_id="r1", provider_job_id="ftjob-1", **job))  # type: ignore[arg-type]
        dataset_id = dataset.id
    with pytest.raises(IntegrityError):
        async with db.session() as session, session.begin():
            session.add(TrainingJob(request_id="r1", **job))  # type: ignore[arg-type]
    with pytest.raises(IntegrityError):
        async with db.session() as session, session.begin():
            session.add(TrainingJob(request_id="r2", provider_job_id="ftjob-1", **job))  # type: ignore[arg-type]

    note = {"team_id": "T1", "subject": f"job:{dataset_id}", "kind": "result", "key": "", "channel_id": "C1"}
    async with db.session() as session, session.begin():
        session.add(Notification(**note))  # type: ignore[arg-type]
    with pytest.raises(IntegrityError):
        async with db.session() as session, session.begin():
            session.add(Notification(**note))  # type: ignore[arg-type]


async def test_foreign_keys_are_enforced(db: Database) -> None:
    with pytest.raises(IntegrityError):
        async with db.session() as session, session.begin():
            session.add(_dataset(team_id="T-missing"))


async def test_datasets_are_one_row_per_team_and_content(db: Database, clock: FrozenClock) -> None:
    async with db.session() as session, session.begin():
        for team in ("T1", "T2"):
            await repositories.ensure_team(session, team_id=team)
        first, created = await repositories.add_dataset(session, dataset=_dataset(created_at=clock.now()))
        assert created
        again, created_again = await repositories.add_dataset(session, dataset=_dataset(message_ts="9.9"))
        assert not created_again and again.id == first.id
        other_team, created_other = await repositories.add_dataset(session, dataset=_dataset(team_id="T2"))
        assert created_other and other_team.id != first.id
        clock.advance(timedelta(minutes=1))
        newer, _ = await repositories.add_dataset(session, dataset=_dataset(sha256="c" * 64, created_at=clock.now()))
    async with db.session() as session:
        assert first.id is not None and newer.id is not None
        assert await repositories.get_dataset(session, team_id="T2", dataset_id=first.id) is None, "team-scoped"
        found = await repositories.get_dataset(session, team_id="T1", dataset_id=first.id)
        assert found is not None and found.sha256 == "a" * 64
        by_name = await repositories.find_datasets_by_name(session, team_id="T1", filename="train.jsonl")
        assert [d.id for d in by_name] == [newer.id, first.id]
        assert [d.id for d in await repositories.list_datasets(session, team_id="T1", limit=1)] == [newer.id]
        by_sha = await repositories.find_dataset_by_sha(session, team_id="T1", sha256="c" * 64)
        assert by_sha is not None and by_sha.id == newer.id


async def test_jobs_requests_status_moves_spend_and_audit(db: Database, clock: FrozenClock) -> None:
    async with db.session() as session, session.begin():
        await repositories.ensure_team(session, team_id="T1")
        dataset, _ = await repositories.add_dataset(session, dataset=_dataset())
        assert dataset.id is not None
        common = {
            "team_id": "T1",
            "dataset_id": dataset.id,
            "provider": "openai",
            "base_model": "gpt-4o-mini",
            "requested_by": "U1",
            "channel_id": "C1",
            "thread_ts": "1.1",
            "created_at": clock.now(),
        }
        first, created = await repositories.add_job(
            session,
            job=TrainingJob(request_id="r1", status="starting", estimated_cost_usd=2.5, **common),  # type: ignore[arg-type]
        )
        assert created
        again, created_again = await repositories.add_job(
            session,
            job=TrainingJob(request_id="r1", status="starting", **common),  # type: ignore[arg-type]
        )
        assert not created_again and again.id == first.id
        await repositories.add_job(
            session,
            job=TrainingJob(request_id="r2", status="denied", estimated_cost_usd=9.0, **common),  # type: ignore[arg-type]
        )
    assert first.id is not None
    async with db.session() as session, session.begin():
        assert await repositories.move_job_status(
            session, job_id=first.id, expected="starting", new="validating", now=clock.now(), provider_job_id="ftjob-9"
        )
        assert not await repositories.move_job_status(
            session, job_id=first.id, expected="starting", new="failed", now=clock.now()
        ), "a second, stale move loses"
        spent = await repositories.committed_spend(
            session, team_id="T1", since=clock.now() - timedelta(days=1), exclude=("denied",)
        )
        assert spent == 2.5
        await repositories.add_audit_entry(
            session, team_id="T1", actor="U1", action="start", subject=f"job:{first.id}", now=clock.now()
        )
        clock.advance(timedelta(seconds=1))
        await repositories.add_audit_entry(
            session, team_id="T1", actor="U2", action="cancel", subject=f"job:{first.id}", now=clock.now()
        )
    async with db.session() as session:
        row = await repositories.get_job(session, team_id="T1", job_id=first.id)
        assert row is not None and (row.status, row.provider_job_id) == ("validating", "ftjob-9")
        assert await repositories.get_job(session, team_id="T2", job_id=first.id) is None
        entries = await repositories.list_audit_entries(session, team_id="T1")
        assert [entry.action for entry in entries] == ["cancel", "start"]


async def _one_job(db: Database, clock: FrozenClock, **fields: object) -> int:
    async with db.session() as session, session.begin():
        await repositories.ensure_team(session, team_id="T1")
        dataset, _ = await repositories.add_dataset(session, dataset=_dataset())
        values: dict[str, object] = {
            "team_id": "T1",
            "dataset_id": dataset.id,
            "provider": "openai",
            "base_model": "gpt-4o-mini",
            "requested_by": "U1",
            "channel_id": "C1",
            "thread_ts": "1.1",
            "request_id": "r1",
            "status": "running",
            "provider_job_id": "ftjob-1",
            "next_poll_at": clock.now(),
            "created_at": clock.now(),
        }
        values.update(fields)
        job = TrainingJob(**values)  # type: ignore[arg-type]
        session.add(job)
        await session.flush()
        assert job.id is not None
        return job.id


async def test_leases_give_a_due_job_to_one_owner_until_it_expires(db: Database, clock: FrozenClock) -> None:
    job_id = await _one_job(db, clock)
    lease = timedelta(minutes=5)
    active = ("running",)
    async with db.session() as session, session.begin():
        assert await repositories.claim_due_jobs(
            session, owner="a", now=clock.now(), lease=lease, statuses=active, limit=10
        ) == [job_id]
    async with db.session() as session, session.begin():
        assert (
            await repositories.claim_due_jobs(
                session, owner="b", now=clock.now(), lease=lease, statuses=active, limit=10
            )
            == []
        ), "leased to a"
    clock.advance(timedelta(minutes=6))
    async with db.session() as session, session.begin():
        assert await repositories.claim_due_jobs(
            session, owner="b", now=clock.now(), lease=lease, statuses=active, limit=10
        ) == [job_id], "an expired lease is free to take"
        assert not await repositories.release_job(session, job_id=job_id, owner="a", next_poll_at=None), "not a's"
        assert await repositories.release_job(
            session, job_id=job_id, owner="b", next_poll_at=clock.now() + timedelta(hours=1)
        )
    async with db.session() as session, session.begin():
        assert (
            await repositories.claim_due_jobs(
                session, owner="a", now=clock.now(), lease=lease, statuses=active, limit=10
            )
            == []
        ), "not due yet"
        assert await repositories.mark_job_due(session, provider="openai", provider_job_id="ftjob-1", now=clock.now())
        assert await repositories.claim_due_jobs(
            session, owner="a", now=clock.now(), lease=lease, statuses=active, limit=10
        ) == [job_id], "a webhook made it due"
        assert (
            await repositories.claim_due_jobs(
                session, owner="c", now=clock.now(), lease=lease, statuses=("succeeded",), limit=10
            )
            == []
        )


async def test_a_start_is_settled_only_once_its_launchers_lease_runs_out(db: Database, clock: FrozenClock) -> None:
    lease = timedelta(minutes=5)
    job_id = await _one_job(
        db,
        clock,
        status="starting",
        provider_job_id=None,
        next_poll_at=None,
        lease_owner="launcher",
        lease_expires_at=clock.now() + lease,
    )

    async def stalled(owner: str) -> list[int]:
        async with db.session() as session, session.begin():
            return await repositories.claim_stalled_starts(
                session, owner=owner, now=clock.now(), lease=lease, status="starting", limit=10
            )

    assert await stalled("other") == [], "the launcher still holds it"
    clock.advance(timedelta(minutes=4))
    async with db.session() as session, session.begin():
        renewed = clock.now() + lease
        renew = functools.partial(repositories.renew_leases, session, TrainingJob, expires_at=renewed)
        assert await renew(owner="launcher", ids=[job_id])
        assert not await renew(owner="other", ids=[job_id])
        assert await renew(owner="launcher", ids=[]) == 0
    clock.advance(timedelta(minutes=4))
    assert await stalled("other") == [], "renewed in time"
    clock.advance(timedelta(minutes=2))
    assert await stalled("other") == [job_id], "the launcher is gone"
    assert await stalled("third") == [], "one settler at a time"
    clock.advance(timedelta(minutes=6))
    assert await stalled("third") == [job_id], "a settler that vanished is replaced too"
    running = await _one_job(db, clock, request_id="r2", provider_job_id="ftjob-2")
    assert running not in await stalled("fourth"), "only starts are settled"


async def test_a_share_is_taken_in_once_and_resumed_when_its_replica_is_gone(db: Database, clock: FrozenClock) -> None:
    from storage.models import FileIntake

    lease = timedelta(minutes=5)

    def share(owner: str) -> FileIntake:
        return FileIntake(
            team_id="T1",
            channel_id="C1",
            file_id="F1",
            user_id="U1",
            message_ts="1.1",
            lease_owner=owner,
            lease_expires_at=clock.now() + lease,
        )

    async with db.session() as session, session.begin():
        first = share("a")
        assert await repositories.add_file_intake(session, intake=first)
        assert not await repositories.add_file_intake(session, intake=share("b")), "one intake per share"
    assert first.id is not None

    async def stalled(owner: str) -> list[int]:
        async with db.session() as session, session.begin():
            return await repositories.claim_stalled_intakes(
                session, owner=owner, now=clock.now(), lease=lease, status="running", limit=10
            )

    assert await stalled("b") == []
    clock.advance(timedelta(minutes=6))
    assert await stalled("b") == [first.id]
    async with db.session() as session, session.begin():
        assert await repositories.release_leases(session, owner="b", now=clock.now()) == 1, "a shutdown frees it"
    assert await stalled("c") == [first.id]
    async with db.session() as session, session.begin():
        await repositories.finish_file_intake(session, intake_id=first.id, status="done", now=clock.now())
        row = await session.get(FileIntake, first.id)
        assert row is not None and (row.attempts, row.status, row.lease_owner) == (3, "done", None)
    clock.advance(timedelta(minutes=6))
    assert await stalled("d") == [], "a finished intake is never resumed"


async def test_events_and_notifications_are_recorded_once(db: Database, clock: FrozenClock) -> None:
    from storage.models import JobEvent, Notification

    job_id = await _one_job(db, clock)

    def event(event_id: str, step: int) -> JobEvent:
        return JobEvent(
            team_id="T1",
            job_id=job_id,
            provider_event_id=event_id,
            created_at=clock.now(),
            type="metrics",
            step=step,
            train_loss=1.0 / step,
        )

    async with db.session() as session, session.begin():
        assert await repositories.add_job_events(session, events=[event("e1", 1), event("e2", 2)]) == 2
        assert await repositories.add_job_events(session, events=[event("e2", 2), event("e3", 3)]) == 1
        note = {
            "team_id": "T1",
            "subject": f"job:{job_id}",
            "kind": "milestone",
            "key": "running",
            "channel_id": "C1",
            "thread_ts": "1.1",
            "payload": {"text": "running"},
        }
        assert await repositories.enqueue_notification(session, notification=Notification(**note))  # type: ignore[arg-type]
        assert not await repositories.enqueue_notification(session, notification=Notification(**note))  # type: ignore[arg-type]
    async with db.session() as session, session.begin():
        metrics = await repositories.list_job_events(session, job_id=job_id, kind="metrics")
        assert [m.step for m in metrics] == [1, 2, 3]
        [pending] = await repositories.pending_notifications(session, now=clock.now())
        assert pending.id is not None
        lease = timedelta(minutes=2)
        assert (
            await repositories.claim_notification(
                session, notification_id=pending.id, owner="a", now=clock.now(), lease=lease
            )
            == 1
        )
        assert (
            await repositories.claim_notification(
                session, notification_id=pending.id, owner="b", now=clock.now(), lease=lease
            )
            is None
        )
    async with db.session() as session, session.begin():
        assert await repositories.release_leases(session, owner="b", now=clock.now()) == 0, "not b's"
        assert await repositories.release_leases(session, owner="a", now=clock.now()) == 1, "a shut down"
        assert [n.id for n in await repositories.pending_notifications(session, now=clock.now())] == [pending.id]
        assert (
            await repositories.claim_notification(
                session, notification_id=pending.id, owner="b", now=clock.now(), lease=lease
            )
            == 2
        )
    clock.advance(timedelta(minutes=3))
    async with db.session() as session, session.begin():
        assert [n.id for n in await repositories.pending_notifications(session, now=clock.now())] == [pending.id]
        assert (
            await repositories.claim_notification(
                session, notification_id=pending.id, owner="c", now=clock.now(), lease=lease
            )
            == 3
        )
        retry_at = clock.now() + timedelta(minutes=1)
        await repositories.finish_notification(
            session, notification_id=pending.id, status="pending", now=clock.now(), retry_at=retry_at
        )
    async with db.session() as session, session.begin():
        assert await repositories.pending_notifications(session, now=clock.now()) == [], "waits out its retry delay"
        assert [n.id for n in await repositories.pending_notifications(session, now=retry_at + lease)] == [pending.id]
        assert (
            await repositories.claim_notification(
                session, notification_id=pending.id, owner="c", now=retry_at + lease, lease=lease
            )
            == 4
        )
        await repositories.finish_notification(
            session, notification_id=pending.id, status="sent", now=clock.now(), slack_ts="9.9"
        )
    async with db.session() as session:
        assert await repositories.pending_notifications(session, now=clock.now() + timedelta(hours=1)) == []
        assert [j.id for j in await repositories.list_jobs(session, team_id="T1", statuses=("running",))] == [job_id]


async def test_models_home_viewers_spend_and_golden_sets(db: Database, clock: FrozenClock) -> None:
    from storage.models import GoldenAnswer, GoldenSet

    job_id = await _one_job(
        db,
        clock,
        status="succeeded",
        fine_tuned_model="ft:m:1",
        estimated_cost_usd=2.0,
        actual_cost_usd=1.5,
        model_retires=(clock.now() + timedelta(days=20)).date(),
        finished_at=clock.now(),
    )
    today = clock.now().date()
    async with db.session() as session, session.begin():
        assert [j.id for j in await repositories.list_models(session, team_id="T1")] == [job_id]
        assert [j.id for j in await repositories.models_retiring(session, on_or_before=today + timedelta(days=30))] == [
            job_id
        ]
        assert await repositories.models_retiring(session, on_or_before=today + timedelta(days=10)) == []
        assert await repositories.month_spend(session, team_id="T1", since=clock.now() - timedelta(days=1)) == 1.5
        await repositories.record_home_viewer(session, team_id="T1", user_id="U1", now=clock.now())
        await repositories.record_home_viewer(session, team_id="T1", user_id="U1", now=clock.now())
        assert await repositories.recent_home_viewers(session, team_id="T1", since=clock.now()) == ["U1"]
        golden = GoldenSet(
            team_id="T1",
            model="ft:m:1",
            dataset_id=1,
            total=2,
            channel_id="C1",
            thread_ts="1.1",
            started_by="U1",
            created_at=clock.now(),
        )
        session.add(golden)
        await session.flush()
        assert golden.id is not None
        answer: dict[str, Any] = {
            "team_id": "T1",
            "golden_set_id": golden.id,
            "messages": [{"role": "user", "content": "q"}],
            "answer": "a",
            "created_at": clock.now(),
        }
        assert await repositories.add_golden_answers(session, answers=[GoldenAnswer(position=0, **answer)]) == 1
        assert (
            await repositories.add_golden_answers(
                session, answers=[GoldenAnswer(position=0, **answer), GoldenAnswer(position=1, **answer)]
            )
            == 1
        )
        assert await repositories.golden_positions_done(session, golden_set_id=golden.id) == {0, 1}
        lease = timedelta(minutes=5)
        assert await repositories.claim_golden_sets(session, owner="a", now=clock.now(), lease=lease) == [golden.id]
        assert await repositories.claim_golden_sets(session, owner="b", now=clock.now(), lease=lease) == []
        assert await repositories.latest_golden_set(session, team_id="T1", model="ft:m:1") is None, "not done yet"
        golden.status = "done"
        session.add(golden)
    async with db.session() as session, session.begin():
        found = await repositories.latest_golden_set(session, team_id="T1", model="ft:m:1")
        assert found is not None and [
            a.position for a in await repositories.list_golden_answers(session, golden_set_id=found.id or 0)
        ] == [0, 1]
        job = await session.get(TrainingJob, job_id)
        assert job is not None
        job.model_deleted_at = clock.now()
        session.add(job)
    async with db.session() as session:
        assert await repositories.list_models(session, team_id="T1") == []
        assert len(await repositories.list_models(session, team_id="T1", include_deleted=True)) == 1


async def test_evaluations_move_once_store_each_answer_once_and_lease(db: Database, clock: FrozenClock) -> None:
    from storage.models import Evaluation, EvaluationAnswer

    job_id = await _one_job(db, clock, status="succeeded", fine_tuned_model="ft:m:1")
    lease = timedelta(minutes=5)
    async with db.session() as session, session.begin():
        evaluation = await repositories.add_evaluation(
            session,
            evaluation=Evaluation(
                team_id="T1",
                model="ft:m:1",
                baseline_model="m",
                dataset_id=1,
                job_id=job_id,
                total=2,
                channel_id="C1",
                thread_ts="1.1",
                requested_by="U1",
                created_at=clock.now(),
            ),
        )
        assert evaluation.id is not None
        assert await repositories.recent_evaluations(session, team_id="T1") == [], "not confirmed yet"
        running = {"status": "running", "lease_owner": "a", "lease_expires_at": clock.now() + lease}
        moved = await repositories.move_evaluation(
            session, evaluation_id=evaluation.id, from_status="awaiting_confirmation", values=running
        )
        assert moved
        again = await repositories.move_evaluation(
            session, evaluation_id=evaluation.id, from_status="awaiting_confirmation", values=running
        )
        assert not again, "a second click finds it running"
        answer: dict[str, Any] = {
            "team_id": "T1",
            "evaluation_id": evaluation.id,
            "answer": "x",
            "created_at": clock.now(),
        }
        first = [EvaluationAnswer(position=0, side="candidate", **answer)]
        assert await repositories.add_evaluation_answers(session, answers=first) == 1
        both = [
            EvaluationAnswer(position=0, side="candidate", **answer),
            EvaluationAnswer(position=0, side="baseline", **answer),
        ]
        assert await repositories.add_evaluation_answers(session, answers=both) == 1
        stored = await repositories.list_evaluation_answers(session, evaluation_id=evaluation.id)
        assert [(a.position, a.side) for a in stored] == [(0, "baseline"), (0, "candidate")]
        assert await repositories.claim_evaluations(session, owner="b", now=clock.now(), lease=lease) == []
        later = clock.now() + timedelta(minutes=6)
        assert await repositories.claim_evaluations(session, owner="b", now=later, lease=lease) == [evaluation.id]
        assert not await repositories.renew_leases(
            session, Evaluation, owner="a", ids=[evaluation.id], expires_at=later + lease
        )
        listed = await repositories.recent_evaluations(session, team_id="T1")
        assert [e.id for e in listed] == [evaluation.id]
    async with db.session() as session:
        row = await session.get(Evaluation, evaluation.id)
        assert row is not None and row.lease_owner == "b", "only the lease's owner renews it"


async def test_a_vote_is_one_candidate_that_can_be_withdrawn_and_given_again(db: Database, clock: FrozenClock) -> None:
    from storage.models import Candidate

    await _one_job(db, clock, status="succeeded", fine_tuned_model="ft:m:1")

    def vote(kind: str = "approved", example: str = "a") -> Candidate:
        return Candidate(
            team_id="T1",
            dataset_id=1,
            kind=kind,
            channel_id="C1",
            thread_ts="1.1",
            message_ts="1.2",
            model="ft:m:1",
            contributor="U1",
            example={"messages": [{"role": "assistant", "content": example}]},
            created_at=clock.now(),
            updated_at=clock.now(),
        )

    async with db.session() as session, session.begin():
        first, changed = await repositories.keep_candidate(session, candidate=vote())
        assert changed and first.id is not None
        again, changed = await repositories.keep_candidate(session, candidate=vote())
        assert (again.id, changed) == (first.id, False), "a retried vote finds the first"
        await repositories.keep_candidate(session, candidate=vote("rejected"))
        assert await repositories.pending_votes(session, channel_id="C1", message_ts="1.2", contributor="U1") == {
            "approved",
            "rejected",
        }
        assert await repositories.pending_candidates_on(session, channel_id="C1", message_ts="1.2") == 1
        assert [c.id for c in await repositories.pending_candidates(session, team_id="T1", dataset_id=1)] == [first.id]
        withdrawn = await repositories.withdraw_candidate(
            session, channel_id="C1", message_ts="1.2", kind="approved", contributor="U1", now=clock.now()
        )
        assert withdrawn is not None and withdrawn.status == "withdrawn"
        back, changed = await repositories.keep_candidate(session, candidate=vote(example="b"))
        assert (
            changed
            and back.id == first.id
            and back.status == "pending"
            and back.example["messages"][0]["content"] == "b"
        )
        await repositories.publish_candidates(session, candidate_ids=[first.id], dataset_id=1, now=clock.now())
    async with db.session() as session:
        published = await session.get(Candidate, first.id)
        assert published is not None and (published.status, published.published_dataset_id) == ("published", 1)
        assert await repositories.pending_candidates(session, team_id="T1", dataset_id=1) == []


async def test_chat_turns_are_kept_once_and_read_in_thread_order(db: Database, clock: FrozenClock) -> None:
    async with db.session() as session, session.begin():
        await repositories.ensure_team(session, team_id="T1")
        thread = await repositories.add_chat_thread(
            session,
            thread=ChatThread(team_id="T1", channel_id="C1", thread_ts="100.000001", model="m", started_by="U1"),
        )
        assert thread.id is not None and not thread.records_turns
        for ts, role in (("100.000010", "assistant"), ("100.000002", "user"), ("99.999999", "user")):
            turn = ChatTurn(thread_id=thread.id, ts=ts, role=role, text=ts, created_at=clock.now())
            assert await repositories.add_chat_turn(session, turn=turn)
        again = ChatTurn(thread_id=thread.id, ts="100.000002", role="user", text="retry", created_at=clock.now())
        assert not await repositories.add_chat_turn(session, turn=again), "a Slack retry keeps nothing twice"
        await repositories.mark_thread_recorded(session, thread_id=thread.id)
    async with db.session() as session:
        turns = await repositories.list_chat_turns(session, thread_id=thread.id)
        assert [t.ts for t in turns] == ["99.999999", "100.000002", "100.000010"]
        assert turns[1].text == "100.000002"
        found = await repositories.get_chat_thread(session, channel_id="C1", thread_ts="100.000001")
        assert found is not None and found.records_turns


async def test_a_model_has_one_live_deployment_and_ending_it_frees_the_next(db: Database, clock: FrozenClock) -> None:
    now = clock.now()
    async with db.session() as session, session.begin():
        await repositories.ensure_team(session, team_id="T1")
        dataset = _dataset()
        session.add(dataset)
        await session.flush()
        job = TrainingJob(
            team_id="T1",
            dataset_id=dataset.id or 0,
            request_id="r1",
            provider="azure",
            base_model="gpt-4o-mini",
            requested_by="U1",
            channel_id="C1",
            thread_ts="1.1",
        )
        session.add(job)
        await session.flush()
        assert job.id is not None
        job_id = job.id

    def deployment(name: str) -> Deployment:
        return Deployment(
            team_id="T1",
            job_id=job_id,
            live_job_id=job_id,
            provider="azure",
            model="ft-model",
            name=name,
            requested_by="U1",
            channel_id="C1",
            thread_ts="1.1",
            created_at=now,
            updated_at=now,
        )

    async with db.session() as session, session.begin():
        first, created = await repositories.add_deployment(session, deployment=deployment("ft-a"))
        second, created_again = await repositories.add_deployment(session, deployment=deployment("ft-b"))
    assert created and not created_again and second.id == first.id, "a second click finds the first"
    async with db.session() as session, session.begin():
        assert await repositories.move_deployment(
            session, deployment_id=first.id or 0, expected=["deploying"], new="active", now=now, active_at=now
        )
        assert not await repositories.move_deployment(
            session, deployment_id=first.id or 0, expected=["deploying"], new="failed", now=now
        ), "a tick and a click racing: one wins"
    async with db.session() as session:
        live = await repositories.live_deployment(session, job_id=job_id)
        assert live is not None and live.status == "active"
        assert [d.id for d in await repositories.deployments_in(session, statuses=["active"], team_id="T1")] == [
            live.id
        ]
    async with db.session() as session, session.begin():
        assert await repositories.move_deployment(
            session,
            deployment_id=first.id or 0,
            expected=["deploying", "active"],
            new="deleted",
            now=now,
            ended_by="U1",
        )
    async with db.session() as session, session.begin():
        assert await repositories.live_deployment(session, job_id=job_id) is None
        third, created = await repositories.add_deployment(session, deployment=deployment("ft-c"))
    assert created and third.id != first.id
    async with db.session() as session:
        ended = await session.get(Deployment, first.id)
        assert ended is not None and (ended.ended_by, ended.live_job_id) == ("U1", None) and ended.ended_at is not None
