"""An evaluation's results: its metrics, its report in the thread and its chart."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from slack_sdk.errors import SlackApiError

from bot import notifier
from bot.datasets.examples import Example
from bot.evaluation import metrics
from bot.evaluation import views as evaluation_views
from bot.evaluation.judge import read_verdict
from bot.evaluation.plan import Usage, sides, sum_costs
from bot.home import tab as home_tab
from bot.models import catalog
from bot.providers import ProviderError
from bot.services import Services
from storage import repositories
from storage.models import Dataset, EvalSide, EvalStatus, Evaluation, EvaluationAnswer, Notification, NotificationKind

logger = logging.getLogger(__name__)


def complete_positions(answers: list[EvaluationAnswer], evaluation: Evaluation) -> set[int]:
    needed = {EvalSide.CANDIDATE, EvalSide.BASELINE} | ({EvalSide.JUDGE} if evaluation.judge_model else set())
    by_position: dict[int, set[str]] = {}
    for answer in answers:
        by_position.setdefault(answer.position, set()).add(answer.side)
    return {position for position, sides in by_position.items() if needed <= sides}


async def show_progress(services: Services, evaluation: Evaluation, dataset_name: str, done: int) -> None:
    if not evaluation.progress_message_ts:
        return
    try:
        await services.slack_for(evaluation.team_id).chat_update(
            channel=evaluation.channel_id,
            ts=evaluation.progress_message_ts,
            text=evaluation_views.evaluation_progress(evaluation, dataset_name=dataset_name, done=done),
        )
    except SlackApiError as error:
        logger.info("evaluation progress not shown: %s", error.response.get("error"))


def compute_metrics(
    evaluation: Evaluation,
    examples: list[Example],
    answers: list[EvaluationAnswer],
    prices: dict[str, tuple[float, float]],
) -> dict[str, Any]:
    """Every number of the report, as JSON the database keeps."""
    by_side: dict[str, dict[int, EvaluationAnswer]] = {}
    for answer in answers:
        by_side.setdefault(answer.side, {})[answer.position] = answer
    candidate, baseline = by_side.get(EvalSide.CANDIDATE, {}), by_side.get(EvalSide.BASELINE, {})
    positions = [p for p in range(len(examples)) if p in candidate and p in baseline]
    expected = [examples[p].expected for p in positions]
    as_classification = metrics.looks_like_classification(expected)
    scores: dict[str, Any] = {}
    per_example: dict[str, list[float]] = {}
    for side in (EvalSide.CANDIDATE, EvalSide.BASELINE):
        scores[side], per_example[side] = _side_scores(
            expected, [by_side[side][p] for p in positions], as_classification=as_classification
        )
    record, decided_by = _head_to_head(
        evaluation, by_side.get(EvalSide.JUDGE, {}), positions, per_example, as_classification=as_classification
    )
    differences = [
        {
            "position": p,
            "question": examples[p].question,
            "expected": examples[p].expected,
            EvalSide.CANDIDATE: candidate[p].answer or f"(failed: {candidate[p].error})",
            EvalSide.BASELINE: baseline[p].answer or f"(failed: {baseline[p].error})",
        }
        for p in (
            positions[i]
            for i in metrics.most_different(per_example[EvalSide.CANDIDATE], per_example[EvalSide.BASELINE])
        )
    ]
    return {
        "examples": len(positions),
        "classification": as_classification,
        EvalSide.CANDIDATE: scores[EvalSide.CANDIDATE],
        EvalSide.BASELINE: scores[EvalSide.BASELINE],
        "head_to_head": {
            "wins": record.wins,
            "ties": record.ties,
            "losses": record.losses,
            "win_rate": record.win_rate,
            "decided_by": decided_by,
        },
        "differences": differences,
        "usage": _usage(evaluation, by_side, prices),
    }


def _side_scores(
    expected: list[str], answers: list[EvaluationAnswer], *, as_classification: bool
) -> tuple[dict[str, Any], list[float]]:
    """One side's scores for the report, and its per-example score for the head-to-head."""
    predicted = [answer.answer for answer in answers]
    result = metrics.score(expected, predicted, as_classification=as_classification)
    entry: dict[str, Any] = {
        "exact_match": result.exact_match,
        "normalized_match": result.normalized_match,
        "token_f1": result.token_f1,
        "failed": sum(1 for answer in answers if answer.error),
    }
    if result.classification is not None:
        table = result.classification
        entry.update(
            macro_precision=table.macro_precision,
            macro_recall=table.macro_recall,
            macro_f1=table.macro_f1,
            micro_precision=table.micro_precision,
            micro_recall=table.micro_recall,
            micro_f1=table.micro_f1,
            per_class=[
                {"label": c.label, "support": c.support, "precision": c.precision, "recall": c.recall, "f1": c.f1}
                for c in table.classes
            ],
            confusion={"labels": table.labels, "rows": table.confusion},
        )
    if not as_classification:
        return entry, result.per_example_f1
    return entry, [float(metrics.normalized_match(e, p)) for e, p in zip(expected, predicted, strict=True)]


