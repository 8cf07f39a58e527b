"""Contract tests: slack_sdk's AsyncWebClient, unchanged, against the Slack emulator over real HTTP."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from sandbox.slack import METHOD_SCOPES, SlackEmulator, manifest_scopes
from tests.conftest import ALICE, BOB, GENERAL


@pytest.fixture
def web(slack: SlackEmulator) -> AsyncWebClient:
    return AsyncWebClient(token=slack.workspace.bot_token, base_url=slack.api_url)


async def slack_error(call: object) -> str:
    with pytest.raises(SlackApiError) as raised:
        await call  # type: ignore[misc]
    return str(raised.value.response["error"])


async def test_auth_test_reports_identity_and_scopes(web: AsyncWebClient, slack: SlackEmulator) -> None:
    response = await web.auth_test()
    assert response["user_id"] == slack.workspace.bot_user_id
    assert response["team_id"] == slack.workspace.team_id
    assert "files:read" in response.headers["x-oauth-scopes"]
    wrong = AsyncWebClient(token="xoxb-wrong", base_url=slack.api_url)
    assert await slack_error(wrong.auth_test()) == "invalid_auth"


async def test_messages_threads_edits_and_metadata(web: AsyncWebClient, slack: SlackEmulator) -> None:
    root = await web.chat_postMessage(channel=GENERAL, text="root")
    reply = await web.chat_postMessage(
        channel=GENERAL,
        thread_ts=root["ts"],
        text="reply",
        metadata={"event_type": "finetune_notification", "event_payload": {"outbox_id": 7}},
    )
    await web.chat_update(channel=GENERAL, ts=reply["ts"], text="reply, edited")
    replies = await web.conversations_replies(channel=GENERAL, ts=root["ts"], include_all_metadata=True)
    messages = replies["messages"]
    assert [m["text"] for m in messages] == ["root", "reply, edited"]
    assert messages[0]["reply_count"] == 1
    assert messages[1]["metadata"]["event_payload"] == {"outbox_id": 7}
    assert "edited" in messages[1]
    without = await web.conversations_replies(channel=GENERAL, ts=root["ts"])
    assert "metadata" not in without["messages"][1]
    history = await web.conversations_history(channel=GENERAL)
    assert [m["text"] for m in history["messages"]] == ["root"], "thread replies stay in their thread"
    await web.chat_delete(channel=GENERAL, ts=reply["ts"])
    assert slack.workspace.replies_of(GENERAL, root["ts"]) == []


async def test_paging_follows_next_cursor(web: AsyncWebClient) -> None:
    root = await web.chat_postMessage(channel=GENERAL, text="root")
    for index in range(7):
        await web.chat_postMessage(channel=GENERAL, thread_ts=root["ts"], text=f"r{index}")
    texts = []
    async for page in await web.conversations_replies(channel=GENERAL, ts=root["ts"], limit=3):
        texts += [m["text"] for m in page["messages"]]
    assert texts == ["root"] + [f"r{index}" for index in range(7)]


async def test_slack_limits_and_errors(web: AsyncWebClient, slack: SlackEmulator) -> None:
    assert await slack_error(web.chat_postMessage(channel=GENERAL, text="x" * 4001)) == "msg_too_long"
    too_many = [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}] * 51
    assert await slack_error(web.chat_postMessage(channel=GENERAL, text="t", blocks=too_many)) == "invalid_blocks"
    long_section = [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]
    assert await slack_error(web.chat_postMessage(channel=GENERAL, text="t", blocks=long_section)) == "invalid_blocks"
    assert await slack_error(web.chat_postMessage(channel="C0NOPE", text="t")) == "channel_not_found"
    slack.workspace.add_channel("C0PRIVATE", "private", members=[ALICE], bot_member=False)
    assert await slack_error(web.chat_postMessage(channel="C0PRIVATE", text="t")) == "not_in_channel"


async def test_rate_limits_are_answered_with_retry_after(web: AsyncWebClient, slack: SlackEmulator) -> None:
    slack.workspace.fail("chat.update", status=429, times=1)
    root = await web.chat_postMessage(channel=GENERAL, text="progress 1")
    assert await slack_error(web.chat_update(channel=GENERAL, ts=root["ts"], text="progress 2")) == "ratelimited"
    slack.workspace.fail("chat.update", status=429, times=1)
    web.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=1))
    await web.chat_update(channel=GENERAL, ts=root["ts"], text="progress 3")
    assert slack.workspace.find(GENERAL, root["ts"]).text == "progress 3"  # type: ignore[union-attr]


async def test_ephemeral_messages_reach_only_their_user(web: AsyncWebClient, slack: SlackEmulator) -> None:
    await web.chat_postEphemeral(channel=GENERAL, user=ALICE, text="just for you")
    assert [e.text for e in slack.workspace.ephemerals_for(ALICE)] == ["just for you"]
    assert slack.workspace.ephemerals_for(BOB) == []
    assert slack.workspace.bot_messages() == []


async def test_files_upload_v2_info_and_download(web: AsyncWebClient, slack: SlackEmulator) -> None:
    root = await web.chat_postMessage(channel=GENERAL, text="report")
    uploaded = await web.files_upload_v2(
        channel=GENERAL, thread_ts=root["ts"], content=b"line 1\nline 2\n", filename="details.txt", title="Details"
    )
    file_id = uploaded["file"]["id"]
    info = await web.files_info(file=file_id)
    assert info["file"]["name"] == "details.txt" and info["file"]["size"] == 14
    [shared] = slack.workspace.replies_of(GENERAL, root["ts"])
    assert shared.files == [file_id]
    url = info["file"]["url_private_download"]
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers={"Authorization": f"Bearer {slack.workspace.bot_token}"}) as response:
            assert await response.read() == b"line 1\nline 2\n"
        async with session.get(url) as response:
            assert response.status == 200 and response.content_type == "text/html", "Slack's sign-in page"


async def test_views_open_update_publish(web: AsyncWebClient, slack: SlackEmulator) -> None:
    modal = {
        "type": "modal",
        "callback_id": "train",
        "title": {"type": "plain_text", "text": "Train"},
        "blocks": [{"type": "divider"}],
    }
    assert await slack_error(web.views_open(trigger_id="expired", view=modal)) == "expired_trigger_id"
    opened = await web.views_open(trigger_id=slack.workspace.new_trigger(ALICE), view=modal)
    view_id = opened["view"]["id"]
    assert await slack_error(web.views_update(view_id=view_id, view=modal, hash="stale")) == "hash_conflict"
    updated = await web.views_update(view_id=view_id, view=modal, hash=opened["view"]["hash"])
    assert updated["view"]["id"] == view_id
    home = {"type": "home", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}]}
    await web.views_publish(user_id=ALICE, view=home)
    assert slack.workspace.views[slack.workspace.home_views[ALICE]].view["blocks"][0]["text"]["text"] == "hi"
    too_big = {"type": "home", "blocks": [{"type": "divider"}] * 101}
    with pytest.raises(SlackApiError):
        await web.views_publish(user_id=ALICE, view=too_big)
    long_title = {**modal, "title": {"type": "plain_text", "text": "Train a model on this dataset"}}
    refused = await slack_error(web.views_open(trigger_id=slack.workspace.new_trigger(ALICE), view=long_title))
    assert refused == "invalid_arguments", "a modal title is at most 24 characters"


TOO_LONG_FOR_SLACK: dict[str, dict[str, Any]] = {
    "a button's text over 75": {
        "type": "actions",
        "elements": [{"type": "button", "text": {"type": "plain_text", "text": "x" * 76}, "action_id": "a"}],
    },
    "a button's value over 2,000": {
        "type": "actions",
        "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "x"}, "action_id": "a", "value": "v" * 2001}
        ],
    },
    "a header over 150": {"type": "header", "text": {"type": "plain_text", "text": "x" * 151}},
    "eleven context elements": {"type": "context", "elements": [{"type": "mrkdwn", "text": "x"}] * 11},
    "eleven fields": {"type": "section", "fields": [{"type": "mrkdwn", "text": "x"}] * 11},
    "a field over 2,000": {"type": "section", "fields": [{"type": "mrkdwn", "text": "x" * 2001}]},
}


@pytest.mark.parametrize("case", sorted(TOO_LONG_FOR_SLACK))
async def test_a_block_past_slacks_limits_is_refused(web: AsyncWebClient, case: str) -> None:
    """The limits slack_sdk's own Block Kit models know (and the fields rule they leave out) are the
    emulator's, so a builder that passes one fails its scenario test."""
    posted = web.chat_postMessage(channel=GENERAL, text="x", blocks=[TOO_LONG_FOR_SLACK[case]])
    assert await slack_error(posted) == "invalid_blocks"


