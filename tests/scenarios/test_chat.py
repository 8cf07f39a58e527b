"""Chatting with fine-tuned models in threads, and comparing them with their base."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.clock import FrozenClock
from tests.conftest import ALICE, BOB, GENERAL, BotUnderTest
from tests.scenarios.scenes import (
    MARV_SYSTEM,
    answers,
    ask,
    marv_file,
    root_of,
    trained,
)


@pytest.mark.slow
async def test_chat_from_the_result_button_with_history(bot: BotUnderTest, clock: FrozenClock, tmp_path: Path) -> None:
    job, result = await trained(bot, clock, marv_file(tmp_path))
    await bot.driver.click(ALICE, result, "chat_start")
    root = await bot.workspace.wait_for(lambda: root_of(bot, "💬 Chat with"))
    assert job.fine_tuned_model and f"`{job.fine_tuned_model}`" in root.text
    assert MARV_SYSTEM in json.dumps(root.blocks), "the most common system prompt of the training data"
    [first] = await ask(bot, root, "What is the capital of France?", expect=1)
    assert first.text.startswith("Paris, as if everyone didn't know.")
    assert "in ·" in json.dumps(first.blocks) or " in · " in json.dumps(first.blocks, ensure_ascii=False)
    await ask(bot, root, "And who wrote Hamlet?", expect=2)
    request = bot.openai.state.chat_requests[-1]
    assert request["model"] == job.fine_tuned_model
    assert [m["role"] for m in request["messages"]] == ["system", "user", "assistant", "user"]
    assert request["messages"][0]["content"] == MARV_SYSTEM
    assert request["messages"][2]["content"].startswith("Paris")
    assert "Shakespeare" in answers(bot, root)[-1].text


@pytest.mark.slow
async def test_chat_command_with_a_system_prompt_and_mentions(
    http_bot: BotUnderTest, clock: FrozenClock, tmp_path: Path
) -> None:
    job, _ = await trained(http_bot, clock, marv_file(tmp_path))
    await http_bot.driver.slash_command(BOB, GENERAL, f'chat #{job.id} system="Answer in one word."')
    root = await http_bot.workspace.wait_for(lambda: root_of(http_bot, "💬 Chat with"))
    assert "Answer in one word." in json.dumps(root.blocks)
    mention = f"<@{http_bot.workspace.bot_user_id}> How many legs does a spider have?"
    [answer] = await ask(http_bot, root, mention, expect=1, user=BOB)
    assert answer.text.startswith("Eight")
    await asyncio.sleep(0)
    assert len(answers(http_bot, root)) == 1, "the message and the app_mention of one post are answered once"
    assert http_bot.openai.state.chat_requests[-1]["messages"][0]["content"] == "Answer in one word."


@pytest.mark.slow
async def test_streaming_and_the_edit_fallback(
    long_answer_bot: BotUnderTest, clock: FrozenClock, tmp_path: Path
) -> None:
    job, _ = await trained(long_answer_bot, clock, marv_file(tmp_path, long_answer=True))
    await long_answer_bot.driver.slash_command(ALICE, GENERAL, f"chat #{job.id}")
    root = await long_answer_bot.workspace.wait_for(lambda: root_of(long_answer_bot, "💬 Chat with"))
    long_answer_bot.openai.state.stream_delay_seconds = 0.001  # appends are paced by time: let the model take some
    parts = await ask(long_answer_bot, root, "Tell me the whole history of the universe", expect=4)
    long_answer_bot.openai.state.stream_delay_seconds = 0.0
    streamed = long_answer_bot.workspace.calls_of("chat.startStream")
    assert len(streamed) == len(parts), "each part is its own streamed message"
    assert all(call["recipient_user_id"] == ALICE for call in streamed)
    assert len(long_answer_bot.workspace.calls_of("chat.appendStream")) >= len(parts) - 1, "it streamed as it came"
    assert all(not part.streaming for part in parts), "every stream was stopped"
    long_answer_bot.workspace.streaming_supported = False
    long_answer_bot.services.slack_state.streaming_supported = True
    updates_before = len(long_answer_bot.workspace.calls_of("chat.update"))
    again = await ask(long_answer_bot, root, "Tell me the whole history of the universe", expect=2 * len(parts))
    edited = again[len(parts) :]
    assert "".join(part.text for part in edited) == ("It began with a bang. " * 400).strip()
    assert len(long_answer_bot.workspace.calls_of("chat.update")) > updates_before, "placeholders edited in place"
    assert not long_answer_bot.services.slack_state.streaming_supported, "remembered: this workspace does not stream"


@pytest.mark.slow
async def test_history_is_trimmed_from_the_oldest_turns(bot_factory: Any, clock: FrozenClock, tmp_path: Path) -> None:
    bot = await bot_factory(finetune_context_windows={"gpt-4o-mini-2024-07-18": 120}, finetune_chat_max_tokens=40)
    job, _ = await trained(bot, clock, marv_file(tmp_path))
    await bot.driver.slash_command(ALICE, GENERAL, f"chat #{job.id}")
    root = await bot.workspace.wait_for(lambda: root_of(bot, "💬 Chat with"))
    questions = [
        "What is the capital of France?",
        "Who wrote Hamlet?",
        "How far is the Moon?",
        "What is the largest ocean?",
        "Who painted the Mona Lisa?",
    ]
    for index, question in enumerate(questions, start=1):
        await ask(bot, root, question, expect=index)
    last = bot.openai.state.chat_requests[-1]["messages"]
    assert last[0]["role"] == "system" and last[1]["role"] == "user"
    assert last[-1]["content"] == "Who painted the Mona Lisa?"
    assert "What is the capital of France?" not in [m["content"] for m in last], "the oldest turn went first"
    assert len(last) < 2 * len(questions)
    await bot.driver.say(ALICE, GENERAL, "word " * 400, thread_ts=root.ts)
    notice = await bot.workspace.wait_for(
        lambda: next((m for m in bot.workspace.replies_of(GENERAL, root.ts) if m.text.startswith("⚠️")), None)
    )
    assert "too long" in notice.text


@pytest.mark.slow
async def test_compare_answers_with_both_models(http_bot: BotUnderTest, clock: FrozenClock, tmp_path: Path) -> None:
    job, result = await trained(http_bot, clock, marv_file(tmp_path))
    await http_bot.driver.click(ALICE, result, "compare_start")
    root = await http_bot.workspace.wait_for(lambda: root_of(http_bot, "⚖️ Compare"))
    assert "gpt-4o-mini-2024-07-18`" in root.text
    tuned, base = await ask(http_bot, root, "What is the capital of France?", expect=2)
    assert tuned.text.startswith(f"*{job.fine_tuned_model}*\nParis")
    assert base.text.startswith("*gpt-4o-mini-2024-07-18*\n[gpt-4o-mini-2024-07-18]")
    await ask(http_bot, root, "Who wrote Hamlet?", expect=4)
    requests = http_bot.openai.state.chat_requests[-2:]
    for request in requests:
        assistant = [m["content"] for m in request["messages"] if m["role"] == "assistant"]
        assert len(assistant) == 1 and not assistant[0].startswith("*"), "each model sees its own answers"
    assert requests[0]["messages"][2]["content"].startswith("Paris")
    assert requests[1]["messages"][2]["content"].startswith("[gpt-4o-mini")


@pytest.mark.slow
async def test_two_threads_at_once(http_bot: BotUnderTest, clock: FrozenClock, tmp_path: Path) -> None:
    job, _ = await trained(http_bot, clock, marv_file(tmp_path))
    for _ in range(2):
        await http_bot.driver.slash_command(ALICE, GENERAL, f"chat #{job.id}")
    roots = await http_bot.workspace.wait_for(
        lambda: (
            (r := [m for m in http_bot.workspace.channel_messages(GENERAL) if m.text.startswith("💬")])
            and len(r) == 2
            and r
        )
    )
    await asyncio.gather(
        http_bot.driver.say(ALICE, GENERAL, "What is the capital of France?", thread_ts=roots[0].ts),
        http_bot.driver.say(BOB, GENERAL, "How many continents are there?", thread_ts=roots[1].ts),
    )
    first = await http_bot.workspace.wait_for(lambda: answers(http_bot, roots[0]))
    second = await http_bot.workspace.wait_for(lambda: answers(http_bot, roots[1]))
    assert first[0].text.startswith("Paris") and second[0].text.startswith("Seven")


@pytest.mark.slow
async def test_a_slack_retry_is_answered_once(http_bot: BotUnderTest, clock: FrozenClock, tmp_path: Path) -> None:
    job, _ = await trained(http_bot, clock, marv_file(tmp_path))
    await http_bot.driver.slash_command(ALICE, GENERAL, f"chat #{job.id}")
    root = await http_bot.workspace.wait_for(lambda: root_of(http_bot, "💬 Chat with"))
    await ask(http_bot, root, "What is the capital of France?", expect=1, retries=2)
    assert len(answers(http_bot, root)) == 1
    assert len(http_bot.openai.state.chat_requests) == 1


@pytest.mark.slow
async def test_a_long_answer_is_split_under_slacks_limits(
    long_answer_bot: BotUnderTest, clock: FrozenClock, tmp_path: Path
) -> None:
    job, _ = await trained(long_answer_bot, clock, marv_file(tmp_path, long_answer=True))
    await long_answer_bot.driver.slash_command(ALICE, GENERAL, f"chat #{job.id}")
    root = await long_answer_bot.workspace.wait_for(lambda: root_of(long_answer_bot, "💬 Chat with"))
    parts = await ask(long_answer_bot, root, "Tell me the whole history of the universe", expect=4)
    assert all(len(part.text) <= 4000 for part in parts)
    assert "".join(part.text for part in parts) == ("It began with a bang. " * 400).strip()
    await ask(long_answer_bot, root, "Who wrote Hamlet?", expect=5)
    history = long_answer_bot.openai.state.chat_requests[-1]["messages"]
    assert history[2]["content"] == ("It began with a bang. " * 400).strip(), "the parts are one answer again"


@pytest.mark.slow
async def test_retired_and_deleted_models_say_so(http_bot: BotUnderTest, clock: FrozenClock, tmp_path: Path) -> None:
    job, result = await trained(http_bot, clock, marv_file(tmp_path))
    await http_bot.driver.slash_command(ALICE, GENERAL, f"chat #{job.id}")
    root = await http_bot.workspace.wait_for(lambda: root_of(http_bot, "💬 Chat with"))
    await http_bot.driver.click(BOB, result, "model_delete")
    [refusal] = await http_bot.workspace.wait_for(lambda: http_bot.workspace.ephemerals_for(BOB))
    assert "Only <@U0ALICE>" in refusal.text
    await http_bot.driver.click(ALICE, result, "model_delete")
    await http_bot.workspace.wait_for(
        lambda: (
            (job_id := job.id) and any("deleted" in m.text for m in http_bot.workspace.bot_messages(GENERAL) if job_id)
        )
    )
    await http_bot.driver.say(ALICE, GENERAL, "Still there?", thread_ts=root.ts)
    notice = await http_bot.workspace.wait_for(
        lambda: next((m for m in http_bot.workspace.replies_of(GENERAL, root.ts) if m.text.startswith("⚠️")), None)
    )
    assert "was deleted on 2026-11-21 (it was due to retire on 2027-01-14)" in notice.text

    await http_bot.driver.slash_command(ALICE, GENERAL, "chat gpt-4o-mini")
    base_root = await http_bot.workspace.wait_for(lambda: root_of(http_bot, "💬 Chat with `gpt-4o-mini-2024"))
    clock.advance(timedelta(days=60))
    await http_bot.driver.say(ALICE, GENERAL, "Hello?", thread_ts=base_root.ts)
    retired = await http_bot.workspace.wait_for(
        lambda: next((m for m in http_bot.workspace.replies_of(GENERAL, base_root.ts) if m.text.startswith("⚠️")), None)
    )
    assert "retired on 2027-01-14" in retired.text


async def test_threads_not_bound_to_a_model_and_edits_are_ignored(http_bot: BotUnderTest) -> None:
    root = http_bot.workspace.user_message(user=ALICE, channel=GENERAL, text="lunch?")
    await http_bot.driver.say(BOB, GENERAL, "yes please", thread_ts=root.ts)
    edited = {
        "type": "message",
        "subtype": "message_changed",
        "channel": GENERAL,
        "ts": "1.2",
        "message": {"text": "edited", "thread_ts": root.ts},
        "event_ts": "1.2",
    }
    await http_bot.driver.send_event(edited)
    assert http_bot.workspace.bot_messages() == []
    assert http_bot.openai.state.chat_requests == []


@pytest.mark.slow
async def test_chat_in_a_direct_message_with_the_bot(
    http_bot: BotUnderTest, clock: FrozenClock, tmp_path: Path
) -> None:
    job, _ = await trained(http_bot, clock, marv_file(tmp_path))
    dm = http_bot.workspace.add_im(ALICE)
    await http_bot.driver.slash_command(ALICE, dm.id, f"chat #{job.id}")
    root = await http_bot.workspace.wait_for(
        lambda: next((m for m in http_bot.workspace.channel_messages(dm.id) if m.text.startswith("💬")), None)
    )
    await http_bot.driver.say(ALICE, dm.id, "What is the largest ocean?", thread_ts=root.ts)
    answer = await http_bot.workspace.wait_for(
        lambda: next(
            (
                m
                for m in http_bot.workspace.replies_of(dm.id, root.ts)
                if m.user == http_bot.workspace.bot_user_id and not m.text.endswith("▌")
            ),
            None,
        )
    )
    assert answer.text.startswith("The Pacific")
