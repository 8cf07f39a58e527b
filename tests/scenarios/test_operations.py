"""Operating the bot: Prometheus metrics, JSON logs with request ids, and a graceful SIGTERM."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import signal
import socket
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlmodel import select

from bot import ticks
from bot.clock import FrozenClock
from bot.logging import JsonLines, RedactSecrets, request_id
from sandbox.slack import SlackEmulator
from storage.models import Evaluation, EvaluationAnswer, TrainingJob
from tests.conftest import ALICE, GENERAL, BotUnderTest
from tests.scenarios.scenes import confirmation_for, held_out_file, marv_file, shared_report, trained

# Subprocesses, real restarts and timed faults: CI runs these; the everyday `./dev test` does not.
pytestmark = pytest.mark.slow


def sample(metrics: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus' text format (0 when absent)."""
    label_text = ",".join(f'{key}="{value}"' for key, value in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(label_text) + r"\}" if labels else "") + r" ([0-9.e+-]+)"
    found = re.search(pattern, metrics)
    return float(found.group(1)) if found else 0.0


async def scrape(bot: BotUnderTest) -> str:
    async with aiohttp.ClientSession() as http, http.get(f"{bot.base_url}/metrics") as response:
        assert response.status == 200 and response.content_type == "text/plain"
        return await response.text()


async def test_metrics_count_requests_acks_provider_calls_jobs_and_ticks(
    http_bot: BotUnderTest, clock: FrozenClock, tmp_path: Path
) -> None:
    before = await scrape(http_bot)
    assert sample(before, "finetune_slack_requests_total", kind="command") == 0
    await http_bot.driver.slash_command(ALICE, GENERAL, "help")
    await http_bot.workspace.wait_for(lambda: http_bot.workspace.ephemerals_for(ALICE))
    job, _ = await trained(http_bot, clock, marv_file(tmp_path))
    metrics = await scrape(http_bot)
    assert sample(metrics, "finetune_slack_requests_total", kind="command") == 1
    assert sample(metrics, "finetune_slack_requests_total", kind="event:file_shared") == 1
    assert sample(metrics, "finetune_slack_requests_total", kind="block_actions") >= 1
    acked = sample(metrics, "finetune_slack_ack_seconds_count")
    assert acked >= 4 and sample(metrics, "finetune_slack_ack_seconds_bucket", le="3.0") == acked, "all within 3 s"
    assert sample(metrics, "finetune_provider_calls_total", outcome="ok", provider="sandbox") >= 3, (
        "upload, create, polls"
    )
    assert sample(metrics, "finetune_tick_seconds_count") >= 1
    assert sample(metrics, "finetune_active_jobs") == 0, "the job has finished"
    http_bot.openai.state.inject("*", rate_429=1.0)
    async with http_bot.services.db.session() as session:
        row = await session.get(TrainingJob, job.id)
        assert row is not None
        row.status, row.next_poll_at = "running", clock.now()
        session.add(row)
        await session.commit()
    await ticks.tick(http_bot.services, owner="a")
    metrics = await scrape(http_bot)
    assert sample(metrics, "finetune_provider_calls_total", outcome="rate_limited", provider="sandbox") >= 1
    assert sample(metrics, "finetune_active_jobs") == 1


def test_json_log_lines_carry_the_request_id_and_never_a_secret() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLines())
    handler.addFilter(RedactSecrets())
    logger = logging.getLogger("test.json")
    logger.addHandler(handler)
    logger.propagate = False
    token = request_id.set("Ev123")
    try:
        logger.warning("token %s refused", "xoxb-1234-abcd")
        try:
            raise RuntimeError("sk-proj-ABCDEFGH12345678 leaked")
        except RuntimeError:
            logger.exception("failed")
    finally:
        request_id.reset(token)
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "token [redacted] refused" and first["request_id"] == "Ev123"
    assert first["level"] == "WARNING" and first["time"].endswith("+00:00")
    assert "sk-proj" not in second["exception"] and "[redacted]" in second["exception"]


