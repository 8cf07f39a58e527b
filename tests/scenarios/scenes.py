"""Scenes that many scenario tests play: a shared report, a trained model, jobs being followed, two
workspaces. Each scenario module imports them from here, never from another test module."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
from openai import AsyncOpenAI
from sqlmodel import select

from bot import ticks
from bot.clock import FrozenClock
from bot.services import Services
from bot.training.status import TERMINAL
from bot.workspaces import Installations
from sandbox.openai import OpenAIEmulator
from sandbox.slack import Ephemeral, Message, SlackEmulator, SlackWorkspace, View
from storage import repositories
from storage.models import Dataset, TrainingJob
from tests.conftest import ALICE, GENERAL, BotUnderTest
from tests.examples import chat_lines


async def shared_report(bot: BotUnderTest, data: Path, name: str = "gsm8k.jsonl") -> Message:
    content = data.read_bytes()  # noqa: ASYNC240 (a small fixture file)
    _, message = await bot.driver.upload(ALICE, GENERAL, name, content)

    def report() -> Message | None:
        return next(
            (m for m in bot.workspace.replies_of(GENERAL, message.ts) if m.blocks and m.blocks[0]["type"] == "header"),
            None,
        )

    found: Message = await bot.workspace.wait_for(report)
    return found


async def open_modal(bot: BotUnderTest, user: str, opener: Any) -> View:
    """Do what opens a modal and return it (the Home tab, published meanwhile, is not a modal)."""

    def modals() -> list[View]:
        return [view for view in bot.workspace.views.values() if view.kind == "modal"]

    before = len(modals())
    await opener
    await bot.workspace.wait_for(lambda: len(modals()) > before)
    return modals()[-1]


def jobs_at_provider(bot: BotUnderTest) -> list[Any]:
    return list(bot.openai.state.jobs.values())


async def job_rows(bot: BotUnderTest) -> list[TrainingJob]:
    async with bot.services.db.session() as session:
        return list((await session.exec(select(TrainingJob))).all())


def failure_in(bot: BotUnderTest, report: Message) -> Message | None:
    return next(
        (m for m in bot.workspace.replies_of(GENERAL, report.thread_ts or report.ts) if m.text.startswith("❌")), None
    )


def card_of(bot: BotUnderTest, report: Message) -> Message | None:
    return next(
        (m for m in bot.workspace.replies_of(GENERAL, report.thread_ts or report.ts) if "Training started" in m.text),
        None,
    )


MARV_SYSTEM = "Marv is a factual chatbot that is also sarcastic."


def marv_file(folder: Path, *, long_answer: bool = False) -> Path:
    facts = [
        ("What is the capital of France?", "Paris, as if everyone didn't know."),
        ("Who wrote Hamlet?", "Some fellow called Shakespeare. Ever heard of him?"),
        ("How far is the Moon?", "About 384,400 km. Give or take, like it matters."),
        ("What is the boiling point of water?", "100 degrees Celsius at sea level. Riveting."),
        ("How many legs does a spider have?", "Eight. Count them yourself."),
        ("What is the largest ocean?", "The Pacific. The big wet one."),
        ("Who painted the Mona Lisa?", "Leonardo. Next question."),
        ("What is the speed of light?", "About 300,000 km per second. Faster than you."),
        ("How many continents are there?", "Seven, last time anyone counted."),
        ("What gas do plants absorb?", "Carbon dioxide. Plants breathe better than you."),
        (
            "Tell me the whole history of the universe",
            ("It began with a bang. " * 400).strip() if long_answer else "It began with a bang. The rest is details.",
        ),
    ]
    lines = [
        json.dumps(
            {
                "messages": [
                    {"role": "system", "content": MARV_SYSTEM},
                    {"role": "user", "content": q},
                    {"role": "assistant", "content": a},
                ]
            }
        )
        for q, a in facts
    ]
    path = folder / ("marv-long.jsonl" if long_answer else "marv.jsonl")
    path.write_text("\n".join(lines) + "\n")
    return path


async def trained(bot: BotUnderTest, clock: FrozenClock, data: Path) -> tuple[TrainingJob, Message]:
    report, job = await start_job(bot, data)
    await run_until(bot, clock, lambda: result_of(bot, report))
    result = result_of(bot, report)
    assert result is not None
    return await job_row(bot, job.id or 0), result


def root_of(bot: BotUnderTest, prefix: str) -> Message | None:
    """The newest top-level message starting with ``prefix``; None until it is posted (a wait_for predicate)."""
    return next((m for m in reversed(bot.workspace.channel_messages(GENERAL)) if m.text.startswith(prefix)), None)


def answers(bot: BotUnderTest, root: Message) -> list[Message]:
    """The bot's finished messages in a thread (not still streaming, not a placeholder being edited)."""
    return [
        m
        for m in bot.workspace.replies_of(GENERAL, root.ts)
        if m.user == bot.workspace.bot_user_id and not m.streaming and not m.text.endswith("▌")
    ]


