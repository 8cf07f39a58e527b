"""compose.yaml's two replicas, run by hand: two `finetune-bot run` processes on one PostgreSQL.

No container engine runs here, so this starts what compose.yaml starts, with the same command
and the same variables (DATABASE_URL, one FINETUNE_DATA_DIR for both, PORT), against the
emulators on loopback instead of Slack and OpenAI. Slack's requests are spread over the two
replicas in turn, as the proxy does: each dataset is shared through one replica and trained
through the other. Both replicas tick every two seconds on the wall clock; the OpenAI emulator's
time runs 120 times faster, so the jobs end within a minute or so. The run checks that every
job's milestones, result and chart appear exactly once in its thread, and reads each replica's
/metrics to show that both did part of the work. Then both get SIGTERM and must exit 0.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import tempfile
import time
from typing import Any

import aiohttp

from sandbox.driver import SlackDriver
from sandbox.openai import OpenAIEmulator, OpenAIState, SandboxClock
from sandbox.slack import Message, SlackEmulator, SlackWorkspace
from storage.db import Database

CHANNEL, PEOPLE = "C0REPLICAS", ("U0ALICE", "U0BOB")
JOBS = 6
DEFAULT_DATABASE = "postgresql://postgres@127.0.0.1:5432/test"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _dataset(number: int) -> bytes:
    lines = [
        json.dumps(
            {
                "messages": [
                    {"role": "system", "content": f"You answer questions about team {number}."},
                    {"role": "user", "content": f"What is {number} plus {example}?"},
                    {"role": "assistant", "content": f"{number + example}."},
                ]
            }
        )
        for example in range(12)
    ]
    return ("\n".join(lines) + "\n").encode()


class Replica:
    """One `finetune-bot run` process, as compose.yaml starts it; its log lines are kept."""

    def __init__(self, name: str, environment: dict[str, str]) -> None:
        self.name = name
        self.port = int(environment["PORT"])
        self.environment = environment
        self.lines: list[str] = []
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", env=self.environment, stderr=asyncio.subprocess.PIPE
        )
        listening = asyncio.Event()

        async def read() -> None:
            assert self.process is not None and self.process.stderr is not None
            async for raw in self.process.stderr:
                self.lines.append(raw.decode())
                if "listening for Slack" in self.lines[-1]:
                    listening.set()

        self._reader = asyncio.create_task(read())
        await asyncio.wait_for(listening.wait(), timeout=120)

    async def metrics(self, http: aiohttp.ClientSession) -> dict[str, float]:
        async with http.get(f"http://127.0.0.1:{self.port}/metrics") as response:
            text = await response.text()
        samples = {}
        for line in text.splitlines():
            if line.startswith("finetune_") and not line.startswith(("finetune_slack_ack", "finetune_tick")):
                name, value = line.rsplit(" ", 1)
                samples[name] = float(value)
        return samples

    async def stop(self) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.process.wait(), timeout=60)
        if self._reader is not None:
            await self._reader
        return code


def _report(workspace: SlackWorkspace, upload: Message) -> Message | None:
    return next(
        (m for m in workspace.replies_of(CHANNEL, upload.ts) if m.blocks and m.blocks[0]["type"] == "header"), None
    )


def _once_each(workspace: SlackWorkspace, upload: Message) -> dict[str, int]:
    """What the job's thread holds: milestones (statuses the bot saw), results, charts, and repeats."""
    replies = [m for m in workspace.replies_of(CHANNEL, upload.ts) if m.user == workspace.bot_user_id]
    texts = [m.text for m in replies if m.text]
    return {
        "milestones": sum(1 for t in texts if t.startswith("⏳ Job #")),
        "result": sum(1 for t in texts if t.startswith("✅") and "<@" in t),
        "chart": sum(1 for m in replies if m.files),
        "repeated": len(texts) - len(set(texts)),
    }


