"""Launching a job at the provider, once: upload the bot's copies, create the job, post its card; and
settle, from any replica, a launch that went unheard from.

The provider's create call is never retried blindly: after an ambiguous failure (timeout, dropped
connection, 5xx) the provider's job list is searched by the request id in the job's metadata first."""

from __future__ import annotations

import logging
from datetime import timedelta

from bot.mrkdwn import escape
from bot.providers import FineTuneProvider, JobRequest, ProviderError, ProviderErrorKind, ProviderJob
from bot.references import dataset_path
from bot.services import Services
from bot.training import views
from bot.training.status import JobStatus
from storage import repositories
from storage.models import Dataset, TrainingJob

logger = logging.getLogger(__name__)


CREATE_ATTEMPTS = 4


# How long a launch may go unheard from before another replica settles it; ticks renew it meanwhile.
START_LEASE = timedelta(minutes=5)


TRY_AGAIN = "Nothing was started, and the dataset is still ready: click Train… on its report to try again."


async def _job_of_request(provider: FineTuneProvider, request_id: str) -> ProviderJob | None:
    """The provider's job created for ``request_id``, if any. The provider's filter is not trusted alone (a
    host may ignore it and list every job): a candidate must carry this request id itself."""
    found = await provider.find_jobs(metadata={"request_id": request_id})
    return next((job for job in found if job.metadata.get("request_id") == request_id), None)


async def _create_once(services: Services, provider: FineTuneProvider, request: JobRequest) -> ProviderJob:
    """Create the job without ever creating it twice, whatever the network does."""
    last: ProviderError | None = None
    for attempt in range(CREATE_ATTEMPTS):
        try:
            return await provider.create_job(request)
        except ProviderError as error:
            last = error
            if error.ambiguous:
                found = await _job_of_request(provider, request.metadata["request_id"])
                if found is not None:
                    logger.info(
                        "job for request %s existed despite the error; adopting it", request.metadata["request_id"]
                    )
                    return found
            elif error.kind != ProviderErrorKind.RATE_LIMITED:
                raise
            await services.clock.sleep(0.2 * 2**attempt)
    assert last is not None
    raise last


async def launch(services: Services, *, job_id: int) -> None:
    """Upload the bot's stored copy, create the job at the provider, post the job card in the thread.

    However it ends, the requester hears of it in the thread: started, refused, or (when the outcome
    is unknown) looked up at the provider by its request id. The job's lease, taken when its row was
    written, is renewed by this replica's ticks while the launch runs; if the replica dies,
    ``resolve_stalled_starts`` on any replica finishes the story.
    """
    services.runtime.launches.add(job_id)
    try:
        await _launch(services, job_id)
    finally:
        services.runtime.launches.discard(job_id)


async def _submit(services: Services, job: TrainingJob, dataset: Dataset, validation: Dataset | None) -> ProviderJob:
    """Upload the stored copies and create the job (once, whatever the network does), at the job's provider."""
    provider = services.providers.get(job.provider)
    training_file = await provider.upload_dataset(
        dataset_path(services, dataset.sha256), filename=dataset.filename, size=dataset.bytes
    )
    validation_file = None
    if validation is not None:
        validation_file = await provider.upload_dataset(
            dataset_path(services, validation.sha256), filename=validation.filename, size=validation.bytes
        )
    return await _create_once(
        services,
        provider,
        JobRequest(
            model=job.base_model,
            training_file=training_file,
            validation_file=validation_file,
            method=job.method,
            hyperparameters={k: v for k, v in job.hyperparameters.items() if v != "auto"},
            suffix=job.suffix,
            seed=job.seed,
            metadata={
                "team": job.team_id,
                "dataset": str(dataset.id),
                "requested_by": job.requested_by,
                "request_id": job.request_id,
            },
        ),
    )


def _what_now(services: Services, job: TrainingJob, error: ProviderError) -> str:
    """After a refusal: the provider's advice, or, where it trains no more, the providers that still may."""
    others = [provider.label for provider in services.providers if provider.name != job.provider]
    if error.kind == ProviderErrorKind.TRAINING_CLOSED and others:
        return (
            f"This organization can no longer create fine-tuning jobs at {services.providers.label_of(job.provider)}: "
            f"click Train… on the report and pick a model at {' or '.join(others)}. The dataset is still ready."
        )
    return f"{error.advice} {TRY_AGAIN}"


async def _launch(services: Services, job_id: int) -> None:
    async with services.db.session() as session:
        job = await session.get(TrainingJob, job_id)
        assert job is not None
        dataset = await session.get(Dataset, job.dataset_id)
        validation = await session.get(Dataset, job.validation_dataset_id) if job.validation_dataset_id else None
    assert dataset is not None
    try:
        missing = next((d for d in (dataset, validation) if d and not dataset_path(services, d.sha256).is_file()), None)
        if missing is not None:
            await _not_started(
                services,
                job,
                dataset,
                f"the bot's stored copy of `{escape(missing.filename)}` is missing from its data folder, so "
                f"nothing was sent to {services.providers.label_of(job.provider)}. Share the file again and click "
                "Train… on its new report.",
                recorded=f"stored copy of {missing.filename} missing",
            )
            return
        created = await _submit(services, job, dataset, validation)
    except ProviderError as error:
        if error.ambiguous:  # the job may exist all the same
            await _look_up_start(
                services, job_id, why="the provider did not answer clearly", quoted=error.provider_message
            )
            return
        await _not_started(
            services,
            job,
            dataset,
            f"{services.providers.label_of(job.provider)} did not start it: “{escape(error.provider_message)}”\n"
            f"{_what_now(services, job, error)}",
            recorded=error.provider_message,
        )
        return
    except Exception:
        logger.exception("starting job %s failed", job_id)
        await _look_up_start(services, job_id, why="the bot hit an unexpected error (it is in the bot's log)")
        return
    await _record_start(services, job_id, created, dataset, title="🚀 *Training started*")


