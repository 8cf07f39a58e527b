"""Starting fine-tuning jobs from Slack, through both emulators."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from openai import AsyncOpenAI
from sqlmodel import select

from bot.clock import FrozenClock
from bot.services import Services
from bot.training import launch
from sandbox.holds import Hold
from sandbox.slack import Message
from storage import repositories
from storage.models import AuditEntry
from tests.conftest import ALICE, BOB, GENERAL, BotUnderTest
from tests.scenarios.scenes import card_of, failure_in, job_rows, jobs_at_provider, open_modal, shared_report

ADMINS = "C0ADMINS"


async def test_train_from_the_report_button(bot: BotUnderTest, shared_data: Path) -> None:
    report = await shared_report(bot, shared_data / "gsm8k_chat_validation.jsonl")
    modal = await open_modal(bot, ALICE, bot.driver.click(ALICE, report, "dataset_train"))
    assert modal.view["title"]["text"] == "Train a model"
    model_block = next(b for b in modal.view["blocks"] if b.get("block_id") == "model")
    labels = [o["text"]["text"] for o in model_block["element"]["options"]]
    # The emulator lists its shutdown dates; the sandbox adds no OpenAI end of training to them.
    assert "gpt-4o-mini-2024-07-18 · training ends 2027-01-14 · shutdown 2027-01-14" in labels
    assert not any("gpt-4.1-nano" in label for label in labels), "retired models cannot be picked"
    assert "Estimate on gpt-4o-mini-2024-07-18" in json.dumps(modal.view)

    delivery = await bot.driver.submit_form(ALICE, modal)
    assert delivery.status == 200
    card = await bot.workspace.wait_for(lambda: card_of(bot, report))
    [job] = jobs_at_provider(bot)
    assert job.model == "gpt-4o-mini-2024-07-18" and job.method == "supervised"
    assert job.metadata["requested_by"] == ALICE and job.metadata["team"] == bot.workspace.team_id
    assert job.id in json.dumps(card.blocks)
    assert any(e.get("action_id") == "job_cancel" for b in card.blocks for e in b.get("elements", []))
    [row] = await job_rows(bot)
    assert (row.status, row.provider_job_id, row.requested_by) == ("validating", job.id, ALICE)
    assert row.estimated_cost_usd is not None and row.estimated_cost_usd > 0
    async with bot.services.db.session() as session:
        [entry] = await repositories.list_audit_entries(session, team_id=bot.workspace.team_id)
    assert (entry.actor, entry.action, entry.subject) == (ALICE, "start", f"job:{row.id}")


async def test_train_from_the_command_prefills_the_modal(http_bot: BotUnderTest, shared_data: Path) -> None:
    report = await shared_report(http_bot, shared_data / "gsm8k_chat_validation.jsonl")
    modal = await open_modal(
        http_bot,
        BOB,
        http_bot.driver.slash_command(BOB, GENERAL, "train #1 model=gpt-4.1-mini epochs=2 suffix=“gsm-math”"),
    )
    blocks = {b.get("block_id"): b for b in modal.view["blocks"]}
    assert blocks["model"]["element"]["initial_option"]["value"] == "gpt-4.1-mini-2025-04-14"
    assert blocks["n_epochs"]["element"]["initial_value"] == "2"
    assert blocks["suffix"]["element"]["initial_value"] == "gsm-math"
    # Another model than the report's: the form opens at once and its estimate follows.
    await http_bot.workspace.wait_for(lambda: "billed tokens" in json.dumps(http_bot.workspace.views[modal.id].view))
    estimate = next(b for b in http_bot.workspace.views[modal.id].view["blocks"] if b.get("block_id") == "estimate")
    assert "2 epochs" in estimate["text"]["text"] and "gpt-4.1-mini" in estimate["text"]["text"]
    await http_bot.driver.submit_form(BOB, modal)
    await http_bot.workspace.wait_for(lambda: card_of(http_bot, report))
    [job] = jobs_at_provider(http_bot)
    assert (job.model, job.suffix, job.hyperparameters["n_epochs"]) == ("gpt-4.1-mini-2025-04-14", "gsm-math", 2)


async def test_changing_the_model_recomputes_the_estimate(http_bot: BotUnderTest, shared_data: Path) -> None:
    report = await shared_report(http_bot, shared_data / "gsm8k_chat_validation.jsonl")
    modal = await open_modal(http_bot, ALICE, http_bot.driver.click(ALICE, report, "dataset_train"))
    before = next(b for b in modal.view["blocks"] if b.get("block_id") == "estimate")["text"]["text"]
    await http_bot.driver.choose_in_view(ALICE, modal, "model", "gpt-4o-2024-08-06")

    def estimate() -> str:
        return str(next(b for b in modal.view["blocks"] if b.get("block_id") == "estimate")["text"]["text"])

    # The model's id is in the select's options from the start: wait for the estimate itself to change.
    await http_bot.workspace.wait_for(lambda: "gpt-4o-2024-08-06" in estimate())
    after = estimate()
    assert before != after and "Estimate on gpt-4o-2024-08-06" in after


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        ({"n_epochs": "0"}, {"n_epochs"}),
        ({"n_epochs": "many", "batch_size": "999"}, {"n_epochs", "batch_size"}),
        ({"learning_rate_multiplier": "0", "suffix": "bad suffix!"}, {"learning_rate_multiplier", "suffix"}),
        ({"method": "dpo"}, {"method"}),
        ({"seed": "-4"}, {"seed"}),
    ],
)
async def test_invalid_fields_get_field_errors_in_the_modal(
    http_bot: BotUnderTest, shared_data: Path, changes: dict[str, str], errors: set[str]
) -> None:
    report = await shared_report(http_bot, shared_data / "gsm8k_chat_validation.jsonl")
    modal = await open_modal(http_bot, ALICE, http_bot.driver.click(ALICE, report, "dataset_train"))
    delivery = await http_bot.driver.submit_form(ALICE, modal, changes)
    answer = delivery.json()
    assert answer["response_action"] == "errors"
    assert set(answer["errors"]) == errors
    assert jobs_at_provider(http_bot) == [] and await job_rows(http_bot) == []


async def test_a_double_submit_starts_one_job(http_bot: BotUnderTest, shared_data: Path) -> None:
    report = await shared_report(http_bot, shared_data / "gsm8k_chat_validation.jsonl")
    modal = await open_modal(http_bot, ALICE, http_bot.driver.click(ALICE, report, "dataset_train"))
    await http_bot.driver.submit_form(ALICE, modal)
    await http_bot.driver.submit_form(ALICE, modal)
    await http_bot.workspace.wait_for(lambda: card_of(http_bot, report))
    assert len(jobs_at_provider(http_bot)) == 1
    assert len(await job_rows(http_bot)) == 1
    cards = [
        m for m in http_bot.workspace.replies_of(GENERAL, report.thread_ts or report.ts) if "Training started" in m.text
    ]
    assert len(cards) == 1


async def test_a_retried_upload_event_then_training_gives_one_dataset_and_one_job(
    http_bot: BotUnderTest, shared_data: Path
) -> None:
    content = (shared_data / "gsm8k_chat_validation.jsonl").read_bytes()
    _, message = await http_bot.driver.upload(ALICE, GENERAL, "gsm8k.jsonl", content, retries=3)
    report = await http_bot.workspace.wait_for(
        lambda: next((m for m in http_bot.workspace.replies_of(GENERAL, message.ts) if m.blocks), None)
    )
    modal = await open_modal(http_bot, ALICE, http_bot.driver.click(ALICE, report, "dataset_train"))
    await http_bot.driver.submit_form(ALICE, modal)
    await http_bot.workspace.wait_for(lambda: card_of(http_bot, report))
    reports = [
        m for m in http_bot.workspace.replies_of(GENERAL, message.ts) if m.blocks and m.blocks[0]["type"] == "header"
    ]
    assert len(reports) == 1 and len(jobs_at_provider(http_bot)) == 1


async def test_a_lost_answer_on_job_create_leaves_exactly_one_job(http_bot: BotUnderTest, shared_data: Path) -> None:
    """The provider creates the job but the answer is a 500: the bot finds it by metadata, no second job."""
    report = await shared_report(http_bot, shared_data / "gsm8k_chat_validation.jsonl")
    http_bot.openai.state.inject("POST /fine_tuning/jobs", rate_500=1.0, times=1, after_processing=True)
    modal = await open_modal(http_bot, ALICE, http_bot.driver.click(ALICE, report, "dataset_train"))
    await http_bot.driver.submit_form(ALICE, modal)
    await http_bot.workspace.wait_for(lambda: card_of(http_bot, report))
    [job] = jobs_at_provider(http_bot)
    [row] = await job_rows(http_bot)
    assert row.provider_job_id == job.id
    creates = [path for method, path in http_bot.openai.state.calls if method == "POST" and path.endswith("/jobs")]
    assert len(creates) == 1, "no blind retry"


@pytest.mark.slow
async def test_a_500_before_processing_is_retried_into_one_job(http_bot: BotUnderTest, shared_data: Path) -> None:
    report = await shared_report(http_bot, shared_data / "gsm8k_chat_validation.jsonl")
    http_bot.openai.state.inject("POST /fine_tuning/jobs", rate_500=1.0, times=2)
    modal = await open_modal(http_bot, ALICE, http_bot.driver.click(ALICE, report, "dataset_train"))
    await http_bot.driver.submit_form(ALICE, modal)
    await http_bot.workspace.wait_for(lambda: card_of(http_bot, report))
    assert len(jobs_at_provider(http_bot)) == 1


@pytest.mark.slow
async def test_provider_refusals_are_quoted_in_the_thread(http_bot: BotUnderTest, shared_data: Path) -> None:
    report = await shared_report(http_bot, shared_data / "gsm8k_chat_validation.jsonl")
    http_bot.openai.state.inject("POST /fine_tuning/jobs", rate_500=1.0)
    modal = await open_modal(http_bot, ALICE, http_bot.driver.click(ALICE, report, "dataset_train"))
    await http_bot.driver.submit_form(ALICE, modal)
    failure = await http_bot.workspace.wait_for(
        lambda: next(
            (
                m
                for m in http_bot.workspace.replies_of(GENERAL, report.thread_ts or report.ts)
                if m.text.startswith("❌")
            ),
            None,
        )
    )
    assert "“The server had an error while processing your request. Sorry about that!”" in failure.text
    assert "Nothing was started" in failure.text and "Train…" in failure.text
    [row] = await job_rows(http_bot)
    assert row.status == "not_started" and row.provider_job_id is None
    assert jobs_at_provider(http_bot) == []


async def test_azure_mode(bot_factory: Any, shared_data: Path, openai_emulator: Any) -> None:
    openai_emulator.state.azure_ids = True
    bot = await bot_factory(
        finetune_provider="azure",
        azure_openai_endpoint=openai_emulator.azure_endpoint,
        azure_openai_api_key=openai_emulator.state.api_key,
        openai_api_key=None,
    )
    report = await shared_report(bot, shared_data / "gsm8k_chat_validation.jsonl")
    modal = await open_modal(bot, ALICE, bot.driver.click(ALICE, report, "dataset_train"))
    await bot.driver.submit_form(ALICE, modal, {"model": "gpt-4.1-mini-2025-04-14"})
    await bot.workspace.wait_for(lambda: card_of(bot, report))
    assert all(path.startswith("/openai/") for _, path in openai_emulator.state.calls)
    [job] = jobs_at_provider(bot)
    assert job.model == "gpt-4.1-mini-2025-04-14"


async def test_over_the_threshold_an_admin_approves(bot_factory: Any, shared_data: Path) -> None:
    bot = await bot_factory(
        finetune_admins=[BOB], finetune_approval_threshold_usd=0.01, finetune_approval_channel=ADMINS
    )
    bot.workspace.add_channel(ADMINS, "ml-admins", members=[BOB])
    report = await shared_report(bot, shared_data / "gsm8k_chat_validation.jsonl")
    modal = await open_modal(bot, ALICE, bot.driver.click(ALICE, report, "dataset_train"))
    await bot.driver.submit_form(ALICE, modal)
    request = await bot.workspace.wait_for(lambda: next(iter(bot.workspace.bot_messages(ADMINS)), None))
    assert "over the $0.01 per-job threshold" in json.dumps(request.blocks)
    waiting = await bot.workspace.wait_for(
        lambda: next(
            (
                m
                for m in bot.workspace.replies_of(GENERAL, report.thread_ts or report.ts)
                if "waits for an admin" in m.text
            ),
            None,
        )
    )
    assert f"<@{ALICE}>" in waiting.text
    assert jobs_at_provider(bot) == []

    await bot.driver.click(ALICE, request, "job_approve")
    refusal = await bot.workspace.wait_for(lambda: bot.workspace.ephemerals_for(ALICE))
    assert "Only admins" in refusal[-1].text
    assert jobs_at_provider(bot) == []

    await bot.driver.click(BOB, request, "job_approve")
    await bot.workspace.wait_for(lambda: card_of(bot, report))
    assert len(jobs_at_provider(bot)) == 1
    assert "Approved by" in json.dumps(request.blocks)
    told = [m.text for m in bot.workspace.replies_of(GENERAL, report.thread_ts or report.ts)]
    assert any(f"<@{BOB}> approved your training request" in text for text in told)

    assert not any(block["type"] == "actions" for block in request.blocks), "no button left to click twice"
    async with bot.services.db.session() as session:
        actions = [e.action for e in (await session.exec(select(AuditEntry))).all()]
    assert sorted(actions) == ["approve", "request"]


async def test_an_old_approve_button_answers_politely(bot_factory: Any, shared_data: Path) -> None:
    bot = await bot_factory(
        finetune_admins=[BOB], finetune_approval_threshold_usd=0.01, finetune_approval_channel=ADMINS
    )
    bot.workspace.add_channel(ADMINS, "ml-admins", members=[BOB])
    report = await shared_report(bot, shared_data / "gsm8k_chat_validation.jsonl")
    modal = await open_modal(bot, ALICE, bot.driver.click(ALICE, report, "dataset_train"))
    await bot.driver.submit_form(ALICE, modal)
    request = await bot.workspace.wait_for(lambda: next(iter(bot.workspace.bot_messages(ADMINS)), None))
    stale = Message(**{**request.__dict__, "blocks": [dict(b) for b in request.blocks]})
    await bot.driver.click(BOB, request, "job_deny")
    await bot.workspace.wait_for(lambda: "Denied by" in json.dumps(request.blocks))
    await bot.driver.click(BOB, stale, "job_approve")
    answers = await bot.workspace.wait_for(
        lambda: [e for e in bot.workspace.ephemerals_for(BOB) if "already decided" in e.text]
    )
    assert "denied" in answers[0].text
    assert jobs_at_provider(bot) == []
    told = [m.text for m in bot.workspace.replies_of(GENERAL, report.thread_ts or report.ts)]
    assert any(f"<@{BOB}> denied your training request" in text for text in told)


async def test_over_the_monthly_budget_the_job_waits(bot_factory: Any, shared_data: Path) -> None:
    bot = await bot_factory(finetune_admins=[BOB], finetune_monthly_budget_usd=0.10, finetune_approval_channel=ADMINS)
    bot.workspace.add_channel(ADMINS, "ml-admins", members=[BOB])
    report = await shared_report(bot, shared_data / "gsm8k_chat_validation.jsonl")
    modal = await open_modal(bot, ALICE, bot.driver.click(ALICE, report, "dataset_train"))
    await bot.driver.submit_form(ALICE, modal)  # about $0.08: within the budget
    await bot.workspace.wait_for(lambda: len(jobs_at_provider(bot)) == 1)
    modal = await open_modal(bot, ALICE, bot.driver.click(ALICE, report, "dataset_train"))
    await bot.driver.submit_form(ALICE, modal)  # another $0.08 would pass $0.10
    request = await bot.workspace.wait_for(lambda: next(iter(bot.workspace.bot_messages(ADMINS)), None))
    assert "over the $0.10 monthly budget ($0.08 committed so far)" in json.dumps(request.blocks)
    assert len(jobs_at_provider(bot)) == 1
    rows = await job_rows(bot)
    assert sorted(row.status for row in rows) == ["awaiting_approval", "validating"]


async def test_only_trainers_may_train(bot_factory: Any, shared_data: Path) -> None:
    bot = await bot_factory(finetune_trainers=[ALICE])
    report = await shared_report(bot, shared_data / "gsm8k_chat_validation.jsonl")
    await bot.driver.click(BOB, report, "dataset_train")
    [answer] = await bot.workspace.wait_for(lambda: bot.workspace.ephemerals_for(BOB))
    assert "Only the team's trainers" in answer.text
    assert bot.workspace.views == {}


async def test_trainers_can_be_a_user_group(bot_factory: Any, shared_data: Path) -> None:
    bot = await bot_factory(finetune_trainers=["S0TRAINERS"])
    bot.workspace.usergroups["S0TRAINERS"] = [BOB]
    report = await shared_report(bot, shared_data / "gsm8k_chat_validation.jsonl")
    await open_modal(bot, BOB, bot.driver.click(BOB, report, "dataset_train"))
    await bot.driver.click(ALICE, report, "dataset_train")
    [answer] = await bot.workspace.wait_for(lambda: bot.workspace.ephemerals_for(ALICE))
    assert "Only the team's trainers" in answer.text
    assert len(bot.workspace.views) == 1


async def test_a_retired_base_model_is_refused_with_its_dates(
    bot_factory: Any, shared_data: Path, clock: FrozenClock
) -> None:
    http_bot = await bot_factory(finetune_provider="openai")  # OpenAI's calendar applies to OpenAI only
    await shared_report(http_bot, shared_data / "gsm8k_chat_validation.jsonl")
    await http_bot.driver.slash_command(ALICE, GENERAL, "train #1 model=gpt-4.1-nano-2025-04-14")
    [answer] = await http_bot.workspace.wait_for(lambda: http_bot.workspace.ephemerals_for(ALICE))
    assert "can no longer be trained with OpenAI: training ended on 2026-10-23" in answer.text
    assert "Azure" not in answer.text, "no provider the bot is not configured for"
    clock.advance(timedelta(days=60))  # 2027-01-20: OpenAI trains nothing any more
    await http_bot.driver.slash_command(ALICE, GENERAL, "train #1")
    answers = await http_bot.workspace.wait_for(
        lambda: len(http_bot.workspace.ephemerals_for(ALICE)) == 2 and http_bot.workspace.ephemerals_for(ALICE)
    )
    assert "training ended on 2027-01-06" in answers[-1].text
    assert "An admin can add a provider that still trains it" in answers[-1].text
    assert http_bot.workspace.views == {}


async def test_cancel_from_the_job_card(http_bot: BotUnderTest, shared_data: Path) -> None:
    report = await shared_report(http_bot, shared_data / "gsm8k_chat_validation.jsonl")
    modal = await open_modal(http_bot, ALICE, http_bot.driver.click(ALICE, report, "dataset_train"))
    await http_bot.driver.submit_form(ALICE, modal)
    card = await http_bot.workspace.wait_for(lambda: card_of(http_bot, report))
    await http_bot.driver.click(BOB, card, "job_cancel")
    [refusal] = await http_bot.workspace.wait_for(lambda: http_bot.workspace.ephemerals_for(BOB))
    assert "Only <@U0ALICE>" in refusal.text
    await http_bot.driver.click(ALICE, card, "job_cancel")
    await http_bot.workspace.wait_for(lambda: "Cancelled by" in json.dumps(card.blocks))
    [job] = jobs_at_provider(http_bot)
    assert job.status == "cancelled"
    [row] = await job_rows(http_bot)
    assert row.status == "cancelled"


async def test_large_datasets_go_through_the_uploads_api(bot_factory: Any, shared_data: Path) -> None:
    bot = await bot_factory(finetune_uploads_threshold_mb=0)
    report = await shared_report(bot, shared_data / "gsm8k_chat_validation.jsonl")
    modal = await open_modal(bot, ALICE, bot.driver.click(ALICE, report, "dataset_train"))
    await bot.driver.submit_form(ALICE, modal)
    await bot.workspace.wait_for(lambda: card_of(bot, report))
    paths = [path for _, path in bot.openai.state.calls]
    assert "/v1/uploads" in paths and any(path.endswith("/complete") for path in paths)
    assert "/v1/files" not in paths
    [job] = jobs_at_provider(bot)
    uploaded = bot.openai.state.files[job.training_file]
    assert uploaded.content == (shared_data / "gsm8k_chat_validation.jsonl").read_bytes()


async def test_a_wrong_provider_key_is_explained_with_the_providers_words(bot_factory: Any, shared_data: Path) -> None:
    bot = await bot_factory()
    report = await shared_report(bot, shared_data / "gsm8k_chat_validation.jsonl")
    modal = await open_modal(bot, ALICE, bot.driver.click(ALICE, report, "dataset_train"))
    bot.openai.state.api_key = "sk-rotated-elsewhere"  # the key was revoked after the bot started
    await bot.driver.submit_form(ALICE, modal)
    failure = await bot.workspace.wait_for(
        lambda: next(
            (m for m in bot.workspace.replies_of(GENERAL, report.thread_ts or report.ts) if m.text.startswith("❌")),
            None,
        )
    )
    assert "Incorrect API key provided" in failure.text
    assert "OPENAI_API_KEY" in failure.text
    assert "sk-" not in failure.text, "not even the part of the key the provider echoes reaches Slack"
    [row] = await job_rows(bot)
    assert row.status == "not_started"


async def test_a_missing_stored_copy_is_told_in_the_thread(http_bot: BotUnderTest, shared_data: Path) -> None:
    """The data folder lost the bot's copy (a new volume, a clean-up): the form closes and the thread says
    what happened, instead of a job left `starting` and a log line about the database."""
    report = await shared_report(http_bot, shared_data / "gsm8k_chat_validation.jsonl")
    modal = await open_modal(http_bot, ALICE, http_bot.driver.click(ALICE, report, "dataset_train"))
    for stored in (http_bot.services.settings.finetune_data_dir / "datasets").rglob("*.jsonl"):
        stored.unlink()
    assert (await http_bot.driver.submit_form(ALICE, modal)).status == 200
    failure = await http_bot.workspace.wait_for(lambda: failure_in(http_bot, report))
    assert "stored copy of `gsm8k.jsonl` is missing" in failure.text and "Share the file again" in failure.text
    [row] = await job_rows(http_bot)
    assert row.status == "not_started" and jobs_at_provider(http_bot) == []


async def submitted_and_held(bot: BotUnderTest, data: Path, endpoint: str) -> tuple[Message, Hold]:
    """Alice sends the Train form; the launch waits at ``endpoint``, held before the provider acts."""
    report = await shared_report(bot, data / "gsm8k_chat_validation.jsonl")
    held = bot.openai.state.hold(endpoint, before_work=True)
    modal = await open_modal(bot, ALICE, bot.driver.click(ALICE, report, "dataset_train"))
    await bot.driver.submit_form(ALICE, modal)
    await held.reached.wait()
    return report, held


@pytest.mark.slow
async def test_cancel_while_starting_says_what_happens_next(http_bot: BotUnderTest, shared_data: Path) -> None:
    report, held = await submitted_and_held(http_bot, shared_data, "POST /fine_tuning/jobs")
    [row] = await job_rows(http_bot)
    await http_bot.driver.slash_command(ALICE, GENERAL, f"cancel {row.id}")
    [answer] = await http_bot.workspace.wait_for(lambda: http_bot.workspace.ephemerals_for(ALICE))
    assert "still being handed to" in answer.text and "Cancel button" in answer.text
    held.released.set()
    await http_bot.workspace.wait_for(lambda: card_of(http_bot, report))


async def test_a_launch_that_outlived_its_lease_leaves_no_job_billing(
    http_bot: BotUnderTest, shared_data: Path, clock: FrozenClock
) -> None:
    """A replica cut off from its database longer than the lease: another replica settles the start as not
    started; when the first one's create finally goes through, it cancels that job at the provider."""
    report, held = await submitted_and_held(http_bot, shared_data, "POST /fine_tuning/jobs")
    other = Services.create(http_bot.services.settings, clock=FrozenClock(clock.now() + timedelta(minutes=6)))
    try:
        assert await launch.resolve_stalled_starts(other, owner=other.owner) == 1
    finally:
        await other.aclose()
    failure = await http_bot.workspace.wait_for(lambda: failure_in(http_bot, report))
    assert "interrupted" in failure.text
    held.released.set()
    await http_bot.openai.state.wait_for(lambda: [job.status for job in jobs_at_provider(http_bot)] == ["cancelled"])
    [row] = await job_rows(http_bot)
    assert (row.status, row.provider_job_id) == ("not_started", None)
    assert card_of(http_bot, report) is None, "no card for a job that was given up"


