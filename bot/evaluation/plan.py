"""Planning an evaluation: a model and its base (or another model) will answer held-out examples.

The examples are read from the bot's own copy of the dataset, the cost is estimated from exact
prompt token counts, and overlap with the model's training data is counted, since it inflates
scores. Only when the person who asked confirms does it run (bot.evaluation.run).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bot import slack_blocks
from bot.asker import Asker
from bot.datasets.examples import Example, load_examples, overlap_with
from bot.errors import InvalidInput, MalformedRequest, NotFound
from bot.evaluation import views as evaluation_views
from bot.evaluation.judge import JUDGE_INSTRUCTIONS
from bot.models import catalog
from bot.mrkdwn import escape
from bot.numbers import whole_number
from bot.references import DATASETS_HINT, ChosenModel, dataset_path, require_dataset, resolve_model, stored_copy
from bot.services import Services
from storage import repositories
from storage.models import Dataset, EvalSide, Evaluation, TrainingJob

logger = logging.getLogger(__name__)

# An estimate this old is not confirmed: prices, data and models may have moved on.
CONFIRMATION_WINDOW = timedelta(days=1)
TOKENS_PER_MESSAGE = 3  # the chat format's overhead per message, and again to prime the answer


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    def cost(self, price: tuple[float, float] | None) -> float | None:
        if price is None:
            return None
        return (self.prompt_tokens * price[0] + self.completion_tokens * price[1]) / 1_000_000


def estimate_usage(services: Services, model: str, examples: list[Example], *, judged: bool) -> Usage:
    """Prompt tokens counted exactly with the model's encoding; answers assumed as long as the expected ones."""
    counter = services.token_counter(catalog.encoding_for(model))
    cap = services.settings.finetune_chat_max_tokens
    prompt = completion = 0
    for example in examples:
        conversation = sum(TOKENS_PER_MESSAGE + counter.count(m["content"]) + 1 for m in example.messages)
        expected = counter.count(example.expected)
        if judged:  # the conversation, the reference and two answers; one word back
            prompt += conversation + 3 * expected + counter.count(JUDGE_INSTRUCTIONS) + 4 * TOKENS_PER_MESSAGE
            completion += 1
        else:
            prompt += conversation + TOKENS_PER_MESSAGE
            completion += min(expected, cap)
    return Usage(prompt, completion)


def sum_costs(costs: list[float | None]) -> float | None:
    return None if any(cost is None for cost in costs) else sum(cost or 0.0 for cost in costs)


def sides(evaluation: Evaluation) -> list[tuple[str, str]]:
    return [(EvalSide.CANDIDATE, evaluation.model), (EvalSide.BASELINE, evaluation.baseline_model)]


def provider_of(evaluation: Evaluation, side: str) -> str:
    """Where one side of an evaluation answers: each is asked at its own provider."""
    return {
        EvalSide.CANDIDATE: evaluation.provider,
        EvalSide.BASELINE: evaluation.baseline_provider,
        EvalSide.JUDGE: evaluation.judge_provider,
    }[EvalSide(side)]


async def _contenders(
    services: Services, *, team_id: str, reference: str, against: str | None
) -> tuple[ChosenModel, ChosenModel]:
    """The model to evaluate and the one it is measured against: its base at its provider unless ``against``
    names one, which may answer at another provider (``model@provider``, or a model trained there)."""
    chosen = await resolve_model(services, team_id=team_id, reference=reference, answering=True)
    baseline = await resolve_model(
        services,
        team_id=team_id,
        reference=against or f"{catalog.base_model_id(chosen.model)}@{chosen.provider}",
        answering=True,
    )
    if (baseline.model, baseline.provider) == (chosen.model, chosen.provider):
        raise InvalidInput(
            f"`{escape(chosen.model)}` would be measured against itself; name another model with `against`."
        )
    return chosen, baseline


async def _overlap(services: Services, training: Dataset | None, examples: list[Example]) -> int:
    """How many held-out examples the model also trained on (0 when its training data is not kept)."""
    if training is None or not dataset_path(services, training.sha256).exists():
        return 0
    return await asyncio.to_thread(overlap_with, dataset_path(services, training.sha256), training.format, examples)


async def plan(
    services: Services,
    *,
    team_id: str,
    user_id: str,
    reference: str,
    dataset_reference: str,
    against: str | None,
) -> tuple[Evaluation, list[slack_blocks.Block], str]:
    """Create the evaluation, awaiting confirmation; returns it with the confirmation to show the asker."""
    chosen, baseline = await _contenders(services, team_id=team_id, reference=reference, against=against)
    dataset = await _held_out(services, team_id=team_id, reference=dataset_reference)
    limit = services.settings.finetune_eval_max_examples
    examples, usable = await asyncio.to_thread(
        load_examples, dataset_path(services, dataset.sha256), dataset.format, limit=limit
    )
    if not examples:
        raise InvalidInput(
            f"`{escape(dataset.filename)}` has no examples to evaluate on: each needs a user turn followed by an "
            "assistant answer to compare with."
        )
    async with services.db.session() as session:
        job = await repositories.find_job_by_model(session, team_id=team_id, model=chosen.model)
        training = await session.get(Dataset, job.dataset_id) if job is not None else None
    overlap = await _overlap(services, training, examples)
    judge = services.settings.finetune_eval_judge_model
    cost, tokens = _estimate(services, [chosen.model, baseline.model], examples, judge=judge)
    channel, thread = (job.channel_id, job.thread_ts) if job is not None else (dataset.channel_id, dataset.message_ts)
    async with services.db.session() as session, session.begin():
        evaluation = await repositories.add_evaluation(
            session,
            evaluation=Evaluation(
                team_id=team_id,
                model=chosen.model,
                provider=chosen.provider,
                baseline_model=baseline.model,
                baseline_provider=baseline.provider,
                judge_model=judge,
                judge_provider=services.providers.default_name,
                dataset_id=dataset.id or 0,
                job_id=job.id if job is not None else None,
                total=len(examples),
                overlap=overlap,
                channel_id=channel,
                thread_ts=thread,
                requested_by=user_id,
                estimated_cost_usd=cost,
                created_at=services.clock.now(),
            ),
        )
    text, confirmation = evaluation_views.evaluation_confirmation(
        evaluation,
        dataset_name=dataset.filename,
        usable=usable,
        tokens=tokens,
    )
    return evaluation, confirmation, text