async def evaluation_rows(bot: BotUnderTest) -> tuple[Evaluation, list[EvaluationAnswer]]:
    async with bot.services.db.session() as session:
        evaluation = (await session.exec(select(Evaluation))).one()
        answers = list((await session.exec(select(EvaluationAnswer))).all())
    return evaluation, answers


async def start_slow_evaluation(bot: BotUnderTest, clock: FrozenClock, tmp_path: Path) -> None:
    job, _ = await trained(bot, clock, marv_file(tmp_path))
    await shared_report(bot, held_out_file(tmp_path), name="marv-heldout.jsonl")
    await bot.driver.slash_command(ALICE, GENERAL, f"eval #{job.id} marv-heldout.jsonl")
    confirmation = await confirmation_for(bot, ALICE)
    bot.openai.state.inject("POST /chat/completions", delay_seconds=0.1)
    await bot.driver.click_ephemeral(confirmation, "eval_confirm")
    await bot.openai.state.wait_for_chats(2)


async def test_sigterm_finishes_in_flight_work_then_frees_its_leases(
    bot_factory: Any, clock: FrozenClock, tmp_path: Path
) -> None:
    bot = await bot_factory(shutdown_grace_seconds=30)
    await start_slow_evaluation(bot, clock, tmp_path)
    await bot.running.shutdown(bot.services)
    evaluation, answers = await evaluation_rows(bot)
    assert evaluation.status == "done" and len(answers) == 20, "the work in flight was finished"
    assert evaluation.lease_owner is None
    async with aiohttp.ClientSession() as http:
        try:
            async with http.get(f"{bot.base_url}/healthz") as response:
                refused = response.status >= 500
        except aiohttp.ClientConnectionError:
            refused = True
    assert refused, "no new requests after shutdown"


async def test_work_cut_off_by_the_grace_period_is_resumed_at_once_elsewhere(
    bot_factory: Any, clock: FrozenClock, tmp_path: Path
) -> None:
    bot = await bot_factory(shutdown_grace_seconds=0)
    await start_slow_evaluation(bot, clock, tmp_path)
    await bot.running.shutdown(bot.services)
    evaluation, answers = await evaluation_rows(bot)
    assert evaluation.status == "running" and len(answers) < 20
    assert evaluation.lease_owner is None, "freed, not left to expire in 5 minutes"
    bot.openai.state.faults.clear()
    other = await bot_factory()
    await ticks.tick(other.services, owner="replica-b")  # no clock moved: the lease was released
    evaluation, answers = await evaluation_rows(other)
    assert evaluation.status == "done" and len(answers) == 20
    assert clock.now() - evaluation.created_at < timedelta(minutes=5)


async def test_the_run_command_stops_cleanly_on_sigterm(slack: SlackEmulator, tmp_path: Path) -> None:
    """The real process: `finetune-bot run` in HTTP mode, healthy, then SIGTERM: exit 0, a JSON goodbye."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPENAI_", "FINETUNE_"))}
    environment.update(
        SLACK_BOT_TOKEN=slack.workspace.bot_token,
        SLACK_SIGNING_SECRET=slack.workspace.signing_secret,
        SLACK_API_URL=slack.api_url,
        FINETUNE_PROVIDER="sandbox",
        FINETUNE_DATA_DIR=str(tmp_path),
        PORT=str(port),
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", env=environment, stderr=asyncio.subprocess.PIPE
    )
    seen: list[str] = []
    try:
        assert process.stderr is not None
        # Ready when it says where it listens (no polling): every line before that is kept for the checks.
        while not any("listening for Slack" in line for line in seen):
            line = await asyncio.wait_for(process.stderr.readline(), timeout=60)
            assert line, f"the bot exited before listening: {seen}"
            seen.append(line.decode())
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/readyz") as response:
            assert response.status == 200
        process.send_signal(signal.SIGTERM)
        _, rest = await asyncio.wait_for(process.communicate(), timeout=30)
        stderr = "".join(seen) + rest.decode()
    finally:
        if process.returncode is None:
            process.kill()
    assert process.returncode == 0
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert any(line["message"].startswith("stopped: in-flight work finished") for line in lines), stderr
    assert slack.workspace.bot_token not in stderr