async def test_a_replica_keeps_its_own_launch_leased(http_bot: BotUnderTest, shared_data: Path) -> None:
    """The launching replica's ticks renew its lease, so a slow upload is never settled from under it."""
    report, held = await submitted_and_held(http_bot, shared_data, "POST /files")
    services = http_bot.services
    other = Services.create(services.settings, clock=FrozenClock(services.clock.now()))
    try:
        assert isinstance(services.clock, FrozenClock) and isinstance(other.clock, FrozenClock)
        for _ in range(3):  # fifteen minutes of a slow upload, with the launcher's ticks running meanwhile
            for clock in (services.clock, other.clock):
                clock.advance(timedelta(minutes=4))
            assert await launch.resolve_stalled_starts(services, owner=services.owner) == 0
            assert await launch.resolve_stalled_starts(other, owner=other.owner) == 0
    finally:
        await other.aclose()
    held.released.set()
    await http_bot.workspace.wait_for(lambda: card_of(http_bot, report))
    assert failure_in(http_bot, report) is None


async def test_a_host_that_ignores_the_metadata_filter_never_gets_another_job_adopted(
    http_bot: BotUnderTest, shared_data: Path
) -> None:
    """After an ambiguous failure the bot looks for its request at the provider; a host that lists every job
    whatever the filter must not make it adopt someone else's job."""
    state = http_bot.openai.state
    state.quirks.ignores_metadata_filter = True
    async with AsyncOpenAI(api_key=state.api_key, base_url=http_bot.openai.base_url) as sdk:
        data = await sdk.files.create(
            file=("other.jsonl", shared_data.joinpath("gsm8k_chat_validation.jsonl").read_bytes()), purpose="fine-tune"
        )
        other = await sdk.fine_tuning.jobs.create(
            model="gpt-4o-mini-2024-07-18",
            training_file=data.id,
            metadata={"team": "T0ELSEWHERE", "request_id": "theirs"},
        )
    report = await shared_report(http_bot, shared_data / "gsm8k_chat_validation.jsonl")
    state.inject("POST /fine_tuning/jobs", rate_500=1.0, times=1)  # refused before any work: nothing exists
    modal = await open_modal(http_bot, ALICE, http_bot.driver.click(ALICE, report, "dataset_train"))
    await http_bot.driver.submit_form(ALICE, modal)
    await http_bot.workspace.wait_for(lambda: card_of(http_bot, report))
    [row] = await job_rows(http_bot)
    assert row.provider_job_id not in (None, other.id)
    assert len(jobs_at_provider(http_bot)) == 2, "its own job was created once, the other team's left alone"
