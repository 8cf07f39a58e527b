"""Looking at jobs from Slack: `/finetune status`, `/finetune jobs`, and the cancel confirmation."""

from __future__ import annotations

from typing import Any

from bot import slack_blocks
from bot.errors import NotFound
from bot.mrkdwn import escape
from bot.references import find_job
from bot.services import Services
from bot.training import views
from bot.training.status import ACTIVE
from storage import repositories
from storage.models import Dataset


async def status_blocks(services: Services, *, team_id: str, reference: str | None) -> tuple[str, list[dict[str, Any]]]:
    """One job's card (the newest job when no reference is given)."""
    if reference is None:
        async with services.db.session() as session:
            newest = await repositories.list_jobs(session, team_id=team_id, limit=1)
        if not newest:
            raise NotFound("No jobs yet. Click Train… on a dataset's report to start one.")
        job = newest[0]
    else:
        job = await find_job(services, team_id=team_id, reference=reference)
    async with services.db.session() as session:
        dataset = await session.get(Dataset, job.dataset_id)
    assert dataset is not None
    now = services.clock.now()
    title = f"*Job #{job.id}*"
    card = views.job_card(job, dataset_name=dataset.filename, title=title, now=now)
    if job.error_message:
        card.append(
            slack_blocks.context(f"{services.providers.label_of(job.provider)} said: {escape(job.error_message)}")
        )
    return f"Job #{job.id}: {views.progress_line(job, now=now)}", card


async def jobs_list_blocks(services: Services, *, team_id: str) -> tuple[str, list[dict[str, Any]]]:
    async with services.db.session() as session:
        jobs = await repositories.list_jobs(session, team_id=team_id, limit=15)
        names = {d.id: d.filename for d in await repositories.list_datasets(session, team_id=team_id, limit=200)}
    if not jobs:
        return "No jobs yet.", [slack_blocks.section("No jobs yet. Click Train… on a dataset's report to start one.")]
    now = services.clock.now()
    lines = [
        f"*#{job.id}* `{escape(job.base_model)}` on `{escape(names.get(job.dataset_id, job.dataset_id))}` · "
        f"<@{job.requested_by}> · "
        f"{views.progress_line(job, now=now)}"
        + (f" · {slack_blocks.money(job.actual_cost_usd or job.estimated_cost_usd)}" if job.estimated_cost_usd else "")
        for job in jobs
    ]
    active = sum(1 for job in jobs if job.status in ACTIVE)
    return (
        f"{len(jobs)} recent job(s), {active} active",
        [
            slack_blocks.section(f"*Recent jobs* ({active} active)"),
            *(slack_blocks.section(p) for p in slack_blocks.split_text("\n".join(lines))),
        ],
    )
