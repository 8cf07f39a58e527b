"""Deploy and Stop serving: where a provider answers with a fine-tune only once it is deployed (Azure
OpenAI, Nebius), the deployment is the bot's to make, follow and end, with its state in the database.

A deployment is asked for once (a second click finds the first), followed by the tick until it is active
or failed, and said in the model's thread in one message edited in place. Chats, golden sets and
evaluations call the model by its deployment's name; a deployment that vanished at the provider (Azure
deletes one nobody used for 15 days) is noticed at the next chat and offered again.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta

from slack_sdk.errors import SlackApiError

from bot import policy, slack_blocks
from bot.errors import InvalidInput, NotFound, ProviderRefused
from bot.models import catalog
from bot.models import views as model_views
from bot.mrkdwn import escape
from bot.providers import ProviderError, ProviderErrorKind
from bot.providers.capabilities import ServingBilling
from bot.providers.types import DeploymentPhase, DeploymentState, FineTuneProvider
from bot.services import Services
from storage import repositories
from storage.models import LIVE_DEPLOYMENT, Deployment, DeploymentStatus, TrainingJob

logger = logging.getLogger(__name__)

# A deployment not active after this long is given up on (Azure takes minutes, Nebius seconds).
DEPLOY_TIMEOUT = timedelta(hours=1)
HOURS_PER_MONTH = 730
AZURE_IDLE_DAYS = 15


class NotServing(InvalidInput):
    """The model answers only once deployed, and is not (yet): the sentence says what to click."""

    def __init__(self, sentence: str, *, job_id: int) -> None:
        super().__init__(sentence)
        self.job_id = job_id


def deployment_name(job: TrainingJob) -> str:
    """A name of the bot's own, unique per model, within Azure's 64 letters, digits, - and _."""
    digest = hashlib.sha256((job.fine_tuned_model or "").encode()).hexdigest()[:8]
    return f"ft-job{job.id}-{digest}"


def hourly_price(services: Services, provider: FineTuneProvider, job: TrainingJob) -> float | None:
    """What a deployment of ``job``'s model costs per hour here, where serving is billed by the hour."""
    if provider.capabilities.serving_billing is not ServingBilling.HOURLY:
        return None
    base = catalog.base_model_id(job.base_model)
    prices = services.settings.finetune_hosting_prices
    for key in (f"{base}@{provider.name}", base):
        if key in prices:
            return prices[key]
    return catalog.HOSTING_PRICES_PER_HOUR.get(base)


def cost_note(services: Services, provider: FineTuneProvider, job: TrainingJob) -> str:
    """What keeping the model served costs, said before Deploy and while it runs."""
    if provider.capabilities.serving_billing is ServingBilling.HOURLY:
        hourly = hourly_price(services, provider, job)
        price = (
            f"about {slack_blocks.money(hourly)} an hour ({slack_blocks.money(hourly * HOURS_PER_MONTH)} a month)"
            if hourly is not None
            else "an hourly fee (its price is not known here: FINETUNE_HOSTING_PRICES)"
        )
        return (
            f"{provider.label} bills a deployed model {price}, used or not, until it is stopped; it deletes a "
            f"deployment nobody used for {AZURE_IDLE_DAYS} days."
        )
    return f"{provider.label} bills only the tokens it answers; a deployment costs nothing while it waits."


def undeployed(services: Services, job: TrainingJob) -> model_views.Serving | None:
    """The Deploy button's state for a model nobody deployed yet (a job that just finished), where its
    provider needs deployments; None where it does not."""
    try:
        provider = services.providers.get(job.provider)
    except NotFound:
        return None
    if not provider.capabilities.needs_deploy or job.id is None or _deployed_by_hand(provider, job):
        return None
    return model_views.Serving(status="", cost=cost_note(services, provider, job))


async def serving_of(services: Services, job: TrainingJob) -> model_views.Serving | None:
    """The Deploy or Stop serving button's state for a model, where its provider needs deployments."""
    fresh = undeployed(services, job)
    if fresh is None or job.id is None:
        return None
    async with services.db.session() as session:
        live = await repositories.live_deployment(session, job_id=job.id)
    return model_views.Serving(status=live.status if live else "", cost=fresh.cost)


