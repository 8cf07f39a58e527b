"""The Web API methods the bot uses, as Slack carries them out on a workspace's state: Slack's error
codes, the scopes each method needs, and the limits Slack enforces on text and blocks."""

from __future__ import annotations

import json
import secrets
from typing import Any

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View as SdkView

from sandbox.slack.state import (
    DISTRIBUTED_APP_HISTORY_LIMIT,
    METHOD_SCOPES,
    SECTION_TEXT_LIMIT,
    Channel,
    Ephemeral,
    Message,
    SlackError,
    SlackFile,
    SlackWorkspace,
    View,
)

TEXT_LIMIT = 4000


BLOCKS_PER_MESSAGE = 50


BLOCKS_PER_VIEW = 100


FIELDS_PER_SECTION = 10
FIELD_TEXT_LIMIT = 2000


def check_text_and_blocks(args: dict[str, Any], *, limit_blocks: int = BLOCKS_PER_MESSAGE) -> list[dict[str, Any]]:
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
        check_block(block, pointer=f"/blocks/{index}")
    if not text and not blocks and not args.get("markdown_text"):
        raise SlackError("no_text")
    return blocks


def check_block(block: dict[str, Any], *, pointer: str) -> None:
    """One block as slack_sdk's own Block Kit models validate it (a button's text and value, a header,
    a context's or an actions block's elements, select options...), and the fields rule they leave out."""
    parsed = Block.parse(block)
    try:
        if parsed is not None:
            parsed.to_dict()
    except SlackObjectFormationError as error:
        raise SlackError("invalid_blocks", errors=[f"{error} [json-pointer:{pointer}]"]) from None
    fields = block.get("fields") or []
    if len(fields) > FIELDS_PER_SECTION:
        raise SlackError("invalid_blocks", errors=[f"no more than 10 items allowed [json-pointer:{pointer}/fields]"])
    for number, item in enumerate(fields):
        if len(str((item or {}).get("text", ""))) > FIELD_TEXT_LIMIT:
            raise SlackError(
                "invalid_blocks",
                errors=[f"must be less than 2001 characters [json-pointer:{pointer}/fields/{number}/text]"],
            )


def check_view(view: dict[str, Any]) -> None:
    """A modal's or Home tab's own parts (title, submit and close at most 24 characters), as slack_sdk's
    View validates them."""
    try:
        SdkView(**view).to_dict()
    except (SlackObjectFormationError, TypeError) as error:
        raise SlackError("invalid_arguments", errors=[str(error)]) from None


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
        blocks = check_text_and_blocks(args)
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
        blocks = check_text_and_blocks(args)
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
        blocks = check_text_and_blocks(args)
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
        check_text_and_blocks({"blocks": blocks, "text": "x"}, limit_blocks=BLOCKS_PER_VIEW)
        check_view(view)
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
            message.blocks = check_text_and_blocks({"text": "x", "blocks": args["blocks"]})
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