def _head_to_head(
    evaluation: Evaluation,
    judged: dict[int, EvaluationAnswer],
    positions: list[int],
    per_example: dict[str, list[float]],
    *,
    as_classification: bool,
) -> tuple[metrics.HeadToHead, str]:
    """Wins, ties and losses of the candidate, and what decided them."""
    if evaluation.judge_model:
        record = metrics.verdicts(
            [read_verdict(judged[p].answer, candidate_first=p % 2 == 0) if p in judged else "tie" for p in positions]
        )
        return record, f"the judge `{evaluation.judge_model}`"
    record = metrics.head_to_head(per_example[EvalSide.CANDIDATE], per_example[EvalSide.BASELINE])
    return record, "correct label" if as_classification else "token overlap with the expected answer"


def _usage(
    evaluation: Evaluation, by_side: dict[str, dict[int, EvaluationAnswer]], prices: dict[str, tuple[float, float]]
) -> dict[str, Any]:
    """Tokens and cost of each side (and of the judge)."""
    judge = [(EvalSide.JUDGE, evaluation.judge_model)] if evaluation.judge_model else []
    usage: dict[str, Any] = {}
    for side, model in (*sides(evaluation), *judge):
        rows = list(by_side.get(side, {}).values())
        used = Usage(sum(r.prompt_tokens for r in rows), sum(r.completion_tokens for r in rows))
        usage[side] = {
            "model": model,
            "prompt_tokens": used.prompt_tokens,
            "completion_tokens": used.completion_tokens,
            "cost_usd": used.cost(catalog.inference_price(model, prices)),
        }
    return usage


async def finish(
    services: Services, evaluation: Evaluation, dataset: Dataset, examples: list[Example], failure: ProviderError | None
) -> None:
    """Settle the evaluation: done with its metrics and report, or stopped with what is missing; the thread
    hears of it through the notifier, once."""
    now = services.clock.now()
    async with services.db.session() as session, session.begin():
        row = await session.get(Evaluation, evaluation.id)
        assert row is not None
        answers = await repositories.list_evaluation_answers(session, evaluation_id=row.id or 0)
        done = len(complete_positions(answers, row))
        row.lease_owner, row.lease_expires_at = None, None
        row.prompt_tokens = sum(a.prompt_tokens for a in answers)
        row.completion_tokens = sum(a.completion_tokens for a in answers)
        if failure is None and done >= row.total:
            row.status, row.finished_at = EvalStatus.DONE, now
            row.metrics = compute_metrics(row, examples, answers, services.settings.finetune_inference_prices)
            row.cost_usd = sum_costs([side["cost_usd"] for side in row.metrics["usage"].values()])
            notes = _report_notes(row, dataset_name=dataset.filename, now=now)
        else:
            row.status, row.finished_at = EvalStatus.FAILED, now
            row.error_message = failure.provider_message if failure else "some examples got no answer"
            notes = [_stopped_note(row, done=done, now=now)]
        session.add(row)
        for note in notes:
            await repositories.enqueue_notification(session, notification=note)
    await show_progress(services, row, dataset.filename, done)
    await notifier.deliver_pending(services)
    await home_tab.refresh_homes(services, team_id=row.team_id)


def _note(
    row: Evaluation, kind: NotificationKind, payload: dict[str, Any], *, now: datetime, key: str = ""
) -> Notification:
    return Notification(
        team_id=row.team_id,
        subject=f"eval:{row.id}",
        kind=kind,
        key=key,
        channel_id=row.channel_id,
        thread_ts=row.thread_ts,
        payload=payload,
        created_at=now,
    )


def _report_notes(row: Evaluation, *, dataset_name: str, now: datetime) -> list[Notification]:
    text, report = evaluation_views.evaluation_report(row, dataset_name=dataset_name)
    chart = {
        "evaluation_id": row.id,
        "title": f"Evaluation #{row.id}: {row.model} vs {row.baseline_model}",
        "filename": f"evaluation-{row.id}.png",
    }
    return [
        _note(row, NotificationKind.RESULT, {"text": text, "blocks": report}, now=now),
        _note(row, NotificationKind.EVAL_CHART, chart, now=now),
    ]


def _stopped_note(row: Evaluation, *, done: int, now: datetime) -> Notification:
    text, report = evaluation_views.evaluation_stopped(row, done=done)
    # One notice per stop: a later Try again that stops again owes a new one.
    return _note(row, NotificationKind.STOPPED, {"text": text, "blocks": report}, now=now, key=str(now.timestamp()))
