"""A Slack emulator: the Web API methods the bot uses, file hosting, response URLs and Socket Mode.

It speaks Slack's wire protocol so ``slack_sdk`` and Bolt run against it unchanged: arguments are
read wherever the SDK puts them (query string, form or JSON body), answers are ``{"ok": …}`` with
Slack's error codes, limits are enforced as Slack enforces them, and every call is recorded. The
workspace state (channels, messages, threads, reactions, files, views) is what a person would see,
and tests read it through the same object.

This module imports nothing from the bot: it is the outside world.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import BasicAuth, WSMsgType, web

from sandbox.holds import Hold

TEXT_LIMIT = 4000
BLOCKS_PER_MESSAGE = 50
BLOCKS_PER_VIEW = 100
SECTION_TEXT_LIMIT = 3000
TRIGGER_SECONDS = 3.0
MANIFEST = Path(__file__).resolve().parents[1] / "manifest.yml"
# The bot-token scopes each Web API method needs (docs.slack.dev, each method's page: any one suffices).
# A method missing here needs none (views.*, auth.test). History and conversations.open depend on the
# conversation's kind, which _needed_scopes decides.
METHOD_SCOPES: dict[str, tuple[str, ...]] = {
    "chat.postMessage": ("chat:write",),
    "chat.update": ("chat:write",),
    "chat.delete": ("chat:write",),
    "chat.postEphemeral": ("chat:write",),
    "chat.startStream": ("chat:write",),
    "chat.appendStream": ("chat:write",),
    "chat.stopStream": ("chat:write",),
    "conversations.open": ("im:write", "mpim:write", "channels:manage", "groups:write"),
    "conversations.replies": ("channels:history", "groups:history", "im:history", "mpim:history"),
    "conversations.history": ("channels:history", "groups:history", "im:history", "mpim:history"),
    "files.info": ("files:read",),
    "files.getUploadURLExternal": ("files:write",),
    "files.completeUploadExternal": ("files:write",),
    "reactions.add": ("reactions:write",),
    "reactions.remove": ("reactions:write",),
    "usergroups.users.list": ("usergroups:read",),
    "users.info": ("users:read",),
    "assistant.threads.setStatus": ("assistant:write", "chat:write"),
}


# Web API rate tiers per method, per workspace and app (docs.slack.dev/apis/web-api/rate-limits): calls
# allowed in any 60 s. Tier 2 20+/min, Tier 3 50+/min, Tier 4 100+/min. chat.postMessage is "special"
# (about one a second per channel, with bursts) and is left unlimited here.
RATE_TIERS: dict[str, int] = {
    "chat.update": 50,
    "chat.delete": 50,
    "chat.postEphemeral": 100,
    "chat.appendStream": 100,
    "conversations.replies": 50,
    "conversations.history": 50,
    "conversations.open": 50,
    "files.info": 100,
    "files.getUploadURLExternal": 20,
    "files.completeUploadExternal": 20,
    "reactions.add": 50,
    "reactions.remove": 50,
    "views.open": 100,
    "views.update": 50,
    "views.publish": 100,
    "usergroups.users.list": 50,
}
# Since 2025, commercially distributed (not Marketplace) apps may read conversations.replies and
# .history once a minute, 15 messages a page.
DISTRIBUTED_APP_HISTORY_PER_MINUTE = 1
DISTRIBUTED_APP_HISTORY_LIMIT = 15


def manifest_scopes(manifest: Path = MANIFEST) -> tuple[str, ...]:
    """The bot scopes that manifest.yml asks for: what an installed app's token holds.

    An install without the source tree (the container image) has no manifest: its emulator grants the
    first scope of every method instead, so the demo still runs there."""
    if not manifest.exists():
        return tuple(sorted({needed[0] for needed in METHOD_SCOPES.values()}))
    text = manifest.read_text()
    listed = text.split("oauth_config:", 1)[1].split("    bot:\n", 1)[1]
    scopes = []
    for line in listed.splitlines():
        item = line.strip()
        if not item.startswith("- "):
            break
        scopes.append(item.removeprefix("- ").split("#")[0].strip())
    return tuple(scopes)


class SlackError(Exception):
    """Answered as ``{"ok": false, "error": code}`` with HTTP 200, as Slack does."""

    def __init__(self, code: str, **extra: Any) -> None:
        super().__init__(code)
        self.code = code
        self.extra = extra


@dataclass
class User:
    id: str
    name: str
    real_name: str
    is_bot: bool = False
    tz: str = "Europe/Paris"
    # A Slack Connect member's own workspace; None for the workspace's own people.
    team_id: str | None = None


@dataclass
class Channel:
    id: str
    name: str
    members: set[str]
    is_im: bool = False


@dataclass
class Message:
    channel: str
    ts: str
    user: str
    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    thread_ts: str | None = None
    bot_id: str | None = None
    subtype: str | None = None
    metadata: dict[str, Any] | None = None
    files: list[str] = field(default_factory=list)
    reactions: dict[str, set[str]] = field(default_factory=dict)
    edits: int = 0
    streaming: bool = False

    def to_api(self, workspace: SlackWorkspace, *, include_metadata: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {"type": "message", "ts": self.ts, "user": self.user, "text": self.text}
        if self.blocks:
            data["blocks"] = self.blocks
        if self.thread_ts:
            data["thread_ts"] = self.thread_ts
        if self.bot_id:
            data["bot_id"] = self.bot_id
        if self.subtype:
            data["subtype"] = self.subtype
        if self.metadata and include_metadata:
            data["metadata"] = self.metadata
        if self.files:
            data["files"] = [workspace.files[file_id].to_api(workspace) for file_id in self.files]
        if self.reactions:
            data["reactions"] = [
                {"name": name, "users": sorted(users), "count": len(users)} for name, users in self.reactions.items()
            ]
        if self.edits:
            data["edited"] = {"user": self.user, "ts": self.ts}
        replies = workspace.replies_of(self.channel, self.ts) if not self.thread_ts else []
        if replies:
            data["thread_ts"] = self.ts
            data["reply_count"] = len(replies)
        return data


@dataclass
class SlackFile:
    id: str
    name: str
    user: str
    content: bytes
    created: int
    title: str = ""
    channels: list[str] = field(default_factory=list)
    mimetype: str = "text/plain"
    complete: bool = True
    # Sharing completes asynchronously at Slack: this many files.info calls answer before it shows.
    lookups_before_shared: int = 0

    def to_api(self, workspace: SlackWorkspace, *, shared: bool = True) -> dict[str, Any]:
        download = f"{workspace.base_url}/files-pri/{workspace.team_id}-{self.id}/download/{self.name}"
        return {
            "id": self.id,
            "created": self.created,
            "timestamp": self.created,
            "name": self.name,
            "title": self.title or self.name,
            "mimetype": self.mimetype,
            "filetype": "text",
            "pretty_type": "Plain Text",
            "user": self.user,
            "user_team": workspace.team_id,
            "size": len(self.content),
            "mode": "hosted",
            "is_external": False,
            "is_public": True,
            "url_private": f"{workspace.base_url}/files-pri/{workspace.team_id}-{self.id}/{self.name}",
            "url_private_download": download,
            "permalink": f"{workspace.base_url}/files/{self.user}/{self.id}/{self.name}",
            "channels": list(self.channels) if shared else [],
            "shares": {
                "public": {
                    channel: [
                        {
                            "ts": message.ts,
                            "channel_name": workspace.channels[channel].name,
                            "team_id": workspace.team_id,
                            **({"thread_ts": message.thread_ts} if message.thread_ts else {}),
                        }
                        for message in workspace.messages
                        if message.channel == channel and self.id in message.files
                    ]
                    for channel in self.channels
                }
            }
            if shared
            else {},
        }


@dataclass
class Ephemeral:
    channel: str
    user: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None
    ts: str


@dataclass
class View:
    id: str
    user: str
    view: dict[str, Any]
    hash: str
    kind: str  # "modal" or "home"

    def to_api(self, workspace: SlackWorkspace) -> dict[str, Any]:
        return {
            **self.view,
            "id": self.id,
            "team_id": workspace.team_id,
            "hash": self.hash,
            "app_id": workspace.app_id,
            "bot_id": workspace.bot_id,
            "root_view_id": self.id,
            "previous_view_id": None,
            "state": {"values": {}},
            "private_metadata": self.view.get("private_metadata", ""),
            "callback_id": self.view.get("callback_id", ""),
            "external_id": self.view.get("external_id", ""),
        }


@dataclass
class ResponseHook:
    """Where a response_url points: who may see an ephemeral answer, and in which channel/thread."""

    user: str
    channel: str
    thread_ts: str | None
    message_ts: str | None
    uses: int = 0


@dataclass
class Fault:
    status: int
    times: int
    error: str = "ratelimited"
    retry_after: int = 0
    # Fail after doing the work: Slack posted the message but the answer was lost on the way back.
    after_processing: bool = False


class SlackWorkspace:
    """The state of one Slack workspace, plus the call log and the faults to inject."""

    def __init__(
        self, *, team_id: str = "T0SANDBOX", team_name: str = "Sandbox Team", scopes: tuple[str, ...] | None = None
    ) -> None:
        self.team_id = team_id
        # What the installed app's bot token may do; a method needing another scope answers missing_scope.
        self.scopes: set[str] = set(manifest_scopes() if scopes is None else scopes)
        self.team_name = team_name
        self.app_id = "A0FINETUNE"
        self.bot_user_id = "U0FINEBOT"
        self.bot_id = "B0FINEBOT"
        self.bot_token = "xoxb-sandbox-" + secrets.token_hex(8)
        self.app_token = "xapp-1-sandbox-" + secrets.token_hex(8)
        self.signing_secret = secrets.token_hex(16)
        self.base_url = ""  # set when the server starts
        self.streaming_supported = True
        # As when the app lacks files:read: downloads get Slack's sign-in page instead of the file.
        self.refuse_downloads = False
        self.users: dict[str, User] = {self.bot_user_id: User(self.bot_user_id, "finetune-bot", "finetune-bot", True)}
        self.channels: dict[str, Channel] = {}
        self.messages: list[Message] = []
        self.ephemerals: list[Ephemeral] = []
        self.files: dict[str, SlackFile] = {}
        self.views: dict[str, View] = {}
        self.home_views: dict[str, str] = {}
        self.usergroups: dict[str, list[str]] = {}
        self.statuses: list[dict[str, Any]] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.faults: dict[str, Fault] = {}
        self.holds: dict[str, Hold] = {}
        self.triggers: dict[str, str] = {}
        self.trigger_issued: dict[str, float] = {}
        # A trigger_id opens a view only this long after the click or command that made it (Slack: 3 s).
        self.trigger_seconds = TRIGGER_SECONDS
        self.monotonic: Callable[[], float] = time.monotonic  # tests may move it instead of waiting
        # Calls allowed per method in any 60 s (RATE_TIERS); past that Slack answers 429 with Retry-After.
        # Off unless a test or the demo turns it on: the load and fault tests send a day's traffic in
        # seconds, which no tier would allow.
        self.rate_tiers: dict[str, int] = {}
        self.distributed_app = False  # the history limits of a commercially distributed app
        self._recent_calls: dict[str, list[float]] = {}
        self.rate_limited: list[str] = []  # each method that got a 429, for the tests
        self.call_times: list[tuple[str, float]] = []  # (method, monotonic seconds) of every call taken
        self.hooks: dict[str, ResponseHook] = {}
        # Each thread_ts the app sent that was a reply's ts (flattened, as Slack does): should stay empty.
        self.replies_used_as_threads: list[str] = []
        self._counter = itertools.count(1)
        self._changed = asyncio.Condition()
        self._listeners: list[Callable[[str, dict[str, Any]], None]] = []

    # --- set-up -------------------------------------------------------------------------------

    def add_user(self, user_id: str, name: str, real_name: str = "", *, team_id: str | None = None) -> User:
        """A person; ``team_id`` makes them a Slack Connect member from that other workspace."""
        user = User(user_id, name, real_name or name.title(), team_id=team_id)
        self.users[user_id] = user
        return user

    def add_channel(self, channel_id: str, name: str, *, members: list[str], bot_member: bool = True) -> Channel:
        channel = Channel(channel_id, name, set(members) | ({self.bot_user_id} if bot_member else set()))
        self.channels[channel_id] = channel
        return channel

    def add_im(self, user_id: str) -> Channel:
        channel = Channel("D" + user_id[1:], user_id, {user_id, self.bot_user_id}, is_im=True)
        self.channels[channel.id] = channel
        return channel

    def fail(
        self,
        method: str,
        *,
        status: int = 429,
        times: int = 1,
        error: str = "ratelimited",
        after_processing: bool = False,
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail (429 with Retry-After, 5xx, or ok:false)."""
        self.faults[method] = Fault(status=status, times=times, error=error, after_processing=after_processing)

    def hold(self, method: str, *, after: int = 0) -> Hold:
        """Answer ``after`` calls of ``method`` as usual, then do the next one's work but keep its answer.

        ``files.download`` (a file's bytes from the file host) is held halfway through the body."""
        self.holds[method] = Hold(skip=after)
        return self.holds[method]

    def on_change(self, listener: Callable[[str, dict[str, Any]], None]) -> None:
        """Call ``listener(kind, detail)`` on every visible change (the demo prints a transcript from it)."""
        self._listeners.append(listener)

    # --- reading, as a person would -----------------------------------------------------------

    def enforce_rate_tiers(self, tiers: dict[str, int] | None = None) -> None:
        """Answer 429 (with Retry-After) past Slack's tiers, per method, in this workspace."""
        self.rate_tiers = dict(RATE_TIERS if tiers is None else tiers)

    def take_rate(self, method: str) -> float | None:
        """Count a call against its tier; the seconds to wait (Retry-After) when it is over, else None."""
        allowed = self.rate_tiers.get(method)
        if self.distributed_app and method in ("conversations.replies", "conversations.history"):
            allowed = DISTRIBUTED_APP_HISTORY_PER_MINUTE
        if allowed is None:
            return None
        now = self.monotonic()
        recent = [at for at in self._recent_calls.get(method, []) if now - at < 60.0]
        if len(recent) >= allowed:
            self._recent_calls[method] = recent
            self.rate_limited.append(method)
            return 60.0 - (now - recent[0])
        recent.append(now)
        self._recent_calls[method] = recent
        return None

    def next_ts(self) -> str:
        n = next(self._counter)
        return f"{1763700000 + n}.{n:06d}"

    def next_id(self, prefix: str) -> str:
        """A new object id; the team's own digits keep it unique across workspaces, as Slack's are."""
        return f"{prefix}{self.team_id[-3:]}{next(self._counter):08X}"

    def find(self, channel: str, ts: str) -> Message | None:
        return next((m for m in self.messages if m.channel == channel and m.ts == ts), None)

    def replies_of(self, channel: str, ts: str) -> list[Message]:
        return [m for m in self.messages if m.channel == channel and m.thread_ts == ts and m.ts != ts]

    def thread(self, channel: str, ts: str) -> list[Message]:
        """The parent message and its replies, oldest first."""
        parent = self.find(channel, ts)
        return ([parent] if parent else []) + self.replies_of(channel, ts)

    def channel_messages(self, channel: str) -> list[Message]:
        """Top-level messages of a channel, oldest first."""
        return [m for m in self.messages if m.channel == channel and not (m.thread_ts and m.thread_ts != m.ts)]

    def bot_messages(self, channel: str | None = None) -> list[Message]:
        return [m for m in self.messages if m.user == self.bot_user_id and (channel is None or m.channel == channel)]

    def ephemerals_for(self, user: str) -> list[Ephemeral]:
        return [e for e in self.ephemerals if e.user == user]

    def calls_of(self, method: str) -> list[dict[str, Any]]:
        return [args for name, args in self.calls if name == method]

    async def wait_for(self, predicate: Callable[[], Any], *, timeout: float = 10.0) -> Any:
        """Wait until ``predicate()`` is truthy after some change; returns its value."""

        async def _wait() -> Any:
            async with self._changed:
                while not (value := predicate()):
                    await self._changed.wait()
                return value

        return await asyncio.wait_for(_wait(), timeout)

    async def notify(self, kind: str, detail: dict[str, Any]) -> None:
        for listener in self._listeners:
            listener(kind, detail)
        async with self._changed:
            self._changed.notify_all()

    # --- writes on the user's side (the driver calls these) -----------------------------------

    def user_message(
        self,
        *,
        user: str,
        channel: str,
        text: str,
        thread_ts: str | None = None,
        files: list[str] | None = None,
    ) -> Message:
        message = Message(
            channel=channel,
            ts=self.next_ts(),
            user=user,
            text=text,
            thread_ts=thread_ts,
            subtype="file_share" if files else None,
            files=files or [],
        )
        self.messages.append(message)
        return message

    def user_file(self, *, user: str, name: str, content: bytes, channel: str) -> SlackFile:
        slack_file = SlackFile(
            id=self.next_id("F"),
            name=name,
            user=user,
            content=content,
            created=1763700000,
            channels=[channel],
        )
        self.files[slack_file.id] = slack_file
        return slack_file

    def new_trigger(self, user: str) -> str:
        trigger = f"{next(self._counter)}.{secrets.token_hex(6)}"
        self.triggers[trigger] = user
        self.trigger_issued[trigger] = self.monotonic()
        return trigger

    def new_response_url(self, *, user: str, channel: str, thread_ts: str | None, message_ts: str | None) -> str:
        hook_id = secrets.token_hex(8)
        self.hooks[hook_id] = ResponseHook(user=user, channel=channel, thread_ts=thread_ts, message_ts=message_ts)
        return f"{self.base_url}/hooks/{self.team_id}/{hook_id}"


