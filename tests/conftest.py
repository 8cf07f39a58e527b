"""Shared fixtures: settings isolated from the environment, databases, and the emulators.

Everything talks over real sockets on 127.0.0.1 with ephemeral ports; nothing patches an SDK.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text

from bot.clock import FrozenClock
from bot.server import RunningBot, start_bot
from bot.services import Services
from bot.settings import Settings
from sandbox.driver import SlackDriver
from sandbox.openai import AZURE_MODELS, NEBIUS_MODELS, OpenAIEmulator, OpenAIState, SandboxClock
from sandbox.slack import SlackEmulator, SlackWorkspace
from storage.db import Database

# Real public files nobody here wrote, copied byte for byte from ../shared/data with their licences
# (tests/data/README.md says where each comes from); tests/unit/datasets/test_shared_data.py checks
# the copy against the original when a checkout has it beside it.
SHARED_DATA = Path(__file__).resolve().parent / "data"
ALICE, BOB = "U0ALICE", "U0BOB"
GENERAL = "C0GENERAL"


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Settings read the environment and .env; keep a developer's own values out of the tests."""
    for name in list(os.environ):
        if name.startswith(("SLACK_", "OPENAI_", "FINETUNE_", "AZURE_")) or name in (
            "DATABASE_URL",
            "PORT",
            "LOG_LEVEL",
        ):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"finetune_data_dir": tmp_path / "data", "finetune_provider": "sandbox"}
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def reset_postgres(url: str) -> None:
    database = Database(url)
    async with database.engine.begin() as connection:
        await connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        await connection.execute(text("CREATE SCHEMA public"))
    await database.dispose()


POSTGRES_SKIP_REASON = (
    "PostgreSQL contract tests need TEST_DATABASE_URL, e.g. "
    "TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test ./dev test-all (CI sets it)"
)


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of each kind the bot supports."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'contract.db'}"
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        pytest.skip(POSTGRES_SKIP_REASON)
    url = url.replace("postgresql://", "postgresql+asyncpg://", 1)
    await reset_postgres(url)
    return url


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await database.migrate()
    yield database
    await database.dispose()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 11, 21, 9, 0, tzinfo=UTC))


@pytest.fixture
async def slack() -> AsyncIterator[SlackEmulator]:
    workspace = SlackWorkspace()
    workspace.add_user(ALICE, "alice", "Alice Martin")
    workspace.add_user(BOB, "bob", "Bob Chen")
    workspace.add_channel(GENERAL, "general", members=[ALICE, BOB])
    emulator = await SlackEmulator(workspace).start()
    yield emulator
    await emulator.stop()


@contextlib.asynccontextmanager
async def running(**state: Any) -> AsyncIterator[OpenAIEmulator]:
    """An emulator of the account ``state`` describes (OpenAIState's arguments), started and then stopped."""
    emulator = await OpenAIEmulator(OpenAIState(**state)).start()
    try:
        yield emulator
    finally:
        await emulator.stop()


@pytest.fixture
async def openai_emulator(clock: FrozenClock) -> AsyncIterator[OpenAIEmulator]:
    """The OpenAI emulator, its virtual time starting at the bot's frozen clock."""
    async with running(clock=SandboxClock(start=clock.now().timestamp())) as emulator:
        yield emulator


@pytest.fixture
async def azure_emulator(clock: FrozenClock) -> AsyncIterator[OpenAIEmulator]:
    """The emulator as an Azure OpenAI resource: Azure's models, ids and calendar, the bot's clock."""
    clocked = SandboxClock(start=clock.now().timestamp())
    async with running(clock=clocked, models=AZURE_MODELS, azure_ids=True) as emulator:
        yield emulator


@pytest.fixture
async def nebius_emulator(clock: FrozenClock) -> AsyncIterator[OpenAIEmulator]:
    """The emulator as a Nebius Token Factory project: its rules, its models, the bot's clock."""
    clocked = SandboxClock(start=clock.now().timestamp())
    async with running(clock=clocked, models=NEBIUS_MODELS, nebius=True) as emulator:
        yield emulator