async def deploy_actions(services: Services, job_id: int) -> slack_blocks.Block | None:
    """A Deploy button for a model that must be deployed, under a sentence that says so."""
    async with services.db.session() as session:
        job = await session.get(TrainingJob, job_id)
    if job is None or not job.fine_tuned_model:
        return None
    state = await serving_of(services, job)
    if state is None:
        return None
    button = model_views.deploy_button(job_id, job.fine_tuned_model, state)
    return {"type": "actions", "block_id": f"deploy:{job_id}", "elements": [button]}


def _deployed_by_hand(provider: FineTuneProvider, job: TrainingJob) -> bool:
    return job.fine_tuned_model is not None and provider.chat_target(job.fine_tuned_model) != job.fine_tuned_model


async def _model_job(services: Services, *, team_id: str, job_id: int) -> tuple[TrainingJob, str]:
    async with services.db.session() as session:
        job = await repositories.get_job(session, team_id=team_id, job_id=job_id)
    if job is None or not job.fine_tuned_model:
        raise NotFound("That model is gone from the bot's records.")
    if job.model_deleted_at is not None:
        raise InvalidInput(f"`{escape(job.fine_tuned_model)}` was deleted on {job.model_deleted_at:%Y-%m-%d}.")
    return job, job.fine_tuned_model


async def deploy(services: Services, *, team_id: str, user_id: str, job_id: int) -> str:
    """Ask the model's provider to serve it; returns the sentence for the person who clicked."""
    job, model = await _model_job(services, team_id=team_id, job_id=job_id)
    policy.require_owner_or_admin(
        services.settings, user_id, owner=job.requested_by, who="trained it", action=f"deploy `{escape(model)}`"
    )
    provider = services.providers.get(job.provider)
    if not provider.capabilities.needs_deploy:
        return f"`{escape(model)}` answers at {provider.label} without a deployment: click 💬 Chat."
    today = services.clock.now().date()
    if job.model_retires is not None and today >= job.model_retires:
        raise InvalidInput(
            f"`{escape(model)}` stopped answering at {provider.label} on {job.model_retires:%Y-%m-%d}; it cannot "
            "be deployed any more."
        )
    now = services.clock.now()
    assert job.id is not None
    row = Deployment(
        team_id=team_id,
        job_id=job.id,
        live_job_id=job.id,
        provider=services.providers.name_of(job.provider),
        model=model,
        name=deployment_name(job),
        hourly_usd=hourly_price(services, provider, job),
        requested_by=user_id,
        channel_id=job.channel_id,
        thread_ts=job.thread_ts,
        created_at=now,
        updated_at=now,
    )
    async with services.db.session() as session, session.begin():
        row, created = await repositories.add_deployment(session, deployment=row)
        if created:
            await repositories.add_audit_entry(
                session,
                team_id=team_id,
                actor=user_id,
                action="deploy",
                subject=f"model:{model}",
                now=now,
                detail={"job": job.id, "name": row.name, "hourly_usd": row.hourly_usd},
            )
    if not created:
        return f"`{escape(model)}` is already {row.status} at {provider.label} as `{escape(row.name)}`."
    try:
        state = await provider.deploy(
            model=model, base_model=job.base_model, name=row.name, job_id=job.provider_job_id or ""
        )
    except ProviderError as error:
        await _end(services, row, DeploymentStatus.FAILED, error=error.provider_message)
        raise ProviderRefused(error.sentence) from None
    text = (
        f"⏳ <@{user_id}> is deploying `{escape(model)}` at {escape(provider.label)} as `{escape(row.name)}`. "
        f"{cost_note(services, provider, job)}"
    )
    posted = await services.slack_for(team_id).chat_postMessage(
        channel=row.channel_id, thread_ts=row.thread_ts, text=text
    )
    async with services.db.session() as session, session.begin():
        stored = await session.get(Deployment, row.id)
        assert stored is not None
        stored.message_ts = str(posted["ts"])
        session.add(stored)
    row.message_ts = str(posted["ts"])
    await _settle(services, row, state, job)
    return f"Deploying `{escape(model)}` at {provider.label}; its thread says when it answers."


