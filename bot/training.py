"""Starting fine-tuning jobs from Slack: the Train… modal, team rules, approvals, and never twice.

A request id is minted when the modal opens and stored (unique) before the provider is called, so
a double submit finds the first request. The provider's create call is never retried blindly: after
an ambiguous failure (timeout, dropped connection, 5xx) the provider's job list is searched by the
request id in the job's metadata first.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from slack_sdk.errors import SlackApiError

from bot import blocks, catalog, policy, workspaces
from bot.datasets.report import default_epochs, default_method
from bot.errors import MalformedRequest, UserFacingError, slack_error_code
from bot.intake import run_validation, validation_options
from bot.jobs import JobStatus
from bot.mrkdwn import escape
from bot.numbers import whole_number
from bot.providers import BaseModelInfo, JobRequest, ProviderError, ProviderErrorKind, ProviderJob
from bot.references import dataset_path, find_dataset
from bot.services import Services
from storage import repositories
from storage.models import Dataset, TrainingJob

logger = logging.getLogger(__name__)
# A plain decimal like 0.5 or 2 (float() would also take "nan", "1e400" and other scripts' digits).
DECIMAL = re.compile(r"[0-9]{1,6}(\.[0-9]{1,12})?|\.[0-9]{1,12}")

HYPERPARAMETER_BOUNDS: dict[str, tuple[type, float, float, bool]] = {
    # name: (type, low, high, low is exclusive)
    "n_epochs": (int, 1, 50, False),
    "batch_size": (int, 1, 256, False),
    "learning_rate_multiplier": (float, 0, 10, True),
    "beta": (float, 0, 2, True),
}
CREATE_ATTEMPTS = 4
# How long a launch may go unheard from before another replica settles it; ticks renew it meanwhile.
START_LEASE = timedelta(minutes=5)
TRY_AGAIN = "Nothing was started, and the dataset is still ready: click Train… on its report to try again."
SUFFIX_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
CHOICE_FIELDS = (
    "model",
    "method",
    "n_epochs",
    "batch_size",
    "learning_rate_multiplier",
    "beta",
    "suffix",
    "seed",
    "validation",
)


@dataclass(frozen=True)
class ModalContext:
    """What the modal carries in private_metadata: which dataset, which request, where to answer."""

    dataset_id: int
    request_id: str

    def encode(self) -> str:
        return json.dumps({"dataset_id": self.dataset_id, "request_id": self.request_id})

    @classmethod
    def decode(cls, raw: str) -> ModalContext:
        try:
            data = json.loads(raw)
            dataset_id = whole_number(str(data["dataset_id"]), low=1)
            if dataset_id is None:
                raise ValueError(data["dataset_id"])
            return cls(dataset_id=dataset_id, request_id=str(data["request_id"]))
        except (ValueError, KeyError, TypeError):
            raise MalformedRequest("a Train form whose private_metadata is not the bot's") from None


def _dataset_id(dataset: Dataset) -> int:
    assert dataset.id is not None
    return dataset.id


def _other_providers(services: Services) -> str:
    current = services.settings.finetune_provider
    others = [name for name in ("azure", "compatible") if name != current]
    return " or ".join(f"FINETUNE_PROVIDER={name}" for name in others)


def retired_text(services: Services, model: BaseModelInfo | None, model_id: str) -> str:
    today = services.clock.now().date()
    if model is None:
        return (
            f"`{escape(model_id)}` cannot be fine-tuned with {services.provider.label}. Pick one of the models in the "
            f"Train… dialog, or switch to another provider ({_other_providers(services)})."
        )
    shutdown = f" and stops answering on {model.inference_retires:%Y-%m-%d}" if model.inference_retires else ""
    return (
        f"`{escape(model.id)}` can no longer be trained with {services.provider.label}: training ended on "
        f"{model.training_retires:%Y-%m-%d} (today is {today:%Y-%m-%d}){shutdown}. Azure OpenAI keeps training "
        f"the same models longer; set {_other_providers(services)} to use another provider."
    )


async def _trainable(services: Services) -> tuple[list[BaseModelInfo], dict[str, BaseModelInfo]]:
    models = await services.base_models()
    today = services.clock.now().date()
    return [m for m in models if m.trainable_on(today)], {m.id: m for m in models}


async def _require_dataset(services: Services, team_id: str, reference: str) -> Dataset:
    dataset = await find_dataset(services, team_id=team_id, reference=reference)
    if dataset is None:
        raise UserFacingError(
            f"I have no dataset `{escape(reference)}`. `/finetune datasets` lists the team's datasets."
        )
    if not dataset.valid:
        raise UserFacingError(
            f"`{escape(dataset.filename)}` (#{dataset.id}) has problems to fix before it can train; see its report."
        )
    return dataset


def _estimate_from(report: dict[str, Any], *, epochs: str, price: float | None) -> tuple[int, int, float | None]:
    """(epochs, capped tokens per epoch, cost) from a stored report for the chosen model."""
    billing = report["billing"]
    capped = billing["billed_tokens"] // max(1, billing["epochs"])
    chosen = whole_number(epochs, low=1) or default_epochs(report["examples"])
    cost = None if price is None else round(chosen * capped / 1_000_000 * price, 4)
    return chosen, capped, cost


async def estimate(
    services: Services, dataset: Dataset, *, model: str, method: str, epochs: str
) -> tuple[int, int, float | None]:
    """Tokens and cost for this model: the stored report when it was made for it, else a fresh count."""
    report = dataset.report
    if catalog.base_model_id(report["billing"]["model"]) != catalog.base_model_id(model):
        fresh = await run_validation(
            services,
            dataset_path(services, dataset.sha256),
            dataset.bytes,
            validation_options(services, model=model, method=method),
        )
        report = fresh.to_storage()
    info = catalog.lookup(model)
    price = services.settings.finetune_training_prices.get(catalog.base_model_id(model))
    if price is None and info is not None:
        price = info.training_price_per_million
    return _estimate_from(report, epochs=epochs, price=price)


async def _validation_choices(services: Services, team_id: str, dataset: Dataset) -> list[Dataset]:
    async with services.db.session() as session:
        recent = await repositories.list_datasets(session, team_id=team_id, limit=50)
    return [d for d in recent if d.valid and d.id != dataset.id and d.format == dataset.format][:20]


async def _render_modal(
    services: Services,
    *,
    team_id: str,
    dataset: Dataset,
    choice: dict[str, str],
    context: ModalContext,
    fresh_estimate: bool,
    pending: bool = False,
) -> dict[str, Any]:
    """The form; ``pending`` shows "computing…" where an estimate that needs a fresh count will go."""
    models, _ = await _trainable(services)
    if pending:
        shown = blocks.estimate_pending_text(model=choice["model"])
    else:
        if fresh_estimate:
            epochs, capped, cost = await estimate(
                services, dataset, model=choice["model"], method=choice["method"], epochs=choice.get("n_epochs", "auto")
            )
        else:
            epochs, capped, cost = _estimate_from(
                dataset.report, epochs=choice.get("n_epochs", "auto"), price=dataset.report.get("price_per_million")
            )
        shown = blocks.estimate_text(model=choice["model"], epochs=epochs, capped_tokens=capped, cost=cost)
    return blocks.train_modal(
        dataset=dataset,
        models=models,
        choice=choice,
        validation_choices=await _validation_choices(services, team_id, dataset),
        estimate=shown,
        private_metadata=context.encode(),
    )


async def open_train_modal(
    services: Services, *, team_id: str, user_id: str, trigger_id: str, reference: str, overrides: dict[str, str]
) -> None:
    """Open the Train… modal, prefilled from the button or from `/finetune train … key=value`."""
    if not await policy.may_train(services, user_id):
        raise UserFacingError(NOT_A_TRAINER)
    dataset = await _require_dataset(services, team_id, reference)
    models, known = await _trainable(services)
    if not overrides and dataset.parent_id is not None:
        overrides = await _previous_settings(services, team_id=team_id, dataset_id=dataset.parent_id)
        if overrides.get("model") not in {m.id for m in models}:
            overrides.pop("model", None)  # no longer trainable: the form offers the ones that are
    if not models:
        default_model = services.settings.finetune_default_model
        raise UserFacingError(retired_text(services, known.get(default_model), default_model))
    wanted = overrides.get("model")
    if wanted:
        resolved = catalog.ALIASES.get(wanted, wanted)
        if resolved not in {m.id for m in models}:
            raise UserFacingError(retired_text(services, known.get(resolved), wanted))
        overrides = {**overrides, "model": resolved}
    default_model = services.settings.finetune_default_model
    choice = {
        "model": default_model if default_model in {m.id for m in models} else models[0].id,
        "method": default_method(dataset.format),
        **{key: value for key, value in overrides.items() if key in CHOICE_FIELDS},
    }
    if "validation" in choice:
        validation = await find_dataset(services, team_id=team_id, reference=choice["validation"])
        choice["validation"] = str(validation.id) if validation else ""
    context = ModalContext(dataset_id=_dataset_id(dataset), request_id=uuid.uuid4().hex)
    reuse = catalog.base_model_id(choice["model"]) == catalog.base_model_id(dataset.report["billing"]["model"])
    # Slack's trigger_id lasts 3 s, and counting a large file for another model takes longer: the form
    # opens at once, and its estimate follows by views.update.
    view = await _render_modal(
        services,
        team_id=team_id,
        dataset=dataset,
        choice=choice,
        context=context,
        fresh_estimate=False,
        pending=not reuse,
    )
    opened = await services.slack.views_open(trigger_id=trigger_id, view=view)
    if not reuse:
        counted = await _render_modal(
            services, team_id=team_id, dataset=dataset, choice=choice, context=context, fresh_estimate=True
        )
        await _update_unless_changed(services, opened["view"], counted)


async def _update_unless_changed(services: Services, shown: dict[str, Any], view: dict[str, Any]) -> None:
    """Replace the form Slack shows, unless the person changed it meanwhile (their change refreshes it)."""
    try:
        await services.slack.views_update(view_id=shown["id"], hash=shown.get("hash"), view=view)
    except SlackApiError as error:
        if slack_error_code(error) != "hash_conflict":
            raise
        logger.info("train form %s changed while its estimate was computed; left as the person has it", shown["id"])


async def _previous_settings(services: Services, *, team_id: str, dataset_id: int) -> dict[str, str]:
    """A new version of a dataset trains, by default, the way its previous version last did."""
    async with services.db.session() as session:
        job = await repositories.latest_job_for_dataset(session, team_id=team_id, dataset_id=dataset_id)
    if job is None:
        return {}
    settings = {"model": job.base_model, "method": job.method, **{k: str(v) for k, v in job.hyperparameters.items()}}
    if job.suffix:
        settings["suffix"] = job.suffix
    return {key: value for key, value in settings.items() if key in CHOICE_FIELDS}


def read_choice(view: dict[str, Any]) -> dict[str, str]:
    """The person's picks from a modal's state, as strings."""
    values = view.get("state", {}).get("values", {})
    choice: dict[str, str] = {}
    for block_id, actions in values.items():
        for state in actions.values():
            if state.get("type") == "static_select":
                selected = state.get("selected_option")
                choice[block_id] = selected["value"] if selected else ""
            else:
                choice[block_id] = (state.get("value") or "").strip()
    return choice


async def refresh_modal(services: Services, *, team_id: str, view: dict[str, Any]) -> None:
    """Recompute the estimate after the model, method or epochs changed."""
    context = ModalContext.decode(view["private_metadata"])
    dataset = await _require_dataset(services, team_id, str(context.dataset_id))
    choice = read_choice(view)
    choice.setdefault("method", default_method(dataset.format))
    if not choice.get("model"):
        return
    new_view = await _render_modal(
        services, team_id=team_id, dataset=dataset, choice=choice, context=context, fresh_estimate=True
    )
    await services.slack.views_update(view_id=view["id"], hash=view.get("hash"), view=new_view)


def _number(raw: str, name: str) -> tuple[int | float | str | None, str | None]:
    kind, low, high, exclusive = HYPERPARAMETER_BOUNDS[name]
    if raw in ("", "auto"):
        return "auto", None
    decimal = float(raw) if DECIMAL.fullmatch(raw.strip()) else None
    value: int | float | None = whole_number(raw) if kind is int else decimal
    if value is None:
        whole = "a whole number" if kind is int else "a number"
        return None, f"Enter auto or {whole}."
    in_range = (value > low if exclusive else value >= low) and value <= high
    if not in_range:
        lowest = f"above {low:g}" if exclusive else f"at least {low:g}"
        return None, f"Must be auto or {lowest} and at most {high:g}."
    return value, None


async def check_choice(
    services: Services, *, dataset: Dataset, choice: dict[str, str]
) -> tuple[dict[str, str], dict[str, Any]]:
    """Field errors keyed by block id (empty when all is well), and the hyperparameters to send."""
    errors: dict[str, str] = {}
    models, known = await _trainable(services)
    model = choice.get("model", "")
    if model not in {m.id for m in models}:
        errors["model"] = retired_text(services, known.get(model), model)[:150]
    method = choice.get("method") or default_method(dataset.format)
    info = known.get(model)
    if dataset.format == "preference" and method != "dpo":
        errors["method"] = "Preference data trains with dpo only."
    elif dataset.format == "chat" and method == "dpo":
        errors["method"] = "dpo needs preference data (preferred and non-preferred answers); use supervised."
    elif info is not None and method not in info.methods:
        errors["method"] = f"{escape(model)} cannot be trained with {escape(method)}."
    hyperparameters: dict[str, Any] = {}
    for name in ("n_epochs", "batch_size", "learning_rate_multiplier", *(("beta",) if method == "dpo" else ())):
        value, problem = _number(choice.get(name, "auto"), name)
        if problem:
            errors[name] = problem
        else:
            hyperparameters[name] = value
    suffix = choice.get("suffix", "")
    if suffix and not SUFFIX_PATTERN.match(suffix):
        errors["suffix"] = "Use up to 64 letters, digits, - or _."
    seed = choice.get("seed", "")
    if seed and whole_number(seed, high=2_147_483_647) is None:
        errors["seed"] = "A whole number from 0 to 2147483647."
    return errors, hyperparameters


@dataclass(frozen=True)
class Submission:
    """A checked modal: what to train, on what, with which settings."""

    dataset: Dataset
    context: ModalContext
    choice: dict[str, str]
    hyperparameters: dict[str, Any]


NOT_A_TRAINER = "Only the team's trainers can start fine-tuning jobs (FINETUNE_TRAINERS); ask an admin."


async def check_submission(
    services: Services, *, team_id: str, user_id: str, view: dict[str, Any]
) -> tuple[dict[str, str], Submission | None]:
    """Field errors keyed by block id, or a submission ready to start.

    Trainer rights are checked again here: the form may have been opened before they were taken away."""
    context = ModalContext.decode(view["private_metadata"])
    if not await policy.may_train(services, user_id):
        raise UserFacingError(NOT_A_TRAINER)
    dataset = await _require_dataset(services, team_id, str(context.dataset_id))
    choice = read_choice(view)
    errors, hyperparameters = await check_choice(services, dataset=dataset, choice=choice)
    if errors:
        return errors, None
    return {}, Submission(dataset, context, choice, hyperparameters)


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
        dataset_id=_dataset_id(dataset),
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
    await services.slack.chat_postMessage(
        channel=channel,
        text=f"Approval needed: {escape(job.base_model)} on {escape(dataset.filename)} for <@{job.requested_by}>",
        blocks=blocks.approval_request(job, dataset_name=dataset.filename, reason=reason),
    )
    await services.slack.chat_postMessage(
        channel=job.channel_id,
        thread_ts=job.thread_ts,
        text=(
            f"⏳ <@{job.requested_by}>, your training request (job #{job.id}, `{escape(job.base_model)}`, estimate "
            f"{blocks.money(job.estimated_cost_usd)}) waits for an admin's approval because {reason}."
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
            await asyncio.sleep(0.2 * 2**attempt)
    assert last is not None
    raise last


async def launch(services: Services, *, job_id: int) -> None:
    """Upload the bot's stored copy, create the job at the provider, post the job card in the thread.

    However it ends, the requester hears of it in the thread: started, refused, or (when the outcome
    is unknown) looked up at the provider by its request id. The job's lease, taken when its row was
    written, is renewed by this replica's ticks while the launch runs; if the replica dies,
    ``resolve_stalled_starts`` on any replica finishes the story.
    """
    services.launches.add(job_id)
    try:
        await _launch(services, job_id)
    finally:
        services.launches.discard(job_id)


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
    card = await services.slack.chat_postMessage(
        channel=row.channel_id,
        thread_ts=row.thread_ts,
        text=f"🚀 Training started: {escape(row.base_model)} on {escape(dataset.filename)} (job {created.id})",
        blocks=blocks.job_card(row, dataset_name=dataset.filename, title=title),
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
    workspaces.serve(job.team_id)
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
            session, TrainingJob, owner=owner, ids=sorted(services.launches), expires_at=now + START_LEASE
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
    await services.slack.chat_postMessage(
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
        raise UserFacingError("Only admins (FINETUNE_ADMINS) can approve or deny training requests.")
    now = services.clock.now()
    async with services.db.session() as session:
        asked = await repositories.get_job(session, team_id=team_id, job_id=job_id)
    if approve and asked is not None and not await policy.may_train(services, asked.requested_by):
        raise UserFacingError(
            f"<@{asked.requested_by}> is no longer one of the team's trainers (FINETUNE_TRAINERS), so this request "
            "cannot be approved; deny it, or make them a trainer again first."
        )
    async with services.db.session() as session, session.begin():
        job = await repositories.get_job(session, team_id=team_id, job_id=job_id)
        if job is None:
            raise UserFacingError("That request is gone from the bot's records.")
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
    await services.slack.chat_update(
        channel=channel,
        ts=ts,
        text=f"Job #{job_id} {verdict} by <@{admin}>",
        blocks=blocks.approval_decided(job, dataset_name=dataset.filename, decision=verdict, admin=admin),
    )
    await services.slack.chat_postMessage(
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


async def cancel(services: Services, *, team_id: str, user_id: str, job_id: int) -> str:
    """The requester or an admin cancels a running job; returns the sentence for the clicker."""
    async with services.db.session() as session:
        job = await repositories.get_job(session, team_id=team_id, job_id=job_id)
    if job is None:
        raise UserFacingError("That job is gone from the bot's records.")
    policy.require_owner_or_admin(
        services.settings, user_id, owner=job.requested_by, who="started it", action=f"cancel job #{job_id}"
    )
    if (
        job.status
        not in (JobStatus.VALIDATING, JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.PAUSED, JobStatus.UNKNOWN)
        or not job.provider_job_id
    ):
        if job.status == JobStatus.STARTING:
            return blocks.still_starting_text(job_id, services.provider.label)
        return f"Job #{job_id} is {escape(job.status.replace('_', ' '))}; there is nothing to cancel."
    try:
        remote = await services.provider.cancel_job(job.provider_job_id)
    except ProviderError as error:
        raise UserFacingError(
            f"{services.provider.label} did not cancel job #{job_id}: “{escape(error.provider_message)}”"
        ) from None
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
    if row.progress_message_ts:
        await services.slack.chat_update(
            channel=row.channel_id,
            ts=row.progress_message_ts,
            text=f"🛑 Training cancelled by <@{user_id}>",
            blocks=blocks.job_card(row, dataset_name=dataset.filename, title=f"🛑 *Cancelled by <@{user_id}>*"),
        )
    await services.slack.chat_postMessage(
        channel=row.channel_id,
        thread_ts=row.thread_ts,
        text=f"🛑 <@{user_id}> cancelled job #{job_id} (`{escape(row.base_model)}`).",
    )
    return f"Job #{job_id} is cancelled."
