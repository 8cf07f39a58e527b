"""Team rules: who may train, who decides, and when a job needs an admin's approval first."""

from __future__ import annotations

import logging
from datetime import datetime

from slack_sdk.errors import SlackApiError

from bot.errors import NotAllowed
from bot.services import Services
from bot.settings import Settings
from bot.training.status import JobStatus
from storage import repositories

logger = logging.getLogger(__name__)

# Jobs that never reached the provider cost nothing, so they do not count against the budget.
NOT_SPENT = (JobStatus.AWAITING_APPROVAL, JobStatus.DENIED, JobStatus.NOT_STARTED)


def is_admin(settings: Settings, user_id: str) -> bool:
    return user_id in settings.admins


def may_act_on(settings: Settings, user_id: str, *, owner: str) -> bool:
    """The one rule for what belongs to someone (a job, a model, a dataset): its owner, or an admin.

    A request that names no user (a malformed one) never passes for the owner of a row that names none."""
    return (bool(owner) and user_id == owner) or is_admin(settings, user_id)


def require_owner_or_admin(settings: Settings, user_id: str, *, owner: str, who: str, action: str) -> None:
    """Refuse, naming the owner, unless ``may_act_on``: "Only <@owner>, who ``who``, or an admin can ``action``"."""
    if not may_act_on(settings, user_id, owner=owner):
        raise NotAllowed(f"Only <@{owner}>, who {who}, or an admin can {action}.")


async def may_train(services: Services, user_id: str, *, team_id: str) -> bool:
    """FINETUNE_TRAINERS lists user ids (U…/W…) and user-group ids (S…); empty means everyone."""
    trainers = services.settings.finetune_trainers
    if not trainers or user_id in trainers or is_admin(services.settings, user_id):
        return True
    for group in (entry for entry in trainers if entry.startswith("S")):
        try:
            members = (await services.slack_for(team_id).usergroups_users_list(usergroup=group)).get("users") or []
        except SlackApiError as error:
            logger.warning("cannot read user group %s: %s", group, error.response.get("error"))
            continue
        if user_id in members:
            return True
    return False


def month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


async def approval_reason(services: Services, *, team_id: str, estimate: float | None) -> str | None:
    """Why this job needs an admin's approval, or None when it may start right away."""
    settings = services.settings
    threshold = settings.finetune_approval_threshold_usd
    budget = settings.finetune_monthly_budget_usd
    if threshold is None and budget is None:
        return None
    if estimate is None:
        return "its cost cannot be estimated (no price is known for this model)"
    if threshold is not None and estimate > threshold:
        return f"the estimate (${estimate:,.2f}) is over the ${threshold:,.2f} per-job threshold"
    if budget is not None:
        async with services.db.session() as session:
            spent = await repositories.committed_spend(
                session, team_id=team_id, since=month_start(services.clock.now()), exclude=NOT_SPENT
            )
        if spent + estimate > budget:
            return (
                f"it would bring this month's training spend to ${spent + estimate:,.2f}, "
                f"over the ${budget:,.2f} monthly budget (${spent:,.2f} committed so far)"
            )
    return None
