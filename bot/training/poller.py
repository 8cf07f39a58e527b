"""Following one job: ask the provider, record what is new, owe the team the right messages.

Everything here is idempotent: events are stored once (unique per job), status moves only
forward (bot.training.status.transition), and notifications are queued once per (job, kind, key). A poll that
is repeated after a crash, or made by another replica, changes nothing twice.
"""

from __future__ import annotations

import csv
import io
import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

from slack_sdk.errors import SlackApiError

from bot import workspaces
from bot.models import catalog, serving
from bot.numbers import whole_number
from bot.providers import ProviderError, ProviderEvent, ProviderJob
from bot.services import Services
from bot.training import views
from bot.training.status import TERMINAL, JobStatus, transition
from storage import repositories
from storage.models import Dataset, JobEvent, Notification, NotificationKind, TrainingJob

logger = logging.getLogger(__name__)

MILESTONES = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.PAUSED)
MAX_BACKOFF = timedelta(minutes=30)


def _metric(data: dict[str, Any], key: str) -> float | None:
    value = data.get(key)
    return float(value) if isinstance(value, int | float) else None


def _event_row(job: TrainingJob, event: ProviderEvent) -> JobEvent:
    data = event.data
    assert job.id is not None
    return JobEvent(
        team_id=job.team_id,
        job_id=job.id,
        provider_event_id=event.id,
        created_at=event.created_at,
        level=event.level,
        type=event.type,
        message=event.message[:2000],
        step=int(data["step"]) if isinstance(data.get("step"), int | float) else None,
        train_loss=_metric(data, "train_loss"),
        valid_loss=_metric(data, "valid_loss"),
        train_accuracy=_metric(data, "train_mean_token_accuracy"),
        valid_accuracy=_metric(data, "valid_mean_token_accuracy"),
    )


def _rows_from_results_csv(job: TrainingJob, content: bytes) -> list[JobEvent]:
    """Metrics from the result file, for providers that do not send metrics events."""
    assert job.id is not None
    rows = []
    for record in csv.DictReader(io.StringIO(content.decode("utf-8", "replace"))):
        step = whole_number(record.get("step") or "")
        if step is None:
            continue

        def number(key: str, source: dict[str, str] = record) -> float | None:
            try:
                return float(source.get(key) or "")
            except ValueError:
                return None

        rows.append(
            JobEvent(
                team_id=job.team_id,
                job_id=job.id,
                provider_event_id=f"result:{step}",
                created_at=job.finished_at or datetime.now(UTC),
                type="metrics",
                message="",
                step=step,
                train_loss=number("train_loss"),
                valid_loss=number("valid_loss"),
                train_accuracy=number("train_accuracy"),
                valid_accuracy=number("valid_mean_token_accuracy"),
            )
        )
    return rows


def _price(services: Services, model: str) -> float | None:
    base = catalog.base_model_id(model)
    price = services.settings.finetune_training_prices.get(base)
    info = catalog.lookup(model)
    return price if price is not None else (info.training_price_per_million if info else None)


async def follow_job(services: Services, job_id: int) -> bool:
    """Poll one job and record what changed; returns whether the job is still active."""
    async with services.db.session() as session:
        job = await session.get(TrainingJob, job_id)
        assert job is not None and job.provider_job_id is not None
        dataset = await session.get(Dataset, job.dataset_id)
    assert dataset is not None
    remote = await services.providers.get(job.provider).get_job(job.provider_job_id)
    events = await services.providers.get(job.provider).events_since(job.provider_job_id, last_seen=job.last_event_id)
    now = services.clock.now()
    new_status = transition(job.status, remote.status)
    rows = [_event_row(job, event) for event in events]
    checkpoints: list[Any] = []
    model_retires = None
    if new_status == JobStatus.SUCCEEDED:
        checkpoints, model_retires, rows = await _success_details(services, job, remote, rows)

    async with services.db.session() as session, session.begin():
        current = await session.get(TrainingJob, job_id)
        assert current is not None
        await repositories.add_job_events(session, events=rows)
        progressed = _record_progress(current, rows, events)
        _record_remote(current, remote, now=now, model_retires=model_retires)
        if new_status is not None:
            _record_status(services, current, remote, new_status, now=now)
        session.add(current)
        await session.flush()
        if new_status is not None:
            await _queue_notifications(
                services, session, current, dataset, new_status, checkpoints, now, error_code=remote.error_code
            )
    if new_status is not None or progressed:
        await _refresh_card(services, current, dataset, now)
    return current.status not in TERMINAL