async def open_form(services: Services, *, team_id: str, trigger_id: str, job_id: int) -> None:
    """The Evaluate button's form: which held-out dataset, against which model."""
    async with services.db.session() as session:
        job = await repositories.get_job(session, team_id=team_id, job_id=job_id)
        datasets = await repositories.list_datasets(session, team_id=team_id, limit=100)
    if job is None:
        raise NotFound(f"Job #{job_id} is gone from the bot's records.")
    if not job.fine_tuned_model:
        raise InvalidInput("That job has no model to evaluate.")
    # Validity is about training (ten examples at least); a small held-out set is fine to evaluate on.
    choices = [d for d in datasets if d.format in ("chat", "preference")]
    if not choices:
        raise NotFound(
            "There is no held-out data yet: share a JSONL file of examples the model did not train on in a channel "
            "I'm in, then click Evaluate again."
        )
    initial = job.validation_dataset_id if any(d.id == job.validation_dataset_id for d in choices) else None
    await services.slack_for(team_id).views_open(
        trigger_id=trigger_id, view=evaluation_views.evaluation_modal(job, datasets=choices, initial_dataset_id=initial)
    )


async def plan_from_form(services: Services, *, team_id: str, user_id: str, view: dict[str, Any]) -> None:
    """The form was sent: plan the evaluation and show its estimate (or the refusal), to the asker only, in
    the thread of the job it was opened on."""
    job = await _job_of_form(services, team_id=team_id, view=view)
    if job is not None:
        await services.answering(
            _plan_for_form(services, team_id=team_id, user_id=user_id, job=job, view=view),
            Asker(team_id, user_id, job.channel_id, job.thread_ts),
        )


async def _job_of_form(services: Services, *, team_id: str, view: dict[str, Any]) -> TrainingJob | None:
    """The job an Evaluate form was opened on (None when it is gone since)."""
    try:
        job_id = whole_number(str(json.loads(view.get("private_metadata") or "{}").get("job_id", "")), low=1)
    except (ValueError, AttributeError):
        job_id = None
    if job_id is None:
        raise MalformedRequest("an Evaluate form whose private_metadata is not the bot's")
    async with services.db.session() as session:
        return await repositories.get_job(session, team_id=team_id, job_id=job_id)


async def _plan_for_form(
    services: Services, *, team_id: str, user_id: str, job: TrainingJob, view: dict[str, Any]
) -> None:
    values = view.get("state", {}).get("values", {})
    dataset_id = ((values.get("eval_dataset", {}).get("eval_dataset") or {}).get("selected_option") or {}).get("value")
    against = ((values.get("eval_against", {}).get("eval_against") or {}).get("value") or "").strip() or None
    evaluation, confirmation, text = await plan(
        services,
        team_id=team_id,
        user_id=user_id,
        reference=f"#{job.id}",
        dataset_reference=f"#{dataset_id}",
        against=against,
    )
    await services.slack_for(team_id).chat_postEphemeral(
        channel=evaluation.channel_id,
        user=user_id,
        thread_ts=evaluation.thread_ts,
        text=text,
        blocks=confirmation or None,
    )


async def _held_out(services: Services, *, team_id: str, reference: str) -> Dataset:
    """The dataset to evaluate on, refused with a sentence unless it is chat or preference data the bot holds."""
    dataset = await require_dataset(
        services,
        team_id=team_id,
        reference=reference,
        hint=f"Share the held-out file in a channel I'm in first; {DATASETS_HINT}",
    )
    if dataset.format not in ("chat", "preference"):
        raise InvalidInput(
            f"`{escape(dataset.filename)}` is not chat or preference data, so it has no conversations to ask "
            "the models."
        )
    stored_copy(services, dataset)
    return dataset


def _estimate(
    services: Services, models: list[str], examples: list[Example], *, judge: str | None
) -> tuple[float | None, int]:
    """The evaluation's estimated cost (None when a price is unknown) and the two models' tokens."""
    prices = services.settings.finetune_inference_prices
    usages = {model: estimate_usage(services, model, examples, judged=False) for model in models}
    costs = [usage.cost(catalog.inference_price(model, prices)) for model, usage in usages.items()]
    if judge:
        costs.append(
            estimate_usage(services, judge, examples, judged=True).cost(catalog.inference_price(judge, prices))
        )
    return sum_costs(costs), sum(u.prompt_tokens + u.completion_tokens for u in usages.values())
