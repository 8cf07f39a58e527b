"""The Train… form: the base models that can still be trained, the estimate, the team's last settings,
and the checks on what was sent."""

from __future__ import annotations

import json
import logging
import re
import uuid
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError

from bot import policy
from bot.datasets.report import Report, default_epochs, default_method
from bot.datasets.store import run_validation, validation_options
from bot.errors import InvalidInput, MalformedRequest, NotAllowed, slack_error_code
from bot.models import catalog
from bot.mrkdwn import escape
from bot.numbers import whole_number
from bot.references import dataset_path, find_dataset, require_dataset
from bot.services import Services
from bot.training import views
from bot.training.offers import Offer, choice_value, offers, retired_text, split_choice
from storage import repositories
from storage.models import Dataset

logger = logging.getLogger(__name__)


# A plain decimal like 0.5, 2 or 2e-5 (float() would also take "nan", "1e400" and other scripts' digits).
DECIMAL = re.compile(r"([0-9]{1,6}(\.[0-9]{1,12})?|\.[0-9]{1,12})([eE]-?[0-9]{1,2})?")


HYPERPARAMETER_BOUNDS: dict[str, tuple[type, float, float, bool]] = {
    # name: (type, low, high, low is exclusive)
    "n_epochs": (int, 1, 50, False),
    "batch_size": (int, 1, 256, False),
    "learning_rate_multiplier": (float, 0, 10, True),
    "learning_rate": (float, 0, 0.1, True),
    "lora_r": (int, 1, 256, False),
    "warmup_ratio": (float, 0, 0.5, False),
    "weight_decay": (float, 0, 1, False),
    "beta": (float, 0, 2, True),
}


SUFFIX_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


CHOICE_FIELDS = (
    "model",
    "method",
    "n_epochs",
    "batch_size",
    "learning_rate_multiplier",
    "learning_rate",
    "lora_r",
    "warmup_ratio",
    "weight_decay",
    "beta",
    "suffix",
    "seed",
    "validation",
)


@dataclass(frozen=True)
class Retrain:
    """A Train form opened by Retrain elsewhere: the job it retrains, the provider it leaves, and what the
    form says about how it was prefilled."""

    job_id: int
    leave_out: str
    notes: list[str]


# private_metadata holds at most 3,000 characters: the notes get what the ids leave.
NOTES_LIMIT = 2_000


@dataclass(frozen=True)
class ModalContext:
    """What the modal carries in private_metadata: which dataset, which request, where to answer, and
    for Retrain elsewhere the job it retrains."""

    dataset_id: int
    request_id: str
    retrain: Retrain | None = None

    def encode(self) -> str:
        data: dict[str, Any] = {"dataset_id": self.dataset_id, "request_id": self.request_id}
        if self.retrain is not None:
            notes, kept = [], 0
            for note in self.retrain.notes:
                kept += len(note)
                if kept > NOTES_LIMIT:
                    break
                notes.append(note)
            data["retrain"] = {"job_id": self.retrain.job_id, "leave_out": self.retrain.leave_out, "notes": notes}
        return json.dumps(data)

    @classmethod
    def decode(cls, raw: str) -> ModalContext:
        try:
            data = json.loads(raw)
            dataset_id = whole_number(str(data["dataset_id"]), low=1)
            if dataset_id is None:
                raise ValueError(data["dataset_id"])
            retrain = None
            if "retrain" in data:
                job_id = whole_number(str(data["retrain"]["job_id"]), low=1)
                if job_id is None:
                    raise ValueError(data["retrain"])
                notes = [str(note) for note in data["retrain"]["notes"]]
                retrain = Retrain(job_id=job_id, leave_out=str(data["retrain"]["leave_out"]), notes=notes)
            return cls(dataset_id=dataset_id, request_id=str(data["request_id"]), retrain=retrain)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise MalformedRequest("a Train form whose private_metadata is not the bot's") from None


def dataset_id_of(dataset: Dataset) -> int:
    assert dataset.id is not None
    return dataset.id


