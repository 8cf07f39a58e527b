"""Fault tests: Slack's retries at volume, a replica killed mid-tick, PostgreSQL restarted under load.

Each runs on loopback against the emulators, bounded in time, with two replicas sharing one
database (PostgreSQL when TEST_DATABASE_URL is set, else one SQLite file). Each prints its figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlmodel import col, func, select

from bot import ticks
from bot.clock import FrozenClock
from bot.services import Services
from bot.training.launch import START_LEASE
from bot.training.status import ACTIVE, JobStatus
from sandbox.driver import SlackDriver
from sandbox.openai import SANDBOX_MODELS, OpenAIEmulator
from sandbox.slack import Message, SlackEmulator, SlackWorkspace
from storage.models import Notification, SlackEvent, TrainingJob
from tests.conftest import ALICE, BOB, GENERAL, POSTGRES_SKIP_REASON, BotUnderTest, bot_settings, reset_postgres
from tests.scenarios.scenes import (
    answers,
    assert_every_milestone_posted_once,
    follow_to_the_end,
    seed_jobs,
)

# Subprocesses, real restarts and timed faults: CI runs these; the everyday `./dev test` does not.
pytestmark = pytest.mark.slow

EVENTS = 1000
THREADS = 20
IN_FLIGHT = 50
JOBS = 12
SIGTERM_JOBS = 4
SOCKET_QUESTIONS = 50
# Slack retries an event it got no 200 for; the real spacing is minutes, here it is seconds.
RETRY_DELAYS = (1.0, 2.0, 4.0)
QUESTIONS_UNDER_RESTART = 100
REFUSALS_DURING_OUTAGE = 10
ARRIVAL_GAP = 1 / 20  # a steady stream of 20 questions a second


async def shared_database(tmp_path: Path) -> str:
    """One database for every replica of a test: PostgreSQL when the suite has one, else a SQLite file."""
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        return f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    await reset_postgres(url.replace("postgresql://", "postgresql+asyncpg://", 1))
    return url


def chat_roots_posted(bot: BotUnderTest) -> list[Message]:
    return [m for m in bot.workspace.channel_messages(GENERAL) if m.text.startswith("💬 Chat with")]


async def chat_roots(bot: BotUnderTest, count: int) -> list[Message]:
    for _ in range(count):
        await bot.driver.slash_command(ALICE, GENERAL, "chat gpt-4o-mini")
    found: list[Message] = await bot.workspace.wait_for(
        lambda: (len(roots := chat_roots_posted(bot)) == count and roots) or None
    )
    return found


async def test_a_thousand_events_delivered_up_to_three_times_act_once(
    bot_factory: Any, clock: FrozenClock, tmp_path: Path
) -> None:
    """Every event is a question in a chat thread, delivered 1–3 times (retries with Slack's retry headers),
    shuffled and spread over two replicas as a load balancer would: each question is answered once."""
    url = await shared_database(tmp_path)
    # Several replicas need PostgreSQL (README, Deploy); on SQLite one replica takes every delivery.
    count = 2 if url.startswith("postgresql") else 1
    replicas: list[BotUnderTest] = [await bot_factory(database_url=url) for _ in range(count)]
    workspace, openai = replicas[0].workspace, replicas[0].openai
    roots = await chat_roots(replicas[0], THREADS)
    questions = [
        workspace.user_message(
            user=(ALICE, BOB)[index % 2],
            channel=GENERAL,
            text=f"Question {index}?",
            thread_ts=roots[index % THREADS].ts,
        )
        for index in range(EVENTS)
    ]
    envelopes = [replicas[0].driver.message_envelope(question) for question in questions]
    deliveries = [(envelope, attempt) for index, envelope in enumerate(envelopes) for attempt in range(1 + index % 3)]
    random.Random(20261121).shuffle(deliveries)
    slots = asyncio.Semaphore(IN_FLIGHT)

    async def deliver(number: int, envelope: dict[str, Any], attempt: int) -> int:
        async with slots:
            delivery = await replicas[number % count].driver.deliver_envelope(envelope, retry_num=attempt)
            return delivery.status

    started = time.perf_counter()
    statuses = await asyncio.gather(*(deliver(n, *delivery) for n, delivery in enumerate(deliveries)))
    acked = time.perf_counter() - started
    assert Counter(statuses) == {200: len(deliveries)}
    await workspace.wait_for(
        lambda: all(len(answers(replicas[0], root)) >= EVENTS // THREADS for root in roots) or None, timeout=300
    )
    for replica in replicas:  # whatever a duplicate would have started has had its chance to finish
        assert await replica.services.drain(timeout=60) == 0
    answered = time.perf_counter() - started

    asked = Counter(request["messages"][-1]["content"] for request in openai.state.chat_requests)
    assert asked == {f"Question {index}?": 1 for index in range(EVENTS)}, "each question went to the model once"
    assert [len(answers(replicas[0], root)) for root in roots] == [EVENTS // THREADS] * THREADS
    async with replicas[0].services.db.session() as session:
        claimed = await session.exec(
            select(func.count()).where(col(SlackEvent.event_id).in_([e["event_id"] for e in envelopes]))
        )
        assert claimed.one() == EVENTS
    print(
        f"\n{EVENTS} events, {len(deliveries)} deliveries over {count} replica(s): all acked 200 in {acked:.1f} s, "
        f"{EVENTS} answers and {len(openai.state.chat_requests)} model calls after {answered:.1f} s; 0 duplicates"
    )


async def test_socket_mode_replicas_share_the_events_and_act_once(
    bot_factory: Any, clock: FrozenClock, tmp_path: Path
) -> None:
    """Two replicas in Socket Mode: Slack spreads envelopes over both connections, a retry may reach the
    other replica, and each question is still answered once."""
    url = await shared_database(tmp_path)
    if not url.startswith("postgresql"):
        pytest.skip(POSTGRES_SKIP_REASON)
    replicas: list[BotUnderTest] = [await bot_factory(socket_mode=True, database_url=url) for _ in range(2)]
    slack, openai = replicas[0].slack, replicas[0].openai
    await slack.wait_connected()
    assert len(slack.sockets) == 2
    roots = await chat_roots(replicas[0], 2)
    questions = [
        slack.workspace.user_message(user=ALICE, channel=GENERAL, text=f"Question {n}?", thread_ts=roots[n % 2].ts)
        for n in range(SOCKET_QUESTIONS)
    ]
    for question in questions:  # every question twice: the first delivery and Slack's retry
        envelope = replicas[0].driver.message_envelope(question)
        for attempt in (0, 1):
            await replicas[0].driver.deliver_envelope(envelope, retry_num=attempt)
    await slack.workspace.wait_for(
        lambda: sum(len(answers(replicas[0], root)) for root in roots) >= SOCKET_QUESTIONS or None, timeout=120
    )
    for replica in replicas:
        assert await replica.services.drain(timeout=60) == 0
    asked = Counter(request["messages"][-1]["content"] for request in openai.state.chat_requests)
    assert asked == {f"Question {n}?": 1 for n in range(SOCKET_QUESTIONS)}
    assert sorted(slack.envelopes_per_socket.values()) == [SOCKET_QUESTIONS + 1, SOCKET_QUESTIONS + 1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def run_replica(
    slack: SlackEmulator,
    openai_emulator: OpenAIEmulator,
    database_url: str,
    data_dir: Path,
    *,
    port: int | None = None,
    stderr: int = asyncio.subprocess.DEVNULL,
    **settings: str,
) -> asyncio.subprocess.Process:
    """`finetune-bot run` as its own process, in HTTP mode, ticking every second on the wall clock."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPENAI_", "FINETUNE_"))}
    environment.update(
        SLACK_BOT_TOKEN=slack.workspace.bot_token,
        SLACK_SIGNING_SECRET=slack.workspace.signing_secret,
        SLACK_API_URL=slack.api_url,
        OPENAI_API_KEY=openai_emulator.state.api_key,
        OPENAI_BASE_URL=openai_emulator.base_url,
        FINETUNE_PROVIDER="sandbox",
        FINETUNE_POLL_SECONDS="1",
        FINETUNE_DATA_DIR=str(data_dir),
        DATABASE_URL=database_url,
        PORT=str(port or free_port()),
        **settings,
    )
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "run", env=environment, stderr=stderr)