async def ask(
    bot: BotUnderTest, root: Message, text: str, *, expect: int, user: str = ALICE, **kwargs: Any
) -> list[Message]:
    await bot.driver.say(user, GENERAL, text, thread_ts=root.ts, **kwargs)
    found: list[Message] = await bot.workspace.wait_for(
        lambda: len(answers(bot, root)) >= expect and answers(bot, root)
    )
    return found


OWNER = "replica-a"


async def start_job(bot: BotUnderTest, data: Path, **changes: str) -> tuple[Message, TrainingJob]:
    report = await shared_report(bot, data)
    modal = await open_modal(bot, ALICE, bot.driver.click(ALICE, report, "dataset_train"))
    await bot.driver.submit_form(ALICE, modal, changes)
    await bot.workspace.wait_for(lambda: card_of(bot, report))
    async with bot.services.db.session() as session:
        job = (await session.exec(select(TrainingJob).order_by(TrainingJob.id.desc()))).first()  # type: ignore[union-attr]
    assert job is not None
    return report, job


async def run_until(
    bot: BotUnderTest, clock: FrozenClock, done: Callable[[], Any], *, seconds: float = 30, ticks_max: int = 300
) -> None:
    """Move both clocks and tick, as the scheduler would, until ``done()``."""
    for _ in range(ticks_max):
        if done():
            return
        clock.advance(timedelta(seconds=seconds))
        bot.openai.state.clock.advance(seconds)
        await ticks.tick(bot.services, owner=OWNER)
    raise AssertionError("the job never got there")


def thread(bot: BotUnderTest, report: Message) -> list[Message]:
    return bot.workspace.replies_of(GENERAL, report.thread_ts or report.ts)


async def job_row(bot: BotUnderTest, job_id: int) -> TrainingJob:
    async with bot.services.db.session() as session:
        job = await session.get(TrainingJob, job_id)
    assert job is not None
    return job


def result_of(bot: BotUnderTest, report: Message) -> Message | None:
    return next((m for m in thread(bot, report) if m.text.startswith(("✅", "❌", "🛑")) and "<@" in m.text), None)


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


HELD_OUT = [
    ("What is the capital city of France?", "Paris, as if everyone didn't know."),
    ("Hamlet was written by whom?", "Some fellow called Shakespeare. Ever heard of him?"),
    ("How far away is the Moon from us?", "About 384,400 km. Give or take, like it matters."),
    ("At what temperature is the boiling point of water?", "100 degrees Celsius at sea level. Riveting."),
    ("Spider legs: how many does a spider have?", "Eight. Count them yourself."),
    ("Name the largest ocean on Earth", "The Pacific. The big wet one."),
    ("The Mona Lisa: who painted it?", "Leonardo. Next question."),
    ("What's the speed of light in vacuum?", "About 300,000 km per second. Faster than you."),
    ("How many continents are there on Earth?", "Seven, last time anyone counted."),
    ("Which gas do plants absorb from the air?", "Carbon dioxide. Plants breathe better than you."),
]


