"""Golden sets: a model's answers to a fixed list of prompts, recorded before the model is retired.

A recording stores each answer as soon as it arrives (once per prompt), holds a lease while it
runs, and is picked up again by the tick after a restart, so nothing is asked twice and nothing is
lost. Requests run a few at a time and wait out rate limits.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from slack_sdk.errors import SlackApiError

from bot import notifier
from bot.datasets.examples import prompts_of
from bot.errors import InvalidInput
from bot.models import views as model_views
from bot.mrkdwn import escape
from bot.providers import ProviderError
from bot.providers.batch import Answer, LeasedBatch, resume_orphans
from bot.references import dataset_path, find_dataset, resolve_model
from bot.services import Services
from storage import repositories
from storage.db import Session
from storage.models import Dataset, GoldenAnswer, GoldenSet, GoldenSetStatus, Notification, NotificationKind

logger = logging.getLogger(__name__)

CONCURRENCY = 4
LEASE = timedelta(minutes=5)


async def start_recording(
    services: Services, *, team_id: str, user_id: str, reference: str, dataset_reference: str | None
) -> GoldenSet:
    """Create the golden set, announce it in the thread, and start recording in the background."""
    chosen = await resolve_model(services, team_id=team_id, reference=reference, answering=True)
    async with services.db.session() as session:
        job = await repositories.find_job_by_model(session, team_id=team_id, model=chosen.model)
        own_dataset = await session.get(Dataset, job.dataset_id) if job else None
    dataset = (
        await find_dataset(services, team_id=team_id, reference=dataset_reference) if dataset_reference else own_dataset
    )
    if dataset is None:
        raise InvalidInput(
            f"Which prompts? `{escape(chosen.model)}` is not one of the team's models; name a dataset: "
            f"`/finetune record {escape(chosen.model)} &lt;dataset&gt;`."
        )
    prompts = prompts_of(dataset_path(services, dataset.sha256), dataset.format)
    if not prompts:
        raise InvalidInput(
            f"`{escape(dataset.filename)}` has no prompts to record (examples that end with a question)."
        )
    channel, thread = (job.channel_id, job.thread_ts) if job else (dataset.channel_id, dataset.message_ts)
    now = services.clock.now()
    async with services.db.session() as session, session.begin():
        golden = GoldenSet(
            team_id=team_id,
            model=chosen.model,
            provider=chosen.provider,
            dataset_id=dataset.id or 0,
            total=len(prompts),
            channel_id=channel,
            thread_ts=thread,
            started_by=user_id,
            lease_owner=services.owner,
            lease_expires_at=now + LEASE,
            created_at=now,
        )
        session.add(golden)
        await session.flush()
    progress = await services.slack_for(team_id).chat_postMessage(
        channel=channel, thread_ts=thread, text=model_views.golden_progress(golden, done=0)
    )
    async with services.db.session() as session, session.begin():
        row = await session.get(GoldenSet, golden.id)
        assert row is not None
        row.progress_message_ts = str(progress["ts"])
        session.add(row)
    services.background(record(services, golden_set_id=golden.id or 0))
    return golden


async def resume_recordings(services: Services) -> int:
    """The tick's part: take over recordings whose runner is gone (a restart), and finish them."""
    return await resume_orphans(
        services,
        lambda session: repositories.claim_golden_sets(
            session, owner=services.owner, now=services.clock.now(), lease=LEASE
        ),
        lambda golden_set_id: record(services, golden_set_id=golden_set_id),
    )


async def record(services: Services, *, golden_set_id: int) -> None:
    """Ask the model every prompt not answered yet, storing each answer as it arrives."""
    async with services.db.session() as session:
        golden = await session.get(GoldenSet, golden_set_id)
        assert golden is not None
        dataset = await session.get(Dataset, golden.dataset_id)
        done = await repositories.golden_positions_done(session, golden_set_id=golden_set_id)
    assert dataset is not None
    prompts = prompts_of(dataset_path(services, dataset.sha256), dataset.format)
    batch = LeasedBatch(
        services, table=GoldenSet, work_id=golden_set_id, team_id=golden.team_id, lease=LEASE, concurrency=CONCURRENCY
    )

    async def ask(position: int, messages: list[dict[str, str]]) -> None:
        async def keep(session: Session, answer: Answer) -> None:
            row = GoldenAnswer(
                team_id=golden.team_id,
                golden_set_id=golden_set_id,
                position=position,
                messages=messages,
                answer=answer.text,
                completion_tokens=answer.completion_tokens,
                created_at=services.clock.now(),
            )
            await repositories.add_golden_answers(session, answers=[row])

        if await batch.ask(golden.model, messages, provider=golden.provider, keep=keep) is None:
            return
        done.add(position)
        if batch.progress_due():
            await _show_progress(services, golden, len(done))

    await asyncio.gather(
        *(ask(position, messages) for position, messages in enumerate(prompts) if position not in done)
    )
    await _finish(services, golden, len(done), batch.failure)


async def _show_progress(services: Services, golden: GoldenSet, done: int) -> None:
    if not golden.progress_message_ts:
        return
    try:
        await services.slack_for(golden.team_id).chat_update(
            channel=golden.channel_id,
            ts=golden.progress_message_ts,
            text=model_views.golden_progress(golden, done=done),
        )
    except SlackApiError as error:
        logger.info("golden set progress not shown: %s", error.response.get("error"))


async def _finish(services: Services, golden: GoldenSet, done: int, failure: ProviderError | None) -> None:
    now = services.clock.now()
    status = GoldenSetStatus.DONE if failure is None and done >= golden.total else GoldenSetStatus.FAILED
    async with services.db.session() as session, session.begin():
        row = await session.get(GoldenSet, golden.id)
        assert row is not None
        row.status, row.finished_at, row.lease_owner, row.lease_expires_at = status, now, None, None
        row.error_message = failure.provider_message if failure else ""
        session.add(row)
        subject = f"golden:{golden.id}"
        summary = model_views.golden_summary(row, done=done)
        notes = [
            Notification(
                team_id=golden.team_id,
                subject=subject,
                kind=NotificationKind.RESULT,
                channel_id=golden.channel_id,
                thread_ts=golden.thread_ts,
                payload={"text": summary},
                created_at=now,
            )
        ]
        if status == GoldenSetStatus.DONE:
            notes.append(
                Notification(
                    team_id=golden.team_id,
                    subject=subject,
                    kind=NotificationKind.GOLDEN_FILE,
                    channel_id=golden.channel_id,
                    thread_ts=golden.thread_ts,
                    created_at=now,
                    payload={
                        "golden_set_id": golden.id,
                        "title": f"Golden set #{golden.id} of {golden.model}",
                        "filename": f"golden-set-{golden.id}.jsonl",
                    },
                )
            )
        for note in notes:
            await repositories.enqueue_notification(session, notification=note)
    await _show_progress(services, row, done)
    await notifier.deliver_pending(services)  # the outbox posts the summary and the file exactly once