@dataclass
class Replica:
    """A real bot process that people reach over HTTP, to be killed with SIGKILL mid-work."""

    process: asyncio.subprocess.Process
    driver: SlackDriver
    log: list[str]
    logged: asyncio.Condition
    _reader: asyncio.Task[None]

    async def wait_for_line(self, text: str, *, timeout: float = 30) -> str:
        """The first line of its log that contains ``text``, once it is written."""

        async def line() -> str:
            async with self.logged:
                while not (found := next((line for line in self.log if text in line), None)):
                    await self.logged.wait()
                return found

        return await asyncio.wait_for(line(), timeout)

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()
        await self._reader


async def start_replica(
    slack: SlackEmulator,
    openai_emulator: OpenAIEmulator,
    database_url: str,
    data_dir: Path,
    http_session: aiohttp.ClientSession,
    **settings: str,
) -> Replica:
    """Start `finetune-bot run` and return once it says it listens (its log is read, never polled)."""
    port = free_port()
    process = await run_replica(
        slack, openai_emulator, database_url, data_dir, port=port, stderr=asyncio.subprocess.PIPE, **settings
    )
    assert process.stderr is not None
    stream = process.stderr
    log: list[str] = []
    logged = asyncio.Condition()

    async def read() -> None:  # keeps the pipe drained for the process's whole life
        while line := await stream.readline():
            async with logged:
                log.append(line.decode())
                logged.notify_all()

    driver = SlackDriver(slack, http_session, bot_url=f"http://127.0.0.1:{port}/slack/events")
    replica = Replica(process, driver, log, logged, asyncio.create_task(read()))
    try:
        await replica.wait_for_line("listening for Slack", timeout=60)
    except TimeoutError:
        await replica.kill()
        raise AssertionError(f"the bot did not start: {log}") from None
    return replica


