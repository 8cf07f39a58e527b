"""The data flywheel through both emulators: reactions and corrections in chat threads become dataset v2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from bot.clock import FrozenClock
from sandbox.slack import Message
from storage.models import AuditEntry, Candidate, Dataset
from tests.conftest import ALICE, BOB, GENERAL, BotUnderTest
from tests.scenarios.scenes import (
    MARV_SYSTEM,
    answers,
    ask,
    job_row,
    marv_file,
    open_modal,
    result_of,
    root_of,
    run_until,
    start_job,
)

KEPT = "inbox_tray"


async def chat_thread(bot: BotUnderTest, clock: FrozenClock, tmp_path: Path, *, compare: bool = False) -> Message:
    report, _ = await start_job(bot, marv_file(tmp_path), n_epochs="4", suffix="marv")
    await run_until(bot, clock, lambda: result_of(bot, report))
    result = result_of(bot, report)
    assert result is not None
    await bot.driver.click(ALICE, result, "compare_start" if compare else "chat_start")
    prefix = "⚖️ Compare" if compare else "💬 Chat with"
    root: Message = await bot.workspace.wait_for(
        lambda: next((m for m in bot.workspace.channel_messages(GENERAL) if m.text.startswith(prefix)), None)
    )
    return root


async def candidates(bot: BotUnderTest) -> list[Candidate]:
    async with bot.services.db.session() as session:
        return list((await session.exec(select(Candidate).order_by(Candidate.id))).all())  # type: ignore[arg-type]


@pytest.mark.slow
async def test_a_thumbs_up_keeps_the_exchange_once_and_taking_it_back_withdraws_it(
    bot: BotUnderTest, clock: FrozenClock, tmp_path: Path
) -> None:
    root = await chat_thread(bot, clock, tmp_path)
    await ask(bot, root, "What is the capital of France?", expect=1)
    [reply] = (await ask(bot, root, "Who wrote Hamlet?", expect=2, user=BOB))[1:]
    await bot.driver.react(BOB, reply, "+1", retries=2)  # Slack delivers it three times
    await bot.workspace.wait_for(lambda: KEPT in reply.reactions)
    [kept] = await candidates(bot)
    assert (kept.kind, kept.status, kept.contributor, kept.thread_ts) == ("approved", "pending", BOB, root.ts)
    assert kept.example["messages"] == [
        {"role": "system", "content": MARV_SYSTEM},
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris, as if everyone didn't know."},
        {"role": "user", "content": "Who wrote Hamlet?"},
        {"role": "assistant", "content": "Some fellow called Shakespeare. Ever heard of him?"},
    ]
    assert reply.reactions[KEPT] == {bot.workspace.bot_user_id}
    assert len(answers(bot, root)) == 2, "the bot answered the vote with a reaction, not a message"

    await bot.driver.react(BOB, reply, "+1", added=False)
    await bot.workspace.wait_for(lambda: KEPT not in reply.reactions)
    [withdrawn] = await candidates(bot)
    assert withdrawn.status == "withdrawn"
    await bot.driver.react(BOB, reply, "+1::skin-tone-3")
    await bot.workspace.wait_for(lambda: KEPT in reply.reactions)
    [again] = await candidates(bot)
    assert again.status == "pending" and again.id == kept.id
    await bot.driver.react(ALICE, reply, "tada")  # not a vote
    async with bot.services.db.session() as session:
        actions = [e.action for e in (await session.exec(select(AuditEntry))).all()]
    assert actions.count("collect approved") == 2 and actions.count("withdraw approved") == 1


@pytest.mark.slow
async def test_a_correct_reply_keeps_the_corrected_answer_without_asking_the_model(
    http_bot: BotUnderTest, clock: FrozenClock, tmp_path: Path
) -> None:
    root = await chat_thread(http_bot, clock, tmp_path)
    await ask(http_bot, root, "How far is the Moon?", expect=1)
    asked = len(http_bot.openai.state.chat_requests)
    correction = await http_bot.driver.say(
        ALICE, GENERAL, "correct: About 384,400 km on average. It varies.", thread_ts=root.ts
    )
    await http_bot.workspace.wait_for(lambda: KEPT in correction.reactions)
    [kept] = await candidates(http_bot)
    assert kept.kind == "corrected" and kept.contributor == ALICE
    assert kept.example["messages"][-2:] == [
        {"role": "user", "content": "How far is the Moon?"},
        {"role": "assistant", "content": "About 384,400 km on average. It varies."},
    ]
    assert len(http_bot.openai.state.chat_requests) == asked, "a correction is not a question"


@pytest.mark.slow
async def test_compare_thumbs_up_and_down_make_a_preference_pair(
    http_bot: BotUnderTest, clock: FrozenClock, tmp_path: Path
) -> None:
    root = await chat_thread(http_bot, clock, tmp_path, compare=True)
    fine_tuned, base = await ask(http_bot, root, "How many legs does a spider have?", expect=2)
    question = next(m for m in http_bot.workspace.replies_of(GENERAL, root.ts) if m.text.startswith("How many legs"))
    await http_bot.driver.react(BOB, base, "-1")
    await http_bot.driver.react(BOB, fine_tuned, "+1")
    await http_bot.workspace.wait_for(lambda: KEPT in question.reactions)  # the pair, kept from its question
    kept = {c.kind: c for c in await candidates(http_bot) if c.status == "pending"}
    assert set(kept) == {"approved", "rejected", "preference"}
    example = kept["preference"].example
    assert example["input"]["messages"] == [
        {"role": "system", "content": MARV_SYSTEM},
        {"role": "user", "content": "How many legs does a spider have?"},
    ]
    assert example["preferred_output"] == [{"role": "assistant", "content": "Eight. Count them yourself."}]
    assert example["non_preferred_output"][0]["content"].startswith("[gpt-4o-mini-2024-07-18]")
    assert KEPT not in base.reactions, "a lone 👎 is not an example"
    await http_bot.driver.react(BOB, base, "-1", added=False)
    await http_bot.workspace.wait_for(lambda: KEPT not in question.reactions)
    statuses = {c.kind: c.status for c in await candidates(http_bot)}
    assert statuses == {"approved": "pending", "rejected": "withdrawn", "preference": "withdrawn"}


@pytest.mark.slow
async def test_publishing_builds_v2_with_a_diff_and_a_prefilled_train(
    http_bot: BotUnderTest, clock: FrozenClock, tmp_path: Path
) -> None:
    root = await chat_thread(http_bot, clock, tmp_path)
    [good] = await ask(http_bot, root, "What is the largest ocean?", expect=1)
    await ask(http_bot, root, "What is the speed of sound?", expect=2)
    correction = await http_bot.driver.say(BOB, GENERAL, "correct: About 343 m/s in air. Keep up.", thread_ts=root.ts)
    await http_bot.driver.react(ALICE, good, "+1")
    await http_bot.workspace.wait_for(lambda: KEPT in correction.reactions and KEPT in good.reactions)

    await http_bot.driver.slash_command(BOB, GENERAL, "candidates gsm8k.jsonl")
    listing = await http_bot.workspace.wait_for(
        lambda: next((e for e in http_bot.workspace.ephemerals_for(BOB) if "candidate(s)" in e.text), None)
    )
    shown = json.dumps(listing.blocks, ensure_ascii=False)
    assert "2 candidate(s)" in listing.text and "1 👍 approved reply, 1 ✏️ correction" in shown
    assert "⚠️ 1 already in the data" in shown, "the approved answer is a training example word for word"
    assert "candidate_drop" not in shown, "Bob neither shared the data nor is an admin"

    await http_bot.driver.slash_command(ALICE, GENERAL, "dataset next gsm8k.jsonl")
    published = await http_bot.workspace.wait_for(
        lambda: next((e for e in http_bot.workspace.ephemerals_for(ALICE) if e.text.startswith("Published")), None)
    )
    assert "`gsm8k-v2.jsonl`" in published.text and "1 examples added" in published.text
    announcement = root_of(http_bot, "📦")
    assert announcement is not None
    assert "version 2 of `gsm8k.jsonl`" in announcement.text and f"<@{BOB}>" in announcement.text
    report = await http_bot.workspace.wait_for(
        lambda: next(iter(http_bot.workspace.replies_of(GENERAL, announcement.ts)), None)
    )
    text = json.dumps(report.blocks, ensure_ascii=False)
    assert "11 → 12 examples (1 ✏️ correction)" in text
    assert "went in as new examples: nothing already in the data was replaced" in text
    assert "Left out: 1 already in the data" in text
    async with http_bot.services.db.session() as session:
        v2 = (await session.exec(select(Dataset).where(Dataset.version == 2))).one()
        states = sorted((c.kind, c.status) for c in (await session.exec(select(Candidate))).all())
    assert v2.parent_id == 1 and v2.examples == 12 and v2.valid
    assert states == [("approved", "pending"), ("corrected", "published")]
    lines = (
        http_bot.services.settings.finetune_data_dir / "datasets" / v2.sha256[:2] / f"{v2.sha256}.jsonl"
    ).read_text()
    assert lines.splitlines()[-1] == json.dumps(
        {
            "messages": [
                {"role": "system", "content": MARV_SYSTEM},
                {"role": "user", "content": "What is the largest ocean?"},
                {"role": "assistant", "content": "The Pacific. The big wet one."},
                {"role": "user", "content": "What is the speed of sound?"},
                {"role": "assistant", "content": "About 343 m/s in air. Keep up."},
            ]
        },
        ensure_ascii=False,
    )

    modal = await open_modal(http_bot, ALICE, http_bot.driver.click(ALICE, report, "dataset_train"))
    form = json.dumps(modal.view)
    assert '"initial_value": "4"' in form and '"initial_value": "marv"' in form, "the previous job's settings"

    await http_bot.driver.slash_command(ALICE, GENERAL, "dataset next gsm8k.jsonl")
    nothing_new = await http_bot.workspace.wait_for(
        lambda: next((e for e in http_bot.workspace.ephemerals_for(ALICE) if "nothing new" in e.text), None)
    )
    assert "1 already in the data" in nothing_new.text


@pytest.mark.slow
async def test_the_owner_drops_a_candidate(http_bot: BotUnderTest, clock: FrozenClock, tmp_path: Path) -> None:
    root = await chat_thread(http_bot, clock, tmp_path)
    [reply] = await ask(http_bot, root, "Who painted the Mona Lisa?", expect=1)
    await http_bot.driver.react(BOB, reply, "thumbsup")
    await http_bot.workspace.wait_for(lambda: KEPT in reply.reactions)
    await http_bot.driver.slash_command(ALICE, GENERAL, "candidates 1")
    listing = await http_bot.workspace.wait_for(
        lambda: next((e for e in http_bot.workspace.ephemerals_for(ALICE) if "candidate(s)" in e.text), None)
    )
    await http_bot.driver.click(
        ALICE, Message(channel=GENERAL, ts=listing.ts, user=ALICE, text="", blocks=listing.blocks), "candidate_drop"
    )
    await http_bot.workspace.wait_for(
        lambda: any(e.text.startswith("Dropped candidate") for e in http_bot.workspace.ephemerals_for(ALICE))
    )
    [dropped] = await candidates(http_bot)
    assert dropped.status == "dropped"


@pytest.mark.slow
async def test_votes_outside_a_chat_thread_are_ignored(
    http_bot: BotUnderTest, clock: FrozenClock, tmp_path: Any
) -> None:
    report, job = await start_job(http_bot, marv_file(tmp_path))
    await run_until(http_bot, clock, lambda: result_of(http_bot, report))
    assert (await job_row(http_bot, job.id or 0)).fine_tuned_model
    result = result_of(http_bot, report)
    assert result is not None
    await http_bot.driver.react(ALICE, result, "+1")
    await http_bot.driver.react(ALICE, report, "-1")
    assert await candidates(http_bot) == []
    assert KEPT not in result.reactions
