"""Retrain elsewhere: a model trained at OpenAI moves to another provider with one click (or
`/finetune retrain … on …`), from the bot's copy of its data and its settings mapped to the target, and the
new model is evaluated against the old one on the old job's validation file."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from bot.clock import FrozenClock
from sandbox.openai import SANDBOX_MODELS, OpenAIEmulator, SandboxClock
from storage.models import Dataset, Evaluation
from tests.conftest import ALICE, GENERAL, BotUnderTest, running
from tests.scenarios.scenes import (
    bot_with_providers,
    confirmation_for,
    held_out_file,
    job_rows,
    marv_file,
    open_modal,
    result_of,
    shared_report,
)
from tests.scenarios.test_evaluation import answer_to, report_in
from tests.scenarios.test_nebius import LLAMA, field_ids, openai_and_nebius_bot
from tests.scenarios.test_providers import follow

MINI = "gpt-4o-mini-2024-07-18"


@pytest.fixture
async def backup_emulator(clock: FrozenClock) -> AsyncIterator[OpenAIEmulator]:
    """A second OpenAI-compatible host, with models of its own."""
    async with running(clock=SandboxClock(start=clock.now().timestamp()), models=SANDBOX_MODELS) as emulator:
        yield emulator


def value_of(view: Any, block_id: str) -> str:
    block = next(b for b in view["blocks"] if b.get("block_id") == block_id)
    element = block["element"]
    if element["type"] == "static_select":
        return str((element.get("initial_option") or {}).get("value", ""))
    return str(element.get("initial_value", ""))


async def dataset_named(bot: BotUnderTest, filename: str) -> Dataset:
    async with bot.services.db.session() as session:
        found = (await session.exec(select(Dataset).where(Dataset.filename == filename))).first()
    assert found is not None
    return found


async def trained_at_openai(
    bot: BotUnderTest, clock: FrozenClock, emulators: list[OpenAIEmulator], tmp_path: Path
) -> tuple[Any, Any]:
    """A model trained at OpenAI with a validation file, 3 epochs and a learning-rate multiplier of 2."""
    await shared_report(bot, held_out_file(tmp_path), name="marv-heldout.jsonl")
    validation = await dataset_named(bot, "marv-heldout.jsonl")
    report = await shared_report(bot, marv_file(tmp_path))
    modal = await open_modal(bot, ALICE, bot.driver.click(ALICE, report, "dataset_train"))
    changes = {"model": MINI, "learning_rate_multiplier": "2", "n_epochs": "3", "validation": str(validation.id)}
    await bot.driver.submit_form(ALICE, modal, changes)
    await follow(bot, clock, emulators, lambda: result_of(bot, report) is not None)
    result = result_of(bot, report)
    assert result is not None
    return report, result


@pytest.mark.slow
async def test_a_model_moves_to_another_provider_and_is_evaluated_against_the_old_one(
    bot_factory: Any,
    openai_emulator: OpenAIEmulator,
    backup_emulator: OpenAIEmulator,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    bot = await bot_with_providers(
        bot_factory,
        {"openai": ("openai", openai_emulator), "backup": ("compatible", backup_emulator)},
        labels={"backup": "Backup host"},
    )
    emulators = [openai_emulator, backup_emulator]
    report, result = await trained_at_openai(bot, clock, emulators, tmp_path)
    (old,) = await job_rows(bot)
    assert "model_retrain" in json.dumps(result.blocks), "Retrain elsewhere, under the result"

    modal = await open_modal(bot, ALICE, bot.driver.click(ALICE, result, "model_retrain"))
    assert value_of(modal.view, "model") == f"{MINI}@backup", "the same base, at the other provider"
    assert (value_of(modal.view, "n_epochs"), value_of(modal.view, "learning_rate_multiplier")) == ("3", "2")
    assert value_of(modal.view, "validation") == str(old.validation_dataset_id)
    shown = json.dumps(modal.view["blocks"])
    assert f"Retraining {old.fine_tuned_model} (job #{old.id}, at OpenAI) at Backup host" in shown
    element = next(b for b in modal.view["blocks"] if b.get("block_id") == "model")["element"]
    groups = [group["label"]["text"] for group in element["option_groups"]]
    assert groups == ["Backup host"], "the provider it leaves is not offered"
    await bot.driver.submit_form(ALICE, modal)
    await backup_emulator.state.wait_for(lambda: backup_emulator.state.jobs)
    (sent,) = backup_emulator.state.jobs.values()
    assert sent.hyperparameters["n_epochs"] == 3 and sent.hyperparameters["learning_rate_multiplier"] == 2.0
    assert sent.training_file in backup_emulator.state.files and sent.validation_file in backup_emulator.state.files
    assert len(openai_emulator.state.jobs) == 1, "nothing new at the provider it leaves"

    def new_result() -> Any:
        results = [
            m
            for m in bot.workspace.replies_of(GENERAL, report.thread_ts or report.ts)
            if "your model is ready" in m.text
        ]
        return results[1] if len(results) > 1 else None

    await follow(bot, clock, emulators, lambda: new_result() is not None)
    old, new = sorted(await job_rows(bot), key=lambda row: row.id or 0)
    assert (new.provider, new.retrained_from_id) == ("backup", old.id)
    assert f"Evaluate against {old.fine_tuned_model}"[:75] in json.dumps(new_result().blocks, ensure_ascii=False)

    await bot.driver.click(ALICE, new_result(), "eval_previous")
    confirmation = await confirmation_for(bot, ALICE)
    assert "marv-heldout.jsonl" in confirmation.text
    await bot.driver.click_ephemeral(confirmation, "eval_confirm")
    thread = report.thread_ts or report.ts
    evaluation_report = await bot.workspace.wait_for(lambda: report_in(bot, thread))
    async with bot.services.db.session() as session:
        (evaluation,) = (await session.exec(select(Evaluation))).all()
    assert (evaluation.model, evaluation.provider) == (new.fine_tuned_model, "backup")
    assert (evaluation.baseline_model, evaluation.baseline_provider) == (old.fine_tuned_model, "openai")
    assert evaluation.dataset_id == old.validation_dataset_id
    assert "examples" in evaluation_report.text
    assert {r["model"] for r in openai_emulator.state.chat_requests} == {old.fine_tuned_model}
    assert {r["model"] for r in backup_emulator.state.chat_requests} == {new.fine_tuned_model}


async def test_the_command_maps_a_multiplier_to_the_rate_nebius_takes(
    bot_factory: Any,
    openai_emulator: OpenAIEmulator,
    nebius_emulator: OpenAIEmulator,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    bot = await openai_and_nebius_bot(bot_factory, openai_emulator, nebius_emulator)
    await trained_at_openai(bot, clock, [openai_emulator], tmp_path)
    (old,) = await job_rows(bot)
    modal = await open_modal(bot, ALICE, bot.driver.slash_command(ALICE, GENERAL, f"retrain #{old.id} on nebius"))
    assert value_of(modal.view, "model") == f"{LLAMA}@nebius", "gpt-4o-mini is not at Nebius: its first model"
    assert "learning_rate" in field_ids(modal.view) and value_of(modal.view, "learning_rate") == "4e-05"
    shown = json.dumps(modal.view["blocks"])
    assert "multiplier 2 at OpenAI became the learning rate 4e-05 at Nebius Token Factory" in shown
    assert f"{MINI} is not trained at Nebius Token Factory" in shown

    refused = await answer_to(bot, ALICE, f"retrain #{old.id} on openai")
    assert "already at OpenAI" in refused.text
    unknown = await answer_to(bot, ALICE, f"retrain #{old.id} on mars")
    assert "No provider `mars`" in unknown.text
