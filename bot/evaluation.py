"""Evaluations: a model and its base (or another model) answer held-out examples; the team gets the scores.

An evaluation is planned first: the examples are read from the bot's own copy of the dataset, the
cost is estimated from exact prompt token counts, and overlap with the model's training data is
counted, since it inflates scores. Only when the person who asked confirms does it run. Each answer
is stored as it arrives, under a lease, so a restarted replica takes over and asks nothing twice.
The report goes to the thread through the outbox, exactly once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from slack_sdk.errors import SlackApiError

from bot import blocks, catalog, eval_metrics, notifier, team_views, workspaces
from bot.errors import MalformedRequest, UserFacingError
from bot.mrkdwn import escape
from bot.numbers import whole_number
from bot.providers import ProviderError, ProviderErrorKind
from bot.providers.patience import complete_patiently
from bot.references import dataset_path, find_dataset, resolve_model
from bot.services import Services
from storage import repositories
from storage.models import Dataset, EvalStatus, Evaluation, EvaluationAnswer, Notification

logger = logging.getLogger(__name__)


CANDIDATE, BASELINE, JUDGE = "candidate", "baseline", "judge"
LEASE = timedelta(minutes=5)
# An estimate this old is not confirmed: prices, data and models may have moved on.
CONFIRMATION_WINDOW = timedelta(days=1)
PROGRESS_EVERY_SECONDS = 2.0
# These concern one request (too long a prompt, a refused input): that answer counts as wrong and
# the evaluation goes on. Anything else (auth, quota, outage) stops it, resumable with Try again.
PER_EXAMPLE_ERRORS = frozenset({ProviderErrorKind.CONTEXT_TOO_LONG, ProviderErrorKind.BAD_REQUEST})
JUDGE_INSTRUCTIONS = (
    "You are grading two answers to the same conversation against a reference answer. Decide which "
    "answer is better: more correct and closer to the reference in meaning and form. Reply with exactly "
    "one word: A, B or tie."
)
TOKENS_PER_MESSAGE = 3  # the chat format's overhead per message, and again to prime the answer


@dataclass(frozen=True)
class Example:
    messages: list[dict[str, str]]
    expected: str

    @property
    def question(self) -> str:
        return next((m["content"] for m in reversed(self.messages) if m["role"] == "user"), "")


def _text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: their text, in order
        texts = [part.get("text") for part in content if isinstance(part, dict) and part.get("type") == "text"]
        return "".join(t for t in texts if isinstance(t, str)) or None
    return None


def _example(line: Any, fmt: str) -> Example | None:
    """A line's conversation up to its last assistant turn, and that turn as the expected answer."""
    if not isinstance(line, dict):
        return None
    if fmt == "preference":
        messages = (line.get("input") or {}).get("messages") or []
        preferred = line.get("preferred_output") or []
        answer = preferred[0] if isinstance(preferred, list) and preferred else None
    else:
        messages = line.get("messages") or []
        if not isinstance(messages, list):
            return None
        last = max(
            (i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "assistant"), default=-1
        )
        if last < 0:
            return None
        messages, answer = messages[:last], messages[last]
    expected = _text(answer.get("content")) if isinstance(answer, dict) else None
    cleaned = []
    for message in messages if isinstance(messages, list) else []:
        if not isinstance(message, dict) or message.get("role") not in ("system", "user", "assistant"):
            continue
        content = _text(message.get("content"))
        if content is not None:
            cleaned.append({"role": str(message["role"]), "content": content})
    if not expected or not cleaned or cleaned[-1]["role"] != "user":
        return None
    return Example(cleaned, expected)


def load_examples(path: Path, fmt: str, *, limit: int) -> tuple[list[Example], int]:
    """The first ``limit`` usable examples of a stored dataset, and how many usable ones it has in all."""
    examples: list[Example] = []
    usable = 0
    with path.open("rb") as stream:
        for raw in stream:
            try:
                example = _example(json.loads(raw), fmt)
            except ValueError:
                continue
            if example is None:
                continue
            usable += 1
            if len(examples) < limit:
                examples.append(example)
    return examples, usable


