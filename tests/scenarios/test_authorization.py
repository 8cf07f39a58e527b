"""Who may do what, checked when it is done, with two people (and another team) in the scene."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import ALICE, BOB, GENERAL
from tests.scenarios.test_training import job_rows, open_modal, shared_report


async def test_only_the_owner_or_an_admin_publishes_the_next_version(bot_factory: Any, shared_data: Path) -> None:
    bot = await bot_factory()
    await shared_report(bot, shared_data / "gsm8k_chat_validation.jsonl")
    await bot.driver.slash_command(BOB, GENERAL, "dataset next #1")
    [refusal] = await bot.workspace.wait_for(lambda: bot.workspace.ephemerals_for(BOB))
    assert "Only an admin or <@U0ALICE>" in refusal.text and "publish" in refusal.text
    await bot.driver.slash_command(ALICE, GENERAL, "dataset next #1")
    [answer] = await bot.workspace.wait_for(lambda: bot.workspace.ephemerals_for(ALICE))
    assert "nothing new" in answer.text, "the owner gets past the rule (and is told there is nothing yet)"


async def test_trainer_rights_are_checked_again_when_the_form_is_sent(bot_factory: Any, shared_data: Path) -> None:
    bot = await bot_factory(finetune_trainers=["S0TRAINERS"])
    bot.workspace.usergroups["S0TRAINERS"] = [ALICE]
    report = await shared_report(bot, shared_data / "gsm8k_chat_validation.jsonl")
    modal = await open_modal(bot, ALICE, bot.driver.click(ALICE, report, "dataset_train"))
    bot.workspace.usergroups["S0TRAINERS"] = [BOB]  # Alice is no longer a trainer while the form is open
    delivery = await bot.driver.submit_form(ALICE, modal)
    assert delivery.status == 200
    assert "Only the team's trainers" in json.dumps(delivery.json())
    assert await job_rows(bot) == [], "nothing was started"


async def test_an_approval_checks_the_requesters_rights_again(bot_factory: Any, shared_data: Path) -> None:
    admins = "C0ADMINS"
    bot = await bot_factory(
        finetune_trainers=["S0TRAINERS"],
        finetune_admins=[BOB],
        finetune_approval_channel=admins,
        finetune_approval_threshold_usd=0.0,
    )
    bot.workspace.add_channel(admins, "ml-admins", members=[BOB])
    bot.workspace.usergroups["S0TRAINERS"] = [ALICE]
    report = await shared_report(bot, shared_data / "gsm8k_chat_validation.jsonl")
    modal = await open_modal(bot, ALICE, bot.driver.click(ALICE, report, "dataset_train"))
    await bot.driver.submit_form(ALICE, modal)
    request = await bot.workspace.wait_for(
        lambda: next((m for m in bot.workspace.bot_messages(admins) if "Approve" in json.dumps(m.blocks)), None)
    )
    assert "for <@U0ALICE>" in request.text, "the notification names the requester as a mention, not a raw id"
    bot.workspace.usergroups["S0TRAINERS"] = []
    await bot.driver.click(BOB, request, "job_approve")
    [refusal] = await bot.workspace.wait_for(lambda: bot.workspace.ephemerals_for(BOB))
    assert "no longer one of the team's trainers" in refusal.text
    [job] = await job_rows(bot)
    assert job.status == "awaiting_approval"
