"""Where real OpenAI-compatible hosts depart from OpenAI, through the real bot and the emulator's quirks:
each one ends in a job followed to its end or a sentence in the thread, never a job left `starting`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from bot.clock import FrozenClock
from storage.models import JobEvent
from tests.conftest import ALICE, GENERAL, BotUnderTest
from tests.examples import chat_lines
from tests.scenarios.scenes import (
    ask,
    card_of,
    failure_in,
    job_row,
    job_rows,
    marv_file,
    open_modal,
    result_of,
    root_of,
    run_until,
    shared_report,
    start_job,
    trained,
)


async def submitted(bot: BotUnderTest, shared_data: Path) -> Any:
    report = await shared_report(bot, shared_data / "gsm8k_chat_validation.jsonl")
    modal = await open_modal(bot, ALICE, bot.driver.click(ALICE, report, "dataset_train"))
    await bot.driver.submit_form(ALICE, modal)
    return report


async def test_a_file_without_a_status_counts_as_processed(http_bot: BotUnderTest, shared_data: Path) -> None:
    """Nebius's files carry no status: the SDK's own wait would poll for 30 minutes and raise."""
    http_bot.openai.state.quirks.file_status = None
    report = await submitted(http_bot, shared_data)
    await http_bot.workspace.wait_for(lambda: card_of(http_bot, report) or failure_in(http_bot, report))
    assert failure_in(http_bot, report) is None
    [row] = await job_rows(http_bot)
    assert row.status != "starting" and row.provider_job_id in http_bot.openai.state.jobs
    retrieved = [path for method, path in http_bot.openai.state.calls if method == "GET" and "/files/" in path]
    assert len(retrieved) == 1, "looked at once, not polled"


async def test_a_file_still_processing_gets_a_bounded_wait_and_a_clear_message(
    http_bot: BotUnderTest, shared_data: Path
) -> None:
    http_bot.openai.state.quirks.file_status = "uploaded"
    report = await submitted(http_bot, shared_data)
    failure = await http_bot.workspace.wait_for(lambda: failure_in(http_bot, report))
    assert "was still being processed (status “uploaded”) after 5 minutes" in failure.text
    assert "try again in a few minutes" in failure.text
    [row] = await job_rows(http_bot)
    assert row.status == "not_started" and http_bot.openai.state.jobs == {}


async def test_a_403_on_create_says_fine_tuning_is_closed_to_the_organization(
    http_bot: BotUnderTest, shared_data: Path
) -> None:
    """What accounts get once OpenAI stops new jobs (2027-01-06): not a key problem."""
    http_bot.openai.state.quirks.fine_tuning_closed = True
    report = await submitted(http_bot, shared_data)
    failure = await http_bot.workspace.wait_for(lambda: failure_in(http_bot, report))
    assert "can no longer create fine-tuning jobs at the sandbox" in failure.text
    assert "provider key" not in failure.text
    [row] = await job_rows(http_bot)
    assert row.status == "not_started"


async def test_an_account_out_of_quota_is_told_to_add_credit(http_bot: BotUnderTest, shared_data: Path) -> None:
    http_bot.openai.state.quirks.out_of_quota = True
    report = await submitted(http_bot, shared_data)
    failure = await http_bot.workspace.wait_for(lambda: failure_in(http_bot, report))
    assert "You exceeded your current quota" in failure.text and "add credit" in failure.text
    assert len([m for m, p in http_bot.openai.state.calls if m == "POST" and p.endswith("/fine_tuning/jobs")]) == 1
    [row] = await job_rows(http_bot)
    assert row.status == "not_started"


@pytest.mark.slow
async def test_events_a_host_lists_oldest_first_all_arrive_once_in_order(
    http_bot: BotUnderTest, clock: FrozenClock, tmp_path: Path
) -> None:
    state = http_bot.openai.state
    state.quirks.events_oldest_first = True
    data = tmp_path / "many.jsonl"
    data.write_bytes(chat_lines(120))
    report, job = await start_job(http_bot, data, n_epochs="3", batch_size="1")
    await run_until(http_bot, clock, lambda: result_of(http_bot, report), seconds=20)
    done = await job_row(http_bot, job.id or 0)
    async with http_bot.services.db.session() as session:
        rows = (await session.exec(select(JobEvent).where(JobEvent.job_id == job.id).order_by(JobEvent.id))).all()  # type: ignore[arg-type]
    at_host = state.jobs[done.provider_job_id or ""].events
    assert len(at_host) > 100, "more than one page of events"
    assert [row.provider_event_id for row in rows] == [event["id"] for event in at_host]
    assert done.status == "succeeded" and done.step == done.total_steps


@pytest.mark.slow
async def test_a_host_without_checkpoints_still_reports_the_result(
    http_bot: BotUnderTest, clock: FrozenClock, shared_data: Path
) -> None:
    http_bot.openai.state.quirks.no_checkpoints = True
    report, job = await start_job(http_bot, shared_data / "gsm8k_chat_validation.jsonl")
    await run_until(http_bot, clock, lambda: result_of(http_bot, report))
    result = result_of(http_bot, report)
    assert result is not None and result.text.startswith("✅")
    assert "Checkpoints" not in json.dumps(result.blocks)
    assert (await job_row(http_bot, job.id or 0)).status == "succeeded"


@pytest.mark.slow
async def test_an_answer_cut_off_at_the_token_limit_says_so(
    bot_factory: Any, clock: FrozenClock, tmp_path: Path
) -> None:
    bot = await bot_factory(finetune_chat_max_tokens=64)
    _, result = await trained(bot, clock, marv_file(tmp_path, long_answer=True))
    await bot.driver.click(ALICE, result, "chat_start")
    root = await bot.workspace.wait_for(lambda: root_of(bot, "💬 Chat with"))
    [cut] = await ask(bot, root, "Tell me the whole history of the universe", expect=1)
    footer = json.dumps(cut.blocks, ensure_ascii=False)
    assert "Cut off: the answer reached the 64-token limit" in footer
    [whole] = (await ask(bot, root, "What is the capital of France?", expect=2))[1:]
    assert "Cut off" not in json.dumps(whole.blocks, ensure_ascii=False)
    assert bot.workspace.replies_of(GENERAL, root.ts)