def prompt_key(messages: list[dict[str, str]]) -> str:
    """The same conversation, whatever its spacing or letter case, gives the same key."""
    normalized = [(m["role"], eval_metrics.normalize(m["content"])) for m in messages]
    return hashlib.sha256(json.dumps(normalized, ensure_ascii=False).encode()).hexdigest()


def overlap_with(path: Path, fmt: str, examples: list[Example]) -> int:
    """How many of ``examples`` ask a conversation the training file also has."""
    wanted = {prompt_key(example.messages) for example in examples}
    seen: set[str] = set()
    with path.open("rb") as stream:
        for raw in stream:
            try:
                example = _example(json.loads(raw), fmt)
            except ValueError:
                continue
            if example is not None and (key := prompt_key(example.messages)) in wanted:
                seen.add(key)
    return sum(prompt_key(example.messages) in seen for example in examples)


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


def _sum_costs(costs: list[float | None]) -> float | None:
    return None if any(cost is None for cost in costs) else sum(cost or 0.0 for cost in costs)


def _sides(evaluation: Evaluation) -> list[tuple[str, str]]:
    return [(CANDIDATE, evaluation.model), (BASELINE, evaluation.baseline_model)]


async def plan(
    services: Services,
    *,
    team_id: str,
    user_id: str,
    reference: str,
    dataset_reference: str,
    against: str | None,
) -> tuple[Evaluation, list[blocks.Block], str]:
    """Create the evaluation, awaiting confirmation; returns it with the confirmation to show the asker."""
    chosen = await resolve_model(services, team_id=team_id, reference=reference)
    baseline = (
        (await resolve_model(services, team_id=team_id, reference=against)).model
        if against
        else catalog.base_model_id(chosen.model)
    )
    if baseline == chosen.model:
        raise UserFacingError(
            f"`{escape(chosen.model)}` would be measured against itself; name another model with `against`."
        )
    dataset = await find_dataset(services, team_id=team_id, reference=dataset_reference)
    if dataset is None:
        raise UserFacingError(
            f"I have no dataset `{escape(dataset_reference)}`. Share the held-out file in a channel I'm in first; "
            "`/finetune datasets` lists the team's datasets."
        )
    if dataset.format not in ("chat", "preference"):
        raise UserFacingError(
            f"`{escape(dataset.filename)}` is not chat or preference data, so it has no conversations to ask "
            "the models."
        )
    stored = dataset_path(services, dataset.sha256)
    if not stored.exists():
        raise UserFacingError(f"The stored copy of `{escape(dataset.filename)}` is missing; share the file again.")
    limit = services.settings.finetune_eval_max_examples
    examples, usable = await asyncio.to_thread(load_examples, stored, dataset.format, limit=limit)
    if not examples:
        raise UserFacingError(
            f"`{escape(dataset.filename)}` has no examples to evaluate on: each needs a user turn followed by an "
            "assistant answer to compare with."
        )
    async with services.db.session() as session:
        job = await repositories.find_job_by_model(session, team_id=team_id, model=chosen.model)
        training = await session.get(Dataset, job.dataset_id) if job is not None else None
    overlap = 0
    if training is not None and dataset_path(services, training.sha256).exists():
        overlap = await asyncio.to_thread(
            overlap_with, dataset_path(services, training.sha256), training.format, examples
        )
    judge = services.settings.finetune_eval_judge_model
    prices = services.settings.finetune_inference_prices
    usages = {model: estimate_usage(services, model, examples, judged=False) for model in (chosen.model, baseline)}
    costs = [usage.cost(catalog.inference_price(model, prices)) for model, usage in usages.items()]
    if judge:
        judge_usage = estimate_usage(services, judge, examples, judged=True)
        costs.append(judge_usage.cost(catalog.inference_price(judge, prices)))
    channel, thread = (job.channel_id, job.thread_ts) if job is not None else (dataset.channel_id, dataset.message_ts)
    async with services.db.session() as session, session.begin():
        evaluation = await repositories.add_evaluation(
            session,
            evaluation=Evaluation(
                team_id=team_id,
                model=chosen.model,
                baseline_model=baseline,
                judge_model=judge,
                dataset_id=dataset.id or 0,
                job_id=job.id if job is not None else None,
                total=len(examples),
                overlap=overlap,
                channel_id=channel,
                thread_ts=thread,
                requested_by=user_id,
                estimated_cost_usd=_sum_costs(costs),
                created_at=services.clock.now(),
            ),
        )
    text, confirmation = blocks.evaluation_confirmation(
        evaluation,
        dataset_name=dataset.filename,
        usable=usable,
        tokens=sum(u.prompt_tokens + u.completion_tokens for u in usages.values()),
    )
    return evaluation, confirmation, text


