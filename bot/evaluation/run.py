"""Running an evaluation: confirm, retry, call off, and the run itself.

Each answer is stored as it arrives, under a lease, so a restarted replica takes over and asks
nothing twice. The report goes to the thread through the outbox, exactly once (bot.evaluation.results).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bot import policy
from bot.datasets.examples import Example, load_examples
from bot.errors import InvalidInput, NotAllowed, NotFound
from bot.evaluation import views as evaluation_views
from bot.evaluation.judge import judge_messages
from bot.evaluation.plan import CONFIRMATION_WINDOW, provider_of, sides
from bot.evaluation.results import complete_positions, finish, show_progress
from bot.mrkdwn import escape
from bot.providers import ProviderErrorKind
from bot.providers.batch import Answer, LeasedBatch, resume_orphans
from bot.references import dataset_path
from bot.services import Services
from storage import repositories
from storage.db import Session
from storage.models import Dataset, EvalSide, EvalStatus, Evaluation, EvaluationAnswer

logger = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)
# These concern one request (too long a prompt, a refused input): that answer counts as wrong and
# the evaluation goes on. Anything else (auth, quota, outage) stops it, resumable with Try again.
PER_EXAMPLE_ERRORS = frozenset({ProviderErrorKind.CONTEXT_TOO_LONG, ProviderErrorKind.BAD_REQUEST})


async def _owned(services: Services, *, team_id: str, user_id: str, evaluation_id: int) -> Evaluation:
    async with services.db.session() as session:
        evaluation = await repositories.get_evaluation(session, team_id=team_id, evaluation_id=evaluation_id)
    if evaluation is None:
        raise NotFound("That evaluation no longer exists; run `/finetune eval` again.")
    if not policy.may_act_on(services.settings, user_id, owner=evaluation.requested_by):
        raise NotAllowed(f"Only <@{evaluation.requested_by}> (who asked for it) or an admin can decide on it.")
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
        raise InvalidInput(
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
            complete_positions(
                await repositories.list_evaluation_answers(session, evaluation_id=evaluation_id), evaluation
            )
        )
    name = dataset.filename if dataset is not None else f"dataset #{evaluation.dataset_id}"
    if evaluation.progress_message_ts:  # Try again: the progress message is already in the thread
        await show_progress(services, evaluation, name, done)
    else:
        posted = await services.slack_for(evaluation.team_id).chat_postMessage(
            channel=evaluation.channel_id,
            thread_ts=evaluation.thread_ts,
            text=evaluation_views.evaluation_progress(evaluation, dataset_name=name, done=done),
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
    return await resume_orphans(
        services,
        lambda session: repositories.claim_evaluations(
            session, owner=services.owner, now=services.clock.now(), lease=LEASE
        ),
        lambda evaluation_id: run(services, evaluation_id=evaluation_id),
    )


async def run(services: Services, *, evaluation_id: int) -> None:
    """Ask both models (and the judge) every example not answered yet, storing each answer as it arrives."""
    async with services.db.session() as session:
        evaluation = await session.get(Evaluation, evaluation_id)
        assert evaluation is not None
        dataset = await session.get(Dataset, evaluation.dataset_id)
        stored = await repositories.list_evaluation_answers(session, evaluation_id=evaluation_id)
    assert dataset is not None
    examples, _ = await asyncio.to_thread(
        load_examples, dataset_path(services, dataset.sha256), dataset.format, limit=evaluation.total
    )
    batch = LeasedBatch(
        services,
        table=Evaluation,
        work_id=evaluation_id,
        team_id=evaluation.team_id,
        lease=LEASE,
        concurrency=services.settings.finetune_eval_concurrency,
        per_question_errors=PER_EXAMPLE_ERRORS,
    )
    asking = _Asking(
        services,
        evaluation,
        dataset,
        batch,
        answers={(a.position, a.side): a.answer for a in stored},
        done=complete_positions(stored, evaluation),
    )
    await asyncio.gather(
        *(
            asking.evaluate(position, example)
            for position, example in enumerate(examples)
            if position not in asking.done
        )
    )
    await finish(services, evaluation, dataset, examples, batch.failure)


@dataclass
class _Asking:
    """One pass over an evaluation's examples: what is answered so far, and the batch that asks the rest."""

    services: Services
    evaluation: Evaluation
    dataset: Dataset
    batch: LeasedBatch
    answers: dict[tuple[int, str], str]
    done: set[int]

    async def evaluate(self, position: int, example: Example) -> None:
        """Both models' answers, then the judge's verdict on them; the example is done when all three are in."""
        evaluation = self.evaluation
        pending = [
            self._ask(position, side, model, example.messages)
            for side, model in sides(evaluation)
            if (position, side) not in self.answers
        ]
        await asyncio.gather(*pending)
        if self.batch.failure is not None:
            return
        if evaluation.judge_model and (position, EvalSide.JUDGE) not in self.answers:
            candidate_first = position % 2 == 0  # alternate the order: judges favour a position
            first, second = self.answers[(position, EvalSide.CANDIDATE)], self.answers[(position, EvalSide.BASELINE)]
            if not candidate_first:
                first, second = second, first
            verdict = judge_messages(example, first, second)
            if await self._ask(position, EvalSide.JUDGE, evaluation.judge_model, verdict) is None:
                return
        self.done.add(position)
        if self.batch.progress_due():
            await show_progress(self.services, evaluation, self.dataset.filename, len(self.done))

    async def _ask(self, position: int, side: str, model: str, messages: list[dict[str, str]]) -> str | None:
        async def keep(session: Session, answer: Answer) -> None:
            row = EvaluationAnswer(
                team_id=self.evaluation.team_id,
                evaluation_id=self.evaluation.id or 0,
                position=position,
                side=side,
                answer=answer.text,
                error=answer.error,
                prompt_tokens=answer.prompt_tokens,
                completion_tokens=answer.completion_tokens,
                created_at=self.services.clock.now(),
            )
            await repositories.add_evaluation_answers(session, answers=[row])

        answer = await self.batch.ask(model, messages, provider=provider_of(self.evaluation, side), keep=keep)
        if answer is None:
            return None
        self.answers[(position, side)] = answer.text
        return answer.text
