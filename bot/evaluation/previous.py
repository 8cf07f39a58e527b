"""📏 Evaluate against the model a job was retrained from: the new model and the old one answer the
old job's validation file, or, when it had none, the old model's golden set (its own recorded answers
become the expected ones, so the score says how closely the new model keeps the old one's behaviour)."""

from __future__ import annotations

from bot import notifier, slack_blocks
from bot.datasets.store import keep_bytes, run_validation, validation_options
from bot.errors import InvalidInput, NotFound
from bot.evaluation.plan import plan
from bot.mrkdwn import escape
from bot.services import Services
from storage import repositories
from storage.models import Dataset, Evaluation, TrainingJob


async def plan_against_previous(
    services: Services, *, team_id: str, user_id: str, job_id: int
) -> tuple[Evaluation, list[slack_blocks.Block], str]:
    """Plan (awaiting the asker's confirmation) job ``job_id``'s model against the one it was retrained from."""
    async with services.db.session() as session:
        job = await repositories.get_job(session, team_id=team_id, job_id=job_id)
        previous = await session.get(TrainingJob, job.retrained_from_id) if job and job.retrained_from_id else None
    if job is None or previous is None or not previous.fine_tuned_model or previous.team_id != team_id:
        raise NotFound("The model this one was retrained from is gone from the bot's records.")
    if previous.validation_dataset_id is not None:
        held_out = previous.validation_dataset_id
    else:
        held_out = await _golden_dataset(services, team_id=team_id, user_id=user_id, previous=previous)
    return await plan(
        services,
        team_id=team_id,
        user_id=user_id,
        reference=f"#{job.id}",
        dataset_reference=f"#{held_out}",
        against=previous.fine_tuned_model,
    )


async def _golden_dataset(services: Services, *, team_id: str, user_id: str, previous: TrainingJob) -> int:
    """The old model's latest golden set as a dataset of the bot's (made once: the same bytes are found again)."""
    model = previous.fine_tuned_model or ""
    async with services.db.session() as session:
        golden = await repositories.latest_golden_set(session, team_id=team_id, model=model)
    if golden is None or golden.id is None:
        raise InvalidInput(
            f"`{escape(model)}` trained without a validation file and has no golden set to compare on: "
            f"`/finetune record {escape(model)}` records one while it still answers, or click 📏 Evaluate and "
            "pick held-out data."
        )
    content = await notifier.golden_set_jsonl(services, golden.id)
    path, sha256 = await keep_bytes(services, content)
    report = await run_validation(services, path, len(content), validation_options(services, model=previous.base_model))
    async with services.db.session() as session, session.begin():
        dataset, _ = await repositories.add_dataset(
            session,
            dataset=Dataset(
                team_id=team_id,
                channel_id=golden.channel_id,
                message_ts=golden.thread_ts,
                uploaded_by=user_id,
                filename=f"golden-set-{golden.id}.jsonl",
                bytes=len(content),
                sha256=sha256,
                **report.row_fields(),
                created_at=services.clock.now(),
            ),
        )
    assert dataset.id is not None
    return dataset.id