async def _record_start(services: Services, job_id: int, created: ProviderJob, dataset: Dataset, *, title: str) -> None:
    """The provider has the job: record its id, hand the job to the poller, post the job card."""
    now = services.clock.now()
    async with services.db.session() as session, session.begin():
        moved = await repositories.move_job_status(
            session,
            job_id=job_id,
            expected=JobStatus.STARTING,
            new=created.status,
            now=now,
            provider_job_id=created.id,
            raw_status=created.raw_status,
            next_poll_at=now,
            lease_owner=None,
            lease_expires_at=None,
        )
        row = await session.get(TrainingJob, job_id)
    assert row is not None
    if not moved:
        if row.provider_job_id != created.id:
            # Another replica gave this start up for lost meanwhile: the job it never saw must not bill.
            logger.warning("job %s was settled as %s while starting; cancelling %s", job_id, row.status, created.id)
            try:
                await services.providers.get(row.provider).cancel_job(created.id)
            except ProviderError as error:
                logger.error("could not cancel orphaned provider job %s: %s", created.id, error.provider_message)
        return
    card = await services.slack_for(row.team_id).chat_postMessage(
        channel=row.channel_id,
        thread_ts=row.thread_ts,
        text=f"🚀 Training started: {escape(row.base_model)} on {escape(dataset.filename)} (job {created.id})",
        blocks=views.job_card(row, dataset_name=dataset.filename, title=title),
    )
    async with services.db.session() as session, session.begin():
        saved = await session.get(TrainingJob, job_id)
        assert saved is not None
        saved.progress_message_ts = str(card["ts"])
        session.add(saved)


async def _look_up_start(services: Services, job_id: int, *, why: str, quoted: str = "") -> None:
    """Whether a start whose outcome is unknown reached the provider: adopt the job there, or say it did not.

    If the provider cannot be asked now, the job keeps its lease until it expires and a tick asks again.
    ``quoted`` is the provider's own words, if it said any.
    """
    async with services.db.session() as session:
        job = await session.get(TrainingJob, job_id)
        dataset = await session.get(Dataset, job.dataset_id) if job is not None else None
    if job is None or dataset is None or job.status != JobStatus.STARTING:
        return
    try:
        found = await _job_of_request(services.providers.get(job.provider), job.request_id)
    except ProviderError as error:
        logger.warning("could not look job %s up at the provider (%s); asking again later", job_id, error.kind)
        return
    if found is not None:
        logger.info("job %s was started at the provider as %s before %s; adopting it", job_id, found.id, why)
        await _record_start(
            services, job_id, found, dataset, title="🚀 *Training started* (found at the provider after a restart)"
        )
        return
    await _not_started(
        services,
        job,
        dataset,
        f"starting it was interrupted: {why}"
        + (f" (“{escape(quoted)}”)" if quoted else "")
        + f", and {services.providers.label_of(job.provider)} has no job for it. {TRY_AGAIN}",
        recorded=quoted or f"interrupted: {why}",
    )


async def resolve_stalled_starts(services: Services, *, owner: str, limit: int = 50) -> int:
    """A tick's part: keep this replica's launches leased, and settle starts whose launcher is gone.

    Returns how many stalled starts it looked at.
    """
    now = services.clock.now()
    async with services.db.session() as session, session.begin():
        await repositories.renew_leases(
            session, TrainingJob, owner=owner, ids=sorted(services.runtime.launches), expires_at=now + START_LEASE
        )
        stalled = await repositories.claim_stalled_starts(
            session, owner=owner, now=now, lease=START_LEASE, status=JobStatus.STARTING, limit=limit
        )
    for job_id in stalled:
        try:
            await _look_up_start(services, job_id, why="the bot stopped before it had finished")
        except Exception:  # one job's trouble must not keep the others waiting
            logger.exception("settling stalled job %s failed", job_id)
    return len(stalled)


async def _not_started(services: Services, job: TrainingJob, dataset: Dataset, reason: str, *, recorded: str) -> None:
    """The provider has no job for this request: record that (``recorded``, plain text), free the budget, and
    say why in the thread (``reason``, mrkdwn)."""
    now = services.clock.now()
    async with services.db.session() as session, session.begin():
        moved = await repositories.move_job_status(
            session,
            job_id=job.id or 0,
            expected=JobStatus.STARTING,
            new=JobStatus.NOT_STARTED,
            now=now,
            error_message=recorded,
            finished_at=now,
            lease_owner=None,
            lease_expires_at=None,
        )
    if not moved:
        return
    await services.slack_for(job.team_id).chat_postMessage(
        channel=job.channel_id,
        thread_ts=job.thread_ts,
        text=f"❌ <@{job.requested_by}>, job #{job.id} (`{escape(job.base_model)}` on "
        f"`{escape(dataset.filename)}`) did not start: {reason}",
    )