async def restarted_bot(
    tmp_path: Path, slack: SlackEmulator, openai_emulator: OpenAIEmulator, url: str, data_dir: Path
) -> tuple[Services, FrozenClock]:
    """The bot after a restart, with its clock just past every lease the killed process held."""
    clock = FrozenClock(datetime.now(UTC) + START_LEASE + timedelta(minutes=1))
    settings = bot_settings(
        tmp_path, slack, openai_emulator, socket_mode=False, database_url=url, finetune_data_dir=data_dir
    )
    services = Services.create(settings, clock=clock)
    await services.db.migrate()
    return services, clock


def thread_of(workspace: SlackWorkspace, message: Message) -> list[Message]:
    return workspace.replies_of(message.channel, message.ts)


@pytest.mark.parametrize(
    ("endpoint", "before_work"),
    [("POST /files", True), ("POST /fine_tuning/jobs", False)],
    ids=["killed-during-the-upload", "killed-while-the-create-was-in-flight"],
)
async def test_a_bot_killed_while_starting_a_job_settles_it_after_a_restart(
    tmp_path: Path,
    slack: SlackEmulator,
    openai_emulator: OpenAIEmulator,
    http_session: aiohttp.ClientSession,
    shared_data: Path,
    endpoint: str,
    before_work: bool,
) -> None:
    """kill -9 between "job row written" and "provider job recorded". After the restart a tick looks the
    request id up at the provider: a job that exists is adopted (its card posted once), one that does not is
    marked not started and the requester is told in the thread; nothing stays `starting`."""
    url, data_dir = await shared_database(tmp_path), tmp_path / "data"
    workspace = slack.workspace
    # The bot runs on the wall clock, which may be any date: its provider offers models that never retire.
    openai_emulator.state.base_models = {model.id: model for model in SANDBOX_MODELS}
    victim = await start_replica(slack, openai_emulator, url, data_dir, http_session)
    held = openai_emulator.state.hold(endpoint, before_work=before_work)
    try:
        content = (shared_data / "gsm8k_chat_validation.jsonl").read_bytes()
        _, shared = await victim.driver.upload(ALICE, GENERAL, "gsm8k.jsonl", content)
        report = await workspace.wait_for(
            lambda: next((m for m in thread_of(workspace, shared) if m.blocks and "Train" in str(m.blocks)), None),
            timeout=60,
        )
        await victim.driver.click(ALICE, report, "dataset_train")
        modal = await workspace.wait_for(lambda: next((v for v in workspace.views.values() if v.kind == "modal"), None))
        await victim.driver.submit_form(ALICE, modal)
        await asyncio.wait_for(held.reached.wait(), timeout=60)
    finally:
        await victim.kill()
    held.released.set()
    created_at_provider = len(openai_emulator.state.jobs)
    assert created_at_provider == (0 if before_work else 1)

    restarted, _ = await restarted_bot(tmp_path, slack, openai_emulator, url, data_dir)
    try:
        async with restarted.db.session() as session:
            [stuck] = (await session.exec(select(TrainingJob))).all()
        assert stuck.status == JobStatus.STARTING, "the kill came before the provider's job was recorded"
        before = len(thread_of(workspace, shared))
        await ticks.tick(restarted, owner=restarted.owner)
        await ticks.tick(restarted, owner=restarted.owner)  # a second tick finds nothing left to settle
        async with restarted.db.session() as session:
            [job] = (await session.exec(select(TrainingJob))).all()
        told = [m.text for m in thread_of(workspace, shared)[before:]]
        if before_work:
            assert (job.status, job.provider_job_id) == (JobStatus.NOT_STARTED, None)
            assert len(told) == 1 and told[0].startswith(f"❌ <@{ALICE}>, job #{job.id}"), told
            assert "interrupted" in told[0] and "has no job for it" in told[0] and "Train…" in told[0]
        else:
            [at_provider] = openai_emulator.state.jobs.values()
            assert job.provider_job_id == at_provider.id and job.status in ACTIVE
            assert len(told) == 1 and told[0].startswith("🚀 Training started"), told
            assert job.progress_message_ts is not None
        assert len(openai_emulator.state.jobs) == created_at_provider, "nothing was created twice"
    finally:
        await restarted.aclose()
    print(f"\n{endpoint} held, bot killed: the restart settled the job as {job.status}")