async def _owned(services: Services, *, team_id: str, user_id: str, evaluation_id: int) -> Evaluation:
    async with services.db.session() as session:
        evaluation = await repositories.get_evaluation(session, team_id=team_id, evaluation_id=evaluation_id)
    if evaluation is None:
        raise UserFacingError("That evaluation no longer exists; run `/finetune eval` again.")
    if evaluation.requested_by != user_id and user_id not in services.settings.finetune_admins:
        raise UserFacingError(f"Only <@{evaluation.requested_by}> (who asked for it) or an admin can decide on it.")
    return evaluation


def _state_sentence(evaluation: Evaluation) -> str:
    return {
        EvalStatus.RUNNING: f"Evaluation #{evaluation.id} is already running; its progress is in the thread.",
        EvalStatus.DONE: f"Evaluation #{evaluation.id} has already finished; its report is in the thread.",
        EvalStatus.FAILED: f"Evaluation #{evaluation.id} stopped; its thread says why and offers Try again.",
        EvalStatus.CANCELLED: f"Evaluation #{evaluation.id} was called off; run `/finetune eval` again to start anew.",
    }.get(EvalStatus(evaluation.status), f"Evaluation #{evaluation.id} is {escape(evaluation.status)}.")


async def confirm(services: Services, *, team_id: str, user_id: str, evaluation_id: int) -> str:
    """Start a planned evaluation (once, however often the button is clicked)."""
    evaluation = await _owned(services, team_id=team_id, user_id=user_id, evaluation_id=evaluation_id)
    now = services.clock.now()
    if evaluation.status == EvalStatus.AWAITING_CONFIRMATION and now - evaluation.created_at > CONFIRMATION_WINDOW:
        raise UserFacingError(
            f"This estimate is from {evaluation.created_at:%b %d, %H:%M} UTC and has expired; run `/finetune eval` "
            "again for a fresh one."
        )
    started = await _run_from(services, evaluation_id, EvalStatus.AWAITING_CONFIRMATION, started_at=now)
    if not started:
        return _state_sentence(evaluation)
    return f"▶️ Evaluation #{evaluation_id} started; its progress is in the thread."


async def retry(services: Services, *, team_id: str, user_id: str, evaluation_id: int) -> str:
    """Go on with a stopped evaluation, keeping every answer it already has."""
    evaluation = await _owned(services, team_id=team_id, user_id=user_id, evaluation_id=evaluation_id)
    resumed = await _run_from(services, evaluation_id, EvalStatus.FAILED, error_message="", finished_at=None)
    if not resumed:
        return _state_sentence(evaluation)
    return f"▶️ Evaluation #{evaluation_id} goes on from where it stopped."


async def _run_from(services: Services, evaluation_id: int, status: EvalStatus, **changes: Any) -> bool:
    """Take the lease and run, if the evaluation is still in ``status`` (a second click finds it moved on)."""
    now = services.clock.now()
    async with services.db.session() as session, session.begin():
        moved = await repositories.move_evaluation(
            session,
            evaluation_id=evaluation_id,
            from_status=status,
            values={
                "status": EvalStatus.RUNNING,
                "lease_owner": services.owner,
                "lease_expires_at": now + LEASE,
                **changes,
            },
        )
    if moved:
        await _start_running(services, evaluation_id)
    return moved