@pytest.fixture
async def http_session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@dataclass
class BotUnderTest:
    services: Services
    running: RunningBot
    slack: SlackEmulator
    driver: SlackDriver
    openai: OpenAIEmulator

    @property
    def workspace(self) -> SlackWorkspace:
        return self.slack.workspace

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.running.port}"


def bot_settings(
    tmp_path: Path, slack: SlackEmulator, openai: OpenAIEmulator, *, socket_mode: bool, **overrides: Any
) -> Settings:
    ws = slack.workspace
    credentials: dict[str, Any] = {
        "slack_bot_token": ws.bot_token,
        "slack_api_url": slack.api_url,
        "openai_api_key": openai.state.api_key,
        "openai_base_url": openai.base_url,
    }
    if socket_mode:
        credentials["slack_app_token"] = ws.app_token
    else:
        credentials["slack_signing_secret"] = ws.signing_secret
    return make_settings(tmp_path, **{**credentials, **overrides})


async def start_test_bot(
    settings: Settings, slack: SlackEmulator, openai: OpenAIEmulator, session: aiohttp.ClientSession, clock: FrozenClock
) -> BotUnderTest:
    services = Services.create(settings, clock=clock)
    running = await start_bot(services, host="127.0.0.1", port=0, schedule=False)
    if settings.socket_mode:
        driver = SlackDriver(slack, session, socket_mode=True)
    else:
        driver = SlackDriver(slack, session, bot_url=f"http://127.0.0.1:{running.port}/slack/events")
    return BotUnderTest(services, running, slack, driver, openai)


@pytest.fixture(params=["http", "socket"])
async def bot(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    slack: SlackEmulator,
    openai_emulator: OpenAIEmulator,
    http_session: aiohttp.ClientSession,
    clock: FrozenClock,
) -> AsyncIterator[BotUnderTest]:
    """The whole bot, started as `finetune-bot run` starts it, in HTTP mode and in Socket Mode."""
    settings = bot_settings(tmp_path, slack, openai_emulator, socket_mode=request.param == "socket")
    under_test = await start_test_bot(settings, slack, openai_emulator, http_session, clock)
    yield under_test
    await under_test.running.stop()
    await under_test.services.aclose()


@pytest.fixture
async def long_answer_bot(bot_factory: Any) -> BotUnderTest:
    """A bot over HTTP that lets a chat answer run to 4,096 tokens: scenes whose answers outgrow one
    Slack message, which the default limit (as OpenAI would) cuts off first."""
    under_test: BotUnderTest = await bot_factory(finetune_chat_max_tokens=4096)
    return under_test


@pytest.fixture
async def http_bot(
    tmp_path: Path,
    slack: SlackEmulator,
    openai_emulator: OpenAIEmulator,
    http_session: aiohttp.ClientSession,
    clock: FrozenClock,
) -> AsyncIterator[BotUnderTest]:
    settings = bot_settings(tmp_path, slack, openai_emulator, socket_mode=False)
    under_test = await start_test_bot(settings, slack, openai_emulator, http_session, clock)
    yield under_test
    await under_test.running.stop()
    await under_test.services.aclose()


@pytest.fixture
def shared_data() -> Path:
    return SHARED_DATA


@pytest.fixture
async def bot_factory(
    tmp_path: Path,
    slack: SlackEmulator,
    openai_emulator: OpenAIEmulator,
    http_session: aiohttp.ClientSession,
    clock: FrozenClock,
) -> AsyncIterator[Any]:
    """Start a bot with settings of the test's choosing (team rules, provider variant, …)."""
    started: list[BotUnderTest] = []

    async def start(*, socket_mode: bool = False, **overrides: Any) -> BotUnderTest:
        settings = bot_settings(tmp_path, slack, openai_emulator, socket_mode=socket_mode, **overrides)
        under_test = await start_test_bot(settings, slack, openai_emulator, http_session, clock)
        started.append(under_test)
        return under_test

    yield start
    for under_test in started:
        await under_test.running.stop()
        await under_test.services.aclose()
