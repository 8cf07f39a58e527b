"""Following jobs: progress edited in place, milestones, results, exactly once, across restarts and replicas."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlmodel import select

from bot import notifier, ticks
from bot.clock import FrozenClock
from sandbox.slack import Message
from storage.models import JobEvent, Notification, TrainingJob
from tests.conftest import ALICE, GENERAL, BotUnderTest
from tests.scenarios.scenes import (
    OWNER,
    card_of,
    job_row,
    result_of,
    run_until,
    start_job,
    thread,
)


def texts(bot: BotUnderTest, report: Message) -> list[str]:
    return [m.text for m in thread(bot, report)]


async def test_a_job_is_followed_to_success(bot: BotUnderTest, clock: FrozenClock, shared_data: Path) -> None:
    report, job = await start_job(bot, shared_data / "gsm8k_chat_validation.jsonl")
    card = card_of(bot, report)
    assert card is not None
    await run_until(bot, clock, lambda: result_of(bot, report))
    done = await job_row(bot, job.id or 0)
    assert done.status == "succeeded" and done.fine_tuned_model and done.fine_tuned_model.startswith("ft:gpt-4o-mini")
    assert done.trained_tokens and done.actual_cost_usd and done.actual_cost_usd > 0
    result = result_of(bot, report)
    assert result is not None and f"<@{ALICE}>" in result.text and done.fine_tuned_model in json.dumps(result.blocks)
    assert "Checkpoints" in json.dumps(result.blocks) and "ckpt-step" in json.dumps(result.blocks)
    milestones = [t for t in texts(bot, report) if t.startswith(("⏳ Job", "⏸️ Job"))]
    assert milestones == [f"⏳ Job #{job.id} is queued.", f"⏳ Job #{job.id} is running."]
    chart = next(m for m in thread(bot, report) if m.files)
    assert bot.workspace.files[chart.files[0]].content.startswith(b"\x89PNG")
    assert card.edits > 3, "the card is edited in place"
    assert "✅ *Training finished*" in json.dumps(card.blocks, ensure_ascii=False) and "step 30/30" in card.text
    assert not any(e.get("action_id") == "job_cancel" for b in card.blocks for e in b.get("elements", []))
    async with bot.services.db.session() as session:
        metrics = (await session.exec(select(JobEvent).where(JobEvent.type == "metrics"))).all()
    assert len(metrics) == done.total_steps and metrics[-1].train_loss is not None
    before = len(thread(bot, report))
    for _ in range(5):
        await ticks.tick(bot.services, owner=OWNER)
    assert len(thread(bot, report)) == before, "a finished job posts nothing more"


async def test_a_failed_job_quotes_the_provider(http_bot: BotUnderTest, clock: FrozenClock, shared_data: Path) -> None:
    http_bot.openai.state.fail_next_job(
        code="server_error", message="Training diverged at step 2; try a lower LR.", at_step=2
    )
    report, job = await start_job(http_bot, shared_data / "gsm8k_chat_validation.jsonl")
    await run_until(http_bot, clock, lambda: result_of(http_bot, report))
    result = result_of(http_bot, report)
    assert result is not None and result.text.startswith("❌")
    assert "> Training diverged at step 2; try a lower LR." in json.dumps(result.blocks, ensure_ascii=False)
    assert (await job_row(http_bot, job.id or 0)).status == "failed"


async def test_an_invalid_file_failure_says_what_to_fix(
    http_bot: BotUnderTest, clock: FrozenClock, tmp_path: Path
) -> None:
    lines = [
        json.dumps({"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]})
        for i in range(10)
    ]
    data = tmp_path / "ten.jsonl"
    data.write_text("\n".join(lines) + "\n")
    http_bot.openai.state.inject("*", rate_500=0.0)
    report, job = await start_job(http_bot, data)
    http_bot.openai.state.jobs[job.provider_job_id or ""].training_file = "file-missing"
    await run_until(http_bot, clock, lambda: result_of(http_bot, report))
    result = result_of(http_bot, report)
    assert result is not None and "share it again" in json.dumps(result.blocks)


async def test_cancelled_outside_slack_says_so(http_bot: BotUnderTest, clock: FrozenClock, shared_data: Path) -> None:
    report, job = await start_job(http_bot, shared_data / "gsm8k_chat_validation.jsonl")
    await run_until(http_bot, clock, lambda: any("running" in t for t in texts(http_bot, report)))
    http_bot.openai.state.jobs[job.provider_job_id or ""].status = "cancelled"
    await run_until(http_bot, clock, lambda: result_of(http_bot, report))
    result = result_of(http_bot, report)
    assert result is not None and "cancelled by someone at the sandbox (not from Slack)" in result.text


@pytest.mark.slow
async def test_a_restart_mid_job_loses_and_doubles_nothing(
    bot_factory: Any, clock: FrozenClock, shared_data: Path
) -> None:
    first = await bot_factory()
    report, job = await start_job(first, shared_data / "gsm8k_chat_validation.jsonl")
    await run_until(first, clock, lambda: any("running" in t for t in texts(first, report)))
    await first.running.stop()
    await first.services.aclose()
    second = await bot_factory()  # same database and data folder, new process state
    await run_until(second, clock, lambda: result_of(second, report))
    all_texts = texts(second, report)
    assert all_texts.count(f"⏳ Job #{job.id} is running.") == 1
    assert sum(1 for t in all_texts if t.startswith("✅") and "<@" in t) == 1


async def test_a_crash_between_posting_and_recording_does_not_post_twice(
    http_bot: BotUnderTest, clock: FrozenClock, shared_data: Path
) -> None:
    report, job = await start_job(http_bot, shared_data / "gsm8k_chat_validation.jsonl")
    # Slack posts the next message but its answer never arrives: as if the bot died before recording it.
    http_bot.workspace.fail("chat.postMessage", status=500, after_processing=True)
    await run_until(http_bot, clock, lambda: result_of(http_bot, report))
    for _ in range(3):
        clock.advance(timedelta(minutes=3))  # the claim of the lost attempt expires
        await notifier.deliver_pending(http_bot.services)
    assert texts(http_bot, report).count(f"⏳ Job #{job.id} is queued.") == 1
    async with http_bot.services.db.session() as session:
        notes = (await session.exec(select(Notification))).all()
    assert {n.status for n in notes} == {"sent"}
    assert any(n.attempts == 2 for n in notes), "the second attempt found the first in the thread"


@pytest.mark.slow
async def test_provider_faults_on_a_third_of_calls_still_report_every_job_once(
    bot_factory: Any, clock: FrozenClock, shared_data: Path
) -> None:
    bot = await bot_factory()
    reports = []
    for name in ("a.jsonl", "b.jsonl", "c.jsonl"):
        report, _ = await start_job_named(bot, shared_data, name)
        reports.append(report)
    bot.openai.state.inject("*", rate_429=0.15, rate_500=0.15)
    await run_until(bot, clock, lambda: all(result_of(bot, r) for r in reports), ticks_max=600)
    for report in reports:
        assert sum(1 for t in texts(bot, report) if t.startswith("✅") and "<@" in t) == 1


async def start_job_named(bot: BotUnderTest, shared_data: Path, name: str) -> tuple[Message, TrainingJob]:
    extra = json.dumps({"messages": [{"role": "user", "content": name}, {"role": "assistant", "content": "ok"}]})
    content = (shared_data / "gsm8k_chat_validation.jsonl").read_bytes() + extra.encode() + b"\n"
    path = bot.services.settings.finetune_data_dir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return await start_job(bot, path)


@pytest.mark.slow
async def test_slack_rate_limits_on_card_updates_do_not_lose_the_outcome(
    http_bot: BotUnderTest, clock: FrozenClock, shared_data: Path
) -> None:
    report, _ = await start_job(http_bot, shared_data / "gsm8k_chat_validation.jsonl")
    card = card_of(http_bot, report)
    http_bot.workspace.fail("chat.update", status=429, times=4)
    await run_until(http_bot, clock, lambda: result_of(http_bot, report))
    assert card is not None and "Training finished" in card.text
    throttled = [args for args in http_bot.workspace.calls_of("chat.update") if args.get("_fault") == 429]
    assert len(throttled) == 4


def sign_webhook(secret: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    webhook_id = "wh_" + hashlib.sha1(body).hexdigest()[:12]
    stamp = str(timestamp or int(time.time()))
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signature = base64.b64encode(hmac.new(key, f"{webhook_id}.{stamp}.".encode() + body, hashlib.sha256).digest())
    return {"webhook-id": webhook_id, "webhook-timestamp": stamp, "webhook-signature": "v1," + signature.decode()}


async def test_a_webhook_only_nudges_the_job(
    bot_factory: Any, clock: FrozenClock, shared_data: Path, http_session: aiohttp.ClientSession
) -> None:
    secret = "whsec_" + base64.b64encode(b"sandbox-webhook-secret-123456").decode()
    bot = await bot_factory(openai_webhook_secret=secret)
    _, job = await start_job(bot, shared_data / "gsm8k_chat_validation.jsonl")
    async with bot.services.db.session() as session, session.begin():
        row = await session.get(TrainingJob, job.id)
        assert row is not None
        row.next_poll_at = clock.now() + timedelta(hours=1)
        session.add(row)
    body = json.dumps(
        {"id": "evt_1", "type": "fine_tuning.job.succeeded", "created_at": 1, "data": {"id": job.provider_job_id}}
    ).encode()
    url = f"{bot.base_url}/webhooks/openai"
    async with http_session.post(
        url, data=body, headers=sign_webhook("whsec_" + base64.b64encode(b"wrong").decode(), body)
    ) as bad:
        assert bad.status == 400
    assert (await job_row(bot, job.id or 0)).next_poll_at == clock.now() + timedelta(hours=1)
    stale = sign_webhook(secret, body, timestamp=int(time.time()) - 600)
    async with http_session.post(url, data=body, headers=stale) as old:
        assert old.status == 400
    async with http_session.post(url, data=body, headers=sign_webhook(secret, body)) as good:
        assert good.status == 200
    assert (await job_row(bot, job.id or 0)).next_poll_at == clock.now()
    assert (await job_row(bot, job.id or 0)).status == "validating", "a webhook never sets the status itself"


async def test_status_jobs_and_cancel_commands(http_bot: BotUnderTest, clock: FrozenClock, shared_data: Path) -> None:
    report, job = await start_job(http_bot, shared_data / "gsm8k_chat_validation.jsonl")
    await run_until(http_bot, clock, lambda: any("running" in t for t in texts(http_bot, report)))
    for _ in range(2):  # a few training steps
        clock.advance(timedelta(seconds=30))
        http_bot.openai.state.clock.advance(30)
        await ticks.tick(http_bot.services, owner=OWNER)
    ws = http_bot.workspace
    await http_bot.driver.slash_command(ALICE, GENERAL, "status")
    status = await ws.wait_for(lambda: ws.ephemerals_for(ALICE))
    assert f"Job #{job.id}" in status[-1].text and "step" in status[-1].text
    await http_bot.driver.slash_command(ALICE, GENERAL, "jobs")
    listing = await ws.wait_for(lambda: len(ws.ephemerals_for(ALICE)) == 2 and ws.ephemerals_for(ALICE))
    assert f"*#{job.id}*" in json.dumps(listing[-1].blocks) and "1 active" in json.dumps(listing[-1].blocks)
    await http_bot.driver.slash_command(ALICE, GENERAL, f"cancel {job.provider_job_id}")
    confirm = await ws.wait_for(lambda: len(ws.ephemerals_for(ALICE)) == 3 and ws.ephemerals_for(ALICE))
    button = next(e for b in confirm[-1].blocks for e in b.get("elements", []) if e.get("action_id") == "job_cancel")
    assert button["confirm"]["title"]["text"] == "Cancel this job?"
    assert (await job_row(http_bot, job.id or 0)).status == "running", "nothing happens before the confirmation"
    fake = Message(channel=GENERAL, ts=report.ts, user=ALICE, text="", blocks=confirm[-1].blocks)
    await http_bot.driver.click(ALICE, fake, "job_cancel")
    await ws.wait_for(lambda: any("cancelled job" in t for t in texts(http_bot, report)))
    cancelled = await job_row(http_bot, job.id or 0)
    assert (cancelled.status, cancelled.cancelled_by) == ("cancelled", ALICE)
    await http_bot.driver.slash_command(ALICE, GENERAL, "status #999")
    missing = await ws.wait_for(lambda: [e for e in ws.ephemerals_for(ALICE) if "I have no job" in e.text])
    assert "`#999`" in missing[0].text


async def test_the_requester_gets_a_dm_when_asked_for(bot_factory: Any, clock: FrozenClock, shared_data: Path) -> None:
    bot = await bot_factory(finetune_dm_on_finish=True)
    report, _ = await start_job(bot, shared_data / "gsm8k_chat_validation.jsonl")
    await run_until(bot, clock, lambda: result_of(bot, report))
    dm = "D" + ALICE[1:]
    await bot.workspace.wait_for(lambda: bot.workspace.bot_messages(dm))
    [direct] = bot.workspace.bot_messages(dm)
    assert direct.text.startswith("✅") and f"<#{GENERAL}>" in direct.text
    for _ in range(3):
        await ticks.tick(bot.services, owner=OWNER)
    assert len(bot.workspace.bot_messages(dm)) == 1
