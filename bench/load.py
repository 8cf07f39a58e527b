"""200 concurrent slash commands through the real bot (HTTP mode, SQLite), timed from send to Slack's ack.

Slack gives an app 3 s to acknowledge. Each command is signed and posted by the sandbox driver at
once, as a busy workspace would; the time to each HTTP response is its ack latency. The baseline,
in the same run, is the same 200 signed posts to a bare aiohttp endpoint that answers 200 at once:
what the loopback, the client and the event loop cost by themselves.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from pydantic import SecretStr

from bot.server import start_bot
from bot.services import Services
from bot.settings import Settings
from sandbox.driver import SlackDriver
from sandbox.openai import OpenAIEmulator, OpenAIState, SandboxClock
from sandbox.slack import SlackEmulator, SlackWorkspace

CHANNEL = "C0LOAD"
COMMANDS = ("help", "datasets", "jobs", "models")


def _percentiles(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "p50_ms": round(1000 * statistics.median(ordered), 1),
        "p99_ms": round(1000 * ordered[max(0, int(len(ordered) * 0.99) - 1)], 1),
        "max_ms": round(1000 * ordered[-1], 1),
    }


async def _timed(send: Any) -> tuple[float, int]:
    start = time.perf_counter()
    delivery = await send
    return time.perf_counter() - start, delivery.status


async def _bare_endpoint() -> tuple[web.AppRunner, str]:
    async def ok(_request: web.Request) -> web.Response:
        return web.Response(text="")

    app = web.Application()
    app.add_routes([web.post("/slack/events", ok)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"


async def run(concurrent: int = 200) -> dict[str, Any]:
    workspace = SlackWorkspace()
    users = [f"U0LOAD{index:03d}" for index in range(concurrent)]
    for user in users:
        workspace.add_user(user, user.lower())
    workspace.add_channel(CHANNEL, "load", members=users)
    slack = await SlackEmulator(workspace).start()
    openai = await OpenAIEmulator(OpenAIState(clock=SandboxClock(start=time.time()))).start()
    bare, bare_url = await _bare_endpoint()
    with tempfile.TemporaryDirectory(prefix="finetune-load-") as scratch:
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            slack_bot_token=SecretStr(workspace.bot_token),
            slack_signing_secret=SecretStr(workspace.signing_secret),
            slack_api_url=slack.api_url,
            openai_api_key=SecretStr(openai.state.api_key),
            openai_base_url=openai.base_url,
            finetune_provider="sandbox",
            finetune_data_dir=Path(scratch),
            log_level="WARNING",
        )
        services = Services.create(settings)
        running = await start_bot(services, host="127.0.0.1", port=0, schedule=False)
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
                baseline_driver = SlackDriver(slack, session, bot_url=bare_url)
                baseline = await asyncio.gather(
                    *(_timed(baseline_driver.slash_command(user, CHANNEL, "help")) for user in users)
                )
                driver = SlackDriver(slack, session, bot_url=f"http://127.0.0.1:{running.port}/slack/events")
                started = time.perf_counter()
                measured = await asyncio.gather(
                    *(
                        _timed(driver.slash_command(user, CHANNEL, COMMANDS[index % len(COMMANDS)]))
                        for index, user in enumerate(users)
                    )
                )
                await workspace.wait_for(
                    lambda: sum(1 for e in workspace.ephemerals if e.user in users) >= concurrent,
                    timeout=120,
                )
                answered = time.perf_counter() - started
        finally:
            await running.stop()
            await services.aclose()
            await bare.cleanup()
            await openai.stop()
            await slack.stop()
    latencies = [seconds for seconds, _ in measured]
    return {
        "commands": concurrent,
        "all_status_200": all(status == 200 for _, status in measured),
        **_percentiles(latencies),
        "within_3_s": sum(1 for seconds in latencies if seconds < 3.0),
        "baseline_p50_ms": _percentiles([seconds for seconds, _ in baseline])["p50_ms"],
        "baseline_p99_ms": _percentiles([seconds for seconds, _ in baseline])["p99_ms"],
        "all_answered_s": round(answered, 2),
    }


def main() -> dict[str, Any]:
    return asyncio.run(run())
