"""The bot as Slack sees it: signed requests in, Web API calls out, through the real Bolt app."""

from __future__ import annotations

import dataclasses
import time

import aiohttp
from aiohttp import web
from sqlmodel import select

from bot.server import health_routes
from storage.db import Database
from storage.models import SlackEvent
from tests.conftest import ALICE, GENERAL, BotUnderTest


async def test_help_answers_ephemerally_with_every_subcommand(bot: BotUnderTest) -> None:
    delivery = await bot.driver.slash_command(ALICE, GENERAL, "help")
    assert delivery.status == 200
    answers = await bot.workspace.wait_for(lambda: bot.workspace.ephemerals_for(ALICE))
    assert "/finetune help" in answers[0].text
    assert answers[0].channel == GENERAL
    assert not bot.workspace.bot_messages(), "help is for the asker only, not the channel"
    assert bot.workspace.calls_of("auth.test"), "Bolt authorised the request against the emulator"


async def test_a_bare_command_shows_help_and_an_unknown_one_says_so(bot: BotUnderTest) -> None:
    await bot.driver.slash_command(ALICE, GENERAL, "")
    await bot.driver.slash_command(ALICE, GENERAL, "frobnicate now")
    answers = await bot.workspace.wait_for(
        lambda: len(bot.workspace.ephemerals_for(ALICE)) == 2 and bot.workspace.ephemerals_for(ALICE)
    )
    texts = sorted(answer.text for answer in answers)
    assert any("/finetune help" in text and "What /finetune can do" in text for text in texts)
    assert any("I don't know `/finetune frobnicate`" in text for text in texts)


async def test_a_badly_signed_request_gets_401_and_no_answer(http_bot: BotUnderTest) -> None:
    body = "command=%2Ffinetune&text=help&user_id=U0ALICE&channel_id=C0GENERAL&team_id=T0SANDBOX"
    forged = await http_bot.driver.send_http(body, "application/x-www-form-urlencoded", secret="not-the-secret")
    assert forged.status == 401
    stale = await http_bot.driver.send_http(body, "application/x-www-form-urlencoded", timestamp=int(time.time()) - 600)
    assert stale.status == 401
    assert http_bot.workspace.ephemerals == []


async def test_health_and_readiness(bot: BotUnderTest, http_session: aiohttp.ClientSession) -> None:
    async with http_session.get(f"{bot.base_url}/healthz") as response:
        assert response.status == 200
        assert (await response.json())["status"] == "ok"
    async with http_session.get(f"{bot.base_url}/readyz") as response:
        body = await response.json()
        assert response.status == 200, body
        assert body["status"] == "ready"


async def test_readiness_fails_when_the_database_is_unreachable(
    http_bot: BotUnderTest, http_session: aiohttp.ClientSession
) -> None:
    # The same bot wired to a database server that went away (nothing listens on port 1), on a real socket.
    gone = Database("postgresql+asyncpg://postgres@127.0.0.1:1/gone")
    web_app = web.Application()
    web_app.add_routes(health_routes(dataclasses.replace(http_bot.services, db=gone), None))
    runner = web.AppRunner(web_app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with http_session.get(f"http://127.0.0.1:{port}/readyz") as response:
            body = await response.json()
            assert response.status == 503
            assert "database unreachable" in body["problems"]
    finally:
        await runner.cleanup()
        await gone.dispose()


async def test_slack_retries_of_one_event_are_recorded_once(bot: BotUnderTest) -> None:
    event = {
        "type": "app_home_opened",
        "user": ALICE,
        "channel": "D0ALICE",
        "tab": "messages",
        "event_ts": "1.2",
    }
    deliveries = await bot.driver.send_event(event, event_id="EvRETRY1", retries=2)
    assert [delivery.status for delivery in deliveries] == [200, 200, 200]
    async with bot.services.db.session() as session:
        rows = (await session.exec(select(SlackEvent))).all()
    assert [row.event_id for row in rows] == ["EvRETRY1"]
