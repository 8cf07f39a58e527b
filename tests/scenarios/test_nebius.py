"""Nebius Token Factory beside OpenAI: its Train form asks for what it takes (an absolute learning rate,
LoRA rank, warm-up, weight decay), its job is created with Nebius's top-level hyperparameters, and the
emulator refuses what Nebius would not take."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.clock import FrozenClock
from sandbox.openai import OpenAIEmulator
from tests.conftest import ALICE, BotUnderTest
from tests.scenarios.scenes import bot_with_providers, job_rows, marv_file, open_modal, result_of, shared_report
from tests.scenarios.test_providers import follow

LLAMA = "meta-llama/Llama-3.1-8B-Instruct"


async def openai_and_nebius_bot(bot_factory: Any, openai: OpenAIEmulator, nebius: OpenAIEmulator) -> BotUnderTest:
    return await bot_with_providers(bot_factory, {"openai": ("openai", openai), "nebius": ("nebius", nebius)})


def methods_offered(view: Any) -> list[str]:
    element = next(block for block in view["blocks"] if block.get("block_id") == "method")["element"]
    return [option["value"] for option in element["options"]]


def field_ids(view: Any) -> list[str]:
    return [block.get("block_id", "") for block in view["blocks"] if block["type"] == "input"]


async def test_the_train_form_asks_for_what_each_provider_takes(
    bot_factory: Any, openai_emulator: OpenAIEmulator, nebius_emulator: OpenAIEmulator, tmp_path: Path
) -> None:
    bot = await openai_and_nebius_bot(bot_factory, openai_emulator, nebius_emulator)
    report = await shared_report(bot, marv_file(tmp_path))
    modal = await open_modal(bot, ALICE, bot.driver.click(ALICE, report, "dataset_train"))
    assert "learning_rate_multiplier" in field_ids(modal.view) and "lora_r" not in field_ids(modal.view)
    assert methods_offered(modal.view) == ["supervised", "dpo"]

    await bot.driver.choose_in_view(ALICE, modal, "model", f"{LLAMA}@nebius")
    await bot.workspace.wait_for(lambda: "learning_rate" in field_ids(modal.view))
    assert "learning_rate_multiplier" not in field_ids(modal.view), "Nebius takes the rate itself, not a multiplier"
    assert {"lora_r", "warmup_ratio", "weight_decay"} <= set(field_ids(modal.view))
    assert "LoRA adapter" in str(modal.view["blocks"])
    assert methods_offered(modal.view) == ["supervised"], "DPO is not offered where the model does not take it"

    answer = (
        await bot.driver.submit_form(ALICE, modal, {"model": f"{LLAMA}@nebius", "learning_rate": "3", "lora_r": "1000"})
    ).json()
    assert answer["response_action"] == "errors"
    assert set(answer["errors"]) == {"learning_rate", "lora_r"}


@pytest.mark.slow
async def test_a_nebius_job_sends_its_hyperparameters_as_nebius_reads_them(
    bot_factory: Any,
    openai_emulator: OpenAIEmulator,
    nebius_emulator: OpenAIEmulator,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    bot = await openai_and_nebius_bot(bot_factory, openai_emulator, nebius_emulator)
    report = await shared_report(bot, marv_file(tmp_path))
    modal = await open_modal(bot, ALICE, bot.driver.click(ALICE, report, "dataset_train"))
    await bot.driver.choose_in_view(ALICE, modal, "model", f"{LLAMA}@nebius")
    await bot.workspace.wait_for(lambda: "lora_r" in field_ids(modal.view))
    choice = {"learning_rate": "2e-4", "lora_r": "16", "warmup_ratio": "0.1"}
    await bot.driver.submit_form(ALICE, modal, {"model": f"{LLAMA}@nebius", **choice})
    await nebius_emulator.state.wait_for(lambda: nebius_emulator.state.jobs)
    (job,) = nebius_emulator.state.jobs.values()
    assert job.hyperparameters["learning_rate_multiplier"] == pytest.approx(2e-4), "the rate itself"
    assert (job.hyperparameters["lora"], job.hyperparameters["lora_r"], job.hyperparameters["packing"]) == (
        True,
        16,
        True,
    )
    assert "weight_decay" not in job.hyperparameters, "auto is left to Nebius"
    assert not openai_emulator.state.jobs

    await follow(bot, clock, [nebius_emulator], lambda: bool(nebius_emulator.state.fine_tuned))
    await follow(bot, clock, [nebius_emulator], lambda: result_of(bot, report) is not None)
    (row,) = await job_rows(bot)
    assert (row.provider, row.base_model, row.status) == ("nebius", LLAMA, "succeeded")
    assert row.hyperparameters["learning_rate"] == pytest.approx(2e-4)
