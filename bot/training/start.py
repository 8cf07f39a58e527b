"""Starting fine-tuning jobs once: team rules and approvals, then the launch (bot/training/launch.py).

A request id is minted when the modal opens and stored (unique) before the provider is called, so
a double submit finds the first request."""

from __future__ import annotations

import logging

from bot import policy, slack_blocks
from bot.datasets.report import default_method
from bot.errors import NotAllowed, NotFound
from bot.mrkdwn import escape
from bot.numbers import whole_number
from bot.services import Services
from bot.training import views
from bot.training.launch import START_LEASE, launch
from bot.training.modal import Submission, dataset_id_of, estimate
from bot.training.offers import split_choice
from bot.training.status import JobStatus
from storage import repositories
from storage.models import Dataset, TrainingJob

logger = logging.getLogger(__name__)


async def start(services: Services, *, team_id: str, user_id: str, submission: Submission) -> None:
    """Record the request (once), then start it or send it to the admins."""
    dataset, context = submission.dataset, submission.context
    choice, hyperparameters = submission.choice, submission.hyperparameters
    method = choice.get("method") or default_method(dataset.format)
    model, provider = split_choice(services, choice["model"])
    _, _, cost = await estimate(
        services, dataset, model=model, method=method, epochs=str(hyperparameters.get("n_epochs", "auto"))
    )
    reason = await policy.approval_reason(services, team_id=team_id, estimate=cost)
    now = services.clock.now()
    validation = choice.get("validation") or ""
    job = TrainingJob(
        team_id=team_id,
        dataset_id=dataset_id_of(dataset),
        validation_dataset_id=whole_number(validation, low=1),
        request_id=context.request_id,
        provider=provider,
        base_model=model,
        method=method,
        hyperparameters=hyperparameters,
        status=JobStatus.AWAITING_APPROVAL if reason else JobStatus.STARTING,
        requested_by=user_id,
        channel_id=dataset.channel_id,
        thread_ts=dataset.message_ts,
        estimated_cost_usd=cost,
        retrained_from_id=context.retrain.job_id if context.retrain else None,
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
    await _announce_decision(services, job, dataset, admin=admin, approve=approve, approval_message=approval_message)
    if approve:
        await launch(services, job_id=job_id)
    return f"You {verdict} job #{job_id}."


async def _announce_decision(
    services: Services,
    job: TrainingJob,
    dataset: Dataset,
    *,
    admin: str,
    approve: bool,
    approval_message: tuple[str, str],
) -> None:
    """The approval message shows the decision, and the requester hears of it in the job's thread."""
    slack = services.slack_for(job.team_id)
    verdict = "approved" if approve else "denied"
    channel, ts = approval_message
    await slack.chat_update(
        channel=channel,
        ts=ts,
        text=f"Job #{job.id} {verdict} by <@{admin}>",
        blocks=views.approval_decided(job, dataset_name=dataset.filename, decision=verdict, admin=admin),
    )
    await slack.chat_postMessage(
        channel=job.channel_id,
        thread_ts=job.thread_ts,
        text=(
            f"{'✅' if approve else '🚫'} <@{job.requested_by}>, <@{admin}> {verdict} your training request "
            f"(job #{job.id})." + (" Starting it now." if approve else "")
        ),
    )