async def test_reactions_users_and_status(web: AsyncWebClient, slack: SlackEmulator) -> None:
    message = slack.workspace.user_message(user=ALICE, channel=GENERAL, text="file")
    await web.reactions_add(channel=GENERAL, name="eyes", timestamp=message.ts)
    assert await slack_error(web.reactions_add(channel=GENERAL, name="eyes", timestamp=message.ts)) == "already_reacted"
    assert message.reactions == {"eyes": {slack.workspace.bot_user_id}}
    await web.reactions_remove(channel=GENERAL, name="eyes", timestamp=message.ts)
    assert message.reactions == {}
    slack.workspace.scopes.add("users:read")  # the bot's own manifest does not ask for it
    user = await web.users_info(user=ALICE)
    assert user["user"]["real_name"] == "Alice Martin"
    await web.assistant_threads_setStatus(channel_id=GENERAL, thread_ts=message.ts, status="is thinking…")
    assert slack.workspace.statuses[-1]["status"] == "is thinking…"


async def test_chat_streaming_through_the_sdk_helper(web: AsyncWebClient, slack: SlackEmulator) -> None:
    root = slack.workspace.user_message(user=ALICE, channel=GENERAL, text="question")
    stream = await web.chat_stream(
        channel=GENERAL,
        thread_ts=root.ts,
        recipient_team_id=slack.workspace.team_id,
        recipient_user_id=ALICE,
        buffer_size=10,
    )
    for piece in ["Hello ", "there, ", "this is ", "a streamed ", "answer."]:
        await stream.append(markdown_text=piece)
    await stream.stop()
    [answer] = slack.workspace.replies_of(GENERAL, root.ts)
    assert answer.text == "Hello there, this is a streamed answer."
    assert not answer.streaming
    assert next(name for name, _ in slack.workspace.calls if "Stream" in name) == "chat.startStream"
    slack.workspace.streaming_supported = False
    refused = web.chat_startStream(channel=GENERAL, thread_ts=root.ts, markdown_text="x")
    assert await slack_error(refused) == "not_allowed_token_type"


