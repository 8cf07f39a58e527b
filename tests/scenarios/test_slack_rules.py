"""Slack's own rules, enforced by the emulator: escaping, scopes, clicks from views, threads, pacing."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest
from slack_sdk.errors import SlackApiError
from sqlmodel import select

from bot import notifier
from bot.clock import FrozenClock
from sandbox.slack import Message
from sandbox.slack import mrkdwn as slack_mrkdwn
from storage import repositories
from storage.models import Notification
from tests.conftest import ALICE, BOB, GENERAL, BotUnderTest
from tests.scenarios.scenes import marv_file, open_modal, trained

HOSTILE = "<!channel> <https://evil.example/login|Slack SSO> List<String> a < b && b > c"


def markup(message: Message) -> tuple[list[tuple[str, str]], int]:
    return slack_mrkdwn.markup_of([message.text, message.blocks])


def hostile_file() -> bytes:
    good = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
    bad = {"messages": [{"role": "<!channel>", "content": "Hi"}, {"role": "assistant", "content": HOSTILE}]}
    return ("\n".join(json.dumps(line) for line in [good] * 12 + [bad]) + "\n").encode()


async def test_a_hostile_file_pings_nobody(http_bot: BotUnderTest) -> None:
    _, shared = await http_bot.driver.upload(ALICE, GENERAL, "<!here>.jsonl", hostile_file())
    report = await http_bot.workspace.wait_for(
        lambda: next((m for m in http_bot.workspace.replies_of(GENERAL, shared.ts) if m.blocks), None)
    )
    assert markup(report) == ([], 0), report.blocks
    await http_bot.driver.click(BOB, report, "dataset_details")
    [details] = await http_bot.workspace.wait_for(lambda: http_bot.workspace.ephemerals_for(BOB))
    assert slack_mrkdwn.markup_of([details.text, details.blocks]) == ([], 0)
    shown = slack_mrkdwn.render(json.dumps(details.blocks), user_name=str, channel_name=str)
    assert "<!channel>" in shown, "people see the role as it is in the file"


async def test_a_hostile_prompt_and_answer_stay_text_in_the_edit_fallback(http_bot: BotUnderTest) -> None:
    http_bot.workspace.streaming_supported = False
    await http_bot.driver.slash_command(ALICE, GENERAL, f'chat gpt-4o-mini system="{HOSTILE}"')
    root = await http_bot.workspace.wait_for(
        lambda: next((m for m in http_bot.workspace.channel_messages(GENERAL) if m.text.startswith("💬")), None)
    )
    assert markup(root) == ([("user", ALICE)], 0), "only the bot's own mention of who started it"
    await http_bot.driver.say(BOB, GENERAL, HOSTILE, thread_ts=root.ts)

    def answered() -> Message | None:
        return next(
            (
                m
                for m in http_bot.workspace.replies_of(GENERAL, root.ts)
                if m.user == http_bot.workspace.bot_user_id and m.blocks and not m.text.endswith("▌")
            ),
            None,
        )

    answer = await http_bot.workspace.wait_for(answered)
    assert markup(answer) == ([], 0), answer.text
    for call in http_bot.workspace.calls_of("chat.update") + http_bot.workspace.calls_of("chat.postMessage"):
        assert slack_mrkdwn.entities(str(call.get("text", ""))) == [] or "<@" in str(call.get("text"))
    assert "List<String> a < b && b > c" in slack_mrkdwn.render(answer.text, user_name=str, channel_name=str)


async def test_the_help_shows_its_placeholders(http_bot: BotUnderTest) -> None:
    await http_bot.driver.slash_command(ALICE, GENERAL, "help")
    [answer] = await http_bot.workspace.wait_for(lambda: http_bot.workspace.ephemerals_for(ALICE))
    shown = slack_mrkdwn.render(json.dumps(answer.blocks, ensure_ascii=False), user_name=str, channel_name=str)
    assert "/finetune chat <model|job>" in shown and "/finetune validate <dataset>" in shown


async def test_an_unknown_command_is_quoted_not_obeyed(http_bot: BotUnderTest) -> None:
    await http_bot.driver.slash_command(ALICE, GENERAL, "<!channel>")
    [answer] = await http_bot.workspace.wait_for(lambda: http_bot.workspace.ephemerals_for(ALICE))
    assert slack_mrkdwn.markup_of([answer.text, answer.blocks]) == ([], 0)


async def owe(bot: BotUnderTest, *, count: int, channel: str, kind: str) -> None:
    now = bot.services.clock.now()
    async with bot.services.db.session() as session, session.begin():
        await repositories.ensure_team(session, team_id=bot.workspace.team_id)
        for number in range(count):
            note = Notification(
                team_id=bot.workspace.team_id,
                subject=f"test:{kind}:{number}",
                kind=kind,
                channel_id=channel,
                payload={"text": f"{kind} {number}"},
                created_at=now,
            )
            await repositories.enqueue_notification(session, notification=note)


async def statuses(bot: BotUnderTest) -> dict[str, int]:
    async with bot.services.db.session() as session:
        rows = (await session.exec(select(Notification))).all()
    counted: dict[str, int] = {}
    for row in rows:
        counted[row.status] = counted.get(row.status, 0) + 1
    return counted


async def test_direct_messages_need_im_write_and_a_missing_scope_blocks_nothing(
    http_bot: BotUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    http_bot.workspace.scopes.discard("im:write")
    await owe(http_bot, count=101, channel=ALICE, kind="direct")
    await owe(http_bot, count=1, channel=GENERAL, kind="result")
    await notifier.deliver_pending(http_bot.services)
    await notifier.deliver_pending(http_bot.services)
    assert [m.text for m in http_bot.workspace.bot_messages(GENERAL)] == ["result 0"]
    assert await statuses(http_bot) == {"failed": 101, "sent": 1}, "given up once, not retried for ever"
    assert "add it under oauth_config.scopes.bot in manifest.yml" in caplog.text and "im:write" in caplog.text
    http_bot.workspace.scopes.add("im:write")  # as manifest.yml asks
    await owe(http_bot, count=1, channel=BOB, kind="reminder")
    await notifier.deliver_pending(http_bot.services)
    assert [m.text for m in http_bot.workspace.bot_messages("D" + BOB[1:])] == ["reminder 0"]


@pytest.mark.slow
async def test_a_message_that_keeps_failing_waits_and_lets_the_others_pass(
    http_bot: BotUnderTest, clock: FrozenClock
) -> None:
    http_bot.workspace.fail("conversations.open", status=200, times=10_000, error="request_timeout")
    await owe(http_bot, count=120, channel=ALICE, kind="direct")
    await owe(http_bot, count=1, channel=GENERAL, kind="result")
    for _ in range(3):
        await notifier.deliver_pending(http_bot.services)
    assert [m.text for m in http_bot.workspace.bot_messages(GENERAL)] == ["result 0"]
    assert (await statuses(http_bot)) == {"pending": 120, "sent": 1}
    for _ in range(notifier.MAX_ATTEMPTS):
        clock.advance(notifier.RETRY_MOST + timedelta(seconds=1))
        await notifier.deliver_pending(http_bot.services, limit=200)
    assert (await statuses(http_bot)) == {"failed": 120, "sent": 1}, "given up after a bounded number of tries"


@pytest.mark.slow
async def test_clicks_on_the_home_tab_are_answered_where_the_person_can_read_them(
    http_bot: BotUnderTest, clock: FrozenClock, tmp_path: Path
) -> None:
    job, _ = await trained(http_bot, clock, marv_file(tmp_path))
    await http_bot.driver.open_home(BOB)
    home = await http_bot.workspace.wait_for(
        lambda: BOB in http_bot.workspace.home_views and http_bot.workspace.views[http_bot.workspace.home_views[BOB]]
    )
    dm = "D" + BOB[1:]
    delivery = await http_bot.driver.click_in_view(BOB, home, "model_delete", value=str(job.id))
    assert delivery.status == 200
    [refusal] = await http_bot.workspace.wait_for(lambda: http_bot.workspace.bot_messages(dm))
    assert "Only <@U0ALICE>" in refusal.text, "Bob may not delete Alice's model, and is told so"
    await http_bot.driver.click_in_view(BOB, home, "chat_start", value=str(job.id))
    await http_bot.workspace.wait_for(
        lambda: any(m.text.startswith("💬 Chat with") for m in http_bot.workspace.channel_messages(GENERAL))
    )
    await http_bot.driver.open_home(ALICE)
    alice_home = await http_bot.workspace.wait_for(
        lambda: (
            ALICE in http_bot.workspace.home_views and http_bot.workspace.views[http_bot.workspace.home_views[ALICE]]
        )
    )
    await http_bot.driver.click_in_view(ALICE, alice_home, "model_delete", value=str(job.id))
    done = await http_bot.workspace.wait_for(
        lambda: next((m for m in http_bot.workspace.bot_messages("D" + ALICE[1:]) if "deleted" in m.text), None)
    )
    assert "is deleted" in done.text


def report_under(bot: BotUnderTest, ts: str) -> Message | None:
    return next((m for m in bot.workspace.replies_of(GENERAL, ts) if m.blocks and m.user != ALICE), None)


async def test_a_file_shared_as_a_reply_is_answered_in_the_parent_thread(http_bot: BotUnderTest) -> None:
    parent = await http_bot.driver.say(ALICE, GENERAL, "Here is this week's data")
    _, reply = await http_bot.driver.upload(BOB, GENERAL, "week.jsonl", hostile_file(), thread_ts=parent.ts)
    report = await http_bot.workspace.wait_for(lambda: report_under(http_bot, parent.ts))
    assert report.thread_ts == parent.ts
    assert http_bot.workspace.replies_used_as_threads == [], "never a thread under a reply"
    await http_bot.workspace.wait_for(lambda: "x" in reply.reactions)
    await http_bot.driver.slash_command(BOB, GENERAL, "export week.jsonl")
    await http_bot.workspace.wait_for(
        lambda: any(m.files for m in http_bot.workspace.replies_of(GENERAL, parent.ts) if m.user != BOB)
    )
    assert http_bot.workspace.replies_used_as_threads == []


async def test_file_shared_before_its_share_loses_nothing(http_bot: BotUnderTest) -> None:
    _, slow = await http_bot.driver.upload(
        ALICE, GENERAL, "slow.jsonl", hostile_file(), file_shared_first=True, lookups_before_shared=2
    )
    await http_bot.workspace.wait_for(lambda: report_under(http_bot, slow.ts))
    _, never = await http_bot.driver.upload(
        BOB, GENERAL, "never.jsonl", hostile_file() + b"\n", file_shared_first=True, lookups_before_shared=99
    )
    await http_bot.workspace.wait_for(lambda: report_under(http_bot, never.ts))
    await http_bot.services.drain(timeout=10)  # whatever else the bot would post, it has posted
    for message in (slow, never):
        assert len([m for m in http_bot.workspace.replies_of(GENERAL, message.ts) if m.blocks]) == 1


async def chat_root(bot: BotUnderTest) -> Message:
    await bot.driver.slash_command(ALICE, GENERAL, "chat gpt-4o-mini")
    found: Message = await bot.workspace.wait_for(
        lambda: next((m for m in bot.workspace.channel_messages(GENERAL) if m.text.startswith("💬")), None)
    )
    return found


def answers(bot: BotUnderTest, root: Message) -> list[Message]:
    return [
        m
        for m in bot.workspace.replies_of(GENERAL, root.ts)
        if m.user == bot.workspace.bot_user_id
        and not m.streaming
        and not m.text.endswith("▌")
        and not (m.blocks and m.blocks[0]["type"] == "header")  # a dataset's report, not an answer
    ]


async def test_bots_get_no_answer_but_broadcasts_and_file_replies_do(http_bot: BotUnderTest) -> None:
    root = await chat_root(http_bot)
    http_bot.workspace.add_user("U0OTHERBOT", "otherbot")
    other = http_bot.workspace.user_message(user="U0OTHERBOT", channel=GENERAL, text="Hello bot", thread_ts=root.ts)
    await http_bot.driver.send_event({**http_bot.driver._message_event(other), "bot_id": "B0OTHER"})
    mention = {**http_bot.driver._message_event(other), "bot_id": "B0OTHER", "type": "app_mention"}
    await http_bot.driver.send_event({**mention, "text": f"<@{http_bot.workspace.bot_user_id}> hi"})
    broadcast = http_bot.workspace.user_message(user=BOB, channel=GENERAL, text="What about Mars?", thread_ts=root.ts)
    await http_bot.driver.send_event({**http_bot.driver._message_event(broadcast), "subtype": "thread_broadcast"})
    await http_bot.workspace.wait_for(lambda: len(answers(http_bot, root)) == 1)
    await http_bot.driver.upload(ALICE, GENERAL, "notes.jsonl", b"{}\n", comment="And this one?", thread_ts=root.ts)
    await http_bot.workspace.wait_for(lambda: len(answers(http_bot, root)) == 2)
    await http_bot.services.drain(timeout=10)  # whatever else the bot would post, it has posted
    texts = [m.text for m in answers(http_bot, root)]
    assert len(texts) == 2 and "Mars" in texts[0] and "And this one?" in texts[1], texts
    assert not any("Hello bot" in text for text in texts), "another app's bot is never answered"


async def test_streaming_goes_to_a_slack_connect_members_own_team(http_bot: BotUnderTest) -> None:
    http_bot.workspace.add_user("U0PARTNER", "pat", "Pat Partner", team_id="T0PARTNER")
    http_bot.workspace.channels[GENERAL].members.add("U0PARTNER")
    root = await chat_root(http_bot)
    await http_bot.driver.say("U0PARTNER", GENERAL, "Tell me the whole history of the universe", thread_ts=root.ts)
    await http_bot.workspace.wait_for(lambda: answers(http_bot, root))
    [started] = http_bot.workspace.calls_of("chat.startStream")
    assert (started["recipient_user_id"], started["recipient_team_id"]) == ("U0PARTNER", "T0PARTNER")


async def test_the_train_form_opens_within_the_trigger_window_while_its_estimate_is_counted(
    http_bot: BotUnderTest, shared_data: Path
) -> None:
    _, shared = await http_bot.driver.upload(
        ALICE, GENERAL, "gsm8k.jsonl", (shared_data / "gsm8k_chat_validation.jsonl").read_bytes()
    )
    await http_bot.workspace.wait_for(lambda: report_under(http_bot, shared.ts))
    # Counting for another model waits behind this (as behind a 512 MB file): the form must not.
    await http_bot.services.runtime.validation_slots.acquire()
    try:
        modal = await open_modal(
            http_bot, ALICE, http_bot.driver.slash_command(ALICE, GENERAL, "train #1 model=gpt-4.1-mini-2025-04-14")
        )
        assert "counting the tokens" in json.dumps(modal.view)
    finally:
        http_bot.services.runtime.validation_slots.release()
    await http_bot.workspace.wait_for(lambda: "billed tokens" in json.dumps(http_bot.workspace.views[modal.id].view))
    assert "Estimate on gpt-4.1-mini-2025-04-14" in json.dumps(http_bot.workspace.views[modal.id].view)


async def test_a_trigger_id_expires_after_its_window(http_bot: BotUnderTest) -> None:
    now = [100.0]
    http_bot.workspace.monotonic = lambda: now[0]
    trigger = http_bot.workspace.new_trigger(ALICE)
    now[0] += 3.5
    view = {"type": "modal", "title": {"type": "plain_text", "text": "Late"}, "blocks": []}
    with pytest.raises(SlackApiError) as raised:
        await http_bot.services.slack_for("T0SANDBOX").views_open(trigger_id=trigger, view=view)
    assert raised.value.response["error"] == "expired_trigger_id"


def most_in_a_window(times: list[float], window: float) -> int:
    return max((sum(1 for t in times if start <= t < start + window) for start in times), default=0)


LONG_QUESTION = "Tell me the whole history of the universe"
CHATS = 8


async def pace_under_load(
    bot: BotUnderTest, clock: FrozenClock, tmp_path: Path, *, streaming: bool
) -> dict[str, float]:
    """Eight chats answer a long question at once, a word every 4 ms, under Slack's tiers, in real time
    (the bot's and the emulator's seconds are the same: a wait of the bot's also moves the emulator's)."""
    job, _ = await trained(bot, clock, marv_file(tmp_path, long_answer=True))
    bot.services.slack_state.streaming_supported = streaming
    bot.workspace.streaming_supported = streaming
    bot.workspace.monotonic = clock.monotonic
    bot.workspace.enforce_rate_tiers()
    bot.openai.state.stream_delay_seconds = 0.004
    roots: list[Message] = []
    for _ in range(CHATS):
        await bot.driver.slash_command(ALICE, GENERAL, f"chat #{job.id}")
        roots.append(
            await bot.workspace.wait_for(
                lambda: next(
                    (
                        m
                        for m in reversed(bot.workspace.channel_messages(GENERAL))
                        if m.text.startswith("💬") and m not in roots
                    ),
                    None,
                )
            )
        )
    started = len(bot.workspace.call_times)
    await asyncio.gather(*(bot.driver.say(BOB, GENERAL, LONG_QUESTION, thread_ts=root.ts) for root in roots))
    expected = ("It began with a bang. " * 400).strip()

    def complete(root: Message) -> bool:
        parts = answers(bot, root)
        return slack_mrkdwn.render("".join(p.text for p in parts), user_name=str, channel_name=str) == expected

    await bot.workspace.wait_for(lambda: all(complete(root) for root in roots), timeout=60)
    calls = bot.workspace.call_times[started:]
    updates = [at for method, at in calls if method == "chat.update"]
    appends = [at for method, at in calls if method == "chat.appendStream"]
    assert bot.workspace.rate_limited == [], "the bot kept under every tier"
    return {
        "seconds": (calls[-1][1] - calls[0][1]) if calls else 0.0,
        "updates_per_minute": most_in_a_window(updates, 60.0),
        "appends_per_second": most_in_a_window(appends, 1.0),
        "updates": len(updates),
        "appends": len(appends),
    }


@pytest.mark.slow
async def test_eight_answers_at_once_keep_under_the_edit_tier(
    long_answer_bot: BotUnderTest, clock: FrozenClock, tmp_path: Path
) -> None:
    figures = await pace_under_load(long_answer_bot, clock, tmp_path, streaming=False)
    print(f"\nedit fallback, {CHATS} chats at once: {figures}")
    assert 0 < figures["updates_per_minute"] <= 50, figures


@pytest.mark.slow
async def test_eight_streams_at_once_keep_under_the_append_tier(
    long_answer_bot: BotUnderTest, clock: FrozenClock, tmp_path: Path
) -> None:
    figures = await pace_under_load(long_answer_bot, clock, tmp_path, streaming=True)
    print(f"\nstreaming, {CHATS} chats at once: {figures}")
    assert figures["appends"] > 0 and figures["appends_per_second"] <= 100 / 60 * 10, figures


@pytest.mark.slow
async def test_the_final_text_is_delivered_through_429s(http_bot: BotUnderTest) -> None:
    http_bot.workspace.streaming_supported = False
    root = await chat_root(http_bot)
    http_bot.workspace.fail("chat.update", status=429, times=8)
    await http_bot.driver.say(BOB, GENERAL, LONG_QUESTION, thread_ts=root.ts)
    [answer] = await http_bot.workspace.wait_for(lambda: answers(http_bot, root))
    assert LONG_QUESTION in slack_mrkdwn.render(answer.text, user_name=str, channel_name=str)
    assert answer.blocks, "the final edit, with its footer, went out"


async def test_a_chat_reads_its_history_from_the_database_not_from_slack(http_bot: BotUnderTest) -> None:
    http_bot.workspace.distributed_app = True  # conversations.replies: once a minute, 15 messages
    root = await chat_root(http_bot)
    for number, question in enumerate(["First question?", "Second question?", "Third question?"], start=1):
        await http_bot.driver.say(BOB, GENERAL, question, thread_ts=root.ts)
        await http_bot.workspace.wait_for(lambda n=number: len(answers(http_bot, root)) == n)  # type: ignore[misc]
    assert http_bot.workspace.calls_of("conversations.replies") == []
    last = http_bot.openai.state.chat_requests[-1]["messages"]
    asked = [m["content"] for m in last if m["role"] == "user"]
    assert asked == ["First question?", "Second question?", "Third question?"]
    assert [m["role"] for m in last if m["role"] != "system"] == ["user", "assistant", "user", "assistant", "user"]
