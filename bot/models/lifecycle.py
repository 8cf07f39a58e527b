"""A fine-tuned model's end: deleting it at the provider, on purpose and on the record."""

from __future__ import annotations

import logging
from datetime import date, timedelta
from typing import Any

from bot import policy, slack_blocks
from bot.errors import NotFound, ProviderRefused
from bot.models import views as model_views
from bot.mrkdwn import escape
from bot.providers import BaseModelInfo, ProviderError, ProviderErrorKind
from bot.references import resolve_model
from bot.services import Services
from storage import repositories
from storage.models import Notification, NotificationKind, TrainingJob


async def delete_model(services: Services, *, team_id: str, user_id: str, reference: str) -> str:
    """The requester or an admin deletes a team's fine-tuned model; returns the sentence for them."""
    chosen = await resolve_model(services, team_id=team_id, reference=reference)
    async with services.db.session() as session:
        job = await repositories.find_job_by_model(session, team_id=team_id, model=chosen.model)
    if job is None:
        raise NotFound(f"`{escape(chosen.model)}` is not one of the team's fine-tuned models.")
    if job.model_deleted_at is not None:
        return f"`{escape(chosen.model)}` was already deleted on {job.model_deleted_at:%Y-%m-%d}."
    policy.require_owner_or_admin(
        services.settings, user_id, owner=job.requested_by, who="trained it", action=f"delete `{escape(chosen.model)}`"
    )
    try:
        await services.providers.get(job.provider).delete_model(chosen.model)
    except ProviderError as error:
        if error.kind != ProviderErrorKind.NOT_FOUND:
            label = services.providers.label_of(job.provider)
            raise ProviderRefused(
                f"{label} did not delete `{escape(chosen.model)}`: “{escape(error.provider_message)}”"
            ) from None
    now = services.clock.now()
    async with services.db.session() as session, session.begin():
        row = await session.get(TrainingJob, job.id)
        assert row is not None
        row.model_deleted_at = now
        session.add(row)
        await repositories.add_audit_entry(
            session,
            team_id=team_id,
            actor=user_id,
            action="delete",
            subject=f"model:{chosen.model}",
            now=now,
            detail={"job": job.id},
        )
    await services.slack_for(team_id).chat_postMessage(
        channel=job.channel_id,
        thread_ts=job.thread_ts,
        text=f"🗑 <@{user_id}> deleted `{escape(chosen.model)}`. Its training data stays here: `/finetune datasets`.",
    )
    return f"`{escape(chosen.model)}` is deleted."


async def confirmation(services: Services, *, team_id: str, reference: str) -> list[dict[str, object]]:
    """The question before deleting: the model and a button that asks once more."""
    chosen = await resolve_model(services, team_id=team_id, reference=reference)
    async with services.db.session() as session:
        job = await repositories.find_job_by_model(session, team_id=team_id, model=chosen.model)
    if job is None or job.id is None:
        raise NotFound(f"`{escape(chosen.model)}` is not one of the team's fine-tuned models.")
    actions = model_views.model_actions(job.id, chosen.model)
    actions["elements"] = [e for e in actions["elements"] if e["action_id"] == "model_delete"]
    return [slack_blocks.section(f"Delete `{escape(chosen.model)}` (job #{job.id})?"), actions]


logger = logging.getLogger(__name__)

REMINDER_DAYS = (30, 7, 1)


def days_left(retires: date | None, today: date) -> int | None:
    return None if retires is None else (retires - today).days


