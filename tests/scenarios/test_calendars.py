"""A calendar per provider, on dates before and after each cutoff (frozen clocks, bot and emulator moved
together): OpenAI's dates on OpenAI only, Azure's own from its models API, none on other hosts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot import ticks
from bot.clock import FrozenClock
from bot.providers.openai_compatible import OpenAICompatibleProvider
from sandbox.openai import AZURE_MODELS, OPENAI_FINE_TUNING_CLOSES, SANDBOX_MODELS
from tests.conftest import ALICE, GENERAL, BotUnderTest
from tests.scenarios.scenes import (
    answers,
    ask,
    card_of,
    job_rows,
    marv_file,
    open_modal,
    result_of,
    root_of,
    run_until,
    shared_report,
    start_job,
)

MINI = "gpt-4o-mini-2024-07-18"


def move_to(bot: BotUnderTest, clock: FrozenClock, day: str) -> None:
    """Both clocks to 09:00 UTC on ``day``."""
    target = clock.now().replace(year=int(day[:4]), month=int(day[5:7]), day=int(day[8:]))
    delta = target - clock.now()
    clock.advance(delta)
    bot.openai.state.clock.advance(delta.total_seconds())


def model_labels(modal: Any) -> list[str]:
    block = next(b for b in modal.view["blocks"] if b.get("block_id") == "model")
    return [option["text"]["text"] for option in block["element"]["options"]]


async def refusal_of_train(bot: BotUnderTest, text: str) -> str:
    before = len(bot.workspace.ephemerals_for(ALICE))
    await bot.driver.slash_command(ALICE, GENERAL, text)
    found = await bot.workspace.wait_for(
        lambda: len(bot.workspace.ephemerals_for(ALICE)) > before and bot.workspace.ephemerals_for(ALICE)
    )
    return str(found[-1].text)


async def test_openai_trains_until_2027_01_06_and_not_after(
    bot_factory: Any, clock: FrozenClock, shared_data: Path
) -> None:
    bot = await bot_factory(finetune_provider="openai")
    bot.openai.state.fine_tuning_closes = OPENAI_FINE_TUNING_CLOSES
    move_to(bot, clock, "2027-01-05")
    report = await shared_report(bot, shared_data / "gsm8k_chat_validation.jsonl")
    modal = await open_modal(bot, ALICE, bot.driver.click(ALICE, report, "dataset_train"))
    assert f"{MINI} · training ends 2027-01-06 · shutdown 2027-01-14" in model_labels(modal)
    await bot.driver.submit_form(ALICE, modal)
    await bot.workspace.wait_for(lambda: card_of(bot, report))

    move_to(bot, clock, "2027-01-06")
    refusal = await refusal_of_train(bot, "train #1")
    assert "can no longer be trained with OpenAI: training ended on 2027-01-06" in refusal
    assert "its fine-tunes stops" not in refusal and "stop answering there on 2027-01-14" in refusal
    assert "Azure" not in refusal
    assert len(bot.openai.state.jobs) == 1, "refused by the bot, not sent to a closed API"


@pytest.mark.slow
async def test_azure_keeps_its_own_calendar(
    bot_factory: Any, openai_emulator: Any, clock: FrozenClock, tmp_path: Path
) -> None:
    """Azure trains the same models until April 2027 and serves their fine-tunes until October, whatever
    OpenAI's dates: the bot reads Azure's deprecation dates from its models API."""
    state = openai_emulator.state
    state.azure_ids = True
    state.base_models = {model.id: model for model in AZURE_MODELS}
    bot = await bot_factory(
        finetune_provider="azure",
        azure_openai_endpoint=openai_emulator.azure_endpoint,
        azure_openai_api_key=state.api_key,
        openai_api_key=None,
        azure_openai_deployments={},
    )
    move_to(bot, clock, "2027-01-15")  # OpenAI's fine-tunes stopped answering yesterday
    report = await shared_report(bot, marv_file(tmp_path))
    modal = await open_modal(bot, ALICE, bot.driver.click(ALICE, report, "dataset_train"))
    labels = model_labels(modal)
    assert f"{MINI} · training ends 2027-04-01 · shutdown 2027-10-01" in labels
    assert "gpt-4.1-2025-04-14 · training ends 2027-04-14 · shutdown 2027-10-14" in labels
    await bot.driver.submit_form(ALICE, modal, {"model": MINI})
    await bot.workspace.wait_for(lambda: card_of(bot, report))
    [job] = await job_rows(bot)
    await run_until(bot, clock, lambda: result_of(bot, report))
    result = result_of(bot, report)
    assert result is not None and result.text.startswith("✅")
    model = next(m for m in state.fine_tuned if m.startswith(f"{MINI}.ft-"))
    state.deploy(model, "marv")
    adapter = bot.services.providers.default
    assert isinstance(adapter, OpenAICompatibleProvider)
    adapter.config.deployments[model] = "marv"  # an admin's AZURE_OPENAI_DEPLOYMENTS entry
    await bot.driver.slash_command(ALICE, GENERAL, f"chat #{job.id}")
    root = await bot.workspace.wait_for(lambda: root_of(bot, "💬 Chat with"))
    [answer] = await ask(bot, root, "What is the capital of France?", expect=1)
    assert answer.text.startswith("Paris")

    move_to(bot, clock, "2027-04-02")
    refusal = await refusal_of_train(bot, f"train #1 model={MINI}")
    assert "can no longer be trained with Azure OpenAI: training ended on 2027-04-01" in refusal
    assert "stop answering there on 2027-10-01" in refusal and "2027-01-06" not in refusal
    [_, still] = await ask(bot, root, "Who wrote Hamlet?", expect=2)
    assert "Shakespeare" in still.text, "its deployment answers until October"

    move_to(bot, clock, "2027-10-02")
    refusal = await refusal_of_train(bot, f"chat #{job.id}")
    assert "was retired on 2027-10-01 and no longer answers at Azure OpenAI" in refusal
    assert len(answers(bot, root)) == 2


async def test_a_host_without_a_calendar_trains_on_any_date(
    bot_factory: Any, openai_emulator: Any, clock: FrozenClock, shared_data: Path
) -> None:
    """Another OpenAI-compatible host follows none of OpenAI's dates: none apply unless it reports or the
    settings give them."""
    openai_emulator.state.base_models = {model.id: model for model in SANDBOX_MODELS}
    bot = await bot_factory(
        finetune_provider="compatible",
        finetune_training_retirements={f"{MINI}@compatible": "2027-03-01"},
        finetune_inference_retirements={"gpt-4.1-2025-04-14": "2027-12-31"},
    )
    move_to(bot, clock, "2027-02-01")
    report = await shared_report(bot, shared_data / "gsm8k_chat_validation.jsonl")
    modal = await open_modal(bot, ALICE, bot.driver.click(ALICE, report, "dataset_train"))
    labels = model_labels(modal)
    assert "gpt-4o-2024-08-06" in labels, "no dates at all"
    assert f"{MINI} · training ends 2027-03-01" in labels
    assert "gpt-4.1-2025-04-14 · training ends 2027-12-31 · shutdown 2027-12-31" in labels


@pytest.mark.slow
async def test_reminders_before_the_provider_stops_training(
    bot_factory: Any, clock: FrozenClock, shared_data: Path
) -> None:
    """30, 7 and 1 days before OpenAI's end of training, once each, to the approval channel and to each
    person who trained there."""
    admins = "C0ADMINS"
    bot = await bot_factory(finetune_provider="openai", finetune_approval_channel=admins)
    bot.workspace.add_channel(admins, "ml-admins", members=[ALICE])
    await start_job(bot, shared_data / "gsm8k_chat_validation.jsonl")

    def reminders(channel: str) -> list[str]:
        return [m.text for m in bot.workspace.bot_messages(channel) if m.text.startswith("⏳ OpenAI stops training")]

    dm = "D" + ALICE[1:]
    move_to(bot, clock, "2026-12-06")
    await ticks.tick(bot.services, owner="a")
    assert reminders(admins) == []
    move_to(bot, clock, "2026-12-07")
    for _ in range(2):
        await ticks.tick(bot.services, owner="a")
    [first] = reminders(admins)
    assert f"`{MINI}` in 30 days (2027-01-06)" in first and "another provider" in first
    assert len(reminders(dm)) == 1
    move_to(bot, clock, "2026-12-30")
    await ticks.tick(bot.services, owner="a")
    move_to(bot, clock, "2027-01-05")
    await ticks.tick(bot.services, owner="a")
    await ticks.tick(bot.services, owner="a")
    texts = reminders(admins)
    assert len(texts) == 3 and "in 7 days (2027-01-06)" in texts[1] and "tomorrow (2027-01-06)" in texts[2]
    assert len(reminders(dm)) == 3