def web_api_methods_the_bot_calls() -> set[str]:
    """Every Web API method named in bot/ and handlers/ (slack_sdk's chat_postMessage is chat.postMessage)."""
    root = Path(__file__).resolve().parents[2]
    called: set[str] = set()
    pattern = re.compile(
        r"\b(?:slack|client|slack_for\([^()]*\))\.(chat_\w+|conversations_\w+|files_\w+|reactions_\w+|views_\w+|users_\w+|usergroups_\w+)\("
    )
    for source in [*(root / "bot").rglob("*.py"), *(root / "handlers").rglob("*.py")]:
        called |= set(pattern.findall(source.read_text()))
    expanded = {"files_upload_v2": ["files_getUploadURLExternal", "files_completeUploadExternal"]}
    methods = set()
    for name in called:
        for method in expanded.get(name, [name]):
            group, _, rest = method.partition("_")
            methods.add(f"{group}.{rest.replace('_', '.')}")
    return methods


def test_every_method_the_bot_calls_has_its_scope_in_the_manifest() -> None:
    methods = web_api_methods_the_bot_calls()
    assert {"chat.postMessage", "conversations.open", "files.info", "reactions.add", "views.open"} <= methods
    granted = set(manifest_scopes())
    for method in sorted(methods):
        needed = METHOD_SCOPES.get(method)
        if method.startswith("views."):
            assert needed is None, "views.* need no scope"
            continue
        assert needed is not None, f"{method}: add the scope it needs to the emulator's METHOD_SCOPES"
        assert granted & set(needed), f"{method} needs one of {needed}; manifest.yml has none of them"
    assert "users:read" not in granted, "nothing the bot calls needs users:read"


async def test_a_scope_the_app_lacks_is_answered_missing_scope(slack: SlackEmulator) -> None:
    slack.workspace.scopes.discard("im:write")
    web = AsyncWebClient(token=slack.workspace.bot_token, base_url=slack.api_url)
    with pytest.raises(SlackApiError) as raised:
        await web.conversations_open(users=ALICE)
    assert raised.value.response["error"] == "missing_scope"
    assert raised.value.response["needed"] == "im:write"
    assert "chat:write" in raised.value.response["provided"]
    assert "im:write" not in (await web.auth_test()).headers["x-oauth-scopes"]
