"""The two mappings of refusals: a listener's answers the person at once; background work's reaches the
person who asked (ephemeral where they asked, else a direct message), and a bug reaches nobody but the log."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.asker import Asker
from bot.clock import FrozenClock
from bot.errors import InvalidInput, NotAllowed, NotFound, UserFacingError, refusal_of
from bot.providers.types import ProviderError, ProviderErrorKind
from tests.conftest import ALICE, BOB, GENERAL, BotUnderTest
from tests.scenarios.scenes import marv_file, open_modal, shared_report, trained


def test_every_kind_of_refusal_maps_to_its_sentence_and_a_bug_to_none() -> None:
    for kind in (InvalidInput, NotAllowed, NotFound):
        assert refusal_of(kind("Only <@U1> can.")) == "Only <@U1> can."
    refused = ProviderError(ProviderErrorKind.QUOTA, "You exceeded your current quota")
    refused.provider_label = "OpenAI"
    assert isinstance(refused, UserFacingError)
    assert refusal_of(refused) == refused.sentence
    assert refused.sentence.startswith("OpenAI refused: “You exceeded your current quota”")
    assert refusal_of(RuntimeError("token xoxb-secret")) is None


async def test_a_refusal_met_by_background_work_reaches_the_asker_in_their_thread(http_bot: BotUnderTest) -> None:
    async def refused() -> None:
        raise NotAllowed("Only <@U0ALICE>, who started it, or an admin can cancel job #3.")

    http_bot.services.background(refused(), asker=Asker("T0SANDBOX", BOB, GENERAL, "1700000000.000100"))
    assert await http_bot.services.drain(timeout=10) == 0
    [told] = http_bot.workspace.ephemerals_for(BOB)
    assert told.channel == GENERAL and told.thread_ts == "1700000000.000100"
    assert told.text.startswith("Only <@U0ALICE>, who started it")
    assert not http_bot.workspace.ephemerals_for(ALICE)


async def test_an_asker_the_channel_does_not_take_an_ephemeral_for_gets_a_direct_message(
    http_bot: BotUnderTest,
) -> None:
    http_bot.workspace.add_user("U0CAROL", "carol")  # not a member of #general

    async def refused() -> None:
        raise NotFound("I have no dataset `missing.jsonl`.")

    http_bot.services.background(refused(), asker=Asker("T0SANDBOX", "U0CAROL", GENERAL))
    assert await http_bot.services.drain(timeout=10) == 0
    [direct] = [
        m
        for channel in http_bot.workspace.channels.values()
        if channel.is_im and "U0CAROL" in channel.members
        for m in http_bot.workspace.channel_messages(channel.id)
    ]
    assert direct.text == "I have no dataset `missing.jsonl`."


async def test_a_bug_in_background_work_is_logged_and_shown_to_nobody(
    http_bot: BotUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken() -> None:
        raise RuntimeError("a bug")

    with caplog.at_level(logging.ERROR):
        http_bot.services.background(broken(), asker=Asker("T0SANDBOX", BOB, GENERAL))
        assert await http_bot.services.drain(timeout=10) == 0
    assert not http_bot.workspace.ephemerals_for(BOB)
    assert any(r.message == "background work failed" and r.exc_info for r in caplog.records)


@pytest.mark.slow
async def test_an_evaluate_form_on_a_dataset_gone_from_the_data_folder_is_refused_in_the_jobs_thread(
    http_bot: BotUnderTest, clock: FrozenClock, tmp_path: Path
) -> None:
    trained_on = marv_file(tmp_path)
    _, result = await trained(http_bot, clock, trained_on)
    held_out = tmp_path / "held-out.jsonl"
    held_out.write_text("".join(trained_on.read_text().splitlines(keepends=True)[:5]))
    await shared_report(http_bot, held_out, name="held-out.jsonl")
    modal = await open_modal(http_bot, BOB, http_bot.driver.click(BOB, result, "eval_open"))
    options = modal.view["blocks"][1]["element"]["options"]
    chosen = next(o["value"] for o in options if "held-out.jsonl" in o["text"]["text"])
    for stored in (http_bot.services.settings.finetune_data_dir / "datasets").rglob("*.jsonl"):
        stored.unlink()
    await http_bot.driver.submit_view(
        BOB,
        modal,
        {"eval_dataset": {"eval_dataset": {"type": "static_select", "selected_option": {"value": chosen}}}},
    )
    refusal = await http_bot.workspace.wait_for(
        lambda: next((e for e in http_bot.workspace.ephemerals_for(BOB) if "stored copy" in e.text), None)
    )
    assert refusal.thread_ts == result.thread_ts, "in the job's thread, where the form was opened from"
    assert refusal.text == "The stored copy of `held-out.jsonl` is missing; share the file again."
