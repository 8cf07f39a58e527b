"""Two replicas on one PostgreSQL follow 50 jobs: every job polled by one at a time, every message once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.clock import FrozenClock
from bot.services import Services
from sandbox.openai import OpenAIEmulator
from sandbox.slack import SlackEmulator
from tests.conftest import POSTGRES_SKIP_REASON, bot_settings, reset_postgres
from tests.scenarios.scenes import assert_every_milestone_posted_once, follow_to_the_end, seed_jobs

# Subprocesses, real restarts and timed faults: CI runs these; the everyday `./dev test` does not.
pytestmark = pytest.mark.slow

JOBS = 50


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