async def _require_dataset(services: Services, team_id: str, reference: str) -> Dataset:
    dataset = await require_dataset(services, team_id=team_id, reference=reference)
    if not dataset.valid:
        raise InvalidInput(
            f"`{escape(dataset.filename)}` (#{dataset.id}) has problems to fix before it can train; see its report."
        )
    return dataset


def _estimate_from(report: Report, *, epochs: str, price: float | None) -> tuple[int, int, float | None]:
    """(epochs, capped tokens per epoch, cost) from a report for the chosen model."""
    capped = report.billing.billed_tokens // max(1, report.billing.epochs)
    chosen = whole_number(epochs, low=1) or default_epochs(report.examples)
    cost = None if price is None else round(chosen * capped / 1_000_000 * price, 4)
    return chosen, capped, cost


async def estimate(
    services: Services, dataset: Dataset, *, model: str, method: str, epochs: str
) -> tuple[int, int, float | None]:
    """Tokens and cost for this model: the stored report when it was made for it, else a fresh count."""
    report = Report.from_storage(dataset.report)
    if catalog.base_model_id(report.billing.model) != catalog.base_model_id(model):
        report = await run_validation(
            services,
            dataset_path(services, dataset.sha256),
            dataset.bytes,
            validation_options(services, model=model, method=method),
        )
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
    trainable = _offered(await offers(services), context)[0]
    model, _ = split_choice(services, choice["model"])
    if pending:
        shown = views.estimate_pending_text(model=model)
    else:
        if fresh_estimate:
            epochs, capped, cost = await estimate(
                services, dataset, model=model, method=choice["method"], epochs=choice.get("n_epochs", "auto")
            )
        else:
            stored = Report.from_storage(dataset.report)
            epochs, capped, cost = _estimate_from(
                stored, epochs=choice.get("n_epochs", "auto"), price=stored.billing.price_per_million
            )
        shown = views.estimate_text(model=model, epochs=epochs, capped_tokens=capped, cost=cost)
    picked = next((o for o in trainable if o.value == choice["model"]), None)
    return views.train_modal(
        dataset=dataset,
        offers=trainable,
        capabilities=picked.capabilities if picked else services.providers.default.capabilities,
        methods=picked.model.methods if picked else ("supervised", "dpo"),
        grouped=services.providers.several,
        choice=choice,
        validation_choices=await _validation_choices(services, team_id, dataset),
        estimate=shown,
        private_metadata=context.encode(),
        notes=context.retrain.notes if context.retrain else (),
    )


Offers = tuple[list[Offer], dict[str, Offer]]


def _offered(listed: Offers, context: ModalContext) -> Offers:
    """What this form offers: for Retrain elsewhere, not the provider the model is leaving."""
    trainable, known = listed
    if context.retrain is None:
        return trainable, known
    leave_out = context.retrain.leave_out
    return [o for o in trainable if o.provider != leave_out], known


async def open_train_modal(
    services: Services,
    *,
    team_id: str,
    user_id: str,
    trigger_id: str,
    reference: str,
    overrides: dict[str, str],
    retrain: Retrain | None = None,
) -> None:
    """Open the Train… modal, prefilled from the button, from `/finetune train … key=value`, or from the
    job that Retrain elsewhere moves (``retrain``)."""
    if not await policy.may_train(services, user_id, team_id=team_id):
        raise NotAllowed(NOT_A_TRAINER)
    dataset = await _require_dataset(services, team_id, reference)
    context = ModalContext(dataset_id=dataset_id_of(dataset), request_id=uuid.uuid4().hex, retrain=retrain)
    trainable, known = _offered(await offers(services), context)
    values = {o.value for o in trainable}
    if not overrides and dataset.parent_id is not None:
        overrides = await _previous_settings(services, team_id=team_id, dataset_id=dataset.parent_id)
        if overrides.get("model") not in values:
            overrides.pop("model", None)  # no longer trainable: the form offers the ones that are
    default_model = services.settings.finetune_default_model
    if not trainable:
        raise InvalidInput(retired_text(services, known.get(default_model), default_model, trainable))
    wanted = overrides.get("model")
    if wanted:
        resolved = choice_value(services, *split_choice(services, wanted))
        if resolved not in values:
            raise InvalidInput(retired_text(services, known.get(resolved), resolved, trainable))
        overrides = {**overrides, "model": resolved}
    choice = {
        "model": default_model if default_model in values else trainable[0].value,
        "method": default_method(dataset.format),
        **{key: value for key, value in overrides.items() if key in CHOICE_FIELDS},
    }
    if "validation" in choice:
        validation = await find_dataset(services, team_id=team_id, reference=choice["validation"])
        choice["validation"] = str(validation.id) if validation else ""
    stored_for = Report.from_storage(dataset.report).billing.model
    reuse = catalog.base_model_id(split_choice(services, choice["model"])[0]) == catalog.base_model_id(stored_for)
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
    opened = await services.slack_for(team_id).views_open(trigger_id=trigger_id, view=view)
    if not reuse:
        counted = await _render_modal(
            services, team_id=team_id, dataset=dataset, choice=choice, context=context, fresh_estimate=True
        )
        await _update_unless_changed(services, team_id, opened["view"], counted)


