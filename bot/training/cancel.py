"""Cancelling a running job: the question first (to its requester or an admin), then the provider."""

from __future__ import annotations

from typing import Any

from bot import policy
from bot.errors import InvalidInput, NotFound, ProviderRefused
from bot.mrkdwn import escape
from bot.providers import ProviderError
from bot.references import find_job
from bot.services import Services
from bot.training import views
from bot.training.status import ACTIVE, JobStatus
from storage import repositories
from storage.models import Dataset, TrainingJob


async def cancel_confirmation(
    services: Services, *, team_id: str, user_id: str, reference: str
) -> list[dict[str, Any]]:
    """The question before cancelling: a button that asks once more, for the requester or an admin."""
    job = await find_job(services, team_id=team_id, reference=reference)
    if job.status == JobStatus.STARTING:
        raise InvalidInput(views.still_starting_text(job.id or 0, services.providers.label_of(job.provider)))
    if job.status not in ACTIVE or not job.provider_job_id:
        raise InvalidInput(f"Job #{job.id} is {views.STATUS_WORDS.get(job.status, job.status)}; nothing to cancel.")
    policy.require_owner_or_admin(
        services.settings, user_id, owner=job.requested_by, who="started it", action=f"cancel job #{job.id}"
    )
    async with services.db.session() as session:
        dataset = await session.get(Dataset, job.dataset_id)
    assert dataset is not None
    card = views.job_card(job, dataset_name=dataset.filename, title=f"Cancel job #{job.id}?", now=services.clock.now())
    return card


async def cancel(services: Services, *, team_id: str, user_id: str, job_id: int) -> str:
    """The requester or an admin cancels a running job; returns the sentence for the clicker."""
    async with services.db.session() as session:
        job = await repositories.get_job(session, team_id=team_id, job_id=job_id)
    if job is None:
        raise NotFound("That job is gone from the bot's records.")
    policy.require_owner_or_admin(
        services.settings, user_id, owner=job.requested_by, who="started it", action=f"cancel job #{job_id}"
    )
    if job.status not in ACTIVE or not job.provider_job_id:
        if job.status == JobStatus.STARTING:
            return views.still_starting_text(job_id, services.providers.label_of(job.provider))
        return f"Job #{job_id} is {escape(job.status.replace('_', ' '))}; there is nothing to cancel."
    try:
        remote = await services.providers.get(job.provider).cancel_job(job.provider_job_id)
    except ProviderError as error:
        label = services.providers.label_of(job.provider)
        raise ProviderRefused(f"{label} did not cancel job #{job_id}: “{escape(error.provider_message)}”") from None
    now = services.clock.now()
    async with services.db.session() as session, session.begin():
        moved = await repositories.move_job_status(
            session,
            job_id=job_id,
            expected=job.status,
            new=JobStatus.CANCELLED,
            now=now,
            raw_status=remote.raw_status,
            finished_at=now,
            cancelled_by=user_id,
        )
        if moved:
            await repositories.add_audit_entry(
                session,
                team_id=team_id,
                actor=user_id,
                action="cancel",
                subject=f"job:{job_id}",
                now=now,
                detail={"provider_job_id": job.provider_job_id},
            )
        row = await session.get(TrainingJob, job_id)
        dataset = await session.get(Dataset, job.dataset_id)
    assert row is not None and dataset is not None
    await _announce(services, row, dataset, by=user_id)
    return f"Job #{job_id} is cancelled."


async def _announce(services: Services, row: TrainingJob, dataset: Dataset, *, by: str) -> None:
    """The job card says who cancelled, and the thread hears of it."""
    slack = services.slack_for(row.team_id)
    if row.progress_message_ts:
        await slack.chat_update(
            channel=row.channel_id,
            ts=row.progress_message_ts,
            text=f"🛑 Training cancelled by <@{by}>",
            blocks=views.job_card(row, dataset_name=dataset.filename, title=f"🛑 *Cancelled by <@{by}>*"),
        )
    await slack.chat_postMessage(
        channel=row.channel_id,
        thread_ts=row.thread_ts,
        text=f"🛑 <@{by}> cancelled job #{row.id} (`{escape(row.base_model)}`).",
    )
