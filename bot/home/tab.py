"""What a team lead looks at: the App Home, `/finetune models`, retirement reminders, the audit log, exports."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta

from slack_sdk.errors import SlackApiError

from bot import policy
from bot.home import views as home_views
from bot.models import serving
from bot.models.views import Serving
from bot.services import Services
from storage import repositories
from storage.models import LIVE_DEPLOYMENT

logger = logging.getLogger(__name__)

HOME_VIEWERS_WINDOW = timedelta(days=7)


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
            live = await repositories.deployments_in(session, statuses=LIVE_DEPLOYMENT, team_id=team_id)
        status_of = {row.job_id: row.status for row in live}
        servings: dict[int | None, Serving] = {}
        for job in models:
            fresh = serving.undeployed(services, job)
            if fresh is not None:
                servings[job.id] = replace(fresh, status=status_of.get(job.id or 0, ""))
        names = {dataset.id: dataset.filename for dataset in datasets}
        view = home_views.home_view(
            datasets=datasets,
            jobs=jobs,
            models=models,
            evaluations=[(e, names.get(e.dataset_id, f"dataset #{e.dataset_id}")) for e in evaluations],
            spend=spend,
            budget=services.settings.finetune_monthly_budget_usd,
            pages=pages,
            now=now,
            provider_label=services.providers.label_of,
            retrain=services.providers.several,
            servings=servings,
        )
        await services.slack_for(team_id).views_publish(user_id=user_id, view=view)


async def home_opened(services: Services, *, team_id: str, user_id: str) -> None:
    async with services.db.session() as session, session.begin():
        await repositories.ensure_team(session, team_id=team_id)
        await repositories.record_home_viewer(session, team_id=team_id, user_id=user_id, now=services.clock.now())
    await publish_home(services, team_id=team_id, user_id=user_id)


async def refresh_homes(services: Services, *, team_id: str) -> None:
    """After a change, re-publish the Home of everyone who looked at it this week."""
    async with services.db.session() as session:
        viewers = await repositories.recent_home_viewers(
            session, team_id=team_id, since=services.clock.now() - HOME_VIEWERS_WINDOW
        )
    for user_id in viewers:
        try:
            await publish_home(services, team_id=team_id, user_id=user_id)
        except SlackApiError as error:
            logger.warning("home of %s not refreshed: %s", user_id, error.response.get("error"))
