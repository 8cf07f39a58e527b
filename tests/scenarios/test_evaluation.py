"""Evaluations through both emulators: a fine-tuned model against its base on held-out data.

The sandbox's fine-tuned model answers with the reply of its most similar training example, and a
base model answers generically, so on held-out questions about what it was trained on, the
fine-tuned model should win; these tests check that the bot measures exactly that.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from bot import ticks
from bot.clock import FrozenClock
from sandbox.slack import Ephemeral, Message
from storage.models import Evaluation, EvaluationAnswer, TrainingJob
from tests.conftest import ALICE, BOB, GENERAL, BotUnderTest
from tests.scenarios.scenes import (
    MARV_SYSTEM,
    confirmation_for,
    conversations_text,
    held_out_file,
    marv_file,
    open_modal,
    shared_report,
    trained,
)

TICKETS = {
    "billing": [
        "I was charged twice on my invoice this month",
        "Please refund the duplicate charge on my credit card",
        "My invoice shows the wrong amount charged",
        "Why was my card charged after I cancelled",
        "The invoice total does not match the charge",
    ],
    "bug": [
        "The app crashes when I open the settings page",
        "Clicking export crashes the whole app with an error",
        "Error 500 when I save the settings page",
        "The page freezes and crashes after login",
        "Export button shows an error and crashes",
    ],
    "feature": [
        "Could you add dark mode to the dashboard",
        "Please add an option to schedule reports weekly",
        "It would be great to add dark mode for mobile",
        "Add support for exporting reports to Excel please",
        "Can you add an option for weekly digest emails",
    ],
}
HELD_OUT_TICKETS = [
    ("I got charged twice on this invoice", "billing"),
    ("Refund my duplicate card charge please", "billing"),
    ("The invoice amount charged is wrong", "billing"),
    ("Settings page crashes the app", "bug"),
    ("Export crashes with an error message", "bug"),
    ("Login freezes the page and it crashes", "bug"),
    ("Please add dark mode to the dashboard", "feature"),
    ("Add an option to schedule weekly reports", "feature"),
    ("Support exporting reports to Excel, please add it", "feature"),
]


def tickets_file(folder: Path) -> Path:
    path = folder / "tickets.jsonl"
    path.write_text(conversations_text([(text, label) for label, texts in TICKETS.items() for text in texts]))
    return path


def held_out_tickets_file(folder: Path) -> Path:
    path = folder / "tickets-heldout.jsonl"
    path.write_text(conversations_text(HELD_OUT_TICKETS))
    return path


def report_in(bot: BotUnderTest, thread_ts: str) -> Message | None:
    return next((m for m in bot.workspace.replies_of(GENERAL, thread_ts) if m.text.startswith("📏")), None)


async def evaluation_rows(bot: BotUnderTest) -> tuple[list[Evaluation], list[EvaluationAnswer]]:
    async with bot.services.db.session() as session:
        evaluations = list((await session.exec(select(Evaluation))).all())
        answers = list((await session.exec(select(EvaluationAnswer))).all())
    return evaluations, answers


async def answer_to(bot: BotUnderTest, user: str, command: str) -> Ephemeral:
    """Run a slash command and return the ephemeral answer it gets."""
    seen = len(bot.workspace.ephemerals_for(user))
    await bot.driver.slash_command(user, GENERAL, command)
    found: Ephemeral = await bot.workspace.wait_for(
        lambda: len(bot.workspace.ephemerals_for(user)) > seen and bot.workspace.ephemerals_for(user)[-1]
    )
    return found


async def run_evaluation(bot: BotUnderTest, thread_ts: str, confirmation: Ephemeral) -> Message:
    await bot.driver.click_ephemeral(confirmation, "eval_confirm")
    found: Message = await bot.workspace.wait_for(lambda: report_in(bot, thread_ts))
    return found


@pytest.mark.slow
async def test_the_fine_tuned_model_beats_its_base_on_held_out_data(
    bot: BotUnderTest, clock: FrozenClock, tmp_path: Path
) -> None:
    job, result = await trained(bot, clock, marv_file(tmp_path))
    await shared_report(bot, held_out_file(tmp_path), name="marv-heldout.jsonl")
    await bot.driver.slash_command(ALICE, GENERAL, f"eval #{job.id} marv-heldout.jsonl")
    confirmation = await confirmation_for(bot, ALICE)
    assert confirmation.text.startswith("📏 Evaluate") and "10 examples" in confirmation.text
    assert "$" in confirmation.text, "the estimated cost, before anything runs"
    assert "20 requests (2 per example)" in json.dumps(confirmation.blocks)
    assert bot.openai.state.chat_requests == [], "nothing is asked before the confirmation"

    thread = result.thread_ts or ""
    report = await run_evaluation(bot, thread, confirmation)
    assert "won 10, tied 0 and lost 0 of 10 examples" in report.text
    shown = json.dumps(report.blocks, ensure_ascii=False)
    assert "exact match" in shown and "100.0%" in shown and "0.0%" in shown
    assert "Where the two differ most* (5 examples)" in shown
    assert "This evaluation's own cost" in shown
    progress = next(m for m in bot.workspace.replies_of(GENERAL, thread) if m.text.startswith("✅ Evaluation #"))
    assert "10/10 examples" in progress.text
    chart = await bot.workspace.wait_for(
        lambda: next((m for m in bot.workspace.replies_of(GENERAL, thread) if m.files), None)
    )
    assert bot.workspace.files[chart.files[0]].content.startswith(b"\x89PNG")
    assert bot.workspace.ephemerals_for(ALICE)[-1].text.startswith("▶️ Evaluation"), "the buttons are spent"

    [evaluation], answers = await evaluation_rows(bot)
    assert evaluation.status == "done" and evaluation.overlap == 0
    assert evaluation.metrics["candidate"]["exact_match"] == 1.0
    assert evaluation.metrics["baseline"]["exact_match"] == 0.0
    assert evaluation.metrics["head_to_head"]["wins"] == 10
    assert evaluation.prompt_tokens > 0 and evaluation.cost_usd is not None and evaluation.cost_usd > 0
    assert Counter(a.side for a in answers) == {"candidate": 10, "baseline": 10}
    asked = Counter(request["model"] for request in bot.openai.state.chat_requests)
    assert asked == {job.fine_tuned_model: 10, "gpt-4o-mini-2024-07-18": 10}
    first = bot.openai.state.chat_requests[0]["messages"]
    assert first[0] == {"role": "system", "content": MARV_SYSTEM} and first[-1]["role"] == "user"
    await bot.driver.open_home(BOB)
    home = await bot.workspace.wait_for(
        lambda: (view_id := bot.workspace.home_views.get(BOB)) and bot.workspace.views[view_id].view
    )
    listed = json.dumps(home["blocks"], ensure_ascii=False)
    assert "*Evaluations* (1)" in listed and "overlap F1 1.000 vs" in listed and "win rate 100.0%" in listed


@pytest.mark.slow
async def test_a_classification_gets_per_class_scores_from_the_evaluate_button(
    http_bot: BotUnderTest, clock: FrozenClock, tmp_path: Path
) -> None:
    _, result = await trained(http_bot, clock, tickets_file(tmp_path))
    await shared_report(http_bot, held_out_tickets_file(tmp_path), name="tickets-heldout.jsonl")
    modal = await open_modal(http_bot, BOB, http_bot.driver.click(BOB, result, "eval_open"))
    assert modal.view["callback_id"] == "eval_submit"
    options = modal.view["blocks"][1]["element"]["options"]
    held_out = next(o["value"] for o in options if "tickets-heldout.jsonl" in o["text"]["text"])
    await http_bot.driver.submit_view(
        BOB,
        modal,
        {"eval_dataset": {"eval_dataset": {"type": "static_select", "selected_option": {"value": held_out}}}},
    )
    confirmation = await confirmation_for(http_bot, BOB)
    assert confirmation.thread_ts == result.thread_ts, "shown in the job's thread, to Bob only"
    assert confirmation not in http_bot.workspace.ephemerals_for(ALICE)
    http_bot.openai.state.inject("POST /chat/completions", rate_429=0.3)  # rate limits are waited out
    report = await run_evaluation(http_bot, result.thread_ts or "", confirmation)
    shown = json.dumps(report.blocks, ensure_ascii=False)
    assert "*Per class*" in shown and "billing" in shown and "macro F1" in shown
    assert "Confusion matrix" in shown
    [evaluation], _ = await evaluation_rows(http_bot)
    metrics = evaluation.metrics
    assert metrics["classification"] is True
    assert metrics["candidate"]["macro_f1"] == 1.0 and metrics["baseline"]["macro_f1"] == 0.0
    assert metrics["candidate"]["confusion"]["rows"] == [[3, 0, 0], [0, 3, 0], [0, 0, 3]]
    assert metrics["baseline"]["confusion"]["labels"][-1] == "(other)"
    assert metrics["head_to_head"]["decided_by"] == "correct label"


@pytest.mark.slow
async def test_overlap_with_the_training_data_is_warned_about(
    http_bot: BotUnderTest, clock: FrozenClock, tmp_path: Path
) -> None:
    job, result = await trained(http_bot, clock, marv_file(tmp_path))
    await http_bot.driver.slash_command(ALICE, GENERAL, f"eval {job.fine_tuned_model} gsm8k.jsonl")
    confirmation = await confirmation_for(http_bot, ALICE)
    assert "11 of 11 examples are also in" in json.dumps(confirmation.blocks)
    report = await run_evaluation(http_bot, result.thread_ts or "", confirmation)
    assert "are also in" in json.dumps(report.blocks)


@pytest.mark.slow
async def test_run_twice_cancel_and_an_expired_estimate_answer_politely(
    http_bot: BotUnderTest, clock: FrozenClock, tmp_path: Path
) -> None:
    job, result = await trained(http_bot, clock, marv_file(tmp_path))
    await shared_report(http_bot, held_out_file(tmp_path), name="marv-heldout.jsonl")
    await http_bot.driver.slash_command(ALICE, GENERAL, f"eval #{job.id} marv-heldout.jsonl")
    first = await confirmation_for(http_bot, ALICE)
    await http_bot.driver.click_ephemeral(first, "eval_cancel")
    await http_bot.workspace.wait_for(lambda: first.text.startswith("Called off"))
    seen = len(http_bot.workspace.ephemerals_for(ALICE))

    await http_bot.driver.slash_command(ALICE, GENERAL, f"eval #{job.id} marv-heldout.jsonl")
    second = await confirmation_for(http_bot, ALICE, before=seen)
    old_copy = Ephemeral(second.channel, ALICE, second.text, list(second.blocks), second.thread_ts, second.ts)
    await run_evaluation(http_bot, result.thread_ts or "", second)
    await http_bot.driver.click_ephemeral(old_copy, "eval_confirm")
    await http_bot.workspace.wait_for(
        lambda: (
            "has already finished" in old_copy.text
            or any("has already finished" in e.text for e in http_bot.workspace.ephemerals_for(ALICE))
        )
    )
    assert (
        len([m for m in http_bot.workspace.replies_of(GENERAL, result.thread_ts or "") if m.text.startswith("📏")]) == 1
    )

    seen = len(http_bot.workspace.ephemerals_for(ALICE))
    await http_bot.driver.slash_command(ALICE, GENERAL, f"eval #{job.id} marv-heldout.jsonl")
    third = await confirmation_for(http_bot, ALICE, before=seen)
    clock.advance(timedelta(days=2))
    await http_bot.driver.click_ephemeral(third, "eval_confirm")
    expired = await http_bot.workspace.wait_for(
        lambda: next((e for e in http_bot.workspace.ephemerals_for(ALICE) if "has expired" in e.text), None)
    )
    assert "run `/finetune eval` again" in expired.text
    evaluations, _ = await evaluation_rows(http_bot)
    assert [e.status for e in evaluations] == ["cancelled", "done", "awaiting_confirmation"]


@pytest.mark.slow
async def test_an_interrupted_evaluation_resumes_after_a_restart(
    bot_factory: Any, clock: FrozenClock, tmp_path: Path
) -> None:
    bot = await bot_factory()
    job, result = await trained(bot, clock, marv_file(tmp_path))
    await shared_report(bot, held_out_file(tmp_path), name="marv-heldout.jsonl")
    await bot.driver.slash_command(ALICE, GENERAL, f"eval #{job.id} marv-heldout.jsonl")
    confirmation = await confirmation_for(bot, ALICE)
    bot.openai.state.inject("POST /chat/completions", delay_seconds=0.3)
    await bot.driver.click_ephemeral(confirmation, "eval_confirm")
    await bot.openai.state.wait_for_chats(6)  # four at a time: the sixth starts once two answers are stored
    await bot.running.stop()
    await bot.services.aclose()  # cut off mid-way
    _, answers = await evaluation_rows(bot)
    assert 0 < len(answers) < 20
    bot.openai.state.faults.clear()

    again = await bot_factory()
    await ticks.tick(again.services, owner="b")
    assert len((await evaluation_rows(again))[1]) == len(answers), "the first runner's lease still holds"
    clock.advance(timedelta(minutes=6))
    await ticks.tick(again.services, owner="b")
    [evaluation], answers_after = await evaluation_rows(again)
    assert evaluation.status == "done"
    assert sorted((a.position, a.side) for a in answers_after) == sorted(
        (p, s) for p in range(10) for s in ("candidate", "baseline")
    ), "every example once per model"
    assert evaluation.metrics["head_to_head"]["wins"] == 10
    reports = [m for m in again.workspace.replies_of(GENERAL, result.thread_ts or "") if m.text.startswith("📏")]
    assert len(reports) == 1


@pytest.mark.slow
async def test_an_outage_stops_it_and_try_again_finishes_it(
    http_bot: BotUnderTest, clock: FrozenClock, tmp_path: Path
) -> None:
    job, result = await trained(http_bot, clock, marv_file(tmp_path))
    await shared_report(http_bot, held_out_file(tmp_path), name="marv-heldout.jsonl")
    await http_bot.driver.slash_command(ALICE, GENERAL, f"eval #{job.id} marv-heldout.jsonl")
    confirmation = await confirmation_for(http_bot, ALICE)
    http_bot.openai.state.inject("POST /chat/completions", rate_500=1.0)
    await http_bot.driver.click_ephemeral(confirmation, "eval_confirm")
    thread = result.thread_ts or ""
    stopped = await http_bot.workspace.wait_for(
        lambda: next((m for m in http_bot.workspace.replies_of(GENERAL, thread) if m.text.startswith("❌ <@")), None)
    )
    assert "stopped at 0/10 examples" in stopped.text
    [evaluation], _ = await evaluation_rows(http_bot)
    assert evaluation.status == "failed" and evaluation.lease_owner is None
    http_bot.openai.state.faults.clear()
    await http_bot.driver.click(ALICE, stopped, "eval_retry")
    report = await http_bot.workspace.wait_for(lambda: report_in(http_bot, thread))
    assert "won 10" in report.text
    await http_bot.driver.click(ALICE, stopped, "eval_retry")
    await http_bot.workspace.wait_for(
        lambda: any("has already finished" in e.text for e in http_bot.workspace.ephemerals_for(ALICE))
    )


@pytest.mark.slow
async def test_a_judge_decides_head_to_head_when_configured(
    bot_factory: Any, clock: FrozenClock, tmp_path: Path
) -> None:
    bot = await bot_factory(finetune_eval_judge_model="gpt-4.1-2025-04-14")
    job, result = await trained(bot, clock, marv_file(tmp_path))
    await shared_report(bot, held_out_file(tmp_path), name="marv-heldout.jsonl")
    await bot.driver.slash_command(ALICE, GENERAL, f"eval #{job.id} marv-heldout.jsonl")
    confirmation = await confirmation_for(bot, ALICE)
    assert "30 requests (3 per example)" in json.dumps(confirmation.blocks)
    assert "judged by `gpt-4.1-2025-04-14`" in json.dumps(confirmation.blocks)
    report = await run_evaluation(bot, result.thread_ts or "", confirmation)
    assert "won 10" in report.text and "decided by the judge" in json.dumps(report.blocks)
    judged = [r for r in bot.openai.state.chat_requests if r["model"] == "gpt-4.1-2025-04-14"]
    assert len(judged) == 10
    orders = {"[Answer A]\nParis" in r["messages"][1]["content"] for r in judged}
    assert orders == {True, False}, "the order of the two answers alternates"
    [evaluation], _ = await evaluation_rows(bot)
    assert set(evaluation.metrics["usage"]) == {"candidate", "baseline", "judge"}


@pytest.mark.slow
async def test_eval_command_errors_are_plain_sentences(
    http_bot: BotUnderTest, clock: FrozenClock, tmp_path: Path
) -> None:
    job, _ = await trained(http_bot, clock, marv_file(tmp_path))
    for text, expected in (
        ("eval", "Usage: `/finetune eval"),
        (f"eval #{job.id} nothing.jsonl", "I have no dataset `nothing.jsonl`"),
        ("eval #99 gsm8k.jsonl", "I have no job `#99`"),
        (f"eval #{job.id} gsm8k.jsonl against {job.fine_tuned_model}", "measured against itself"),
    ):
        answer = await answer_to(http_bot, ALICE, text)
        assert expected in answer.text, (text, answer.text)
    async with http_bot.services.db.session() as session:
        assert (await session.exec(select(Evaluation))).first() is None
        assert (await session.get(TrainingJob, job.id)) is not None
