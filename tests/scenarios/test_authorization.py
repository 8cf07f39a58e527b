"""Who may do what, checked when it is done, with two people (and another team) in the scene."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from bot.clock import FrozenClock
from sandbox.driver import SlackDriver
from sandbox.slack import Ephemeral, SlackEmulator, SlackWorkspace
from tests.conftest import ALICE, BOB, GENERAL
from tests.scenarios.scenes import (
    CAROL,
    installed_in_two_workspaces,
    job_rows,
    marv_file,
    open_modal,
    shared_report,
    trained,
)


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


async def refusals_to_carol(workspace: SlackWorkspace, count: int) -> list[Ephemeral]:
    """Carol's ephemeral answers, once there are ``count`` of them."""

    def shown() -> list[Ephemeral] | None:
        answers = workspace.ephemerals_for(CAROL)
        return answers if len(answers) >= count else None

    found: list[Ephemeral] = await workspace.wait_for(shown)
    return found


@pytest.mark.slow
async def test_a_second_workspace_reaches_nothing_of_the_first_teams(
    bot_factory: Any, slack: SlackEmulator, clock: FrozenClock, tmp_path: Path
) -> None:
    """One bot installed by two teams: Carol, in the second workspace, names the first team's model, job
    and dataset in every command that takes one, and clicks its buttons. Each answer is a refusal that
    reveals nothing, only to her; nothing is posted anywhere and the first team's job is untouched."""
    bot, other, _ = await installed_in_two_workspaces(bot_factory, slack)
    job, result = await trained(bot, clock, marv_file(tmp_path))
    model = job.fine_tuned_model
    assert model is not None
    carol = SlackDriver(slack, bot.driver.session, bot_url=bot.driver.bot_url, workspace=other)
    commands = [
        f"chat {model}",
        f"compare {model}",
        f"chat {job.id}",
        f"status {job.id}",
        f"cancel {job.id}",
        f"delete {model}",
        f"eval {model} 1",
        f"record {model}",
        f"export {model}",
        "export 1",
        "validate 1",
        "candidates 1",
        "dataset next 1",
        "train 1",
    ]
    posted_before = len(slack.workspace.messages)
    for number, command in enumerate(commands, start=1):
        await carol.slash_command(CAROL, GENERAL, command)
        text = (await refusals_to_carol(other, number))[-1].text
        # Her own words may be echoed back; nothing of the first team's may be.
        assert not re.search(r"marv|U0ALICE|succeeded|Alice", text, flags=re.IGNORECASE), (command, text)
        assert re.search(r"I (know|have) no|is gone|not found|no (model|job|dataset)", text), (command, text)
    for clicked, action in enumerate(("chat_start", "compare_start", "eval_open", "model_delete"), start=1):
        # The first team's result card, as if it were shown to Carol: its buttons carry that team's job id.
        await carol.click(CAROL, result, action)
        refusals = await refusals_to_carol(other, len(commands) + clicked)
        assert re.search(r"is gone|I (know|have) no|not found", refusals[-1].text), (action, refusals[-1].text)
    await bot.services.drain(timeout=10)
    assert [m for m in other.messages if m.user == other.bot_user_id] == [], "nothing posted in the second workspace"
    assert len(slack.workspace.messages) == posted_before, "nor in the first"
    assert not other.views or all(view.kind != "modal" for view in other.views.values()), "no form opened"
    [row] = await job_rows(bot)
    assert (row.status, row.model_deleted_at) == ("succeeded", None)
