"""Multi-workspace install: OAuth v2 through /slack/install, one bot serving two workspaces, uninstalls.

Single-workspace token mode stays the default; every other scenario test runs in it.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlmodel import select

from bot.clock import FrozenClock
from bot.logging import JsonLines
from bot.workspaces import Installations
from sandbox.driver import SlackDriver
from sandbox.openai import OpenAIEmulator
from sandbox.slack import SlackEmulator
from storage.models import Notification
from tests.conftest import ALICE, GENERAL
from tests.scenarios.scenes import (
    CAROL,
    assert_every_milestone_posted_once,
    follow_to_the_end,
    installed_in_two_workspaces,
    marv_file,
    multi_workspace_bot,
    seed_jobs,
    shared_report,
)


async def forgotten(installations: Installations, team_id: str) -> bool:
    """Whether the workspace's bot is gone, once the listener (which runs after the ack) has had its turn."""
    for _ in range(1000):
        if await installations.store.async_find_bot(enterprise_id=None, team_id=team_id) is None:
            return True
        await asyncio.sleep(0)
    return False


@pytest.mark.slow
async def test_two_workspaces_install_by_oauth_and_each_is_served_with_its_own_token(
    bot_factory: Any, slack: SlackEmulator, openai_emulator: OpenAIEmulator, clock: FrozenClock, tmp_path: Path
) -> None:
    bot, other, _ = await installed_in_two_workspaces(bot_factory, slack)

    # A file shared in the second workspace is fetched and answered there, with that workspace's token.
    other_people = SlackDriver(slack, bot.driver.session, bot_url=bot.driver.bot_url, workspace=other)
    _, upload = await other_people.upload(CAROL, GENERAL, "marv.jsonl", marv_file(tmp_path).read_bytes())
    report = await other.wait_for(
        lambda: next((m for m in other.replies_of(GENERAL, upload.ts) if m.user == other.bot_user_id), None)
    )
    assert report.text.startswith("✅ marv.jsonl")
    assert other.calls_of("files.info") and not slack.workspace.calls_of("files.info")
    # …and the first workspace is served too, from the same process.
    first_report = await shared_report(bot, marv_file(tmp_path))
    assert first_report.text.startswith("✅")

    # A tick acts for each job's own workspace: the milestones land in the second workspace's thread.
    threads = await seed_jobs(bot.services, other, openai_emulator, clock, 1)
    await follow_to_the_end([bot.services], clock, openai_emulator, jobs=1)
    assert_every_milestone_posted_once(other, threads)
    assert not any(m.text.startswith("⏳ Job #") for m in slack.workspace.messages)


@pytest.mark.slow
async def test_an_uninstalled_workspace_is_forgotten_and_nothing_is_posted_there(
    bot_factory: Any, slack: SlackEmulator, openai_emulator: OpenAIEmulator, clock: FrozenClock
) -> None:
    bot, other, installations = await installed_in_two_workspaces(bot_factory, slack)
    threads = await seed_jobs(bot.services, other, openai_emulator, clock, 1)

    slack.revoke(other)  # Slack revokes the token, then tells the app
    other_people = SlackDriver(slack, bot.driver.session, bot_url=bot.driver.bot_url, workspace=other)
    logged = io.StringIO()
    log = logging.StreamHandler(logged)
    log.setFormatter(JsonLines())
    listener_log = logging.getLogger("handlers.workspaces")
    listener_log.addHandler(log)
    listener_log.setLevel(logging.INFO)
    try:
        [delivery] = await other_people.send_event({"type": "app_uninstalled"}, event_id="EvUNINSTALL1")
        assert delivery.status == 200
        assert await forgotten(installations, other.team_id)
        for _ in range(1000):  # the listener logs right after forgetting: give it that turn too
            if logged.getvalue():
                break
            await asyncio.sleep(0)
    finally:
        listener_log.removeHandler(log)
        listener_log.setLevel(logging.NOTSET)
    [line] = [json.loads(text) for text in logged.getvalue().splitlines()]
    assert line["message"] == "workspace T0OTHER forgotten: the app was uninstalled"
    assert line["request_id"] == "EvUNINSTALL1", "the listener's log line carries the event's id"
    assert await installations.store.async_find_bot(enterprise_id=None, team_id=slack.workspace.team_id)

    # The job goes on at the provider; its messages are given up, not retried for ever nor posted elsewhere.
    await follow_to_the_end([bot.services], clock, openai_emulator, jobs=1)
    async with bot.services.db.session() as session:
        statuses = {n.status for n in (await session.exec(select(Notification))).all()}
    assert statuses == {"failed"}
    assert not [m for m in other.replies_of(GENERAL, next(iter(threads.values()))) if m.user == other.bot_user_id]
    assert not any(m.text.startswith("⏳ Job #") for m in slack.workspace.messages)

    # tokens_revoked for the bot token does the same for the first workspace.
    [revoked] = await bot.driver.send_event(
        {"type": "tokens_revoked", "tokens": {"oauth": [], "bot": [slack.workspace.bot_user_id]}}
    )
    assert revoked.status == 200
    assert await forgotten(installations, slack.workspace.team_id)


async def test_a_bad_or_replayed_install_is_refused(bot_factory: Any, slack: SlackEmulator) -> None:
    bot = await multi_workspace_bot(bot_factory, slack)
    async with aiohttp.ClientSession() as browser:
        no_state = {"code": slack.approve_install(slack.workspace, user=ALICE), "state": "forged"}
        async with browser.get(f"{bot.base_url}/slack/oauth_redirect", params=no_state) as forged:
            assert forged.status == 400
    assert bot.services.installations is not None
    assert await bot.services.installations.store.async_find_bot(enterprise_id=None, team_id="T0SANDBOX") is None
