"""What a team lead looks at: the App Home, `/finetune models`, retirement reminders, the audit log, exports."""

from __future__ import annotations

import json
import logging
from datetime import date, timedelta
from typing import Any

from slack_sdk.errors import SlackApiError

from bot import blocks, notifier, policy, workspaces
from bot.errors import UserFacingError
from bot.mrkdwn import escape
from bot.references import dataset_path, find_dataset, resolve_model
from bot.services import Services
from storage import repositories
from storage.models import Dataset, Notification

logger = logging.getLogger(__name__)

REMINDER_DAYS = (30, 7, 1)
HOME_VIEWERS_WINDOW = timedelta(days=7)


def days_left(retires: date | None, today: date) -> int | None:
    return None if retires is None else (retires - today).days


async def models_blocks(services: Services, *, team_id: str) -> tuple[str, list[dict[str, Any]]]:
    async with services.db.session() as session:
        models = await repositories.list_models(session, team_id=team_id)
    today = services.clock.now().date()
    if not models:
        return "No fine-tuned models yet.", [blocks.section("No fine-tuned models yet. Train one from a report.")]
    lines = [blocks.model_line(job, today=today) for job in models]
    return (
        f"{len(models)} fine-tuned model(s)",
        [
            blocks.section("*The team's fine-tuned models*"),
            *(blocks.section(p) for p in blocks.split_text("\n".join(lines))),
        ],
    )


def _reminder_key(left: int) -> str | None:
    """Which reminder is due with ``left`` days to go: 30, 7 or 1 (each sent once)."""
    if left < 0:
        return None
    for threshold in sorted(REMINDER_DAYS):
        if left <= threshold:
            return str(threshold)
    return None


async def queue_reminders(services: Services) -> int:
    """Owe a reminder 30, 7 and 1 days before each live model retires, in the approval channel and by DM."""
    today = services.clock.now().date()
    approval_channel = services.settings.finetune_approval_channel
    queued = 0
    async with services.db.session() as session, session.begin():
        for job in await repositories.models_retiring(session, on_or_before=today + timedelta(days=max(REMINDER_DAYS))):
            left = days_left(job.model_retires, today)
            key = _reminder_key(left) if left is not None else None
            if key is None or job.model_retires is None:
                continue
            text = blocks.reminder_text(job, left=left or 0)
            targets = [("reminder", approval_channel)] if approval_channel else []
            targets.append(("reminder_dm", job.requested_by))
            for kind, channel in targets:
                queued += await repositories.enqueue_notification(
                    session,
                    notification=Notification(
                        team_id=job.team_id,
                        subject=f"model:{job.fine_tuned_model}",
                        kind=kind,
                        key=key,
                        channel_id=channel,
                        payload={"text": text},
                        created_at=services.clock.now(),
                    ),
                )
    return queued


async def audit_blocks(services: Services, *, team_id: str, user_id: str, limit: int) -> list[dict[str, Any]]:
    if not policy.is_admin(services.settings, user_id):
        raise UserFacingError("Only admins (FINETUNE_ADMINS) can read the audit log.")
    async with services.db.session() as session:
        entries = await repositories.list_audit_entries(session, team_id=team_id, limit=limit)
    if not entries:
        return [blocks.section("The audit log is empty.")]
    lines = [
        f"`{entry.created_at:%Y-%m-%d %H:%M} UTC` <@{entry.actor}> *{escape(entry.action)}* {escape(entry.subject)}"
        + (f" — {escape(json.dumps(entry.detail, ensure_ascii=False)[:200])}" if entry.detail else "")
        for entry in entries
    ]
    return [
        blocks.section(f"*Last {len(entries)} audit entries*"),
        *(blocks.section(p) for p in blocks.split_text("\n".join(lines))),
    ]