async def _update_unless_changed(services: Services, team_id: str, shown: dict[str, Any], view: dict[str, Any]) -> None:
    """Replace the form Slack shows, unless the person changed it meanwhile (their change refreshes it)."""
    try:
        await services.slack_for(team_id).views_update(view_id=shown["id"], hash=shown.get("hash"), view=view)
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
    await services.slack_for(team_id).views_update(view_id=view["id"], hash=view.get("hash"), view=new_view)


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
    services: Services, *, dataset: Dataset, choice: dict[str, str], context: ModalContext | None = None
) -> tuple[dict[str, str], dict[str, Any]]:
    """Field errors keyed by block id (empty when all is well), and the hyperparameters to send."""
    errors: dict[str, str] = {}
    trainable, known = await offers(services)
    picked = choice.get("model", "")
    model, provider = split_choice(services, picked)
    if context is not None and context.retrain is not None and provider == context.retrain.leave_out:
        label = services.providers.label_of(provider)
        errors["model"] = f"The model is already at {label}: pick one at another provider to retrain it there."
    elif picked not in {o.value for o in trainable}:
        errors["model"] = retired_text(services, known.get(picked), picked, trainable)[:150]
    method = choice.get("method") or default_method(dataset.format)
    offer = known.get(picked)
    info = offer.model if offer is not None else None
    if dataset.format == "preference" and method != "dpo":
        errors["method"] = "Preference data trains with dpo only."
    elif dataset.format == "chat" and method == "dpo":
        errors["method"] = "dpo needs preference data (preferred and non-preferred answers); use supervised."
    elif info is not None and method not in info.methods:
        errors["method"] = f"{escape(model)} cannot be trained with {escape(method)}."
    hyperparameters: dict[str, Any] = {}
    capabilities = offer.capabilities if offer is not None else services.providers.default.capabilities
    taken = (capabilities.learning_rate_field, *capabilities.extra_hyperparameters)
    for name in ("n_epochs", "batch_size", *taken, *(("beta",) if method == "dpo" else ())):
        value, problem = _number(choice.get(name, "auto"), name)
        if problem:
            errors[name] = problem
        else:
            hyperparameters[name] = value
    suffix = choice.get("suffix", "")
    longest = capabilities.suffix_limit
    if suffix and not (SUFFIX_PATTERN.match(suffix) and len(suffix) <= longest):
        at = f" at {offer.label}" if offer is not None and longest < 64 else ""
        errors["suffix"] = f"Use up to {longest} letters, digits, - or _{at}."
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
    if not await policy.may_train(services, user_id, team_id=team_id):
        raise NotAllowed(NOT_A_TRAINER)
    dataset = await _require_dataset(services, team_id, str(context.dataset_id))
    choice = read_choice(view)
    errors, hyperparameters = await check_choice(services, dataset=dataset, choice=choice, context=context)
    if errors:
        return errors, None
    return {}, Submission(dataset, context, choice, hyperparameters)