async def run(database_url: str) -> dict[str, Any]:
    workspace = SlackWorkspace()
    for person in PEOPLE:
        workspace.add_user(person, person.lower())
    workspace.add_channel(CHANNEL, "replicas", members=list(PEOPLE))
    slack = await SlackEmulator(workspace).start()
    openai = await OpenAIEmulator(OpenAIState(clock=SandboxClock(start=time.time(), speed=120))).start()
    database = Database(database_url.replace("postgresql://", "postgresql+asyncpg://", 1))
    async with database.engine.begin() as connection:  # a fresh schema: the replicas migrate it together
        await connection.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
        await connection.exec_driver_sql("CREATE SCHEMA public")
    await database.dispose()
    with tempfile.TemporaryDirectory(prefix="finetune-replicas-") as shared_data:
        environment = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPENAI_", "FINETUNE_"))}
        environment.update(
            SLACK_BOT_TOKEN=workspace.bot_token,
            SLACK_SIGNING_SECRET=workspace.signing_secret,
            SLACK_API_URL=slack.api_url,
            OPENAI_API_KEY=openai.state.api_key,
            OPENAI_BASE_URL=openai.base_url,
            FINETUNE_PROVIDER="sandbox",
            FINETUNE_POLL_SECONDS="2",
            DATABASE_URL=database_url,
            FINETUNE_DATA_DIR=shared_data,
        )
        replicas = [Replica(f"bot-{n}", {**environment, "PORT": str(_free_port())}) for n in (1, 2)]
        started = time.perf_counter()
        await asyncio.gather(*(replica.start() for replica in replicas))
        try:
            async with aiohttp.ClientSession() as http:
                drivers = [
                    SlackDriver(slack, http, bot_url=f"http://127.0.0.1:{replica.port}/slack/events")
                    for replica in replicas
                ]
                uploads = []
                for number in range(JOBS):
                    person = PEOPLE[number % 2]
                    shared_via, trained_via = drivers[number % 2], drivers[(number + 1) % 2]
                    _, upload = await shared_via.upload(person, CHANNEL, f"team-{number}.jsonl", _dataset(number))
                    report = await workspace.wait_for(lambda upload=upload: _report(workspace, upload), timeout=60)
                    modals = len(workspace.views)
                    await trained_via.click(person, report, "dataset_train")
                    await workspace.wait_for(lambda modals=modals: len(workspace.views) > modals or None, timeout=60)
                    modal = next(v for v in reversed(list(workspace.views.values())) if v.kind == "modal")
                    await shared_via.submit_form(person, modal)
                    uploads.append(upload)
                await workspace.wait_for(
                    lambda: all(_once_each(workspace, u)["chart"] for u in uploads) or None, timeout=300
                )
                finished = time.perf_counter() - started
                # One more round of ticks on both: a doubled notification would show up now.
                await asyncio.sleep(5)
                counts = [_once_each(workspace, upload) for upload in uploads]
                metrics = [await replica.metrics(http) for replica in replicas]
        finally:
            codes = [await replica.stop() for replica in replicas]
    await openai.stop()
    await slack.stop()
    every_once = all(
        count["milestones"] >= 1 and count["result"] == count["chart"] == 1 and count["repeated"] == 0
        for count in counts
    )
    figures: dict[str, Any] = {
        "replicas": "2 × `finetune-bot run` (compose.yaml's command and variables), one PostgreSQL",
        "jobs, each shared through one replica and trained through the other": JOBS,
        "all jobs ended and posted after": f"{finished:.1f} s",
        "milestones posted": sum(count["milestones"] for count in counts),
        "each job's milestones, result and chart posted exactly once": every_once,
    }
    for replica, samples in zip(replicas, metrics, strict=True):
        slack_requests = sum(v for k, v in samples.items() if k.startswith("finetune_slack_requests_total"))
        provider_ok = sum(v for k, v in samples.items() if k.startswith('finetune_provider_calls_total{outcome="ok"'))
        figures[f"{replica.name}: Slack requests / provider calls"] = f"{slack_requests:.0f} / {provider_ok:.0f}"
    figures["exit codes after SIGTERM"] = codes
    if not every_once or codes != [0, 0]:
        raise SystemExit(f"two replicas did not share the work cleanly: {counts}, exit codes {codes}")
    return figures


def main() -> dict[str, Any]:
    return asyncio.run(run(os.environ.get("TEST_DATABASE_URL") or DEFAULT_DATABASE))