# --- the Web API -------------------------------------------------------------------------------


def _check_text_and_blocks(args: dict[str, Any], *, limit_blocks: int = BLOCKS_PER_MESSAGE) -> list[dict[str, Any]]:
    text = args.get("text") or ""
    if len(text) > TEXT_LIMIT:
        raise SlackError("msg_too_long")
    blocks = args.get("blocks") or []
    if isinstance(blocks, str):
        try:
            blocks = json.loads(blocks)
        except ValueError:
            raise SlackError("invalid_blocks_format") from None
    if not isinstance(blocks, list):
        raise SlackError("invalid_blocks_format")
    if len(blocks) > limit_blocks:
        raise SlackError("invalid_blocks", errors=[f"no more than {limit_blocks} items allowed [json-pointer:/blocks]"])
    for index, block in enumerate(blocks):
        if not isinstance(block, dict) or "type" not in block:
            raise SlackError("invalid_blocks", errors=[f"missing required field: type [json-pointer:/blocks/{index}]"])
        section_text = (block.get("text") or {}).get("text", "") if block["type"] == "section" else ""
        if len(section_text) > SECTION_TEXT_LIMIT:
            raise SlackError(
                "invalid_blocks",
                errors=[f"must be less than 3001 characters [json-pointer:/blocks/{index}/text/text]"],
            )
    if not text and not blocks and not args.get("markdown_text"):
        raise SlackError("no_text")
    return blocks