async def _success_details(
    services: Services, job: TrainingJob, remote: ProviderJob, rows: list[JobEvent]
) -> tuple[list[Any], date | None, list[JobEvent]]:
    """What a finished job adds: its checkpoints, its model's shutdown date, and its losses from the
    results file when the events carried none."""
    assert job.provider_job_id is not None
    checkpoints = await services.providers.get(job.provider).checkpoints(job.provider_job_id)
    model_retires = (
        await _model_retires(services, job.provider, remote.fine_tuned_model) if remote.fine_tuned_model else None
    )
    if not any(row.type == "metrics" for row in rows) and remote.result_files:
        rows = rows + _rows_from_results_csv(
            job, await services.providers.get(job.provider).file_content(remote.result_files[0])
        )
    return checkpoints, model_retires, rows


def _record_progress(job: TrainingJob, rows: list[JobEvent], events: list[ProviderEvent]) -> bool:
    """The latest step and losses from the new metrics; returns whether there were any."""
    if events:
        job.last_event_id = events[-1].id
    metrics = [row for row in rows if row.type == "metrics" and row.step is not None]
    if not metrics:
        return False
    latest = metrics[-1]
    job.step, job.train_loss = latest.step, latest.train_loss
    job.valid_loss = latest.valid_loss if latest.valid_loss is not None else job.valid_loss
    total = next((e.data.get("total_steps") for e in reversed(events) if e.data.get("total_steps")), None)
    job.total_steps = int(total) if total else job.total_steps
    return True


def _record_remote(job: TrainingJob, remote: ProviderJob, *, now: datetime, model_retires: date | None) -> None:
    """What the provider says of the job now; a value it stops giving is kept."""
    job.raw_status = remote.raw_status
    job.estimated_finish = remote.estimated_finish
    job.trained_tokens = remote.trained_tokens or job.trained_tokens
    job.fine_tuned_model = remote.fine_tuned_model or job.fine_tuned_model
    job.poll_failures = 0
    job.updated_at = now
    job.model_retires = model_retires or job.model_retires


def _record_status(
    services: Services, job: TrainingJob, remote: ProviderJob, status: JobStatus, *, now: datetime
) -> None:
    """The new status; an ended job gets its end, its error and what it cost."""
    job.status = status
    if status not in TERMINAL:
        return
    job.finished_at = remote.finished_at or now
    job.error_message = remote.error_message or job.error_message
    price = _price(services, job.base_model)
    if job.trained_tokens and price is not None:
        job.actual_cost_usd = round(job.trained_tokens / 1_000_000 * price, 4)