async def test_a_bot_killed_mid_download_resumes_the_intake_after_a_restart(
    tmp_path: Path,
    slack: SlackEmulator,
    openai_emulator: OpenAIEmulator,
    http_session: aiohttp.ClientSession,
    shared_data: Path,
) -> None:
    """kill -9 with half of a shared file received: after the restart a tick resumes the intake, so the file
    gets its one report and loses its 👀, instead of keeping 👀 for ever with no answer."""
    url, data_dir = await shared_database(tmp_path), tmp_path / "data"
    workspace = slack.workspace
    victim = await start_replica(slack, openai_emulator, url, data_dir, http_session)
    downloading = workspace.hold("files.download")
    try:
        content = (shared_data / "gsm8k_chat_validation.jsonl").read_bytes()
        _, shared = await victim.driver.upload(ALICE, GENERAL, "gsm8k.jsonl", content)
        await asyncio.wait_for(downloading.reached.wait(), timeout=60)
    finally:
        await victim.kill()
    downloading.released.set()
    assert "eyes" in shared.reactions and thread_of(workspace, shared) == []

    restarted, _ = await restarted_bot(tmp_path, slack, openai_emulator, url, data_dir)
    try:
        await ticks.tick(restarted, owner=restarted.owner)
        assert await restarted.drain(timeout=60) == 0
        await ticks.tick(restarted, owner=restarted.owner)  # nothing left to resume
        assert await restarted.drain(timeout=60) == 0
    finally:
        await restarted.aclose()
    [report] = thread_of(workspace, shared)
    assert report.blocks and report.blocks[0]["type"] == "header" and "gsm8k.jsonl" in report.text
    assert set(shared.reactions) == {"white_check_mark"}, shared.reactions
    print(f"\nkilled mid-download; the restart answered with one report and {set(shared.reactions)}")


async def survivor_following(
    tmp_path: Path, slack: SlackEmulator, openai_emulator: OpenAIEmulator, url: str, jobs: int
) -> tuple[Services, FrozenClock, dict[int, str]]:
    """The replica that stays up, following ``jobs`` jobs that have news for the first tick to post.

    Its clock starts on the wall clock, which the other replica's leases are on."""
    clock = FrozenClock(datetime.now(UTC))
    survivor = Services.create(
        bot_settings(tmp_path, slack, openai_emulator, socket_mode=False, database_url=url), clock=clock
    )
    await survivor.db.migrate()
    threads = await seed_jobs(survivor, slack.workspace, openai_emulator, clock, jobs)
    openai_emulator.state.clock.advance(30)  # the jobs are queued now: the first tick has news to post
    return survivor, clock, threads