def _metadata(args: dict[str, Any]) -> dict[str, Any] | None:
    metadata = args.get("metadata")
    if isinstance(metadata, str):
        metadata = json.loads(metadata)
    return metadata or None


class SlackApi:
    """One handler per Web API method; each receives the merged arguments."""

    def __init__(self, workspace: SlackWorkspace) -> None:
        self.ws = workspace

    def _channel(self, channel_id: str | None, *, need_member: bool = True) -> Channel:
        if channel_id in self.ws.users and channel_id != self.ws.bot_user_id:
            # Posting to a user id posts in the bot's direct conversation with them, as Slack does.
            channel_id = self._im(channel_id).id
        channel = self.ws.channels.get(channel_id or "")
        if channel is None:
            raise SlackError("channel_not_found")
        if need_member and self.ws.bot_user_id not in channel.members:
            raise SlackError("not_in_channel")
        return channel

    def needed_scopes(self, method: str, args: dict[str, Any]) -> tuple[str, ...]:
        """The scopes of which the token needs one for this call, as Slack decides them."""
        needed = METHOD_SCOPES.get(method, ())
        if method in ("conversations.history", "conversations.replies"):
            channel = self.ws.channels.get(str(args.get("channel") or ""))
            if channel is not None:
                return ("im:history",) if channel.is_im else ("channels:history", "groups:history")
        if method == "conversations.open":
            return ("im:write",) if "," not in str(args.get("users") or "") else ("mpim:write",)
        return needed

    def _thread_root(self, channel: str, thread_ts: str | None) -> str | None:
        """Slack keeps threads one level deep: a thread_ts that is itself a reply is flattened into its
        parent's thread (and recorded, since the docs say never to send one)."""
        if not thread_ts:
            return None
        parent = self.ws.find(channel, thread_ts)
        if parent is None:
            raise SlackError("thread_not_found")
        if parent.thread_ts and parent.thread_ts != parent.ts:
            self.ws.replies_used_as_threads.append(thread_ts)
            return parent.thread_ts
        return thread_ts

    def _message(self, channel: str, ts: str | None) -> Message:
        message = self.ws.find(channel, ts or "")
        if message is None:
            raise SlackError("message_not_found")
        return message

    async def auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": f"{self.ws.base_url}/",
            "team": self.ws.team_name,
            "user": "finetune-bot",
            "team_id": self.ws.team_id,
            "user_id": self.ws.bot_user_id,
            "bot_id": self.ws.bot_id,
            "is_enterprise_install": False,
        }

    async def chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args.get("channel"))
        blocks = _check_text_and_blocks(args)
        thread_ts = self._thread_root(channel.id, args.get("thread_ts") or None)
        message = Message(
            channel=channel.id,
            ts=self.ws.next_ts(),
            user=self.ws.bot_user_id,
            bot_id=self.ws.bot_id,
            text=args.get("text") or args.get("markdown_text") or "",
            blocks=blocks,
            thread_ts=thread_ts,
            metadata=_metadata(args),
        )
        self.ws.messages.append(message)
        await self.ws.notify("message", {"message": message})
        return {"channel": channel.id, "ts": message.ts, "message": message.to_api(self.ws)}

    async def chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args.get("channel"))
        message = self._message(channel.id, args.get("ts"))
        if message.user != self.ws.bot_user_id:
            raise SlackError("cant_update_message")
        blocks = _check_text_and_blocks(args)
        message.text = args.get("text") or message.text
        if "blocks" in args:
            message.blocks = blocks
        if "metadata" in args:
            message.metadata = _metadata(args)
        message.edits += 1
        await self.ws.notify("update", {"message": message})
        return {
            "channel": channel.id,
            "ts": message.ts,
            "text": message.text,
            "message": message.to_api(self.ws),
        }

    async def chat_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args.get("channel"))
        message = self._message(channel.id, args.get("ts"))
        if message.user != self.ws.bot_user_id:
            raise SlackError("cant_delete_message")
        self.ws.messages.remove(message)
        await self.ws.notify("delete", {"message": message})
        return {"channel": channel.id, "ts": message.ts}

    async def chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args.get("channel"))
        user = args.get("user") or ""
        if user not in self.ws.users:
            raise SlackError("user_not_found")
        if user not in channel.members:
            raise SlackError("user_not_in_channel")
        blocks = _check_text_and_blocks(args)
        ephemeral = Ephemeral(
            channel.id, user, args.get("text") or "", blocks, args.get("thread_ts"), self.ws.next_ts()
        )
        self.ws.ephemerals.append(ephemeral)
        await self.ws.notify("ephemeral", {"ephemeral": ephemeral})
        return {"message_ts": ephemeral.ts}

    async def conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args.get("channel"))
        if self.ws.find(channel.id, args.get("ts") or "") is None:
            raise SlackError("thread_not_found")
        thread = self.ws.thread(channel.id, args["ts"])
        include_metadata = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        return self._page(
            [m.to_api(self.ws, include_metadata=include_metadata) for m in thread], self._history_limit(args)
        )

    def _history_limit(self, args: dict[str, Any]) -> dict[str, Any]:
        if self.ws.distributed_app:
            return {**args, "limit": min(int(args.get("limit") or 100), DISTRIBUTED_APP_HISTORY_LIMIT)}
        return args

    async def conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args.get("channel"))
        include_metadata = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        newest_first = list(reversed(self.ws.channel_messages(channel.id)))
        shown = [m.to_api(self.ws, include_metadata=include_metadata) for m in newest_first]
        return self._page(shown, self._history_limit(args))

    @staticmethod
    def _page(items: list[dict[str, Any]], args: dict[str, Any]) -> dict[str, Any]:
        limit = max(1, min(int(args.get("limit") or 100), 1000))
        start = int(args.get("cursor") or 0)
        page = items[start : start + limit]
        more = start + limit < len(items)
        return {
            "messages": page,
            "has_more": more,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }

    async def files_info(self, args: dict[str, Any]) -> dict[str, Any]:
        slack_file = self.ws.files.get(args.get("file") or "")
        if slack_file is None or not slack_file.complete:
            raise SlackError("file_not_found")
        shared = slack_file.lookups_before_shared <= 0
        slack_file.lookups_before_shared -= 1
        return {
            "file": slack_file.to_api(self.ws, shared=shared),
            "comments": [],
            "response_metadata": {"next_cursor": ""},
        }

    async def files_getUploadURLExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("filename") or not str(args.get("length", "")).isdigit():
            raise SlackError("invalid_arguments")
        slack_file = SlackFile(
            id=self.ws.next_id("F"),
            name=args["filename"],
            user=self.ws.bot_user_id,
            content=b"",
            created=1763700000,
            complete=False,
        )
        self.ws.files[slack_file.id] = slack_file
        return {
            "upload_url": f"{self.ws.base_url}/upload/v1/{self.ws.team_id}/{slack_file.id}",
            "file_id": slack_file.id,
        }

    async def files_completeUploadExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        entries = args.get("files")
        if isinstance(entries, str):
            entries = json.loads(entries)
        if not entries:
            raise SlackError("invalid_arguments")
        completed = []
        for entry in entries:
            slack_file = self.ws.files.get(entry.get("id", ""))
            if slack_file is None:
                raise SlackError("file_not_found")
            slack_file.title = entry.get("title") or slack_file.name
            slack_file.complete = True
            completed.append(slack_file)
        channel_id = args.get("channel_id")
        if channel_id:
            channel = self._channel(channel_id)
            message = Message(
                channel=channel.id,
                ts=self.ws.next_ts(),
                user=self.ws.bot_user_id,
                bot_id=self.ws.bot_id,
                text=args.get("initial_comment") or "",
                thread_ts=self._thread_root(channel.id, args.get("thread_ts") or None),
                subtype="file_share",
                files=[f.id for f in completed],
            )
            for slack_file in completed:
                slack_file.channels.append(channel.id)
            self.ws.messages.append(message)
            await self.ws.notify("message", {"message": message})
        return {"files": [f.to_api(self.ws) for f in completed]}

    async def views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        trigger = args.get("trigger_id") or ""
        user = self.ws.triggers.pop(trigger, None)
        issued = self.ws.trigger_issued.pop(trigger, None)
        if user is None or issued is None or self.ws.monotonic() - issued > self.ws.trigger_seconds:
            raise SlackError("expired_trigger_id")
        view = self._new_view(user, args.get("view"), kind="modal")
        await self.ws.notify("view", {"view": view})
        return {"view": view.to_api(self.ws)}

    async def views_push(self, args: dict[str, Any]) -> dict[str, Any]:
        return await self.views_open(args)

    async def views_update(self, args: dict[str, Any]) -> dict[str, Any]:
        view_id = args.get("view_id")
        if not view_id and args.get("external_id"):
            view_id = next(
                (v.id for v in self.ws.views.values() if v.view.get("external_id") == args["external_id"]),
                None,
            )
        current = self.ws.views.get(view_id or "")
        if current is None:
            raise SlackError("not_found")
        if args.get("hash") and args["hash"] != current.hash:
            raise SlackError("hash_conflict")
        current.view = self._parse_view(args.get("view"))
        current.hash = secrets.token_hex(8)
        await self.ws.notify("view", {"view": current})
        return {"view": current.to_api(self.ws)}

    async def views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        user = args.get("user_id") or ""
        if user not in self.ws.users:
            raise SlackError("user_not_found")
        existing = self.ws.views.get(self.ws.home_views.get(user, ""))
        if existing is not None and args.get("hash") and args["hash"] != existing.hash:
            raise SlackError("hash_conflict")
        view = self._new_view(user, args.get("view"), kind="home")
        self.ws.home_views[user] = view.id
        await self.ws.notify("home", {"view": view})
        return {"view": view.to_api(self.ws)}

    def _parse_view(self, raw: Any) -> dict[str, Any]:
        view = json.loads(raw) if isinstance(raw, str) else raw
        if not isinstance(view, dict) or view.get("type") not in ("modal", "home"):
            raise SlackError("invalid_arguments")
        blocks = view.get("blocks") or []
        if len(blocks) > BLOCKS_PER_VIEW:
            raise SlackError("invalid_arguments", errors=[f"no more than {BLOCKS_PER_VIEW} items allowed"])
        _check_text_and_blocks({"blocks": blocks, "text": "x"}, limit_blocks=BLOCKS_PER_VIEW)
        if len(view.get("private_metadata", "")) > 3000:
            raise SlackError("invalid_arguments", errors=["private_metadata must be less than 3001 characters"])
        return view

    def _new_view(self, user: str, raw: Any, *, kind: str) -> View:
        view = View(
            id=self.ws.next_id("V"),
            user=user,
            view=self._parse_view(raw),
            hash=secrets.token_hex(8),
            kind=kind,
        )
        self.ws.views[view.id] = view
        return view

    async def reactions_add(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args.get("channel"))
        message = self._message(channel.id, args.get("timestamp"))
        users = message.reactions.setdefault(args.get("name") or "", set())
        if self.ws.bot_user_id in users:
            raise SlackError("already_reacted")
        users.add(self.ws.bot_user_id)
        await self.ws.notify("reaction", {"message": message, "name": args.get("name"), "added": True})
        return {}

    async def reactions_remove(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args.get("channel"))
        message = self._message(channel.id, args.get("timestamp"))
        users = message.reactions.get(args.get("name") or "", set())
        if self.ws.bot_user_id not in users:
            raise SlackError("no_reaction")
        users.discard(self.ws.bot_user_id)
        if not users:
            message.reactions.pop(args.get("name") or "", None)
        await self.ws.notify("reaction", {"message": message, "name": args.get("name"), "added": False})
        return {}

    async def users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user = self.ws.users.get(args.get("user") or "")
        if user is None:
            raise SlackError("user_not_found")
        return {
            "user": {
                "id": user.id,
                "team_id": self.ws.team_id,
                "name": user.name,
                "real_name": user.real_name,
                "tz": user.tz,
                "locale": "en-US",
                "is_bot": user.is_bot,
                "profile": {"display_name": user.name, "real_name": user.real_name},
            }
        }

    def _im(self, user: str) -> Channel:
        existing = next((c for c in self.ws.channels.values() if c.is_im and user in c.members), None)
        return existing or self.ws.add_im(user)

    async def conversations_open(self, args: dict[str, Any]) -> dict[str, Any]:
        user = str(args.get("users") or "").split(",")[0]
        if user not in self.ws.users:
            raise SlackError("user_not_found")
        return {"channel": {"id": self._im(user).id, "is_im": True}}

    async def usergroups_users_list(self, args: dict[str, Any]) -> dict[str, Any]:
        members = self.ws.usergroups.get(args.get("usergroup") or "")
        if members is None:
            raise SlackError("no_such_subteam")
        return {"users": list(members)}

    async def assistant_threads_setStatus(self, args: dict[str, Any]) -> dict[str, Any]:
        self._channel(args.get("channel_id"))
        self.ws.statuses.append(
            {
                "channel": args.get("channel_id"),
                "thread_ts": args.get("thread_ts"),
                "status": args.get("status", ""),
            }
        )
        return {}

    async def chat_startStream(self, args: dict[str, Any]) -> dict[str, Any]:
        if not self.ws.streaming_supported:
            raise SlackError("not_allowed_token_type")
        channel = self._channel(args.get("channel"))
        if not channel.is_im and not (args.get("recipient_user_id") and args.get("recipient_team_id")):
            raise SlackError("invalid_arguments", errors=["recipient_user_id and recipient_team_id are required"])
        recipient = self.ws.users.get(str(args.get("recipient_user_id") or ""))
        if (
            recipient is not None
            and args.get("recipient_team_id")
            and args["recipient_team_id"] != (recipient.team_id or self.ws.team_id)
        ):
            raise SlackError("invalid_arguments", errors=["recipient_team_id is not the recipient's team"])
        thread_ts = args.get("thread_ts")
        if not thread_ts or self.ws.find(channel.id, thread_ts) is None:
            raise SlackError("thread_not_found")
        text = _stream_text(args)
        message = Message(
            channel=channel.id,
            ts=self.ws.next_ts(),
            user=self.ws.bot_user_id,
            bot_id=self.ws.bot_id,
            text=text,
            thread_ts=thread_ts,
            streaming=True,
        )
        self.ws.messages.append(message)
        await self.ws.notify("message", {"message": message})
        return {"channel": channel.id, "ts": message.ts}

    async def chat_appendStream(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args.get("channel"))
        message = self._message(channel.id, args.get("ts"))
        if not message.streaming:
            raise SlackError("message_not_in_streaming_state")
        message.text += _stream_text(args)
        message.edits += 1
        await self.ws.notify("update", {"message": message})
        return {"channel": channel.id, "ts": message.ts}

    async def chat_stopStream(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args.get("channel"))
        message = self._message(channel.id, args.get("ts"))
        if not message.streaming:
            raise SlackError("message_not_in_streaming_state")
        message.text += _stream_text(args)
        if args.get("blocks"):
            message.blocks = _check_text_and_blocks({"text": "x", "blocks": args["blocks"]})
        if "metadata" in args:
            message.metadata = _metadata(args)
        message.streaming = False
        message.edits += 1
        await self.ws.notify("update", {"message": message})
        return {"channel": channel.id, "ts": message.ts, "message": message.to_api(self.ws)}


