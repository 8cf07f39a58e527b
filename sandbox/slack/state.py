"""What one emulated Slack workspace holds, as a person would see it: users, channels, messages and
threads, files, views, the scopes and rate tiers of the installed app, the call log and the faults to inject.

Tests read this state through the same objects. Nothing here imports the bot: it is the outside world."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.holds import Hold

SECTION_TEXT_LIMIT = 3000


TRIGGER_SECONDS = 3.0


MANIFEST = Path(__file__).resolve().parents[2] / "manifest.yml"


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


WAIT_SECONDS = 30.0


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

    async def wait_for(self, predicate: Callable[[], Any], *, timeout: float = WAIT_SECONDS) -> Any:
        """Wait until ``predicate()`` is truthy after some change; returns its value. The timeout is only a
        backstop against a hang: a passing wait returns as soon as the change arrives, so it is generous
        enough for a loaded CI machine (10 s was not, twice on 2026-12-03)."""

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
