"""Team views and model lifecycle: App Home, models and reminders, golden sets, export, delete, audit."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from bot import ticks
from bot.clock import FrozenClock
from bot.models import golden
from storage import repositories
from storage.models import Dataset, GoldenAnswer, GoldenSet, TrainingJob
from tests.conftest import ALICE, BOB, GENERAL, BotUnderTest
from tests.scenarios.scenes import marv_file, trained

ADMINS = "C0ADMINS"


def home_of(bot: BotUnderTest, user: str) -> dict[str, Any] | None:
    view_id = bot.workspace.home_views.get(user)
    return bot.workspace.views[view_id].view if view_id else None


@pytest.mark.slow
async def test_app_home_shows_datasets_jobs_models_and_spend(
    http_bot: BotUnderTest, clock: FrozenClock, tmp_path: Path
) -> None:
    await http_bot.driver.open_home(BOB)
    empty = await http_bot.workspace.wait_for(lambda: home_of(http_bot, BOB))
    assert "Drop a `.jsonl` file" in json.dumps(empty)
    job, _ = await trained(http_bot, clock, marv_file(tmp_path))
    model = job.fine_tuned_model or ""
    home = await http_bot.workspace.wait_for(
        lambda: (view := home_of(http_bot, BOB)) and model in json.dumps(view) and view
    )
    text = json.dumps(home, ensure_ascii=False)
    assert "gsm8k.jsonl" in text and "Train…" in text, "the file as it was shared"
    assert "retires 2027-01-14 (54 days left)" in text
    assert "This month's training spend:* $0.01" in text or "under $0.01" in text
    assert {"chat_start", "compare_start", "model_delete"} <= {
        e.get("action_id") for b in home["blocks"] for e in b.get("elements", [])
    }


async def test_a_long_home_is_paged_within_slacks_limit(http_bot: BotUnderTest, clock: FrozenClock) -> None:
    team = http_bot.workspace.team_id
    async with http_bot.services.db.session() as session, session.begin():
        await repositories.ensure_team(session, team_id=team)
        for index in range(40):
            dataset, _ = await repositories.add_dataset(
                session,
                dataset=Dataset(
                    team_id=team,
                    channel_id=GENERAL,
                    message_ts=f"{index}.1",
                    uploaded_by=ALICE,
                    filename=f"set-{index}.jsonl",
                    bytes=10,
                    sha256=f"{index:064d}",
                    valid=True,
                    examples=10,
                    created_at=clock.now(),
                ),
            )
            session.add(
                TrainingJob(
                    team_id=team,
                    dataset_id=dataset.id or 0,
                    request_id=f"r{index}",
                    provider="sandbox",
                    provider_job_id=f"ftjob-{index}",
                    base_model="gpt-4o-mini-2024-07-18",
                    status="succeeded",
                    fine_tuned_model=f"ft:gpt-4o-mini-2024-07-18:sandbox::{index:08d}",
                    requested_by=ALICE,
                    channel_id=GENERAL,
                    thread_ts=f"{index}.1",
                    created_at=clock.now(),
                    finished_at=clock.now(),
                    model_retires=(clock.now() + timedelta(days=50 - index)).date(),
                )
            )
    await http_bot.driver.open_home(ALICE)
    view = await http_bot.workspace.wait_for(lambda: home_of(http_bot, ALICE))
    assert len(view["blocks"]) <= 100
    assert "page 1 of 5" in json.dumps(view, ensure_ascii=False)
    assert "⚠️ retires" in json.dumps(view, ensure_ascii=False)
    home = http_bot.workspace.views[http_bot.workspace.home_views[ALICE]]
    await http_bot.driver.click_in_view(ALICE, home, "home_page")
    await http_bot.workspace.wait_for(
        lambda: "*Datasets* (40) — page 2 of 5" in json.dumps(home_of(http_bot, ALICE) or {}, ensure_ascii=False)
    )
    assert len((home_of(http_bot, ALICE) or {})["blocks"]) <= 100


@pytest.mark.slow
async def test_models_command_and_retirement_reminders_sent_once(
    bot_factory: Any, clock: FrozenClock, tmp_path: Path
) -> None:
    bot = await bot_factory(finetune_approval_channel=ADMINS, finetune_admins=[BOB])
    bot.workspace.add_channel(ADMINS, "ml-admins", members=[BOB])
    job, _ = await trained(bot, clock, marv_file(tmp_path))
    await bot.driver.slash_command(ALICE, GENERAL, "models")
    [listing] = await bot.workspace.wait_for(lambda: bot.workspace.ephemerals_for(ALICE))
    assert f"`{job.fine_tuned_model}`" in json.dumps(listing.blocks)
    assert "retires 2027-01-14 (54 days left)" in json.dumps(listing.blocks)

    def reminders(channel: str) -> list[str]:
        return [m.text for m in bot.workspace.bot_messages(channel) if m.text.startswith("⚠️")]

    dm = "D" + ALICE[1:]
    clock.advance(timedelta(days=25))  # 29 days left
    await ticks.tick(bot.services, owner="a")
    assert len(reminders(ADMINS)) == 1 and "in 29 days" in reminders(ADMINS)[0]
    assert len(reminders(dm)) == 1
    await ticks.tick(bot.services, owner="a")
    await bot.running.stop()
    await bot.services.aclose()
    again = await bot_factory(finetune_approval_channel=ADMINS, finetune_admins=[BOB])
    await ticks.tick(again.services, owner="b")
    assert len(reminders(ADMINS)) == 1, "sent once, across a restart"
    clock.advance(timedelta(days=23))  # 6 days left
    await ticks.tick(again.services, owner="b")
    assert len(reminders(ADMINS)) == 2 and "in 6 days" in reminders(ADMINS)[1]
    clock.advance(timedelta(days=5))  # 1 day left
    await ticks.tick(again.services, owner="b")
    await ticks.tick(again.services, owner="b")
    assert len(reminders(ADMINS)) == 3 and "tomorrow" in reminders(ADMINS)[2]
    assert len(reminders(dm)) == 3


async def golden_rows(bot: BotUnderTest) -> tuple[list[GoldenSet], list[GoldenAnswer]]:
    async with bot.services.db.session() as session:
        sets = list((await session.exec(select(GoldenSet))).all())
        answers = list((await session.exec(select(GoldenAnswer))).all())
    return sets, answers


@pytest.mark.slow
async def test_a_golden_set_is_recorded_and_posted(http_bot: BotUnderTest, clock: FrozenClock, tmp_path: Path) -> None:
    job, result = await trained(http_bot, clock, marv_file(tmp_path))
    await http_bot.driver.slash_command(ALICE, GENERAL, f"record {job.fine_tuned_model}")
    thread = result.thread_ts or ""
    summary = await http_bot.workspace.wait_for(
        lambda: next((m for m in http_bot.workspace.replies_of(GENERAL, thread) if m.text.startswith("📼")), None)
    )
    assert "11 prompts" in summary.text
    shared = await http_bot.workspace.wait_for(
        lambda: next(
            (
                m
                for m in http_bot.workspace.replies_of(GENERAL, thread)
                if m.files and "golden-set" in http_bot.workspace.files[m.files[0]].name
            ),
            None,
        )
    )
    lines = http_bot.workspace.files[shared.files[0]].content.decode().splitlines()
    assert len(lines) == 11
    first = json.loads(lines[0])["messages"]
    assert first[0]["content"].startswith("Marv") and first[-1]["role"] == "assistant"
    assert first[-1]["content"] == "Paris, as if everyone didn't know."
    progress = next(m for m in http_bot.workspace.replies_of(GENERAL, thread) if "Recording a golden set" in m.text)
    assert progress.text.startswith("✅") and "11/11" in progress.text
    [golden_set], answers = await golden_rows(http_bot)
    assert golden_set.status == "done" and len(answers) == 11


@pytest.mark.slow
async def test_an_interrupted_recording_resumes_after_a_restart(
    bot_factory: Any, clock: FrozenClock, tmp_path: Path
) -> None:
    bot = await bot_factory()
    job, result = await trained(bot, clock, marv_file(tmp_path))
    bot.openai.state.inject("POST /chat/completions", delay_seconds=0.3)
    await bot.driver.slash_command(ALICE, GENERAL, f"record #{job.id}")
    # Four answers at a time: the fifth request starts only once an answer is stored.
    await bot.openai.state.wait_for_chats(5)
    await bot.running.stop()
    await bot.services.aclose()  # the recording is cut off mid-way
    _, answers = await golden_rows(bot)
    assert 0 < len(answers) < 11
    bot.openai.state.faults.clear()
    again = await bot_factory()
    await ticks.tick(again.services, owner="b")
    assert len((await golden_rows(again))[1]) == len(answers), "the first runner's lease still holds"
    clock.advance(timedelta(minutes=6))
    await ticks.tick(again.services, owner="b")
    [golden_set], answers_after = await golden_rows(again)
    assert golden_set.status == "done"
    assert sorted(a.position for a in answers_after) == list(range(11)), "every prompt once"
    summaries = [m for m in again.workspace.replies_of(GENERAL, result.thread_ts or "") if m.text.startswith("📼")]
    assert len(summaries) == 1


@pytest.mark.slow
async def test_export_dataset_and_model(http_bot: BotUnderTest, clock: FrozenClock, tmp_path: Path) -> None:
    data = marv_file(tmp_path)
    job, result = await trained(http_bot, clock, data)
    await http_bot.driver.slash_command(ALICE, GENERAL, "export gsm8k.jsonl")
    thread = result.thread_ts or ""

    def exported() -> list[Any]:
        return [m for m in http_bot.workspace.replies_of(GENERAL, thread) if m.text.startswith("📦")]

    [export] = await http_bot.workspace.wait_for(exported)
    assert http_bot.workspace.files[export.files[0]].content == data.read_bytes()
    recording = await golden.start_recording(
        http_bot.services,
        team_id=http_bot.workspace.team_id,
        user_id=ALICE,
        reference=f"#{job.id}",
        dataset_reference=None,
    )
    await http_bot.workspace.wait_for(
        lambda: (
            (golden_rows_done := recording.id)
            and any(m.text.startswith("📼") for m in http_bot.workspace.replies_of(GENERAL, thread))
            and golden_rows_done
        )
    )
    await http_bot.driver.slash_command(ALICE, GENERAL, f"export {job.fine_tuned_model}")
    second = await http_bot.workspace.wait_for(lambda: len(exported()) == 2 and exported()[1])
    names = [http_bot.workspace.files[f].name for f in second.files]
    assert names == ["gsm8k.jsonl", "golden-set.jsonl"]


@pytest.mark.slow
async def test_delete_from_the_command_asks_first_and_is_audited(
    bot_factory: Any, clock: FrozenClock, tmp_path: Path
) -> None:
    bot = await bot_factory(finetune_admins=[BOB])
    job, _ = await trained(bot, clock, marv_file(tmp_path))
    await bot.driver.slash_command(BOB, GENERAL, f"delete #{job.id}")
    [question] = await bot.workspace.wait_for(lambda: bot.workspace.ephemerals_for(BOB))
    button = next(e for b in question.blocks for e in b.get("elements", []) if e.get("action_id") == "model_delete")
    assert button["confirm"]["title"]["text"] == "Delete this model?"
    assert job.fine_tuned_model not in bot.openai.state.deleted_models
    from sandbox.slack import Message

    await bot.driver.click(
        BOB, Message(channel=GENERAL, ts="1.1", user=BOB, text="", blocks=question.blocks), "model_delete"
    )
    # The clicker's answer comes once the deletion is recorded and audited, not just done at the provider.
    await bot.workspace.wait_for(lambda: any(e.text.endswith("is deleted.") for e in bot.workspace.ephemerals_for(BOB)))
    assert job.fine_tuned_model in bot.openai.state.deleted_models
    await bot.driver.slash_command(ALICE, GENERAL, "audit")
    [refused] = await bot.workspace.wait_for(lambda: bot.workspace.ephemerals_for(ALICE))
    assert "Only admins" in refused.text
    await bot.driver.slash_command(BOB, GENERAL, "audit 5")
    log = await bot.workspace.wait_for(
        lambda: [e for e in bot.workspace.ephemerals_for(BOB) if "audit entries" in json.dumps(e.blocks)]
    )
    text = json.dumps(log[0].blocks)
    assert "*delete* model:" in text and "*start* job:" in text
    async with bot.services.db.session() as session:
        deleted = await session.get(TrainingJob, job.id)
    assert deleted is not None and deleted.model_deleted_at is not None