async def test_a_replica_killed_mid_tick_loses_and_doubles_nothing(
    tmp_path: Path, slack: SlackEmulator, openai_emulator: OpenAIEmulator
) -> None:
    """kill -9 of a replica while its tick posts: Slack has the message, the replica never recorded it.

    The surviving replica takes the work over once the leases expire: every milestone, result and
    chart of every job appears exactly once in its thread."""
    url = await shared_database(tmp_path)
    survivor, clock, threads = await survivor_following(tmp_path, slack, openai_emulator, url, JOBS)
    posting = slack.workspace.hold("chat.postMessage", after=2)
    victim = await run_replica(slack, openai_emulator, url, tmp_path / "victim")
    try:
        await asyncio.wait_for(posting.reached.wait(), timeout=90)
        victim.kill()
        await victim.wait()
    finally:
        if victim.returncode is None:
            victim.kill()
    posting.released.set()
    async with survivor.db.session() as session:
        caught = (await session.exec(select(Notification.status, func.count()).group_by(Notification.status))).all()
    assert dict(caught).get("sending") == 1, f"killed between posting and recording: {caught}"
    assert len(slack.workspace.bot_messages(GENERAL)) == 3, "two posted and recorded, one posted only"

    await follow_to_the_end([survivor], clock, openai_emulator, jobs=JOBS)
    assert_every_milestone_posted_once(slack.workspace, threads)
    await survivor.aclose()
    print(f"\nkilled mid-tick with {dict(caught)} notifications; the survivor posted each of {JOBS} jobs' once")


@pytest.mark.parametrize("finishes_in_time", [True, False], ids=["within-the-grace-period", "cut-off"])
async def test_sigterm_mid_tick_lets_the_tick_finish_or_frees_what_it_cut_off(
    tmp_path: Path,
    slack: SlackEmulator,
    openai_emulator: OpenAIEmulator,
    http_session: aiohttp.ClientSession,
    finishes_in_time: bool,
) -> None:
    """SIGTERM while a tick posts: the tick gets the grace period like any in-flight work. If it finishes,
    nothing is cut off; if not, the post it was making is handed back at once (not in two minutes), the
    leases it held are freed, and the goodbye line counts both truthfully."""
    url = await shared_database(tmp_path)
    survivor, clock, threads = await survivor_following(tmp_path, slack, openai_emulator, url, SIGTERM_JOBS)
    posting = slack.workspace.hold("chat.postMessage", after=2)
    grace = "20" if finishes_in_time else "1"
    victim = await start_replica(
        slack, openai_emulator, url, tmp_path / "victim", http_session, SHUTDOWN_GRACE_SECONDS=grace
    )
    try:
        await asyncio.wait_for(posting.reached.wait(), timeout=90)
        victim.process.send_signal(signal.SIGTERM)
        await victim.wait_for_line("shutting down")
        if finishes_in_time:
            posting.released.set()
        goodbye = json.loads(await victim.wait_for_line("stopped: in-flight work finished"))["message"]
        assert await asyncio.wait_for(victim.process.wait(), timeout=30) == 0
    finally:
        await victim.kill()
    posting.released.set()
    log = "".join(victim.log)
    assert "Traceback" not in log and "CancelledError" not in log, log
    async with survivor.db.session() as session:
        sending = (await session.exec(select(Notification).where(Notification.status == "sending"))).all()
        leased = (await session.exec(select(TrainingJob).where(col(TrainingJob.lease_owner).is_not(None)))).all()
    assert leased == [], "every job lease the victim held is free"
    if finishes_in_time:
        assert "(0 cut off after 20 s)" in goodbye, goodbye
        assert sending == []
    else:
        assert "(1 cut off after 1 s)" in goodbye, goodbye
        [handed_back] = sending
        assert handed_back.claimed_by is None and handed_back.claimed_until is not None
        assert handed_back.claimed_until < datetime.now(UTC), "deliverable at once, not in two minutes"
        released = int(goodbye.rsplit("; ", 1)[1].split()[0])
        assert released >= 1, goodbye
    await follow_to_the_end([survivor], clock, openai_emulator, jobs=SIGTERM_JOBS)
    assert_every_milestone_posted_once(slack.workspace, threads)
    await survivor.aclose()
    print(f"\nSIGTERM mid-tick: {goodbye}")


def cluster_version() -> str:
    versions = sorted(Path("/etc/postgresql").glob("*"))
    if not versions:
        pytest.skip("the PostgreSQL server is not managed by pg_ctlcluster here, so the test cannot restart it")
    return versions[-1].name


