"""Several providers at once (FINETUNE_PROVIDERS): OpenAI and Azure OpenAI side by side, each its own
emulator, a job on each, every later call at the job's own provider, and one down without the other."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot import ticks
from bot.clock import FrozenClock
from bot.providers.openai_compatible import OpenAICompatibleProvider
from bot.training.status import ACTIVE
from sandbox.openai import OpenAIEmulator
from tests.conftest import ALICE, GENERAL, BotUnderTest
from tests.scenarios.scenes import (
    answers,
    ask,
    bot_with_providers,
    card_of,
    failure_in,
    job_rows,
    marv_file,
    open_modal,
    result_of,
    root_of,
    shared_report,
)

MINI = "gpt-4o-mini-2024-07-18"
AZURE_MINI = f"{MINI}@azure"


async def two_provider_bot(bot_factory: Any, openai: OpenAIEmulator, azure: OpenAIEmulator) -> BotUnderTest:
    return await bot_with_providers(bot_factory, {"openai": ("openai", openai), "azure": ("azure", azure)})


async def train(bot: BotUnderTest, report: Any, model: str) -> None:
    before = len(
        [m for m in bot.workspace.replies_of(GENERAL, report.thread_ts or report.ts) if "Training started" in m.text]
    )
    modal = await open_modal(bot, ALICE, bot.driver.click(ALICE, report, "dataset_train"))
    await bot.driver.submit_form(ALICE, modal, {"model": model})
    await bot.workspace.wait_for(
        lambda: (
            len(
                [
                    m
                    for m in bot.workspace.replies_of(GENERAL, report.thread_ts or report.ts)
                    if "Training started" in m.text
                ]
            )
            > before
        )
    )


async def follow(bot: BotUnderTest, clock: FrozenClock, emulators: list[OpenAIEmulator], done: Any) -> None:
    for _ in range(200):
        if done():
            return
        clock.advance(timedelta(seconds=30))
        for emulator in emulators:
            emulator.state.clock.advance(30)
        await ticks.tick(bot.services, owner="a")
    raise AssertionError("the jobs never got there")


@pytest.mark.slow
async def test_a_job_on_each_of_two_providers_at_once(
    bot_factory: Any,
    openai_emulator: OpenAIEmulator,
    azure_emulator: OpenAIEmulator,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    bot = await two_provider_bot(bot_factory, openai_emulator, azure_emulator)
    report = await shared_report(bot, marv_file(tmp_path))
    modal = await open_modal(bot, ALICE, bot.driver.click(ALICE, report, "dataset_train"))
    element = next(b for b in modal.view["blocks"] if b.get("block_id") == "model")["element"]
    groups = {group["label"]["text"]: [o["value"] for o in group["options"]] for group in element["option_groups"]}
    assert list(groups) == ["OpenAI", "Azure OpenAI"], "one select picks the provider and the model together"
    assert MINI in groups["OpenAI"] and AZURE_MINI in groups["Azure OpenAI"]
    labels = [o["text"]["text"] for group in element["option_groups"] for o in group["options"]]
    assert f"{MINI} · training ends 2027-01-06 · shutdown 2027-01-14" in labels, "OpenAI's calendar at OpenAI"
    assert f"{MINI} · training ends 2027-04-01 · shutdown 2027-10-01" in labels, "Azure's at Azure"

    await train(bot, report, MINI)
    await train(bot, report, AZURE_MINI)
    rows = sorted(await job_rows(bot), key=lambda row: row.id or 0)
    assert [(row.provider, row.base_model) for row in rows] == [("openai", MINI), ("azure", MINI)]
    assert len(openai_emulator.state.jobs) == 1 and len(azure_emulator.state.jobs) == 1
    assert all(path.startswith("/openai/") for _, path in azure_emulator.state.calls)
    assert [job.training_type for job in azure_emulator.state.jobs.values()] == ["GlobalStandard"]

    def both_done() -> bool:
        thread = bot.workspace.replies_of(GENERAL, report.thread_ts or report.ts)
        return len([m for m in thread if "your model is ready" in m.text]) == 2

    await follow(bot, clock, [openai_emulator, azure_emulator], both_done)
    openai_job, azure_job = sorted(await job_rows(bot), key=lambda row: row.id or 0)
    assert openai_job.fine_tuned_model and openai_job.fine_tuned_model.startswith("ft:")
    assert azure_job.fine_tuned_model and ".ft-" in azure_job.fine_tuned_model
    assert azure_job.model_retires is not None and f"{azure_job.model_retires}" == "2027-10-01"

    adapter = bot.services.providers.get("azure")
    assert isinstance(adapter, OpenAICompatibleProvider)
    azure_emulator.state.deploy(azure_job.fine_tuned_model, "marv")
    adapter.config.deployments[azure_job.fine_tuned_model] = "marv"
    await bot.driver.slash_command(ALICE, GENERAL, f"compare #{azure_job.id} with #{openai_job.id}")
    root = await bot.workspace.wait_for(lambda: root_of(bot, "⚖️ Compare"))
    replies = await ask(bot, root, "What is the capital of France?", expect=2)
    assert all(reply.text.split("\n", 1)[-1].startswith("Paris") for reply in replies[:2])
    assert [r["model"] for r in azure_emulator.state.chat_requests] == [azure_job.fine_tuned_model]
    assert [r["model"] for r in openai_emulator.state.chat_requests] == [openai_job.fine_tuned_model]

    await bot.driver.slash_command(ALICE, GENERAL, "models")
    listing = await bot.workspace.wait_for(lambda: bot.workspace.ephemerals_for(ALICE))
    text = json.dumps(listing[-1].blocks, ensure_ascii=False)
    assert f"`{openai_job.fine_tuned_model}` at OpenAI" in text
    assert f"`{azure_job.fine_tuned_model}` at Azure OpenAI" in text
    assert len(answers(bot, root)) >= 2


@pytest.mark.slow
async def test_one_provider_down_never_stops_the_other(
    bot_factory: Any,
    openai_emulator: OpenAIEmulator,
    azure_emulator: OpenAIEmulator,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    bot = await two_provider_bot(bot_factory, openai_emulator, azure_emulator)
    report = await shared_report(bot, marv_file(tmp_path))
    await train(bot, report, MINI)
    await train(bot, report, AZURE_MINI)
    openai_emulator.state.inject("*", rate_500=1.0)  # OpenAI is down from here on

    def azure_done() -> bool:
        return result_of(bot, report) is not None

    await follow(bot, clock, [openai_emulator, azure_emulator], azure_done)
    openai_job, azure_job = sorted(await job_rows(bot), key=lambda row: row.id or 0)
    assert azure_job.status == "succeeded" and openai_job.status in ACTIVE and openai_job.poll_failures > 0
    async with bot.driver.session.get(f"http://127.0.0.1:{bot.running.port}/readyz") as response:
        body = await response.json()
    assert response.status == 200, "a provider's outage is not the bot's"
    assert body["providers"] == {"openai": "outage", "azure": "ok"}
    modal = await open_modal(bot, ALICE, bot.driver.click(ALICE, report, "dataset_train"))
    element = next(b for b in modal.view["blocks"] if b.get("block_id") == "model")["element"]
    values = [
        o["value"]
        for group in element.get("option_groups", [{"options": element.get("options", [])}])
        for o in group["options"]
    ]
    assert AZURE_MINI in values, "the Train form still offers the provider that answers"
    assert card_of(bot, report) is not None


async def test_closed_at_one_provider_points_at_the_others(
    bot_factory: Any, openai_emulator: OpenAIEmulator, azure_emulator: OpenAIEmulator, tmp_path: Path
) -> None:
    """OpenAI answers 403 once fine-tuning is closed to the organization: the thread names the configured
    provider that still trains, and the Train form takes Azure's shorter suffix rule."""
    bot = await two_provider_bot(bot_factory, openai_emulator, azure_emulator)
    openai_emulator.state.quirks.fine_tuning_closed = True
    report = await shared_report(bot, marv_file(tmp_path))
    modal = await open_modal(bot, ALICE, bot.driver.click(ALICE, report, "dataset_train"))
    await bot.driver.submit_form(ALICE, modal, {"model": MINI})
    failure = await bot.workspace.wait_for(lambda: failure_in(bot, report))
    assert "can no longer create fine-tuning jobs at OpenAI" in failure.text
    assert "pick a model at Azure OpenAI" in failure.text and "README" not in failure.text
    modal = await open_modal(bot, ALICE, bot.driver.click(ALICE, report, "dataset_train"))
    delivery = await bot.driver.submit_form(ALICE, modal, {"model": AZURE_MINI, "suffix": "nineteen-characters"})
    assert delivery.json()["errors"]["suffix"] == "Use up to 18 letters, digits, - or _ at Azure OpenAI."
    assert azure_emulator.state.jobs == {}