async def call_off(services: Services, *, team_id: str, user_id: str, evaluation_id: int) -> str:
    evaluation = await _owned(services, team_id=team_id, user_id=user_id, evaluation_id=evaluation_id)
    async with services.db.session() as session, session.begin():
        cancelled = await repositories.move_evaluation(
            session,
            evaluation_id=evaluation_id,
            from_status=EvalStatus.AWAITING_CONFIRMATION,
            values={"status": EvalStatus.CANCELLED, "finished_at": services.clock.now()},
        )
    return "Called off; nothing was asked of the models." if cancelled else _state_sentence(evaluation)


async def _start_running(services: Services, evaluation_id: int) -> None:
    async with services.db.session() as session:
        evaluation = await session.get(Evaluation, evaluation_id)
        assert evaluation is not None
        dataset = await session.get(Dataset, evaluation.dataset_id)
        done = len(
            _complete_positions(
                await repositories.list_evaluation_answers(session, evaluation_id=evaluation_id), evaluation
            )
        )
    name = dataset.filename if dataset is not None else f"dataset #{evaluation.dataset_id}"
    if evaluation.progress_message_ts:  # Try again: the progress message is already in the thread
        await _show_progress(services, evaluation, name, done)
    else:
        posted = await services.slack.chat_postMessage(
            channel=evaluation.channel_id,
            thread_ts=evaluation.thread_ts,
            text=blocks.evaluation_progress(evaluation, dataset_name=name, done=done),
        )
        async with services.db.session() as session, session.begin():
            await repositories.move_evaluation(
                session,
                evaluation_id=evaluation_id,
                from_status=EvalStatus.RUNNING,
                values={"progress_message_ts": str(posted["ts"])},
            )
    services.background(run(services, evaluation_id=evaluation_id))


async def resume_evaluations(services: Services) -> int:
    """The tick's part: take over running evaluations whose runner is gone (a restart), and finish them."""
    async with services.db.session() as session, session.begin():
        claimed = await repositories.claim_evaluations(
            session, owner=services.owner, now=services.clock.now(), lease=LEASE
        )
    for evaluation_id in claimed:
        await run(services, evaluation_id=evaluation_id)
    return len(claimed)


def _complete_positions(answers: list[EvaluationAnswer], evaluation: Evaluation) -> set[int]:
    needed = {CANDIDATE, BASELINE} | ({JUDGE} if evaluation.judge_model else set())
    by_position: dict[int, set[str]] = {}
    for answer in answers:
        by_position.setdefault(answer.position, set()).add(answer.side)
    return {position for position, sides in by_position.items() if needed <= sides}


def judge_messages(example: Example, first: str, second: str) -> list[dict[str, str]]:
    conversation = "\n".join(f"{m['role']}: {m['content']}" for m in example.messages)
    return [
        {"role": "system", "content": JUDGE_INSTRUCTIONS},
        {
            "role": "user",
            "content": f"[Conversation]\n{conversation}\n\n[Reference answer]\n{example.expected}\n\n"
            f"[Answer A]\n{first}\n\n[Answer B]\n{second}\n\nWhich answer is better: A, B or tie?",
        },
    ]


def read_verdict(text: str, *, candidate_first: bool) -> str:
    """The judge's one word as ``candidate``, ``baseline`` or ``tie`` (anything unreadable is a tie)."""
    words = text.strip().strip(".!*\"'`").split()
    word = words[0].strip(".,:;!*\"'`").lower() if words else ""
    if word == "a":
        return CANDIDATE if candidate_first else BASELINE
    if word == "b":
        return BASELINE if candidate_first else CANDIDATE
    return "tie"