async def models_blocks(services: Services, *, team_id: str) -> tuple[str, list[dict[str, Any]]]:
    async with services.db.session() as session:
        models = await repositories.list_models(session, team_id=team_id)
    today = services.clock.now().date()
    if not models:
        return "No fine-tuned models yet.", [slack_blocks.section("No fine-tuned models yet. Train one from a report.")]
    lines = [
        model_views.model_line(job, today=today, provider=services.providers.label_of(job.provider)) for job in models
    ]
    return (
        f"{len(models)} fine-tuned model(s)",
        [
            slack_blocks.section("*The team's fine-tuned models*"),
            *(slack_blocks.section(p) for p in slack_blocks.split_text("\n".join(lines))),
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


async def queue_training_reminders(services: Services) -> int:
    """Owe a reminder 30, 7 and 1 days before a provider stops training base models a team has trained
    there: one per provider, team and day, in the approval channel and by DM to each person who trained
    them. Each provider on its own calendar; one that cannot be asked now is asked again next tick."""
    queued = 0
    for provider in services.providers:
        try:
            offered = await services.base_models(provider.name)
        except ProviderError as error:  # its outage is the poller's to report
            logger.info("no end-of-training reminders for %s this tick: %s", provider.name, error.provider_message)
            continue
        queued += await _queue_training_reminders(services, provider.name, provider.label, offered)
    return queued


async def _queue_training_reminders(services: Services, provider: str, label: str, offered: list[BaseModelInfo]) -> int:
    today = services.clock.now().date()
    ending: dict[date, list[str]] = {}
    for model in offered:
        left = days_left(model.training_retires, today)
        if model.training_retires is not None and left is not None and _reminder_key(left) is not None:
            ending.setdefault(model.training_retires, []).append(model.id)
    if not ending:
        return 0
    queued = 0
    async with services.db.session() as session, session.begin():
        trained = await repositories.trainers_at(
            session, provider=provider, base_models=[m for models in ending.values() for m in models]
        )
        for day, models in ending.items():
            key = _reminder_key((day - today).days)
            assert key is not None
            for team_id in sorted({team for team, base, _ in trained if base in models}):
                bases = sorted({base for team, base, _ in trained if team == team_id and base in models})
                people = sorted({user for team, base, user in trained if team == team_id and base in bases})
                queued += await _owe_reminder(
                    services,
                    session,
                    team_id=team_id,
                    subject=f"training:{provider}:{day:%Y-%m-%d}",
                    key=key,
                    dms=[(user, f"{key}:{user}") for user in people],
                    text=model_views.training_reminder_text(label, bases, day=day, left=(day - today).days),
                )
    return queued


async def _owe_reminder(
    services: Services,
    session: Any,
    *,
    team_id: str,
    subject: str,
    key: str,
    dms: list[tuple[str, str]],
    text: str,
) -> int:
    """One reminder, once each: in the approval channel (if any) under ``key``, and by DM to each
    person of ``dms`` under that person's key."""
    approval_channel = services.settings.finetune_approval_channel
    targets = [(NotificationKind.REMINDER, approval_channel, key)] if approval_channel else []
    targets += [(NotificationKind.REMINDER_DM, user, dm_key) for user, dm_key in dms]
    queued = 0
    for kind, channel, once in targets:
        queued += await repositories.enqueue_notification(
            session,
            notification=Notification(
                team_id=team_id,
                subject=subject,
                kind=kind,
                key=once,
                channel_id=channel,
                payload={"text": text},
                created_at=services.clock.now(),
            ),
        )
    return queued


async def queue_reminders(services: Services) -> int:
    """Owe a reminder 30, 7 and 1 days before each live model retires, in the approval channel and by DM."""
    today = services.clock.now().date()
    queued = 0
    async with services.db.session() as session, session.begin():
        for job in await repositories.models_retiring(session, on_or_before=today + timedelta(days=max(REMINDER_DAYS))):
            left = days_left(job.model_retires, today)
            key = _reminder_key(left) if left is not None else None
            if key is None or job.model_retires is None:
                continue
            queued += await _owe_reminder(
                services,
                session,
                team_id=job.team_id,
                subject=f"model:{job.fine_tuned_model}",
                key=key,
                dms=[(job.requested_by, key)],
                text=model_views.reminder_text(job, left=left or 0),
            )
    return queued