def held_out_file(folder: Path) -> Path:
    path = folder / "marv-heldout.jsonl"
    path.write_text(conversations_text(HELD_OUT, system=MARV_SYSTEM))
    return path


async def confirmation_for(bot: BotUnderTest, user: str, *, before: int = 0) -> Ephemeral:
    found: Ephemeral = await bot.workspace.wait_for(
        lambda: next(
            (e for e in bot.workspace.ephemerals_for(user)[before:] if "eval_confirm" in json.dumps(e.blocks)), None
        )
    )
    return found


CAROL = "U0CAROL"


async def multi_workspace_bot(bot_factory: Any, slack: SlackEmulator) -> BotUnderTest:
    bot: BotUnderTest = await bot_factory(
        slack_bot_token=None,
        slack_multi_workspace=True,
        slack_client_id=slack.client_id,
        slack_client_secret=slack.client_secret,
    )
    return bot


def second_workspace(slack: SlackEmulator) -> SlackWorkspace:
    other = SlackWorkspace(team_id="T0OTHER", team_name="Other Co")
    other.add_user(CAROL, "carol", "Carol Diaz")
    other.add_channel(GENERAL, "general", members=[CAROL])
    return slack.add_workspace(other)


async def install(bot: BotUnderTest, workspace: SlackWorkspace, *, user: str) -> aiohttp.ClientResponse:
    """What a person's browser does: /slack/install, Slack's Allow button, then back to /slack/oauth_redirect."""
    async with aiohttp.ClientSession() as browser:
        async with browser.get(f"{bot.base_url}/slack/install", allow_redirects=False) as start:
            assert start.status == 302, await start.text()
            slack_page = urlsplit(start.headers["Location"])
            cookie = start.headers["Set-Cookie"].split(";")[0]
        asked = parse_qs(slack_page.query)
        assert slack_page.path == "/oauth/v2/authorize" and asked["client_id"] == [bot.slack.client_id]
        assert "chat:write" in asked["scope"][0].split(",")
        code = bot.slack.approve_install(workspace, user=user)
        query = {"code": code, "state": asked["state"][0]}
        async with browser.get(
            f"{bot.base_url}/slack/oauth_redirect", params=query, headers={"Cookie": cookie}
        ) as back:
            await back.read()
            return back


async def installed_in_two_workspaces(
    bot_factory: Any, slack: SlackEmulator
) -> tuple[BotUnderTest, SlackWorkspace, Installations]:
    """A multi-workspace bot that the emulator's first workspace (Alice) and a second one (Carol) installed."""
    other = second_workspace(slack)
    bot = await multi_workspace_bot(bot_factory, slack)
    installations = bot.services.installations
    assert installations is not None
    for workspace, user in ((slack.workspace, ALICE), (other, CAROL)):
        answer = await install(bot, workspace, user=user)
        assert answer.status == 200, "Bolt's success page"
        assert await installations.store.async_find_bot(enterprise_id=None, team_id=workspace.team_id) is not None
    return bot, other, installations


def conversations_text(pairs: list[tuple[str, str]], *, system: str | None = None) -> str:
    """A chat JSONL file's text: one conversation per (question, answer) pair."""
    lines = []
    for question, answer in pairs:
        messages = [{"role": "system", "content": system}] if system else []
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        lines.append(json.dumps({"messages": messages}))
    return "\n".join(lines) + "\n"


async def bot_with_providers(
    bot_factory: Any, providers: dict[str, tuple[str, OpenAIEmulator]], *, labels: dict[str, str] | None = None
) -> BotUnderTest:
    """A bot with FINETUNE_PROVIDERS: each name's (kind, emulator), at that emulator with its key."""
    configs: dict[str, dict[str, str]] = {}
    for name, (kind, emulator) in providers.items():
        base_url = emulator.azure_endpoint if kind == "azure" else emulator.base_url
        configs[name] = {"kind": kind, "base_url": base_url, "api_key": emulator.state.api_key}
        if labels and name in labels:
            configs[name]["label"] = labels[name]
    bot: BotUnderTest = await bot_factory(finetune_providers=configs)
    return bot