async def run(services: Services, *, evaluation_id: int) -> None:
    """Ask both models (and the judge) every example not answered yet, storing each answer as it arrives."""
    async with services.db.session() as session:
        evaluation = await session.get(Evaluation, evaluation_id)
        assert evaluation is not None
        dataset = await session.get(Dataset, evaluation.dataset_id)
        stored = await repositories.list_evaluation_answers(session, evaluation_id=evaluation_id)
    assert dataset is not None
    workspaces.serve(evaluation.team_id)
    examples, _ = await asyncio.to_thread(
        load_examples, dataset_path(services, dataset.sha256), dataset.format, limit=evaluation.total
    )
    answers: dict[tuple[int, str], str] = {(a.position, a.side): a.answer for a in stored}
    done = _complete_positions(stored, evaluation)
    slots = asyncio.Semaphore(services.settings.finetune_eval_concurrency)
    max_tokens = services.settings.finetune_chat_max_tokens
    last_progress = time.monotonic()
    failure: ProviderError | None = None

    async def ask(position: int, side: str, model: str, messages: list[dict[str, str]]) -> str | None:
        """One request under the concurrency limit, waiting out rate limits; stores and returns the answer."""
        nonlocal failure
        async with slots:
            if failure is not None:
                return None
            text, error, usage = "", "", None
            try:
                text, usage = await complete_patiently(
                    services.provider, model=model, messages=messages, max_tokens=max_tokens
                )
            except ProviderError as raised:
                if raised.kind not in PER_EXAMPLE_ERRORS:
                    failure = raised
                    return None
                error = raised.provider_message
            async with services.db.session() as session, session.begin():
                await repositories.add_evaluation_answers(
                    session,
                    answers=[
                        EvaluationAnswer(
                            team_id=evaluation.team_id,
                            evaluation_id=evaluation_id,
                            position=position,
                            side=side,
                            answer=text,
                            error=error,
                            prompt_tokens=usage.prompt_tokens if usage else 0,
                            completion_tokens=usage.completion_tokens if usage else 0,
                            created_at=services.clock.now(),
                        )
                    ],
                )
                await repositories.renew_leases(
                    session,
                    Evaluation,
                    owner=services.owner,
                    ids=[evaluation_id],
                    expires_at=services.clock.now() + LEASE,
                )
            answers[(position, side)] = text
            return text

    async def evaluate(position: int, example: Example) -> None:
        nonlocal last_progress
        pending = [
            ask(position, side, model, example.messages)
            for side, model in _sides(evaluation)
            if (position, side) not in answers
        ]
        await asyncio.gather(*pending)
        if failure is not None:
            return
        if evaluation.judge_model and (position, JUDGE) not in answers:
            candidate_first = position % 2 == 0  # alternate the order: judges favour a position
            first, second = answers[(position, CANDIDATE)], answers[(position, BASELINE)]
            if not candidate_first:
                first, second = second, first
            said = await ask(position, JUDGE, evaluation.judge_model, judge_messages(example, first, second))
            if said is None:
                return
        done.add(position)
        if time.monotonic() - last_progress >= PROGRESS_EVERY_SECONDS:
            last_progress = time.monotonic()
            await _show_progress(services, evaluation, dataset.filename, len(done))

    await asyncio.gather(
        *(evaluate(position, example) for position, example in enumerate(examples) if position not in done)
    )
    await _finish(services, evaluation, dataset, examples, failure)


