"""From a file dropped in Slack to the report in its thread, through the emulators."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlmodel import select

from bot.clock import FrozenClock
from bot.datasets import intake
from bot.services import Services
from sandbox.slack import Message
from storage import repositories
from storage.models import FileIntake, IntakeStatus
from tests.conftest import ALICE, BOB, GENERAL, BotUnderTest


def report_in_thread(bot: BotUnderTest, message: Message) -> Message:
    replies = bot.workspace.replies_of(GENERAL, message.ts)
    reports = [reply for reply in replies if reply.blocks and reply.blocks[0]["type"] == "header"]
    return reports[-1] if reports else None  # type: ignore[return-value]


async def test_a_shared_jsonl_file_gets_its_report_in_the_thread(bot: BotUnderTest, shared_data: Path) -> None:
    content = (shared_data / "gsm8k_chat_validation.jsonl").read_bytes()
    _, message = await bot.driver.upload(ALICE, GENERAL, "gsm8k.jsonl", content)
    report = await bot.workspace.wait_for(lambda: report_in_thread(bot, message))
    assert report.blocks[0]["text"]["text"] == "✅ gsm8k.jsonl is ready to train"
    assert "50 examples" in report.text
    text = str(report.blocks)
    assert "Training estimate" in text and "billed tokens" in text
    await bot.workspace.wait_for(lambda: "white_check_mark" in message.reactions)
    assert "eyes" not in message.reactions
    async with bot.services.db.session() as session:
        [dataset] = await repositories.list_datasets(session, team_id=bot.workspace.team_id)
    assert (dataset.filename, dataset.examples, dataset.valid, dataset.uploaded_by) == ("gsm8k.jsonl", 50, True, ALICE)
    stored = bot.services.settings.finetune_data_dir / "datasets" / dataset.sha256[:2] / f"{dataset.sha256}.jsonl"
    assert stored.read_bytes() == content
    assert len([m for m in bot.workspace.bot_messages() if m.thread_ts == message.ts]) == 1, "one report, not two"


async def test_problems_are_listed_by_code_with_their_lines(http_bot: BotUnderTest, shared_data: Path) -> None:
    content = (shared_data / "toy_chat_fine_tuning.jsonl").read_bytes()
    _, message = await http_bot.driver.upload(ALICE, GENERAL, "toy.jsonl", content)
    report = await http_bot.workspace.wait_for(lambda: report_in_thread(http_bot, message))
    assert report.blocks[0]["text"]["text"] == "❌ toy.jsonl needs fixing (1 problem)"
    assert "Too few examples" in str(report.blocks) and "too_few_examples" in str(report.blocks)
    assert "Inconsistent system message" in str(report.blocks)
    await http_bot.workspace.wait_for(lambda: "x" in message.reactions)


async def test_the_same_bytes_again_point_to_the_earlier_dataset(http_bot: BotUnderTest, shared_data: Path) -> None:
    content = (shared_data / "gsm8k_chat_validation.jsonl").read_bytes()
    _, first = await http_bot.driver.upload(ALICE, GENERAL, "gsm8k.jsonl", content)
    await http_bot.workspace.wait_for(lambda: report_in_thread(http_bot, first))
    _, second = await http_bot.driver.upload(BOB, GENERAL, "copy.jsonl", content)
    await http_bot.workspace.wait_for(lambda: report_in_thread(http_bot, second))
    replies = http_bot.workspace.replies_of(GENERAL, second.ts)
    assert "same bytes as dataset #1 (`gsm8k.jsonl`" in replies[0].text
    async with http_bot.services.db.session() as session:
        assert len(await repositories.list_datasets(session, team_id=http_bot.workspace.team_id)) == 1


async def test_retries_and_both_events_answer_once(http_bot: BotUnderTest, shared_data: Path) -> None:
    content = (shared_data / "gsm8k_chat_validation.jsonl").read_bytes()
    _, message = await http_bot.driver.upload(ALICE, GENERAL, "gsm8k.jsonl", content, retries=2)
    await http_bot.workspace.wait_for(lambda: "white_check_mark" in message.reactions)
    assert len(http_bot.workspace.replies_of(GENERAL, message.ts)) == 1
    # The file_share message knows where to answer; file_shared asks files.info where the file was shared
    # before it may claim it (its share may not show yet), so one lookup each at most.
    assert len(http_bot.workspace.calls_of("files.info")) <= 2


async def test_unreadable_files_get_a_clear_answer(http_bot: BotUnderTest) -> None:
    _, binary = await http_bot.driver.upload(ALICE, GENERAL, "weights.jsonl", bytes(range(256)) * 40)
    report = await http_bot.workspace.wait_for(lambda: report_in_thread(http_bot, binary))
    assert "Not UTF-8" in str(report.blocks)
    _, empty = await http_bot.driver.upload(ALICE, GENERAL, "empty.jsonl", b"")
    report = await http_bot.workspace.wait_for(lambda: report_in_thread(http_bot, empty))
    assert "Empty file" in str(report.blocks)
    _, json_file = await http_bot.driver.upload(ALICE, GENERAL, "data.json", b'[{"messages": []}]')
    hint = await http_bot.workspace.wait_for(lambda: http_bot.workspace.replies_of(GENERAL, json_file.ts))
    assert "JSONL" in hint[0].text
    _, picture = await http_bot.driver.upload(ALICE, GENERAL, "cat.png", b"\x89PNG")
    assert http_bot.workspace.replies_of(GENERAL, picture.ts) == [], "other files are none of the bot's business"


async def test_too_large_and_refused_downloads_are_explained(http_bot: BotUnderTest, shared_data: Path) -> None:
    http_bot.services.settings.finetune_max_file_mb = 1
    big = (shared_data / "orca_dpo_pairs_validation.jsonl").read_bytes() * 2
    _, message = await http_bot.driver.upload(ALICE, GENERAL, "big.jsonl", big)
    answer = await http_bot.workspace.wait_for(lambda: http_bot.workspace.replies_of(GENERAL, message.ts))
    assert "over the 1 MB limit" in answer[0].text
    await http_bot.workspace.wait_for(lambda: "x" in message.reactions)

    http_bot.workspace.refuse_downloads = True
    _, refused = await http_bot.driver.upload(ALICE, GENERAL, "private.jsonl", b'{"messages": []}\n')
    answer = await http_bot.workspace.wait_for(lambda: http_bot.workspace.replies_of(GENERAL, refused.ts))
    assert "Slack refused to let me download `private.jsonl`" in answer[0].text
    assert "files:read" in answer[0].text
    async with http_bot.services.db.session() as session:
        assert await repositories.list_datasets(session, team_id=http_bot.workspace.team_id) == []


async def test_datasets_command_and_revalidate(http_bot: BotUnderTest, shared_data: Path) -> None:
    content = (shared_data / "orca_dpo_pairs_validation.jsonl").read_bytes()
    _, message = await http_bot.driver.upload(ALICE, GENERAL, "orca.jsonl", content)
    await http_bot.workspace.wait_for(lambda: report_in_thread(http_bot, message))
    await http_bot.driver.slash_command(BOB, GENERAL, "datasets")
    listing = await http_bot.workspace.wait_for(lambda: http_bot.workspace.ephemerals_for(BOB))
    assert "orca.jsonl" in str(listing[0].blocks) and "#1" in str(listing[0].blocks)
    await http_bot.driver.slash_command(BOB, GENERAL, "validate #1 method=supervised")
    await http_bot.workspace.wait_for(lambda: len(http_bot.workspace.ephemerals_for(BOB)) == 2)
    rerun = report_in_thread(http_bot, message)
    assert "Format cannot train this model or method" in str(rerun.blocks)
    await http_bot.driver.slash_command(BOB, GENERAL, "validate nope.jsonl")
    await http_bot.driver.slash_command(BOB, GENERAL, "validate")
    answers = await http_bot.workspace.wait_for(
        lambda: len(http_bot.workspace.ephemerals_for(BOB)) >= 4 and http_bot.workspace.ephemerals_for(BOB)
    )
    texts = [answer.text for answer in answers]
    assert any("I have no dataset `nope.jsonl`" in text for text in texts)
    assert any("Which dataset?" in text for text in texts)


async def test_details_button_shows_every_listed_line_to_the_clicker(http_bot: BotUnderTest, shared_data: Path) -> None:
    content = (shared_data / "drone_training.2024-06-13.jsonl").read_bytes()
    _, message = await http_bot.driver.upload(ALICE, GENERAL, "drone.jsonl", content)
    report = await http_bot.workspace.wait_for(lambda: report_in_thread(http_bot, message))
    await http_bot.driver.click(BOB, report, "dataset_details")
    [details] = await http_bot.workspace.wait_for(lambda: http_bot.workspace.ephemerals_for(BOB))
    assert "double-encoded" in str(details.blocks)
    assert http_bot.workspace.ephemerals_for(ALICE) == []


async def test_an_intake_interrupted_three_times_is_given_up_in_its_thread(
    http_bot: BotUnderTest, clock: FrozenClock, shared_data: Path
) -> None:
    """Each restart resumes a share whose intake died (and a shutdown frees it at once); the fourth time
    the bot stops trying and says so in the file's thread, with ❌ instead of 👀."""
    workspace = http_bot.workspace
    held = workspace.hold("files.download")
    _, shared = await http_bot.driver.upload(
        ALICE, GENERAL, "gsm8k.jsonl", (shared_data / "gsm8k_chat_validation.jsonl").read_bytes()
    )
    await asyncio.wait_for(held.reached.wait(), timeout=10)
    await http_bot.running.stop()
    await http_bot.services.aclose()  # the first process stops while downloading
    held.released.set()
    for attempt in (2, 3, 4):
        held = workspace.hold("files.download")
        replica = Services.create(http_bot.services.settings, clock=clock)
        try:
            assert await intake.resume_interrupted_intakes(replica, owner=replica.owner) == 1
            if attempt <= intake.MAX_INTAKE_ATTEMPTS:
                await asyncio.wait_for(held.reached.wait(), timeout=10)
            else:
                assert await replica.drain(timeout=10) == 0
        finally:
            await replica.aclose()
            held.released.set()
    [answer] = workspace.replies_of(GENERAL, shared.ts)
    assert "interrupted 3 times" in answer.text and "share it again" in answer.text
    assert set(shared.reactions) == {"x"}
    async with http_bot.services.db.session() as session:
        [row] = (await session.exec(select(FileIntake))).all()
    assert (row.status, row.attempts) == (IntakeStatus.GIVEN_UP, 4)