def _stream_text(args: dict[str, Any]) -> str:
    text = args.get("markdown_text") or ""
    chunks = args.get("chunks") or []
    if isinstance(chunks, str):
        chunks = json.loads(chunks)
    text += "".join(c.get("text", "") for c in chunks if c.get("type") == "markdown_text")
    if len(text) > 12000:
        raise SlackError("msg_too_long")
    return text


# --- the HTTP server --------------------------------------------------------------------------

APP_TOKEN_METHODS = {"apps.connections.open"}


class SlackEmulator:
    """The aiohttp server around workspaces: Web API, files, response URLs, Socket Mode, OAuth.

    The first workspace is the one a single-workspace bot is configured for (and the one Socket
    Mode serves); more can be added for a multi-workspace bot, which gets their tokens by OAuth.
    """

    def __init__(self, workspace: SlackWorkspace | None = None) -> None:
        self.workspace = workspace or SlackWorkspace()
        self.workspaces = [self.workspace]
        self.apis = {self.workspace.team_id: SlackApi(self.workspace)}
        self.api = self.apis[self.workspace.team_id]
        # The app's credentials (Basic Information → App Credentials), for oauth.v2.access.
        self.client_id = "1234567890.0987654321"
        self.client_secret = secrets.token_hex(16)
        self._install_codes: dict[str, tuple[SlackWorkspace, str]] = {}
        self.runner: web.AppRunner | None = None
        self.port = 0
        self.sockets: list[web.WebSocketResponse] = []
        self._acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._connected = asyncio.Event()
        # Slack spreads an app's envelopes over its open connections (one per replica).
        self._turns = itertools.count()
        self.envelopes_per_socket: dict[int, int] = {}

    @property
    def api_url(self) -> str:
        return f"{self.workspace.base_url}/api/"

    def add_workspace(self, workspace: SlackWorkspace) -> SlackWorkspace:
        """Another workspace the app can be installed in (its bot token is only known through OAuth)."""
        workspace.base_url = self.workspace.base_url
        self.workspaces.append(workspace)
        self.apis[workspace.team_id] = SlackApi(workspace)
        return workspace

    def approve_install(self, workspace: SlackWorkspace, *, user: str) -> str:
        """Someone clicks Allow on Slack's install page: the code Slack sends back to the redirect URL."""
        code = f"{workspace.team_id}.{secrets.token_hex(12)}"
        self._install_codes[code] = (workspace, user)
        return code

    def revoke(self, workspace: SlackWorkspace) -> None:
        """The app is uninstalled: its bot token stops working (a reinstall issues a new one)."""
        workspace.bot_token = "xoxb-sandbox-" + secrets.token_hex(8)

    def _workspace_of(self, token: str | None, method: str) -> SlackWorkspace | None:
        for workspace in self.workspaces:
            expected = workspace.app_token if method in APP_TOKEN_METHODS else workspace.bot_token
            if token == expected:
                return workspace
        return None

    def _oauth_v2_access(self, request: web.Request, args: dict[str, Any]) -> web.Response:
        """Exchange an install code for the workspace's bot token; the app proves itself with its secret."""
        client_id, client_secret = args.get("client_id"), args.get("client_secret")
        if request.headers.get("Authorization", "").startswith("Basic "):
            credentials = BasicAuth.decode(request.headers["Authorization"])
            client_id, client_secret = credentials.login, credentials.password
        if client_id != self.client_id:
            return _slack_error("invalid_client_id")
        if client_secret != self.client_secret:
            return _slack_error("bad_client_secret")
        installed = self._install_codes.pop(str(args.get("code") or ""), None)
        if installed is None:
            return _slack_error("invalid_code")
        workspace, user = installed
        return web.json_response(
            {
                "ok": True,
                "app_id": workspace.app_id,
                "authed_user": {"id": user},
                "scope": ",".join(sorted(workspace.scopes)),
                "token_type": "bot",
                "access_token": workspace.bot_token,
                "bot_user_id": workspace.bot_user_id,
                "team": {"id": workspace.team_id, "name": workspace.team_name},
                "enterprise": None,
                "is_enterprise_install": False,
            }
        )

    def web_app(self) -> web.Application:
        app = web.Application(client_max_size=1024**3)
        app.add_routes(
            [
                web.route("*", "/api/{method}", self._api),
                web.get("/files-pri/{key}/download/{name}", self._download),
                web.get("/files-pri/{key}/{name}", self._download),
                web.post("/upload/v1/{team}/{file_id}", self._upload),
                web.post("/hooks/{team}/{hook_id}", self._hook),
                web.get("/link/", self._socket),
                web.get("/link", self._socket),
            ]
        )
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> SlackEmulator:
        self.runner = web.AppRunner(self.web_app(), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port)
        await site.start()
        self.port = self.runner.addresses[0][1]
        for workspace in self.workspaces:
            workspace.base_url = f"http://{host}:{self.port}"
        return self

    async def stop(self) -> None:
        for hold in self.workspace.holds.values():
            hold.released.set()
        for socket in list(self.sockets):
            await socket.close()
        if self.runner is not None:
            await self.runner.cleanup()

    # --- Web API ---

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args: dict[str, Any] = dict(request.query)
        body = await request.read()
        if body:
            content_type = request.content_type
            if content_type == "application/json":
                args.update(json.loads(body))
            elif content_type == "application/x-www-form-urlencoded":
                args.update(parse_qsl(body.decode(), keep_blank_values=True))
            elif content_type.startswith("multipart/"):
                return _slack_error("invalid_form_data")
        if method == "oauth.v2.access":
            return self._oauth_v2_access(request, args)
        token = _bearer(request) or args.pop("token", None)
        found = self._workspace_of(token, method)
        ws = found or self.workspace
        fault = ws.faults.get(method)
        if fault is not None and fault.times > 0 and not fault.after_processing:
            fault.times -= 1
            ws.calls.append((method, {**args, "_fault": fault.status}))
            return _fault_response(fault)
        if not token:
            return _slack_error("not_authed")
        if found is None:
            return _slack_error("invalid_auth")
        ws.calls.append((method, args))
        if method == "apps.connections.open":
            host = request.host
            return web.json_response({"ok": True, "url": f"ws://{host}/link/?ticket={secrets.token_hex(8)}"})
        handler = getattr(self.apis[ws.team_id], method.replace(".", "_"), None)
        if handler is None:
            return _slack_error("unknown_method")
        needed = self.apis[ws.team_id].needed_scopes(method, args)
        if needed and not ws.scopes.intersection(needed):
            return _slack_error("missing_scope", needed=",".join(needed), provided=",".join(sorted(ws.scopes)))
        wait = ws.take_rate(method)
        ws.call_times.append((method, ws.monotonic()))
        if wait is not None:
            return web.json_response(
                {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": str(max(1, math.ceil(wait)))}
            )
        try:
            result = await handler(args)
        except SlackError as error:
            return _slack_error(error.code, **error.extra)
        if fault is not None and fault.times > 0 and fault.after_processing:
            fault.times -= 1
            return _fault_response(fault)
        hold = ws.holds.get(method)
        if hold is not None:
            await hold.stop_here()
        headers = {"x-oauth-scopes": ",".join(sorted(ws.scopes))} if method == "auth.test" else {}
        return web.json_response({"ok": True, **result}, headers=headers)

    async def _download(self, request: web.Request) -> web.StreamResponse:
        ws = self._workspace_of(_bearer(request), "files.download") or self.workspace
        file_id = request.match_info["key"].removeprefix(f"{ws.team_id}-")
        slack_file = ws.files.get(file_id)
        if _bearer(request) != ws.bot_token or ws.refuse_downloads:
            # Slack answers an unauthenticated download with its sign-in page, status 200.
            return web.Response(
                text="<!DOCTYPE html><html><body>Sign in to Slack</body></html>", content_type="text/html"
            )
        if slack_file is None or not slack_file.complete:
            return web.Response(status=404, text="File not found")
        hold = ws.holds.get("files.download")
        if hold is None:
            return web.Response(body=slack_file.content, content_type="application/octet-stream")
        # Held mid-download: the first half is sent, the rest waits (the bot dies while receiving it).
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = len(slack_file.content)
        await response.prepare(request)
        half = len(slack_file.content) // 2
        await response.write(slack_file.content[:half])
        await hold.stop_here()
        await response.write(slack_file.content[half:])
        await response.write_eof()
        return response

    async def _upload(self, request: web.Request) -> web.Response:
        ws = next((w for w in self.workspaces if w.team_id == request.match_info["team"]), self.workspace)
        slack_file = ws.files.get(request.match_info["file_id"])
        if slack_file is None:
            return web.Response(status=404, text="not found")
        slack_file.content = await request.read()
        return web.Response(text=f"OK - {len(slack_file.content)}")

    async def _hook(self, request: web.Request) -> web.Response:
        hook_id = request.match_info["hook_id"]
        ws = next((w for w in self.workspaces if hook_id in w.hooks), self.workspace)
        hook = ws.hooks.get(hook_id)
        if hook is None:
            return web.Response(status=404, text="invalid_token")
        hook.uses += 1
        if hook.uses > 5:
            return web.Response(status=404, text="used_url")
        payload = await request.json()
        try:
            blocks = _check_text_and_blocks(payload)
        except SlackError as error:
            return web.Response(status=400, text=error.code)
        if payload.get("delete_original") and hook.message_ts:
            original = ws.find(hook.channel, hook.message_ts)
            if original is not None:
                ws.messages.remove(original)
                await ws.notify("delete", {"message": original})
            return web.Response(text="ok")
        if payload.get("replace_original") and hook.message_ts:
            shown = next((e for e in ws.ephemerals if e.ts == hook.message_ts and e.user == hook.user), None)
            if shown is not None:  # an ephemeral message's own buttons replace it, for its one viewer
                shown.text, shown.blocks = payload.get("text") or "", blocks
                await ws.notify("ephemeral", {"ephemeral": shown})
                return web.Response(text="ok")
            original = ws.find(hook.channel, hook.message_ts)
            if original is not None:
                original.text, original.blocks = payload.get("text") or "", blocks
                original.edits += 1
                await ws.notify("update", {"message": original})
                return web.Response(text="ok")
        thread_ts = payload.get("thread_ts") or hook.thread_ts
        if payload.get("response_type") == "in_channel":
            message = Message(
                channel=hook.channel,
                ts=ws.next_ts(),
                user=ws.bot_user_id,
                bot_id=ws.bot_id,
                text=payload.get("text") or "",
                blocks=blocks,
                thread_ts=thread_ts,
            )
            ws.messages.append(message)
            await ws.notify("message", {"message": message})
        else:
            ephemeral = Ephemeral(hook.channel, hook.user, payload.get("text") or "", blocks, thread_ts, ws.next_ts())
            ws.ephemerals.append(ephemeral)
            await ws.notify("ephemeral", {"ephemeral": ephemeral})
        return web.Response(text="ok")

    # --- Socket Mode ---

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(heartbeat=None)
        await socket.prepare(request)
        self.sockets.append(socket)
        await socket.send_json(
            {
                "type": "hello",
                "num_connections": len(self.sockets),
                "debug_info": {"host": "sandbox", "approximate_connection_time": 18060},
                "connection_info": {"app_id": self.workspace.app_id},
            }
        )
        self._connected.set()
        try:
            async for frame in socket:
                if frame.type != WSMsgType.TEXT:
                    continue
                ack = json.loads(frame.data)
                waiter = self._acks.pop(ack.get("envelope_id", ""), None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(ack)
        finally:
            self.sockets.remove(socket)
            if not self.sockets:
                self._connected.clear()
        return socket

    async def wait_connected(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def send_envelope(
        self, kind: str, payload: dict[str, Any], *, retry_attempt: int = 0, timeout: float = 10.0
    ) -> dict[str, Any]:
        """Deliver a payload over Socket Mode and return the client's ack (Slack needs it within 3 s)."""
        await self.wait_connected(timeout)
        envelope_id = secrets.token_hex(12)
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "type": kind,
            "accepts_response_payload": kind != "events_api",
            "payload": payload,
        }
        if kind == "events_api":
            envelope["retry_attempt"] = retry_attempt
            envelope["retry_reason"] = "timeout" if retry_attempt else ""
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._acks[envelope_id] = waiter
        socket = self.sockets[next(self._turns) % len(self.sockets)]
        self.envelopes_per_socket[id(socket)] = self.envelopes_per_socket.get(id(socket), 0) + 1
        await socket.send_json(envelope)
        try:
            return await asyncio.wait_for(waiter, timeout)
        finally:
            self._acks.pop(envelope_id, None)


def _fault_response(fault: Fault) -> web.Response:
    if fault.status == 429:
        return web.json_response(
            {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": str(fault.retry_after)}
        )
    if fault.status >= 500:
        return web.Response(status=fault.status, text="upstream trouble")
    return _slack_error(fault.error)


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    return header[7:] if header.startswith("Bearer ") else None


def _slack_error(code: str, **extra: Any) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error": code}
    if code == "missing_scope":
        body.update(needed=extra["needed"], provided=extra["provided"])
    if extra.get("errors"):
        body["errors"] = extra["errors"]
        body["response_metadata"] = {"messages": [f"[ERROR] {e}" for e in extra["errors"]]}
    return web.json_response(body)


async def serve_forever(port: int, host: str = "127.0.0.1") -> None:
    """`finetune-bot sandbox slack`: run the emulator alone and print how to point a bot at it."""
    emulator = await SlackEmulator().start(host, port)
    ws = emulator.workspace
    ws.add_user("U0ALICE", "alice", "Alice Martin")
    ws.add_user("U0BOB", "bob", "Bob Chen")
    ws.add_channel("C0GENERAL", "general", members=["U0ALICE", "U0BOB"])
    print(f"Slack emulator on {emulator.api_url}")  # noqa: T201
    print(f"  SLACK_API_URL={emulator.api_url}")  # noqa: T201
    print(f"  SLACK_BOT_TOKEN={ws.bot_token}")  # noqa: T201
    print(f"  SLACK_APP_TOKEN={ws.app_token}")  # noqa: T201
    print(f"  SLACK_SIGNING_SECRET={ws.signing_secret}")  # noqa: T201
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.Event().wait()
    await emulator.stop()