async def _show_progress(services: Services, evaluation: Evaluation, dataset_name: str, done: int) -> None:
    if not evaluation.progress_message_ts:
        return
    try:
        await services.slack.chat_update(
            channel=evaluation.channel_id,
            ts=evaluation.progress_message_ts,
            text=blocks.evaluation_progress(evaluation, dataset_name=dataset_name, done=done),
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
    positions = [p for p in range(len(examples)) if p in by_side.get(CANDIDATE, {}) and p in by_side.get(BASELINE, {})]
    expected = [examples[p].expected for p in positions]
    as_classification = eval_metrics.looks_like_classification(expected)
    scores: dict[str, Any] = {}
    per_example: dict[str, list[float]] = {}
    for side in (CANDIDATE, BASELINE):
        predicted = [by_side[side][p].answer for p in positions]
        result = eval_metrics.score(expected, predicted, as_classification=as_classification)
        correct = [float(eval_metrics.normalized_match(e, p)) for e, p in zip(expected, predicted, strict=True)]
        per_example[side] = correct if as_classification else result.per_example_f1
        entry: dict[str, Any] = {
            "exact_match": result.exact_match,
            "normalized_match": result.normalized_match,
            "token_f1": result.token_f1,
            "failed": sum(1 for p in positions if by_side[side][p].error),
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
        scores[side] = entry
    if evaluation.judge_model:
        judged = by_side.get(JUDGE, {})
        record = eval_metrics.verdicts(
            [read_verdict(judged[p].answer, candidate_first=p % 2 == 0) if p in judged else "tie" for p in positions]
        )
        decided_by = f"the judge `{evaluation.judge_model}`"
    else:
        record = eval_metrics.head_to_head(per_example[CANDIDATE], per_example[BASELINE])
        decided_by = "correct label" if as_classification else "token overlap with the expected answer"
    differences = [
        {
            "position": p,
            "question": examples[p].question,
            "expected": examples[p].expected,
            CANDIDATE: by_side[CANDIDATE][p].answer or f"(failed: {by_side[CANDIDATE][p].error})",
            BASELINE: by_side[BASELINE][p].answer or f"(failed: {by_side[BASELINE][p].error})",
        }
        for p in (positions[i] for i in eval_metrics.most_different(per_example[CANDIDATE], per_example[BASELINE]))
    ]
    usage: dict[str, Any] = {}
    for side, model in (*_sides(evaluation), *([(JUDGE, evaluation.judge_model)] if evaluation.judge_model else [])):
        rows = list(by_side.get(side, {}).values())
        used = Usage(sum(r.prompt_tokens for r in rows), sum(r.completion_tokens for r in rows))
        usage[side] = {
            "model": model,
            "prompt_tokens": used.prompt_tokens,
            "completion_tokens": used.completion_tokens,
            "cost_usd": used.cost(catalog.inference_price(model, prices)),
        }
    return {
        "examples": len(positions),
        "classification": as_classification,
        CANDIDATE: scores[CANDIDATE],
        BASELINE: scores[BASELINE],
        "head_to_head": {
            "wins": record.wins,
            "ties": record.ties,
            "losses": record.losses,
            "win_rate": record.win_rate,
            "decided_by": decided_by,
        },
        "differences": differences,
        "usage": usage,
    }


async def _finish(
    services: Services, evaluation: Evaluation, dataset: Dataset, examples: list[Example], failure: ProviderError | None
) -> None:
    now = services.clock.now()
    async with services.db.session() as session, session.begin():
        row = await session.get(Evaluation, evaluation.id)
        assert row is not None
        answers = await repositories.list_evaluation_answers(session, evaluation_id=row.id or 0)
        done = len(_complete_positions(answers, row))
        row.lease_owner, row.lease_expires_at = None, None
        row.prompt_tokens = sum(a.prompt_tokens for a in answers)
        row.completion_tokens = sum(a.completion_tokens for a in answers)
        subject = f"eval:{row.id}"
        if failure is None and done >= row.total:
            row.status, row.finished_at = EvalStatus.DONE, now
            row.metrics = compute_metrics(row, examples, answers, services.settings.finetune_inference_prices)
            row.cost_usd = _sum_costs([side["cost_usd"] for side in row.metrics["usage"].values()])
            text, report = blocks.evaluation_report(row, dataset_name=dataset.filename)
            notes = [
                Notification(
                    team_id=row.team_id,
                    subject=subject,
                    kind="result",
                    channel_id=row.channel_id,
                    thread_ts=row.thread_ts,
                    payload={"text": text, "blocks": report},
                    created_at=now,
                ),
                Notification(
                    team_id=row.team_id,
                    subject=subject,
                    kind="eval_chart",
                    channel_id=row.channel_id,
                    thread_ts=row.thread_ts,
                    payload={
                        "evaluation_id": row.id,
                        "title": f"Evaluation #{row.id}: {row.model} vs {row.baseline_model}",
                        "filename": f"evaluation-{row.id}.png",
                    },
                    created_at=now,
                ),
            ]
        else:
            row.status, row.finished_at = EvalStatus.FAILED, now
            row.error_message = failure.provider_message if failure else "some examples got no answer"
            text, report = blocks.evaluation_stopped(row, done=done)
            # One notice per stop: a later Try again that stops again owes a new one.
            notes = [
                Notification(
                    team_id=row.team_id,
                    subject=subject,
                    kind="stopped",
                    key=str(now.timestamp()),
                    channel_id=row.channel_id,
                    thread_ts=row.thread_ts,
                    payload={"text": text, "blocks": report},
                    created_at=now,
                )
            ]
        session.add(row)
        for note in notes:
            await repositories.enqueue_notification(session, notification=note)
    await _show_progress(services, row, dataset.filename, done)
    await notifier.deliver_pending(services)
    await team_views.refresh_homes(services, team_id=row.team_id)


async def open_form(services: Services, *, team_id: str, trigger_id: str, job_id: int) -> None:
    """The Evaluate button's form: which held-out dataset, against which model."""
    async with services.db.session() as session:
        job = await repositories.get_job(session, team_id=team_id, job_id=job_id)
        datasets = await repositories.list_datasets(session, team_id=team_id, limit=100)
    if job is None:
        raise UserFacingError(f"Job #{job_id} is gone from the bot's records.")
    if not job.fine_tuned_model:
        raise UserFacingError("That job has no model to evaluate.")
    # Validity is about training (ten examples at least); a small held-out set is fine to evaluate on.
    choices = [d for d in datasets if d.format in ("chat", "preference")]
    if not choices:
        raise UserFacingError(
            "There is no held-out data yet: share a JSONL file of examples the model did not train on in a channel "
            "I'm in, then click Evaluate again."
        )
    initial = job.validation_dataset_id if any(d.id == job.validation_dataset_id for d in choices) else None
    await services.slack.views_open(
        trigger_id=trigger_id, view=blocks.evaluation_modal(job, datasets=choices, initial_dataset_id=initial)
    )


async def plan_from_form(services: Services, *, team_id: str, user_id: str, view: dict[str, Any]) -> None:
    """The form was sent: plan the evaluation and show its estimate, to the asker only, in the job's thread."""
    values = view.get("state", {}).get("values", {})
    try:
        job_id = whole_number(str(json.loads(view.get("private_metadata") or "{}").get("job_id", "")), low=1)
    except (ValueError, AttributeError):
        job_id = None
    if job_id is None:
        raise MalformedRequest("an Evaluate form whose private_metadata is not the bot's")
    dataset_id = ((values.get("eval_dataset", {}).get("eval_dataset") or {}).get("selected_option") or {}).get("value")
    against = ((values.get("eval_against", {}).get("eval_against") or {}).get("value") or "").strip() or None
    async with services.db.session() as session:
        job = await repositories.get_job(session, team_id=team_id, job_id=job_id)
    if job is None:
        return
    try:
        evaluation, confirmation, text = await plan(
            services,
            team_id=team_id,
            user_id=user_id,
            reference=f"#{job_id}",
            dataset_reference=f"#{dataset_id}",
            against=against,
        )
        channel, thread = evaluation.channel_id, evaluation.thread_ts
    except UserFacingError as error:
        text, confirmation, channel, thread = error.sentence, [], job.channel_id, job.thread_ts
    await services.slack.chat_postEphemeral(
        channel=channel, user=user_id, thread_ts=thread, text=text, blocks=confirmation or None
    )
