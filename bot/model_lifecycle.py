"""A fine-tuned model's end: deleting it at the provider, on purpose and on the record."""

from __future__ import annotations

from bot import blocks, policy
from bot.errors import UserFacingError
from bot.mrkdwn import escape
from bot.providers import ProviderError, ProviderErrorKind
from bot.references import resolve_model
from bot.services import Services
from storage import repositories
from storage.models import TrainingJob


async def delete_model(services: Services, *, team_id: str, user_id: str, reference: str) -> str:
    """The requester or an admin deletes a team's fine-tuned model; returns the sentence for them."""
    chosen = await resolve_model(services, team_id=team_id, reference=reference)
    async with services.db.session() as session:
        job = await repositories.find_job_by_model(session, team_id=team_id, model=chosen.model)
    if job is None:
        raise UserFacingError(f"`{escape(chosen.model)}` is not one of the team's fine-tuned models.")
    if job.model_deleted_at is not None:
        return f"`{escape(chosen.model)}` was already deleted on {job.model_deleted_at:%Y-%m-%d}."
    policy.require_owner_or_admin(
        services.settings, user_id, owner=job.requested_by, who="trained it", action=f"delete `{escape(chosen.model)}`"
    )
    try:
        await services.provider.delete_model(chosen.model)
    except ProviderError as error:
        if error.kind != ProviderErrorKind.NOT_FOUND:
            raise UserFacingError(
                f"{services.provider.label} did not delete `{escape(chosen.model)}`: “{escape(error.provider_message)}”"
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
    await services.slack.chat_postMessage(
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
        raise UserFacingError(f"`{escape(chosen.model)}` is not one of the team's fine-tuned models.")
    actions = blocks.model_actions(job.id, chosen.model)
    actions["elements"] = [e for e in actions["elements"] if e["action_id"] == "model_delete"]
    return [blocks.section(f"Delete `{escape(chosen.model)}` (job #{job.id})?"), actions]
