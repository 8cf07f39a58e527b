"""Starting fine-tuning jobs once: team rules, approvals, the launch at the provider, and never twice.

A request id is minted when the modal opens and stored (unique) before the provider is called, so
a double submit finds the first request. The provider's create call is never retried blindly: after
an ambiguous failure (timeout, dropped connection, 5xx) the provider's job list is searched by the
request id in the job's metadata first."""

from __future__ import annotations

import logging
from datetime import timedelta

from bot import policy, slack_blocks
from bot.datasets.report import default_method
from bot.errors import NotAllowed, NotFound
from bot.mrkdwn import escape
from bot.numbers import whole_number
from bot.providers import JobRequest, ProviderError, ProviderErrorKind, ProviderJob
from bot.references import dataset_path
from bot.services import Services
from bot.training import views
from bot.training.modal import Submission, dataset_id_of, estimate
from bot.training.status import JobStatus
from storage import repositories
from storage.models import Dataset, TrainingJob

logger = logging.getLogger(__name__)


CREATE_ATTEMPTS = 4


# How long a launch may go unheard from before another replica settles it; ticks renew it meanwhile.
START_LEASE = timedelta(minutes=5)


TRY_AGAIN = "Nothing was started, and the dataset is still ready: click Train… on its report to try again."


async def start(services: Services, *, team_id: str, user_id: str, submission: Submission) -> None:
    """Record the request (once), then start it or send it to the admins."""
    dataset, context = submission.dataset, submission.context
    choice, hyperparameters = submission.choice, submission.hyperparameters
    method = choice.get("method") or default_method(dataset.format)
    _, _, cost = await estimate(
        services, dataset, model=choice["model"], method=method, epochs=str(hyperparameters.get("n_epochs", "auto"))
    )
    reason = await policy.approval_reason(services, team_id=team_id, estimate=cost)
    now = services.clock.now()
    validation = choice.get("validation") or ""
    job = TrainingJob(
        team_id=team_id,
        dataset_id=dataset_id_of(dataset),
        validation_dataset_id=whole_number(validation, low=1),
        request_id=context.request_id,
        provider=services.provider.name,
        base_model=choice["model"],
        method=method,
        hyperparameters=hyperparameters,
        status=JobStatus.AWAITING_APPROVAL if reason else JobStatus.STARTING,
        requested_by=user_id,
        channel_id=dataset.channel_id,
        thread_ts=dataset.message_ts,
        estimated_cost_usd=cost,
        suffix=choice.get("suffix") or None,
        seed=whole_number(choice["seed"]) if choice.get("seed") else None,
        created_at=now,
        updated_at=now,
        # The launcher's lease from the first moment: if this replica dies before the provider has the
        # job, another one settles it once the lease runs out.
        lease_owner=None if reason else services.owner,
        lease_expires_at=None if reason else now + START_LEASE,
    )
    async with services.db.session() as session, session.begin():
        job, created = await repositories.add_job(session, job=job)
        if created:
            await repositories.add_audit_entry(
                session,
                team_id=team_id,
                actor=user_id,
                action="request" if reason else "start",
                subject=f"job:{job.id}",
                now=now,
                detail={"dataset": dataset.id, "model": job.base_model, "estimate_usd": cost, "reason": reason},
            )
    if not created:
        logger.info("request %s was already recorded as job %s", context.request_id, job.id)
        return
    if reason:
        await _ask_for_approval(services, job, dataset, reason)
        return
    await launch(services, job_id=_job_id(job))


def _job_id(job: TrainingJob) -> int:
    assert job.id is not None
    return job.id


async def _ask_for_approval(services: Services, job: TrainingJob, dataset: Dataset, reason: str) -> None:
    channel = services.settings.finetune_approval_channel or ""
    await services.slack_for(job.team_id).chat_postMessage(
        channel=channel,
        text=f"Approval needed: {escape(job.base_model)} on {escape(dataset.filename)} for <@{job.requested_by}>",
        blocks=views.approval_request(job, dataset_name=dataset.filename, reason=reason),
    )
    await services.slack_for(job.team_id).chat_postMessage(
        channel=job.channel_id,
        thread_ts=job.thread_ts,
        text=(
            f"⏳ <@{job.requested_by}>, your training request (job #{job.id}, `{escape(job.base_model)}`, estimate "
            f"{slack_blocks.money(job.estimated_cost_usd)}) waits for an admin's approval because {reason}."
        ),
    )