async def export(services: Services, *, team_id: str, reference: str) -> str:
    """Upload the bot's copy of a dataset (and, for a model, its golden set) to the data's thread."""
    dataset: Dataset | None = await find_dataset(services, team_id=team_id, reference=reference)
    golden_content = b""
    model = None
    if dataset is None:
        chosen = await resolve_model(services, team_id=team_id, reference=reference)
        async with services.db.session() as session:
            job = await repositories.find_job_by_model(session, team_id=team_id, model=chosen.model)
            if job is None:
                raise UserFacingError(
                    f"I have no dataset or model `{escape(reference)}`; see `/finetune datasets` and "
                    "`/finetune models`."
                )
            dataset = await session.get(Dataset, job.dataset_id)
            golden = await repositories.latest_golden_set(session, team_id=team_id, model=chosen.model)
        if golden is not None and golden.id is not None:
            golden_content = await notifier.golden_set_jsonl(services, golden.id)
        model = chosen.model
    assert dataset is not None
    stored = dataset_path(services, dataset.sha256)
    if not stored.exists():
        raise UserFacingError(f"The stored copy of `{escape(dataset.filename)}` is missing.")
    uploads: list[dict[str, Any]] = [
        {
            "file": str(stored),
            "filename": dataset.filename,
            "title": f"{dataset.filename} (dataset #{dataset.id}, the bot's copy)",
        }
    ]
    if golden_content:
        uploads.append({"content": golden_content, "filename": "golden-set.jsonl", "title": f"Golden set of {model}"})
    comment = f"📦 Export of `{escape(dataset.filename)}`" + (
        f" and the golden set of `{escape(model)}`" if golden_content else ""
    )
    await services.slack.files_upload_v2(
        file_uploads=uploads, channel=dataset.channel_id, thread_ts=dataset.message_ts, initial_comment=comment
    )
    if model and not golden_content:
        return f"Exported `{escape(dataset.filename)}` to its thread. "
        f"`{escape(model)}` has no golden set yet: `/finetune record {escape(model)}`."
    return f"Exported to the thread of `{escape(dataset.filename)}`."


# --- App Home ---------------------------------------------------------------------------------------------


async def publish_home(services: Services, *, team_id: str, user_id: str, pages: dict[str, int] | None = None) -> None:
    """Render and publish the Home tab of one person (pages: which page of each list to show)."""
    async with services.home_lock(team_id):
        pages = pages or {}
        now = services.clock.now()
        async with services.db.session() as session:
            datasets = await repositories.list_datasets(session, team_id=team_id, limit=200)
            jobs = await repositories.list_jobs(session, team_id=team_id, limit=200)
            models = await repositories.list_models(session, team_id=team_id)
            spend = await repositories.month_spend(session, team_id=team_id, since=policy.month_start(now))
            evaluations = await repositories.recent_evaluations(session, team_id=team_id)
        names = {dataset.id: dataset.filename for dataset in datasets}
        view = blocks.home_view(
            datasets=datasets,
            jobs=jobs,
            models=models,
            evaluations=[(e, names.get(e.dataset_id, f"dataset #{e.dataset_id}")) for e in evaluations],
            spend=spend,
            budget=services.settings.finetune_monthly_budget_usd,
            pages=pages,
            now=now,
        )
        await services.slack.views_publish(user_id=user_id, view=view)


async def home_opened(services: Services, *, team_id: str, user_id: str) -> None:
    async with services.db.session() as session, session.begin():
        await repositories.ensure_team(session, team_id=team_id)
        await repositories.record_home_viewer(session, team_id=team_id, user_id=user_id, now=services.clock.now())
    await publish_home(services, team_id=team_id, user_id=user_id)


async def refresh_homes(services: Services, *, team_id: str) -> None:
    """After a change, re-publish the Home of everyone who looked at it this week."""
    workspaces.serve(team_id)
    async with services.db.session() as session:
        viewers = await repositories.recent_home_viewers(
            session, team_id=team_id, since=services.clock.now() - HOME_VIEWERS_WINDOW
        )
    for user_id in viewers:
        try:
            await publish_home(services, team_id=team_id, user_id=user_id)
        except SlackApiError as error:
            logger.warning("home of %s not refreshed: %s", user_id, error.response.get("error"))
