"""Two replicas on one PostgreSQL follow 50 jobs: every job polled by one at a time, every message once."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from openai import AsyncOpenAI
from sqlmodel import select

from bot import ticks
from bot.clock import FrozenClock
from bot.jobs import TERMINAL
from bot.services import Services
from sandbox.openai_server import OpenAIEmulator
from sandbox.slack_server import SlackEmulator, SlackWorkspace
from storage import repositories
from storage.models import Dataset, TrainingJob
from tests.conftest import ALICE, GENERAL, POSTGRES_SKIP_REASON, bot_settings, reset_postgres
from tests.sandbox.test_openai_contract import chat_lines

JOBS = 50


async def seed_jobs(
    services: Services, workspace: SlackWorkspace, openai_emulator: OpenAIEmulator, clock: FrozenClock, count: int
) -> dict[int, str]:
    """``count`` jobs the bot is following, each with its provider job and its own thread; {job id: thread ts}."""
    state = openai_emulator.state
    async with AsyncOpenAI(api_key=state.api_key, base_url=openai_emulator.base_url) as sdk:
        training = await sdk.files.create(file=("train.jsonl", chat_lines(12)), purpose="fine-tune")
        provider_ids = [
            (await sdk.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training.id)).id for _ in range(count)
        ]
    threads = {}
    async with services.db.session() as session, session.begin():
        await repositories.ensure_team(session, team_id=workspace.team_id)
        for index, provider_id in enumerate(provider_ids):
            root = workspace.user_message(user=ALICE, channel=GENERAL, text=f"data {index}")
            dataset, _ = await repositories.add_dataset(
                session,
                dataset=Dataset(
                    team_id=workspace.team_id,
                    channel_id=GENERAL,
                    message_ts=root.ts,
                    uploaded_by=ALICE,
                    filename=f"d{index}.jsonl",
                    bytes=10,
                    sha256=f"{index:064d}",
                    valid=True,
                    created_at=clock.now(),
                ),
            )
            job, _ = await repositories.add_job(
                session,
                job=TrainingJob(
                    team_id=workspace.team_id,
                    dataset_id=dataset.id or 0,
                    request_id=f"r{index}",
                    provider="sandbox",
                    provider_job_id=provider_id,
                    base_model="gpt-4o-mini-2024-07-18",
                    status="validating",
                    requested_by=ALICE,
                    channel_id=GENERAL,
                    thread_ts=root.ts,
                    next_poll_at=clock.now(),
                    created_at=clock.now(),
                ),
            )
            threads[job.id or 0] = root.ts
    return threads


async def follow_to_the_end(
    replicas: list[Services], clock: FrozenClock, openai_emulator: OpenAIEmulator, *, jobs: int
) -> None:
    """Tick every replica at once, 30 s apart, until every job has ended and every message is posted.

    No job may be polled by two replicas in the same round."""
    state = openai_emulator.state

    async def all_done() -> bool:
        async with replicas[0].db.session() as session:
            listed = await repositories.list_jobs(session, team_id=team_id, limit=jobs)
            pending = await repositories.pending_notifications(session, now=clock.now())
        return all(job.status in TERMINAL for job in listed) and not pending

    async with replicas[0].db.session() as session:
        team_id = (await session.exec(select(TrainingJob.team_id))).first() or ""
    for _ in range(200):
        if await all_done():
            return
        clock.advance(timedelta(seconds=30))
        state.clock.advance(30)
        calls_before = len(state.calls)
        await asyncio.gather(*(ticks.tick(services, owner=f"replica-{i}") for i, services in enumerate(replicas)))
        polled = Counter(
            path
            for method, path in state.calls[calls_before:]
            if method == "GET" and path.count("/") == 4 and "/jobs/ftjob-" in path
        )
        assert not polled or max(polled.values()) == 1, "no job is polled twice in one round"
    raise AssertionError("the jobs never all finished")


def assert_every_milestone_posted_once(workspace: SlackWorkspace, threads: dict[int, str]) -> None:
    for job_id, thread_ts in threads.items():
        texts = [m.text for m in workspace.replies_of(GENERAL, thread_ts)]
        assert texts.count(f"⏳ Job #{job_id} is queued.") == 1, texts
        assert texts.count(f"⏳ Job #{job_id} is running.") == 1, texts
        assert sum(1 for text in texts if text.startswith("✅") and "<@" in text) == 1, texts
        assert sum(1 for m in workspace.replies_of(GENERAL, thread_ts) if m.files) == 1, "one chart"


async def test_two_replicas_follow_50_jobs_exactly_once(
    tmp_path: Path, slack: SlackEmulator, openai_emulator: OpenAIEmulator, clock: FrozenClock
) -> None:
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        pytest.skip(POSTGRES_SKIP_REASON)
    await reset_postgres(url.replace("postgresql://", "postgresql+asyncpg://", 1))
    settings = bot_settings(tmp_path, slack, openai_emulator, socket_mode=False, database_url=url)
    replicas = [Services.create(settings, clock=clock) for _ in range(2)]
    await replicas[0].db.migrate()
    threads = await seed_jobs(replicas[0], slack.workspace, openai_emulator, clock, JOBS)
    await follow_to_the_end(replicas, clock, openai_emulator, jobs=JOBS)
    assert_every_milestone_posted_once(slack.workspace, threads)
    for services in replicas:
        await services.aclose()
