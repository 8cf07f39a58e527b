"""One tick with 1,000 active jobs against the emulators: provider calls, database statements, wall time.

The baseline, run in the same process, is the irreducible part: asking the provider about each job
once, one after the other, with no database and no Slack. The tick does that and everything else
(events, state, outbox, card edits), so its time is reported as a ratio of the baseline's.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from openai import AsyncOpenAI
from sqlalchemy import event

from bot import notifier, ticks
from bot.clock import FrozenClock
from bot.services import Services
from bot.settings import Settings
from sandbox.openai import OpenAIEmulator, OpenAIState, SandboxClock
from sandbox.slack import SlackEmulator, SlackWorkspace
from storage import repositories
from storage.models import Dataset, TrainingJob

USER, CHANNEL = "U0ALICE", "C0BENCH"


async def _setup(jobs: int, folder: Path) -> tuple[Services, OpenAIEmulator, SlackEmulator, FrozenClock, list[str]]:
    clock = FrozenClock(datetime(2026, 11, 21, 9, 0, tzinfo=UTC))
    openai = await OpenAIEmulator(OpenAIState(clock=SandboxClock(start=clock.now().timestamp()))).start()
    workspace = SlackWorkspace()
    workspace.add_user(USER, "alice")
    workspace.add_channel(CHANNEL, "bench", members=[USER])
    slack = await SlackEmulator(workspace).start()
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        slack_bot_token=workspace.bot_token,
        slack_api_url=slack.api_url,
        openai_api_key=openai.state.api_key,
        openai_base_url=openai.base_url,
        finetune_provider="sandbox",
        finetune_data_dir=folder,
    )
    services = Services.create(settings, clock=clock)
    await services.db.migrate()
    lines = "\n".join(
        f'{{"messages": [{{"role": "user", "content": "q{i}"}}, {{"role": "assistant", "content": "a{i}"}}]}}'
        for i in range(12)
    )
    async with AsyncOpenAI(api_key=openai.state.api_key, base_url=openai.base_url) as sdk:
        training = await sdk.files.create(file=("t.jsonl", lines.encode()), purpose="fine-tune")
        ids = [
            (await sdk.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training.id)).id for _ in range(jobs)
        ]
    async with services.db.session() as session, session.begin():
        await repositories.ensure_team(session, team_id=workspace.team_id)
        root = workspace.user_message(user=USER, channel=CHANNEL, text="data")
        dataset, _ = await repositories.add_dataset(
            session,
            dataset=Dataset(
                team_id=workspace.team_id,
                channel_id=CHANNEL,
                message_ts=root.ts,
                uploaded_by=USER,
                filename="d.jsonl",
                bytes=1,
                sha256="0" * 64,
                valid=True,
            ),
        )
        for index, provider_id in enumerate(ids):
            session.add(
                TrainingJob(
                    team_id=workspace.team_id,
                    dataset_id=dataset.id or 0,
                    request_id=f"r{index}",
                    provider="sandbox",
                    provider_job_id=provider_id,
                    base_model="gpt-4o-mini-2024-07-18",
                    status="validating",
                    requested_by=USER,
                    channel_id=CHANNEL,
                    thread_ts=root.ts,
                    next_poll_at=clock.now(),
                    created_at=clock.now(),
                )
            )
    return services, openai, slack, clock, ids


async def run(jobs: int = 1000) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="finetune-bench-") as scratch:
        services, openai, slack, clock, ids = await _setup(jobs, Path(scratch))
        statements = Counter[str]()

        def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            statements[statement.split()[0].upper()] += 1

        event.listen(services.db.engine.sync_engine, "before_cursor_execute", count)
        try:
            start = time.perf_counter()
            for provider_id in ids:  # the baseline: one provider question per job, in a row
                await services.providers.default.get_job(provider_id)
            baseline = time.perf_counter() - start

            clock.advance(timedelta(seconds=30))
            openai.state.clock.advance(30)
            statements.clear()
            calls_before = len(openai.state.calls)
            start = time.perf_counter()
            polled = await ticks.poll_due_jobs(services, owner="bench", limit=jobs)
            poll_seconds = time.perf_counter() - start
            provider_calls = len(openai.state.calls) - calls_before
            poll_statements = sum(statements.values())
            statements.clear()
            start = time.perf_counter()
            sent = await notifier.deliver_pending(services, limit=jobs)
            deliver_seconds = time.perf_counter() - start
            deliver_statements = sum(statements.values())
        finally:
            await services.aclose()
            await openai.stop()
            await slack.stop()
    return {
        "jobs": polled,
        "provider_calls_per_job": round(provider_calls / polled, 2),
        "poll_seconds": round(poll_seconds, 2),
        "baseline_seconds": round(baseline, 2),
        "poll_vs_baseline": round(poll_seconds / baseline, 2),
        "db_statements_per_job_poll": round(poll_statements / polled, 1),
        "notifications_sent": sent,
        "deliver_seconds": round(deliver_seconds, 2),
        "db_statements_per_notification": round(deliver_statements / max(sent, 1), 1),
    }


def main() -> dict[str, Any]:
    return asyncio.run(run())
