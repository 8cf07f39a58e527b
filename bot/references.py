"""What people type to name things ("#12", "12", a file name, ``ft:…``, ``ftjob-…``) turned into the team's
own rows: the shared kernel of every feature that acts on a job, a model or a dataset.

Each lookup stays within the asking team, and says in a sentence what it did not find.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bot.datasets.report import Report
from bot.errors import InvalidInput, NotFound
from bot.models import catalog
from bot.mrkdwn import escape
from bot.numbers import reference_number
from bot.services import Services
from storage import repositories
from storage.models import Dataset, TrainingJob

DATASETS_HINT = "`/finetune datasets` lists the team's datasets."


@dataclass(frozen=True)
class ChosenModel:
    model: str
    default_system: str | None
    home_channel: str | None = None  # where the model's job was discussed
    provider: str = ""  # where it answers, as rows record it


async def resolve_model(services: Services, *, team_id: str, reference: str, answering: bool = False) -> ChosenModel:
    """``#12`` (a job), ``ft:…`` (a fine-tuned model) or a base model id, at the provider it was trained at
    or that ``…@provider`` names (the default one otherwise); with the system prompt it learned.

    ``answering``: the model is about to be asked something (chat, compare, evaluate, record), so one that
    was deleted or is past its shutdown is refused here, in the past tense, instead of failing at the provider.
    """
    reference, _, named_provider = reference.partition("@")
    async with services.db.session() as session:
        number = reference_number(reference)
        job: TrainingJob | None
        if number is not None:
            job = await repositories.get_job(session, team_id=team_id, job_id=number)
            if job is None:
                raise NotFound(f"I have no job `{escape(reference)}`. `/finetune jobs` lists the team's jobs.")
            if not job.fine_tuned_model:
                raise InvalidInput(f"Job #{job.id} has no model yet (it is {job.status.replace('_', ' ')}).")
        else:
            job = await repositories.find_job_by_model(session, team_id=team_id, model=reference)
        model = (
            job.fine_tuned_model
            if job is not None and job.fine_tuned_model
            else catalog.ALIASES.get(reference, reference)
        )
        provider = job.provider if job is not None else services.providers.get(named_provider or None).name
        if job is None and model not in {base.id for base in await services.base_models(provider)}:
            # Only the team's own models and its provider's base models: another team's ft:… id is refused.
            raise NotFound(
                f"I know no model `{escape(reference[:100])}` in this team. `/finetune models` lists the team's "
                "fine-tuned models; base models are the ones in the Train… form."
            )
        if answering:
            await _require_answering(services, model, job, provider)
        system = None
        if job is not None:
            dataset = await session.get(Dataset, job.dataset_id)
            if dataset is not None and dataset.report:
                system = Report.from_storage(dataset.report).common_system_prompt
    return ChosenModel(model, system, job.channel_id if job is not None else None, provider)


async def _require_answering(services: Services, model: str, job: TrainingJob | None, provider: str) -> None:
    today = services.clock.now().date()
    if job is not None and job.model_deleted_at is not None:
        raise InvalidInput(f"`{escape(model)}` was deleted on {job.model_deleted_at:%Y-%m-%d}; it no longer answers.")
    retires = job.model_retires if job is not None else None
    if retires is None:
        known = {base.id: base for base in await services.base_models(provider)}
        base = known.get(catalog.base_model_id(model))
        retires = (
            base.inference_retires if base is not None else services.providers.get(provider).published_shutdown(model)
        )
    if retires is not None and today >= retires:
        raise InvalidInput(
            f"`{escape(model)}` was retired on {retires:%Y-%m-%d} and no longer answers at "
            f"{services.providers.label_of(provider)}, so it can no longer be chatted with, compared, evaluated "
            "or recorded. "
            "Its training data is still here: `/finetune datasets`."
        )


async def find_job(services: Services, *, team_id: str, reference: str) -> TrainingJob:
    """A job by ``#12``, ``12`` or the provider's id (``ftjob-…``)."""
    async with services.db.session() as session:
        number = reference_number(reference)
        if number is not None:
            job = await repositories.get_job(session, team_id=team_id, job_id=number)
        else:
            job = next(
                (
                    j
                    for j in await repositories.list_jobs(session, team_id=team_id, limit=500)
                    if j.provider_job_id == reference
                ),
                None,
            )
    if job is None:
        raise NotFound(f"I have no job `{escape(reference)}`. `/finetune jobs` lists the team's jobs.")
    return job


async def find_dataset(services: Services, *, team_id: str, reference: str) -> Dataset | None:
    """A dataset by id (``12`` or ``#12``) or by file name (the newest of that name)."""
    async with services.db.session() as session:
        number = reference_number(reference)
        if number is not None:
            return await repositories.get_dataset(session, team_id=team_id, dataset_id=number)
        matches = await repositories.find_datasets_by_name(session, team_id=team_id, filename=reference)
        return matches[0] if matches else None


async def require_dataset(services: Services, *, team_id: str, reference: str, hint: str = DATASETS_HINT) -> Dataset:
    """``find_dataset``, refused with a sentence (and ``hint``, where to look) when there is none."""
    dataset = await find_dataset(services, team_id=team_id, reference=reference)
    if dataset is None:
        raise NotFound(f"I have no dataset `{escape(reference)}`. {hint}")
    return dataset


def dataset_path(services: Services, sha256: str) -> Path:
    return services.settings.finetune_data_dir / "datasets" / sha256[:2] / f"{sha256}.jsonl"


def stored_copy(services: Services, dataset: Dataset) -> Path:
    """The bot's own copy of a dataset, refused with a sentence when the data folder lost it."""
    path = dataset_path(services, dataset.sha256)
    if not path.exists():
        raise NotFound(f"The stored copy of `{escape(dataset.filename)}` is missing; share the file again.")
    return path