async def pg_ctlcluster(version: str, action: str) -> None:
    """Stop (fast: open connections are cut) or start the PostgreSQL server the suite uses."""
    extra = ("-m", "fast") if action == "stop" else ()
    control = await asyncio.create_subprocess_exec(
        "pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action, *extra
    )
    assert await control.wait() == 0, f"pg_ctlcluster {action} failed"


async def test_postgresql_restarted_under_load_recovers_with_no_manual_step(
    bot_factory: Any, clock: FrozenClock, tmp_path: Path
) -> None:
    """Questions keep arriving at two replicas while PostgreSQL restarts. A delivery the bot could not take
    gets an error status, so Slack retries it; afterwards the bot is ready again, ticks, and answers,
    and no question is answered twice."""
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        pytest.skip(POSTGRES_SKIP_REASON)
    url = await shared_database(tmp_path)
    replicas: list[BotUnderTest] = [await bot_factory(database_url=url) for _ in range(2)]
    workspace, openai = replicas[0].workspace, replicas[0].openai
    roots = await chat_roots(replicas[0], 4)
    version = cluster_version()
    outcomes: Counter[str] = Counter()
    refused_enough = asyncio.Event()

    async def ask(number: int) -> None:
        question = workspace.user_message(
            user=ALICE, channel=GENERAL, text=f"Question {number}?", thread_ts=roots[number % len(roots)].ts
        )
        envelope = replicas[0].driver.message_envelope(question)
        for attempt, delay in enumerate((*RETRY_DELAYS, None)):
            try:
                delivery = await replicas[number % 2].driver.deliver_envelope(envelope, retry_num=attempt)
                if delivery.status == 200:
                    outcomes["acked after a retry" if attempt else "acked at once"] += 1
                    return
            except aiohttp.ClientError:
                pass
            outcomes["refused, retried"] += 1
            if outcomes["refused, retried"] >= REFUSALS_DURING_OUTAGE:
                refused_enough.set()
            if delay is not None:
                # Slack's own retry spacing: the restart runs on the wall clock, so the load does too.
                await asyncio.sleep(delay)
        outcomes["never acked"] += 1

    async def load() -> None:
        asking = []
        for number in range(QUESTIONS_UNDER_RESTART):
            asking.append(asyncio.create_task(ask(number)))
            await asyncio.sleep(ARRIVAL_GAP)
        await asyncio.gather(*asking)

    async def restart() -> float:
        """Down until the load has met enough refusals (a tick runs meanwhile), then up again."""
        await asyncio.sleep(ARRIVAL_GAP * 10)  # the load is under way
        await pg_ctlcluster(version, "stop")
        down_at = time.perf_counter()
        try:
            await ticks.tick(replicas[0].services, owner="during-outage")  # logs what failed, raises nothing
            await asyncio.wait_for(refused_enough.wait(), timeout=60)
        finally:
            await pg_ctlcluster(version, "start")
        return time.perf_counter() - down_at

    outage, _ = await asyncio.gather(restart(), load())
    for replica in replicas:
        await replica.services.drain(timeout=60)
    async with aiohttp.ClientSession() as http:
        for replica in replicas:
            async with http.get(f"{replica.base_url}/readyz") as response:
                assert response.status == 200, await response.text()
    await ticks.tick(replicas[0].services, owner="after-restart")
    roots_after = len(roots)
    await replicas[1].driver.slash_command(BOB, GENERAL, "chat gpt-4o-mini")
    await workspace.wait_for(lambda: len(chat_roots_posted(replicas[1])) > roots_after or None)

    asked = Counter(request["messages"][-1]["content"] for request in openai.state.chat_requests)
    assert asked == {f"Question {number}?": 1 for number in range(QUESTIONS_UNDER_RESTART)}, "each asked once"
    answered = sum(len(answers(replicas[0], root)) for root in roots)
    assert outcomes["never acked"] == 0, outcomes
    assert outcomes["refused, retried"] > 0, "the outage was felt"
    assert answered == QUESTIONS_UNDER_RESTART
    print(
        f"\nPostgreSQL down for {outage:.1f} s under {QUESTIONS_UNDER_RESTART} questions at 20/s over 2 replicas: "
        f"{dict(outcomes)}; {answered} answered, none twice; ready, ticking and answering afterwards"
    )