async def _queue_notifications(
    services: Services,
    session: Any,
    job: TrainingJob,
    dataset: Dataset,
    status: JobStatus,
    checkpoints: list[Any],
    now: datetime,
    *,
    error_code: str | None,
) -> None:
    subject = f"job:{job.id}"

    def note(
        kind: NotificationKind, payload: dict[str, Any], *, key: str = "", channel: str | None = None
    ) -> Notification:
        return Notification(
            team_id=job.team_id,
            subject=subject,
            kind=kind,
            key=key,
            channel_id=channel or job.channel_id,
            thread_ts=None if channel else job.thread_ts,
            payload=payload,
            created_at=now,
        )

    if status in MILESTONES:
        await repositories.enqueue_notification(
            session, notification=note(NotificationKind.MILESTONE, {"text": views.milestone_text(job)}, key=status)
        )
        return
    if status not in TERMINAL:
        return
    previous = await session.get(TrainingJob, job.retrained_from_id) if job.retrained_from_id else None
    still_answers = (
        previous is not None
        and previous.fine_tuned_model is not None
        and previous.model_deleted_at is None
        and (previous.model_retires is None or now.date() < previous.model_retires)
    )
    text, result = views.result_blocks(
        job,
        dataset_name=dataset.filename,
        checkpoints=checkpoints,
        provider_label=services.providers.label_of(job.provider),
        now=now,
        error_code=error_code,
        retrain=services.providers.several,
        previous=previous.fine_tuned_model if previous is not None and still_answers else None,
        serving=serving.undeployed(services, job),
    )
    await repositories.enqueue_notification(
        session, notification=note(NotificationKind.RESULT, {"text": text, "blocks": result})
    )
    if status == JobStatus.SUCCEEDED and job.step:
        title = f"Loss curve of job #{job.id} ({job.fine_tuned_model})"
        chart = {"job_id": job.id, "title": title, "filename": f"loss-curve-job-{job.id}.png"}
        await repositories.enqueue_notification(session, notification=note(NotificationKind.CHART, chart))
    if services.settings.finetune_dm_on_finish:
        direct = {"text": f"{text} (in <#{job.channel_id}>)", "blocks": result}
        await repositories.enqueue_notification(
            session, notification=note(NotificationKind.DIRECT, direct, channel=job.requested_by)
        )


async def _refresh_card(services: Services, job: TrainingJob, dataset: Dataset, now: datetime) -> None:
    """Edit the job card in place: one chat.update per poll at most, never a new message."""
    if not job.progress_message_ts:
        return
    title = {
        JobStatus.SUCCEEDED: "✅ *Training finished*",
        JobStatus.FAILED: "❌ *Training failed*",
        JobStatus.CANCELLED: "🛑 *Training cancelled*",
    }.get(JobStatus(job.status), "🚀 *Training*")
    try:
        await services.slack_for(job.team_id).chat_update(
            channel=job.channel_id,
            ts=job.progress_message_ts,
            text=f"{title}: {views.progress_line(job, now=now)}",
            blocks=views.job_card(job, dataset_name=dataset.filename, title=title, now=now),
        )
    except SlackApiError as error:
        # The card catches up at the next poll; the outcome itself goes through the outbox.
        logger.warning("job card of %s not updated: %s", job.id, error.response.get("error"))
    except workspaces.WorkspaceNotInstalled as error:
        logger.warning("job card of %s not updated: %s", job.id, error)


async def _model_retires(services: Services, provider_name: str, model: str) -> date | None:
    """The provider's shutdown date for the new model, else its base model's there."""
    provider = services.providers.get(provider_name)
    try:
        shutdown = await provider.model_shutdown(model)
    except ProviderError as error:
        logger.info("no shutdown date for %s: %s", model, error.provider_message)
        shutdown = None
    if shutdown is not None:
        return shutdown
    base = catalog.base_model_id(model)
    known = {m.id: m for m in await services.base_models(provider_name)}
    if base in known and known[base].inference_retires:
        return known[base].inference_retires
    return provider.published_shutdown(model)


def backoff(failures: int, interval: timedelta) -> timedelta:
    """Wait longer after each failed poll of a job: 2, 4, 8 … intervals, at most 30 minutes."""
    wait: timedelta = interval * (2 ** min(failures, 10))
    return min(wait, MAX_BACKOFF)


async def record_failure(services: Services, job_id: int, error: ProviderError) -> int:
    async with services.db.session() as session, session.begin():
        job = await session.get(TrainingJob, job_id)
        assert job is not None
        job.poll_failures += 1
        session.add(job)
        logger.warning(
            "poll of job %s failed (%s, %s times): %s", job_id, error.kind, job.poll_failures, error.provider_message
        )
        return job.poll_failures
