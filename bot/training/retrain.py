"""Retrain elsewhere: the Train form at another provider, prefilled from a model's own job.

The dataset is the bot's own copy of the one the model trained on (and its validation file); the
old job's settings are carried over as the target takes them: epochs, batch size and DPO's beta as
they are, the learning rate as a multiplier or as the rate itself, LoRA rank where both have one. The
new job records the one it was retrained from, so that its result can offer to evaluate the two
against each other.
"""

from __future__ import annotations

import logging
from typing import Any

from bot import policy
from bot.errors import InvalidInput, NotAllowed, NotFound
from bot.models import catalog
from bot.mrkdwn import escape
from bot.providers import ProviderError
from bot.providers.capabilities import Capabilities, LearningRateStyle
from bot.references import dataset_path, resolve_model
from bot.services import Services
from bot.training import modal
from bot.training.offers import Offer, offers
from storage import repositories
from storage.models import Dataset, TrainingJob

logger = logging.getLogger(__name__)

# What a learning-rate multiplier of 1 is taken to mean as a rate, to carry a rate between the two styles:
# the rate of Nebius's own example LoRA job (providers.md §1.2). OpenAI does not publish its base rate.
REFERENCE_LEARNING_RATE = 2e-5
MULTIPLIER_RANGE = (0.01, 10.0)
RATE_RANGE = (1e-7, 0.1)
CARRIED_AS_THEY_ARE = ("n_epochs", "batch_size", "beta")


def _number(value: float) -> str:
    return f"{value:.3g}"


def carried_over(
    settings: dict[str, Any], *, source: Capabilities, target: Capabilities, source_label: str, target_label: str
) -> tuple[dict[str, str], list[str]]:
    """The Train form's fields for ``target`` from a job's ``settings`` at ``source``, and a note for each
    value that had to change on the way."""
    choice = {name: str(settings[name]) for name in CARRIED_AS_THEY_ARE if settings.get(name, "auto") != "auto"}
    notes: list[str] = []
    rate = settings.get(source.learning_rate_field, "auto")
    if isinstance(rate, int | float) and rate > 0:
        if source.learning_rate is target.learning_rate:
            choice[target.learning_rate_field] = _number(rate)
        elif target.learning_rate is LearningRateStyle.ABSOLUTE:
            absolute = min(max(rate * REFERENCE_LEARNING_RATE, RATE_RANGE[0]), RATE_RANGE[1])
            choice[target.learning_rate_field] = _number(absolute)
            notes.append(
                f"The learning-rate multiplier {_number(rate)} at {source_label} became the learning rate "
                f"{_number(absolute)} at {target_label} (a multiplier of 1 taken as {REFERENCE_LEARNING_RATE:g})."
            )
        else:
            multiplier = min(max(rate / REFERENCE_LEARNING_RATE, MULTIPLIER_RANGE[0]), MULTIPLIER_RANGE[1])
            choice[target.learning_rate_field] = _number(multiplier)
            notes.append(
                f"The learning rate {_number(rate)} at {source_label} became the multiplier {_number(multiplier)} "
                f"at {target_label} ({REFERENCE_LEARNING_RATE:g} taken as 1×)."
            )
    for name in target.extra_hyperparameters:
        if settings.get(name, "auto") != "auto":
            choice[name] = str(settings[name])
    rank = settings.get("lora_r", "auto")
    if source.lora_rank and not target.lora_rank and rank != "auto":
        notes.append(f"{target_label} takes no LoRA rank, so the rank {rank} stays behind.")
    return choice, notes


async def _settings_of(services: Services, job: TrainingJob) -> dict[str, Any]:
    """The old job's settings as its provider resolved them ("auto" made a number), else as it was asked."""
    asked = dict(job.hyperparameters)
    if not job.provider_job_id:
        return asked
    try:
        reported = await services.providers.get(job.provider).get_job(job.provider_job_id)
    except (ProviderError, NotFound) as error:
        logger.info("job %s's resolved settings are out of reach (%s); using the ones it asked for", job.id, error)
        return asked
    return {**asked, **{k: v for k, v in reported.hyperparameters.items() if v is not None and k in asked}}


def _target_offer(job: TrainingJob, candidates: list[Offer]) -> Offer:
    """The same base at the target where it is offered, else the first model the target offers."""
    base = catalog.base_model_id(job.base_model)
    return next((o for o in candidates if catalog.base_model_id(o.model.id) == base), candidates[0])


async def open_retrain_form(
    services: Services,
    *,
    team_id: str,
    user_id: str,
    trigger_id: str,
    reference: str,
    target: str | None = None,
) -> None:
    """Open the Train form on another provider than the model's own (``target`` when named), prefilled."""
    if not await policy.may_train(services, user_id, team_id=team_id):
        raise NotAllowed(modal.NOT_A_TRAINER)
    chosen = await resolve_model(services, team_id=team_id, reference=reference)
    async with services.db.session() as session:
        job = await repositories.find_job_by_model(session, team_id=team_id, model=chosen.model)
        dataset = await session.get(Dataset, job.dataset_id) if job is not None else None
    if job is None or dataset is None or job.id is None:
        raise NotFound(
            f"`{escape(chosen.model)}` is not one of the team's fine-tuned models, so there is no training data "
            "to retrain it from. `/finetune models` lists them."
        )
    if not dataset_path(services, dataset.sha256).exists():
        raise NotFound(
            f"The bot's copy of `{escape(dataset.filename)}` (what `{escape(chosen.model)}` trained on) is gone; "
            "share the file again and train from its report."
        )
    here = services.providers.label_of(job.provider)
    if target is not None:
        wanted = services.providers.get(target)
        if wanted.name == services.providers.name_of(job.provider):
            raise InvalidInput(f"`{escape(chosen.model)}` is already at {here}; name another provider.")
    trainable, _ = await offers(services)
    elsewhere = [
        o
        for o in trainable
        if o.provider != services.providers.name_of(job.provider) and (target is None or o.provider == target)
    ]
    if not elsewhere:
        where = services.providers.label_of(target) if target else "any other configured provider"
        raise InvalidInput(
            f"Nothing can be trained at {where} today, so `{escape(chosen.model)}` cannot move from {here}. "
            "An admin can add a provider that still trains (README, Providers)."
        )
    offer = _target_offer(job, elsewhere)
    source = services.providers.get(job.provider).capabilities
    choice, notes = carried_over(
        await _settings_of(services, job),
        source=source,
        target=offer.capabilities,
        source_label=here,
        target_label=offer.label,
    )
    notes.insert(
        0,
        f"Retraining {chosen.model} (job #{job.id}, at {here}) at {offer.label}, from the bot's copy of "
        f"{dataset.filename}, with its settings.",
    )
    if catalog.base_model_id(offer.model.id) != catalog.base_model_id(job.base_model):
        notes.append(f"{job.base_model} is not trained at {offer.label}; {offer.model.id} is picked instead.")
    overrides = {"model": offer.value, "method": job.method, **choice}
    if job.validation_dataset_id is not None:
        overrides["validation"] = f"#{job.validation_dataset_id}"
    if job.suffix and len(job.suffix) <= offer.capabilities.suffix_limit:
        overrides["suffix"] = job.suffix
    await modal.open_train_modal(
        services,
        team_id=team_id,
        user_id=user_id,
        trigger_id=trigger_id,
        reference=f"#{dataset.id}",
        overrides=overrides,
        retrain=modal.Retrain(job_id=job.id, leave_out=services.providers.name_of(job.provider), notes=notes),
    )
