"""The user's side of Slack: what Slack sends to a bot when people type, upload and click.

Over HTTP it sends correctly signed requests (slash commands as forms, events as JSON envelopes,
interactivity as ``payload=`` forms) with Slack's retry headers on demand; in Socket Mode it hands
the same payloads to the emulator's websocket and waits for the ack. Every action is also written
into the emulated workspace first, so the bot finds the message, file or thread it is told about.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp

from sandbox.slack import Ephemeral, Message, SlackEmulator, SlackFile, SlackWorkspace, View
from sandbox.slack import mrkdwn as slack_mrkdwn


@dataclass
class Delivery:
    """What the bot answered to one delivery: HTTP status and body (or the Socket Mode ack)."""

    status: int
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


def sign(secret: str, timestamp: str, body: str) -> str:
    """Slack's v0 request signature over the exact bytes sent."""
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


class SlackDriver:
    """Plays the people in the workspace against one bot, over HTTP (``bot_url``) or Socket Mode."""

    def __init__(
        self,
        emulator: SlackEmulator,
        session: aiohttp.ClientSession,
        *,
        bot_url: str | None = None,
        socket_mode: bool = False,
        workspace: SlackWorkspace | None = None,
    ) -> None:
        if (bot_url is None) == (not socket_mode):
            raise ValueError("give either bot_url (HTTP mode) or socket_mode=True")
        self.emulator = emulator
        # People of ``workspace`` (the emulator's first by default); the app signs for all of them alike.
        self.ws = workspace or emulator.workspace
        self.session = session
        self.bot_url = bot_url
        self.socket_mode = socket_mode
        self.signing_secret = emulator.workspace.signing_secret

    # --- raw delivery ---

    async def send_http(
        self,
        body: str,
        content_type: str,
        *,
        retry_num: int = 0,
        timestamp: int | None = None,
        secret: str | None = None,
    ) -> Delivery:
        assert self.bot_url is not None
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": sign(secret or self.signing_secret, stamp, body),
        }
        if retry_num:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = "http_timeout"
        async with self.session.post(self.bot_url, data=body.encode(), headers=headers) as response:
            return Delivery(response.status, await response.text())

    async def _deliver(self, kind: str, payload: dict[str, Any], *, retry_num: int = 0) -> Delivery:
        if self.socket_mode:
            ack = await self.emulator.send_envelope(kind, payload, retry_attempt=retry_num)
            return Delivery(200, json.dumps(ack.get("payload") or {}))
        if kind == "slash_commands":
            return await self.send_http(urlencode(payload), "application/x-www-form-urlencoded")
        if kind == "interactive":
            body = "payload=" + quote(json.dumps(payload))
            return await self.send_http(body, "application/x-www-form-urlencoded")
        return await self.send_http(json.dumps(payload), "application/json", retry_num=retry_num)

    def _envelope(self, event: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
        return {
            "token": "sandbox-verification-token",
            "team_id": self.ws.team_id,
            "api_app_id": self.ws.app_id,
            "type": "event_callback",
            "event_id": event_id or "Ev" + secrets.token_hex(6).upper(),
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.ws.team_id,
                    "user_id": self.ws.bot_user_id,
                    "is_bot": True,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": "4-" + secrets.token_hex(8),
            "event": event,
        }

    def message_envelope(self, message: Message) -> dict[str, Any]:
        """The Events API envelope Slack would send for ``message``, to deliver (and redeliver) at will."""
        return self._envelope(self._message_event(message))

    async def deliver_envelope(self, envelope: dict[str, Any], *, retry_num: int = 0) -> Delivery:
        """One delivery of an event envelope; a retry carries Slack's retry headers (or retry_attempt)."""
        return await self._deliver("events_api", envelope, retry_num=retry_num)

    async def send_event(
        self, event: dict[str, Any], *, event_id: str | None = None, retries: int = 0
    ) -> list[Delivery]:
        """Deliver one event; with ``retries`` Slack's retries of the same event_id follow."""
        envelope = self._envelope(event, event_id)
        deliveries = [await self._deliver("events_api", envelope)]
        for attempt in range(1, retries + 1):
            deliveries.append(await self._deliver("events_api", envelope, retry_num=attempt))
        return deliveries

    # --- what people do ---

    async def slash_command(self, user: str, channel: str, text: str, command: str = "/finetune") -> Delivery:
        payload = {
            "token": "sandbox-verification-token",
            "team_id": self.ws.team_id,
            "team_domain": "sandbox",
            "channel_id": channel,
            "channel_name": self.ws.channels[channel].name,
            "user_id": user,
            "user_name": self.ws.users[user].name,
            "command": command,
            "text": slack_mrkdwn.as_typed(text),
            "api_app_id": self.ws.app_id,
            "is_enterprise_install": "false",
            "response_url": self.ws.new_response_url(user=user, channel=channel, thread_ts=None, message_ts=None),
            "trigger_id": self.ws.new_trigger(user),
        }
        await self.ws.notify("command", {"user": user, "channel": channel, "text": f"{command} {text}".strip()})
        return await self._deliver("slash_commands", payload)

    def _team_of(self, user: str) -> str:
        person = self.ws.users.get(user)
        return (person.team_id if person else None) or self.ws.team_id

    def _message_event(self, message: Message) -> dict[str, Any]:
        channel = self.ws.channels[message.channel]
        event: dict[str, Any] = {
            "type": "message",
            "user": message.user,
            "text": message.text,
            "ts": message.ts,
            "channel": message.channel,
            "channel_type": "im" if channel.is_im else "channel",
            "event_ts": message.ts,
            "team": self._team_of(message.user),
            "client_msg_id": secrets.token_hex(16),
        }
        if message.user in self.ws.users:
            event["user_team"] = event["source_team"] = self._team_of(message.user)
        if message.thread_ts:
            event["thread_ts"] = message.thread_ts
            parent = self.ws.find(message.channel, message.thread_ts)
            if parent is not None:
                event["parent_user_id"] = parent.user
        if message.files:
            event["subtype"] = "file_share"
            event["upload"] = True
            event["display_as_bot"] = False
            event["files"] = [self.ws.files[file_id].to_api(self.ws) for file_id in message.files]
        return event

    async def say(
        self, user: str, channel: str, text: str, *, thread_ts: str | None = None, retries: int = 0
    ) -> Message:
        """A person posts a message (a thread reply with ``thread_ts``); @mentions also send app_mention."""
        message = self.ws.user_message(
            user=user, channel=channel, text=slack_mrkdwn.as_typed(text), thread_ts=thread_ts
        )
        await self.ws.notify("message", {"message": message})
        event = self._message_event(message)
        await self.send_event(event, retries=retries)
        if f"<@{self.ws.bot_user_id}>" in text:
            mention = {k: v for k, v in event.items() if k not in ("channel_type",)}
            await self.send_event({**mention, "type": "app_mention"})
        return message

    async def upload(
        self,
        user: str,
        channel: str,
        name: str,
        content: bytes,
        *,
        comment: str = "",
        retries: int = 0,
        thread_ts: str | None = None,
        file_shared_first: bool = False,
        lookups_before_shared: int = 0,
    ) -> tuple[SlackFile, Message]:
        """A person drops a file in a channel (or as a reply in ``thread_ts``): a file_share message and a
        file_shared event, in either order, as Slack sends them; files.info may not show the share at first."""
        slack_file = self.ws.user_file(user=user, name=name, content=content, channel=channel)
        slack_file.lookups_before_shared = lookups_before_shared
        message = self.ws.user_message(
            user=user, channel=channel, text=slack_mrkdwn.as_typed(comment), files=[slack_file.id], thread_ts=thread_ts
        )
        await self.ws.notify("message", {"message": message})
        file_shared = {
            "type": "file_shared",
            "channel_id": channel,
            "file_id": slack_file.id,
            "user_id": user,
            "file": {"id": slack_file.id},
            "event_ts": message.ts,
        }
        if file_shared_first:
            await self.send_event(file_shared)
        await self.send_event(self._message_event(message), retries=retries)
        if not file_shared_first:
            await self.send_event(file_shared)
        return slack_file, message

    def _block_actions(self, user: str, action: dict[str, Any], container: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "block_actions",
            "user": {"id": user, "username": self.ws.users[user].name, "team_id": self.ws.team_id},
            "api_app_id": self.ws.app_id,
            "token": "sandbox-verification-token",
            "trigger_id": self.ws.new_trigger(user),
            "team": {"id": self.ws.team_id, "domain": "sandbox"},
            "is_enterprise_install": False,
            "actions": [{**action, "action_ts": f"{time.time():.6f}"}],
            **container,
        }

    async def click(self, user: str, message: Message, action_id: str, *, value: str | None = None) -> Delivery:
        """A person clicks a button in a message (the button must be there, as in Slack)."""
        button = _find_action(message.blocks, action_id)
        if button is None:
            raise LookupError(f"no element with action_id {action_id!r} in message {message.ts}")
        action = {
            "action_id": action_id,
            "block_id": button["_block_id"],
            "type": button.get("type", "button"),
            "value": value if value is not None else button.get("value", ""),
            "text": button.get("text", {"type": "plain_text", "text": action_id}),
        }
        container = {
            "container": {
                "type": "message",
                "message_ts": message.ts,
                "channel_id": message.channel,
                "is_ephemeral": False,
                **({"thread_ts": message.thread_ts} if message.thread_ts else {}),
            },
            "channel": {"id": message.channel, "name": self.ws.channels[message.channel].name},
            "message": message.to_api(self.ws),
            "response_url": self.ws.new_response_url(
                user=user, channel=message.channel, thread_ts=message.thread_ts, message_ts=message.ts
            ),
        }
        await self.ws.notify("click", {"user": user, "action_id": action_id, "message": message})
        return await self._deliver("interactive", self._block_actions(user, action, container))

    async def react(
        self, user: str, message: Message, name: str, *, added: bool = True, retries: int = 0
    ) -> list[Delivery]:
        """A person adds (or takes back) an emoji reaction on a message: reaction_added / reaction_removed."""
        users = message.reactions.setdefault(name, set())
        if added:
            users.add(user)
        else:
            users.discard(user)
            if not users:
                message.reactions.pop(name, None)
        await self.ws.notify("reaction", {"message": message, "name": name, "added": added, "user": user})
        event = {
            "type": "reaction_added" if added else "reaction_removed",
            "user": user,
            "reaction": name,
            "item_user": message.user,
            "item": {"type": "message", "channel": message.channel, "ts": message.ts},
            "event_ts": f"{time.time():.6f}",
        }
        return await self.send_event(event, retries=retries)

    async def click_ephemeral(self, ephemeral: Ephemeral, action_id: str) -> Delivery:
        """The one person who sees an ephemeral message clicks a button in it."""
        button = _find_action(ephemeral.blocks, action_id)
        if button is None:
            raise LookupError(f"no element with action_id {action_id!r} in ephemeral {ephemeral.ts}")
        action = {
            "action_id": action_id,
            "block_id": button["_block_id"],
            "type": "button",
            "value": button.get("value", ""),
            "text": button.get("text", {"type": "plain_text", "text": action_id}),
        }
        container = {
            "container": {
                "type": "message",
                "message_ts": ephemeral.ts,
                "channel_id": ephemeral.channel,
                "is_ephemeral": True,
                **({"thread_ts": ephemeral.thread_ts} if ephemeral.thread_ts else {}),
            },
            "channel": {"id": ephemeral.channel, "name": self.ws.channels[ephemeral.channel].name},
            "response_url": self.ws.new_response_url(
                user=ephemeral.user, channel=ephemeral.channel, thread_ts=ephemeral.thread_ts, message_ts=ephemeral.ts
            ),
        }
        await self.ws.notify("click", {"user": ephemeral.user, "action_id": action_id, "ephemeral": ephemeral})
        return await self._deliver("interactive", self._block_actions(ephemeral.user, action, container))

    async def click_in_view(self, user: str, view: View, action_id: str, *, value: str | None = None) -> Delivery:
        """A person clicks a button in a modal or on the Home tab."""
        button = _find_action(view.view.get("blocks", []), action_id)
        if button is None:
            raise LookupError(f"no element with action_id {action_id!r} in view {view.id}")
        action = {
            "action_id": action_id,
            "block_id": button["_block_id"],
            "type": button.get("type", "button"),
            "value": value if value is not None else button.get("value", ""),
        }
        container = {
            "container": {"type": "view", "view_id": view.id},
            "view": view.to_api(self.ws),
        }
        await self.ws.notify("click", {"user": user, "action_id": action_id, "view": view})
        return await self._deliver("interactive", self._block_actions(user, action, container))

    async def choose_in_view(self, user: str, view: View, block_id: str, value: str) -> Delivery:
        """A person picks an option in a modal's select that dispatches actions (like the base model)."""
        block = next(b for b in view.view["blocks"] if b.get("block_id") == block_id)
        element = block["element"]
        option = next(o for o in _options(element) if o["value"] == value)
        element["initial_option"] = option
        action = {
            "action_id": element["action_id"],
            "block_id": block_id,
            "type": "static_select",
            "selected_option": option,
        }
        state = {
            b["block_id"]: {b["element"]["action_id"]: _element_state(b["element"])}
            for b in view.view["blocks"]
            if b.get("type") == "input"
        }
        container = {
            "container": {"type": "view", "view_id": view.id},
            "view": {**view.to_api(self.ws), "state": {"values": state}},
        }
        return await self._deliver("interactive", self._block_actions(user, action, container))

    async def submit_view(self, user: str, view: View, values: dict[str, dict[str, Any]]) -> Delivery:
        """A person submits a modal; ``values`` is Slack's ``state.values`` (block_id → action_id → value)."""
        payload = {
            "type": "view_submission",
            "team": {"id": self.ws.team_id, "domain": "sandbox"},
            "user": {"id": user, "username": self.ws.users[user].name, "team_id": self.ws.team_id},
            "api_app_id": self.ws.app_id,
            "token": "sandbox-verification-token",
            "trigger_id": self.ws.new_trigger(user),
            "view": {**view.to_api(self.ws), "state": {"values": values}},
            "response_urls": [],
            "is_enterprise_install": False,
        }
        await self.ws.notify("submit", {"user": user, "view": view})
        return await self._deliver("interactive", payload)

    async def submit_form(self, user: str, view: View, changes: dict[str, str] | None = None) -> Delivery:
        """Submit a modal as a person would: every field keeps what it shows, except the ``changes``.

        ``changes`` maps block ids to a value (an option's value for selects, text for inputs).
        """
        changes = changes or {}
        values: dict[str, dict[str, Any]] = {}
        for block in view.view.get("blocks", []):
            if block.get("type") != "input":
                continue
            element = block["element"]
            block_id, action_id = block["block_id"], element["action_id"]
            if element["type"] == "static_select":
                wanted = changes.get(block_id)
                option = element.get("initial_option")
                if wanted is not None:
                    option = next((o for o in _options(element) if o["value"] == wanted), None)
                    if option is None:
                        raise LookupError(f"{block_id} has no option {wanted!r}")
                values[block_id] = {action_id: {"type": "static_select", "selected_option": option}}
            else:
                text = changes.get(block_id, element.get("initial_value"))
                values[block_id] = {action_id: {"type": element["type"], "value": text or None}}
        return await self.submit_view(user, view, values)

    async def open_home(self, user: str) -> list[Delivery]:
        channel = "D" + user[1:]
        return await self.send_event(
            {
                "type": "app_home_opened",
                "user": user,
                "channel": channel,
                "tab": "home",
                "event_ts": f"{time.time():.6f}",
            }
        )


def _element_state(element: dict[str, Any]) -> dict[str, Any]:
    if element["type"] == "static_select":
        return {"type": "static_select", "selected_option": element.get("initial_option")}
    return {"type": element["type"], "value": element.get("initial_value")}


def _find_action(blocks: list[dict[str, Any]], action_id: str) -> dict[str, Any] | None:
    for block in blocks:
        candidates = list(block.get("elements", []))
        if "accessory" in block:
            candidates.append(block["accessory"])
        if "element" in block:
            candidates.append(block["element"])
        for element in candidates:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                return {**element, "_block_id": block.get("block_id", "")}
    return None


def _options(element: dict[str, Any]) -> list[dict[str, Any]]:
    """A select's options, flat or in option groups (Block Kit takes one or the other)."""
    if "option_groups" in element:
        return [o for group in element["option_groups"] for o in group["options"]]
    return list(element.get("options", []))