async def check_deployments(services: Services) -> int:
    """A tick's part: follow every deployment still deploying until it is active or failed."""
    async with services.db.session() as session:
        deploying = await repositories.deployments_in(session, statuses=[DeploymentStatus.DEPLOYING])
    for row in deploying:
        try:
            provider = services.providers.get(row.provider)
            state = await provider.deployment_state(row.name)
        except (ProviderError, NotFound) as error:
            logger.warning("deployment %s could not be checked: %s", row.id, error)
            continue
        async with services.db.session() as session:
            job = await session.get(TrainingJob, row.job_id)
        assert job is not None
        await _settle(services, row, state, job)
    return len(deploying)


async def _settle(services: Services, row: Deployment, state: DeploymentState, job: TrainingJob) -> None:
    """Record what the provider said of a deployment, and say it in its message."""
    provider = services.providers.get(row.provider)
    model = escape(row.model)
    now = services.clock.now()
    if state.phase is DeploymentPhase.ACTIVE:
        async with services.db.session() as session, session.begin():
            moved = await repositories.move_deployment(
                session,
                deployment_id=_id(row),
                expected=[DeploymentStatus.DEPLOYING],
                new=DeploymentStatus.ACTIVE,
                now=now,
                active_at=now,
            )
        if moved:
            text = (
                f"✅ `{model}` is served at {escape(provider.label)} as `{escape(row.name)}`: chat with it, compare "
                f"or evaluate it. {cost_note(services, provider, job)}"
            )
            serving = model_views.Serving(status=DeploymentStatus.ACTIVE, cost="")
            await _say(services, row, text, model_views.model_actions(job.id or 0, row.model, serving=serving))
        return
    expired = now - row.created_at > DEPLOY_TIMEOUT
    if state.phase is DeploymentPhase.DEPLOYING and not expired:
        return
    reason = state.message or (
        "it vanished while being deployed"
        if state.phase is DeploymentPhase.GONE
        else (f"it was not active after {DEPLOY_TIMEOUT.seconds // 3600} hour" if expired else state.raw_status)
    )
    if await _end(services, row, DeploymentStatus.FAILED, error=reason, expected=[DeploymentStatus.DEPLOYING]):
        text = f"❌ `{model}` could not be deployed at {escape(provider.label)}: “{escape(reason)}”"
        serving = model_views.Serving(status="", cost=cost_note(services, provider, job))
        await _say(services, row, text, model_views.model_actions(job.id or 0, row.model, serving=serving))


async def stop_serving(services: Services, *, team_id: str, user_id: str, job_id: int) -> str:
    """End the model's live deployment at its provider; returns the sentence for the person who clicked."""
    job, model = await _model_job(services, team_id=team_id, job_id=job_id)
    policy.require_owner_or_admin(
        services.settings, user_id, owner=job.requested_by, who="trained it", action=f"stop serving `{escape(model)}`"
    )
    async with services.db.session() as session:
        row = await repositories.live_deployment(session, job_id=job_id)
    label = services.providers.label_of(job.provider)
    if row is None:
        return f"`{escape(model)}` is not being served at {label}; nothing to stop."
    try:
        await services.providers.get(row.provider).undeploy(row.name)
    except ProviderError as error:
        raise ProviderRefused(error.sentence) from None
    if not await _end(services, row, DeploymentStatus.DELETED, by=user_id):
        return f"`{escape(model)}` was already stopped."
    async with services.db.session() as session, session.begin():
        await repositories.add_audit_entry(
            session,
            team_id=team_id,
            actor=user_id,
            action="undeploy",
            subject=f"model:{model}",
            now=services.clock.now(),
            detail={"job": job_id, "name": row.name},
        )
    served = _served_for(row, services.clock.now())
    provider = services.providers.get(row.provider)
    serving = model_views.Serving(status="", cost=cost_note(services, provider, job))
    await _say(
        services,
        row,
        f"🛑 <@{user_id}> stopped serving `{escape(model)}` at {escape(label)}{served}. Deploy it again to chat.",
        model_views.model_actions(job_id, model, serving=serving),
    )
    return f"`{escape(model)}` is no longer served at {label}."


