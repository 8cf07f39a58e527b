"""Requests no real Slack sends, signed or not: each gets a 4xx or a quiet acknowledgement, never a 5xx
or a traceback in the log."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest

from bot import errors, references
from sandbox.slack import Message
from tests.conftest import ALICE, BOB, GENERAL, BotUnderTest
from tests.scenarios.scenes import marv_file, shared_report, trained


def interactive(payload: Any) -> str:
    return "payload=" + quote(payload if isinstance(payload, str) else json.dumps(payload))


def block_actions(**override: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": ALICE, "team_id": "T0SANDBOX"},
        "team": {"id": "T0SANDBOX"},
        "api_app_id": "A0FINETUNE",
        "trigger_id": "1.2",
        "container": {"type": "message", "channel_id": GENERAL, "message_ts": "1.1"},
        "channel": {"id": GENERAL},
        "actions": [{"action_id": "job_cancel", "block_id": "job:1", "value": "1", "type": "button"}],
    }
    payload.update(override)
    return payload


SIGNED_BODIES = {
    "payload that is not JSON": interactive("notjson"),
    "payload that is a list": interactive([]),
    "block actions without actions": interactive(block_actions(actions=None)),
    "block actions with an empty list": interactive(block_actions(actions=[])),
    "a non-integer button value": interactive(
        block_actions(actions=[{"action_id": "job_cancel", "block_id": "job:x", "value": "²", "type": "button"}])
    ),
    "a huge button value": interactive(
        block_actions(actions=[{"action_id": "eval_confirm", "block_id": "e", "value": "9" * 30, "type": "button"}])
    ),
    "a view without type": interactive(
        {"type": "view_submission", "user": {"id": ALICE}, "team": {"id": "T0SANDBOX"}, "view": {}}
    ),
    "private_metadata that is not JSON": interactive(
        {
            "type": "view_submission",
            "user": {"id": ALICE},
            "team": {"id": "T0SANDBOX"},
            "view": {
                "id": "V1",
                "type": "modal",
                "callback_id": "train_submit",
                "private_metadata": "{oops",
                "state": {"values": {}},
            },
        }
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SIGNED_BODIES))
async def test_a_signed_but_malformed_request_gets_no_5xx_and_no_traceback(
    http_bot: BotUnderTest, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    caplog.set_level(logging.WARNING)
    delivery = await http_bot.driver.send_http(SIGNED_BODIES[name], "application/x-www-form-urlencoded")
    assert delivery.status < 500, (delivery.status, delivery.body)
    await http_bot.services.drain(timeout=5)
    assert "Traceback" not in caplog.text and not [r for r in caplog.records if r.exc_info], caplog.text


@pytest.mark.parametrize("stamp", ["now", "1e3", "", "-1", "９９"])
async def test_an_unsigned_request_with_a_strange_timestamp_gets_401(
    http_bot: BotUnderTest, caplog: pytest.LogCaptureFixture, stamp: str
) -> None:
    caplog.set_level(logging.WARNING)
    headers = {"Content-Type": "application/json", "X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": "v0=00"}
    assert http_bot.driver.bot_url is not None
    async with http_bot.driver.session.post(http_bot.driver.bot_url, data=b"{}", headers=headers) as response:
        assert response.status == 401
    assert not [r for r in caplog.records if r.exc_info]


@pytest.mark.parametrize(
    "command",
    [
        "status ²",
        "cancel ²",
        "chat ²",
        "validate ²",
        "audit ²",
        "train #1 epochs=²",
        f"status {'9' * 30}",
        "cancel #99999999999999999999",
    ],
)
async def test_strange_numbers_in_commands_get_a_plain_answer(
    http_bot: BotUnderTest, caplog: pytest.LogCaptureFixture, command: str
) -> None:
    caplog.set_level(logging.WARNING)
    await http_bot.driver.slash_command(ALICE, GENERAL, command)
    [answer] = await http_bot.workspace.wait_for(lambda: http_bot.workspace.ephemerals_for(ALICE))
    assert "failed on our side" not in answer.text, answer.text
    assert not [r for r in caplog.records if r.exc_info], caplog.text


async def test_an_evaluate_form_with_foreign_metadata_is_ignored_quietly(
    http_bot: BotUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    view = {
        "id": "V2",
        "type": "modal",
        "callback_id": "eval_submit",
        "private_metadata": "[]",
        "state": {"values": {}},
    }
    body = interactive({"type": "view_submission", "user": {"id": ALICE}, "team": {"id": "T0SANDBOX"}, "view": view})
    delivery = await http_bot.driver.send_http(body, "application/x-www-form-urlencoded")
    assert delivery.status == 200
    await http_bot.services.drain(timeout=5)
    assert "ignored a malformed request" in caplog.text and not [r for r in caplog.records if r.exc_info]


@pytest.mark.slow
async def test_another_teams_model_cannot_be_chatted_with(http_bot: BotUnderTest, clock: Any, tmp_path: Any) -> None:
    job, _ = await trained(http_bot, clock, marv_file(tmp_path))
    assert job.fine_tuned_model
    chosen = await references.resolve_model(
        http_bot.services, team_id=http_bot.workspace.team_id, reference=job.fine_tuned_model
    )
    assert chosen.model == job.fine_tuned_model
    with pytest.raises(errors.NotFound, match="I know no model"):
        await references.resolve_model(http_bot.services, team_id="T0OTHERTEAM", reference=job.fine_tuned_model)
    await http_bot.driver.slash_command(ALICE, GENERAL, "chat <!channel>")
    [answer] = await http_bot.workspace.wait_for(lambda: http_bot.workspace.ephemerals_for(ALICE))
    assert "I know no model" in answer.text
    assert not any(m.text.startswith("💬") for m in http_bot.workspace.channel_messages(GENERAL)), "nothing public"


async def share_again(bot: BotUnderTest, file_id: str) -> Message:
    """The same Slack file shared again (Share → a channel): a new message, the same file id."""
    message = bot.workspace.user_message(user=ALICE, channel=GENERAL, text="", files=[file_id])
    await bot.driver.send_event(bot.driver._message_event(message))
    return message


def replies(bot: BotUnderTest, message: Message) -> list[str]:
    return [m.text for m in bot.workspace.replies_of(GENERAL, message.ts) if m.user == bot.workspace.bot_user_id]


async def test_a_failed_intake_lets_the_file_go_so_sharing_it_again_works(http_bot: BotUnderTest) -> None:
    incoming = http_bot.services.settings.finetune_data_dir / "incoming"
    incoming.parent.mkdir(parents=True, exist_ok=True)
    incoming.write_text("not a folder: every download fails as on a full or read-only disk")
    slack_file, first = await http_bot.driver.upload(ALICE, GENERAL, "marv.jsonl", hostile_lines())
    assert await http_bot.workspace.wait_for(lambda: any("share the file again" in t for t in replies(http_bot, first)))
    incoming.unlink()
    again = await share_again(http_bot, slack_file.id)
    assert await http_bot.workspace.wait_for(
        lambda: any(m.blocks for m in http_bot.workspace.replies_of(GENERAL, again.ts)), timeout=15
    ), "the second share got its report"


async def test_files_info_refusing_is_said_in_the_thread(http_bot: BotUnderTest) -> None:
    http_bot.workspace.fail("files.info", status=200, error="file_not_found", times=1)
    _, shared = await http_bot.driver.upload(ALICE, GENERAL, "marv.jsonl", hostile_lines())
    assert await http_bot.workspace.wait_for(
        lambda: any("Slack would not tell me" in t for t in replies(http_bot, shared))
    )


def hostile_lines() -> bytes:
    line = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
    return ("\n".join(json.dumps(line) for _ in range(12)) + "\n").encode()


async def test_a_wrong_provider_key_is_said_to_the_person(
    http_bot: BotUnderTest, clock: Any, shared_data: Any, caplog: pytest.LogCaptureFixture
) -> None:
    report = await shared_report(http_bot, shared_data / "gsm8k_chat_validation.jsonl")
    http_bot.openai.state.api_key = "sk-rotated-" + "0" * 20  # the bot's key is now wrong
    clock.advance(timedelta(minutes=11))  # past the bot's cache of the base models
    await http_bot.driver.click(ALICE, report, "dataset_train")
    [answer] = await http_bot.workspace.wait_for(lambda: http_bot.workspace.ephemerals_for(ALICE))
    assert "refused" in answer.text and "provider key" in answer.text, answer.text
    await http_bot.driver.slash_command(BOB, GENERAL, "chat gpt-4o-mini")
    [again] = await http_bot.workspace.wait_for(lambda: http_bot.workspace.ephemerals_for(BOB))
    assert "refused" in again.text and "failed on our side" not in again.text
    assert "unhandled error" not in caplog.text