async def _job_of_request(services: Services, request_id: str) -> ProviderJob | None:
    """The provider's job created for ``request_id``, if any. The provider's filter is not trusted alone (a
    host may ignore it and list every job): a candidate must carry this request id itself."""
    found = await services.provider.find_jobs(metadata={"request_id": request_id})
    return next((job for job in found if job.metadata.get("request_id") == request_id), None)


async def _create_once(services: Services, request: JobRequest) -> ProviderJob:
    """Create the job without ever creating it twice, whatever the network does."""
    last: ProviderError | None = None
    for attempt in range(CREATE_ATTEMPTS):
        try:
            return await services.provider.create_job(request)
        except ProviderError as error:
            last = error
            if error.ambiguous:
                found = await _job_of_request(services, request.metadata["request_id"])
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
                f"nothing was sent to {services.provider.label}. Share the file again and click Train… on "
                "its new report.",
                recorded=f"stored copy of {missing.filename} missing",
            )
            return
        training_file = await services.provider.upload_dataset(
            dataset_path(services, dataset.sha256), filename=dataset.filename, size=dataset.bytes
        )
        validation_file = None
        if validation is not None:
            validation_file = await services.provider.upload_dataset(
                dataset_path(services, validation.sha256), filename=validation.filename, size=validation.bytes
            )
        sent = {k: v for k, v in job.hyperparameters.items() if v != "auto"}
        created = await _create_once(
            services,
            JobRequest(
                model=job.base_model,
                training_file=training_file,
                validation_file=validation_file,
                method=job.method,
                hyperparameters=sent,
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
            f"{services.provider.label} did not start it: “{escape(error.provider_message)}”\n{error.advice} "
            + TRY_AGAIN,
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
                await services.provider.cancel_job(created.id)
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
        found = await _job_of_request(services, job.request_id)
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
        + f", and {services.provider.label} has no job for it. {TRY_AGAIN}",
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
            job_id=_job_id(job),
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


async def decide(
    services: Services, *, team_id: str, admin: str, job_id: int, approve: bool, approval_message: tuple[str, str]
) -> str:
    """An admin approves or denies a request; returns the sentence for the clicker.

    The approval message shows the decision before a long start (upload, create) begins.
    """
    if not policy.is_admin(services.settings, admin):
        raise NotAllowed("Only admins (FINETUNE_ADMINS) can approve or deny training requests.")
    now = services.clock.now()
    async with services.db.session() as session:
        asked = await repositories.get_job(session, team_id=team_id, job_id=job_id)
    if approve and asked is not None and not await policy.may_train(services, asked.requested_by, team_id=team_id):
        raise NotAllowed(
            f"<@{asked.requested_by}> is no longer one of the team's trainers (FINETUNE_TRAINERS), so this request "
            "cannot be approved; deny it, or make them a trainer again first."
        )
    async with services.db.session() as session, session.begin():
        job = await repositories.get_job(session, team_id=team_id, job_id=job_id)
        if job is None:
            raise NotFound("That request is gone from the bot's records.")
        moved = await repositories.move_job_status(
            session,
            job_id=job_id,
            expected=JobStatus.AWAITING_APPROVAL,
            new=JobStatus.STARTING if approve else JobStatus.DENIED,
            now=now,
            **(
                {"lease_owner": services.owner, "lease_expires_at": now + START_LEASE}
                if approve
                else {"finished_at": now}
            ),
        )
        if moved:
            await repositories.add_audit_entry(
                session,
                team_id=team_id,
                actor=admin,
                action="approve" if approve else "deny",
                subject=f"job:{job_id}",
                now=now,
                detail={"requested_by": job.requested_by},
            )
        dataset = await session.get(Dataset, job.dataset_id)
    assert dataset is not None
    if not moved:
        state = job.status.replace("_", " ")
        return f"This request was already decided (job #{job_id} is {state}); nothing changed."
    verdict = "approved" if approve else "denied"
    channel, ts = approval_message
    await services.slack_for(team_id).chat_update(
        channel=channel,
        ts=ts,
        text=f"Job #{job_id} {verdict} by <@{admin}>",
        blocks=views.approval_decided(job, dataset_name=dataset.filename, decision=verdict, admin=admin),
    )
    await services.slack_for(team_id).chat_postMessage(
        channel=job.channel_id,
        thread_ts=job.thread_ts,
        text=(
            f"{'✅' if approve else '🚫'} <@{job.requested_by}>, <@{admin}> {verdict} your training request "
            f"(job #{job_id})." + (" Starting it now." if approve else "")
        ),
    )
    if approve:
        await launch(services, job_id=job_id)
    return f"You {verdict} job #{job_id}."