def _served_for(row: Deployment, now: datetime) -> str:
    if row.active_at is None:
        return ""
    hours = (now - row.active_at).total_seconds() / 3600
    cost = f", about {slack_blocks.money(hours * row.hourly_usd)}" if row.hourly_usd is not None else ""
    return f" after {hours:.1f} hours served{cost}"


async def served_as(services: Services, *, team_id: str, provider: str, model: str) -> str | None:
    """The name chat requests call ``model`` by: its live deployment's, or None where the provider needs none
    (or an admin deployed it by hand). Raises NotServing when the model must be deployed first."""
    adapter = services.providers.get(provider)
    if not adapter.capabilities.needs_deploy:
        return None
    async with services.db.session() as session:
        job = await repositories.find_job_by_model(session, team_id=team_id, model=model)
        row = await repositories.live_deployment(session, job_id=job.id) if job and job.id else None
    if job is None or job.id is None or _deployed_by_hand(adapter, job):
        return None  # a base model, served under its own id
    if row is not None and row.status == DeploymentStatus.ACTIVE:
        return row.name
    if row is not None:
        raise NotServing(
            f"`{escape(model)}` is still being deployed at {adapter.label}; its thread says when it answers.",
            job_id=job.id,
        )
    raise NotServing(
        f"`{escape(model)}` answers at {adapter.label} only once deployed: click 🚀 Deploy under it (in its "
        "thread or on the Home tab), then ask again.",
        job_id=job.id,
    )


async def vanished(services: Services, *, team_id: str, provider: str, model: str) -> NotServing | None:
    """After a chat got "not found": if the model's deployment is gone at the provider, record it and return
    why the model no longer answers (offering it again); None when the deployment is still there (or none)."""
    adapter = services.providers.get(provider)
    if not adapter.capabilities.needs_deploy:
        return None
    async with services.db.session() as session:
        job = await repositories.find_job_by_model(session, team_id=team_id, model=model)
        row = await repositories.live_deployment(session, job_id=job.id) if job and job.id else None
    if job is None or row is None:
        return None
    try:
        state = await adapter.deployment_state(row.name)
    except ProviderError as error:
        logger.warning("deployment %s could not be checked after a not-found: %s", row.id, error)
        return None
    if state.phase is not DeploymentPhase.GONE:
        return None
    await _end(services, row, DeploymentStatus.DELETED, error="gone at the provider")
    return NotServing(
        f"`{escape(model)}`'s deployment `{escape(row.name)}` is gone at {adapter.label} (it deletes a deployment "
        f"nobody used for {AZURE_IDLE_DAYS} days). The model is still there: click 🚀 Deploy to serve it again.",
        job_id=row.job_id,
    )


async def _end(
    services: Services,
    row: Deployment,
    status: DeploymentStatus,
    *,
    error: str = "",
    by: str | None = None,
    expected: frozenset[DeploymentStatus] | list[DeploymentStatus] = LIVE_DEPLOYMENT,
) -> bool:
    async with services.db.session() as session, session.begin():
        return await repositories.move_deployment(
            session,
            deployment_id=_id(row),
            expected=expected,
            new=status,
            now=services.clock.now(),
            error_message=error[:2000],
            ended_by=by,
        )


async def _say(services: Services, row: Deployment, text: str, actions: slack_blocks.Block) -> None:
    """Edit the deployment's message in place (a new one if it has none, or it was deleted)."""
    slack = services.slack_for(row.team_id)
    blocks = [slack_blocks.section(text), actions]
    if row.message_ts:
        try:
            await slack.chat_update(channel=row.channel_id, ts=row.message_ts, text=text, blocks=blocks)
            return
        except SlackApiError as failure:
            logger.info("deployment %s's message could not be edited (%s); posting anew", row.id, failure)
    await slack.chat_postMessage(channel=row.channel_id, thread_ts=row.thread_ts, text=text, blocks=blocks)


def _id(row: Deployment) -> int:
    assert row.id is not None
    return row.id


def provider_error_for(missing: NotServing) -> ProviderError:
    """A NotServing as the refusal a batch (golden set, evaluation) stops on."""
    return ProviderError(ProviderErrorKind.MODEL_UNAVAILABLE, missing.sentence)
