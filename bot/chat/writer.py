"""One model's answer in a thread: streamed where Slack allows it, else one message edited in place."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_sdk.errors import SlackApiError

from bot import pacing, slack_blocks
from bot.chat.threads import ANSWER_EVENT, Incoming, record_turn, thread_id_of
from bot.errors import slack_error_code
from bot.mrkdwn import escape, unescape
from bot.services import Services
from storage.models import ChatThread, ChatTurn

logger = logging.getLogger(__name__)

# Each message holds at most this much of an answer: a section block takes 3,000 characters.
PART_CHARS = 2900
# Intermediate edits and appends of one message at most this often (and within the workspace's budget:
# bot/pacing.py); the final text always goes.
EDIT_EVERY_SECONDS = 1.5
APPEND_EVERY_SECONDS = 0.5
STREAM_FLUSH_CHARS = 200
# Waits before each retry of an answer's final call; a 429 the client gave up on gets these.
FINAL_RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
TRANSIENT_SLACK_ERRORS = {
    "ratelimited",
    "HTTP 429",
    "HTTP 500",
    "HTTP 502",
    "HTTP 503",
    "request_timeout",
    "internal_error",
    "fatal_error",
}


class AnswerWriter:
    """Writes one model's answer into the thread: streamed when Slack allows it, else edited in place.

    An answer longer than PART_CHARS continues in a new message, so Slack's limits never cut it.
    """

    def __init__(self, services: Services, thread: ChatThread, incoming: Incoming, *, model: str, label: str) -> None:
        self.services = services
        self.slack = services.slack_for(thread.team_id)
        self.thread = thread
        self.incoming = incoming
        self.model = model
        self.label = label
        self.part = 0
        self.text = ""  # of the current message
        self.sent = 0  # characters of self.text already in Slack
        self.ts: str | None = None
        self.streaming = services.slack_state.streaming_supported
        self.last_edit = 0.0

    def _metadata(self) -> dict[str, Any]:
        payload = {"model": self.model, "part": self.part, "label": bool(self.label)}
        return {"event_type": ANSWER_EVENT, "event_payload": payload}

    async def add(self, piece: str) -> None:
        """Append a piece of the model's answer, escaped: a model's ``<!channel>`` stays text."""
        await self._add(escape(piece))

    async def _add(self, piece: str) -> None:
        if not self.text:
            self.text = self.label
        room = PART_CHARS - len(self.text)
        if len(piece) > room:
            cut = slack_blocks.safe_cut(piece, room)
            head, tail = piece[:cut], piece[cut:]
            self.text += head
            await self._close(footer=None)
            self.part += 1
            self.text, self.sent, self.ts = self.label, 0, None
            await self._add(tail)
            return
        self.text += piece
        await self._flush(final=False)

    async def _flush(self, *, final: bool) -> None:
        if self.streaming:
            try:
                await self._stream(final=final)
                return
            except SlackApiError as error:
                if self.ts is not None:
                    # Mid-stream (a 429 past the client's retries): the text waits for the next append,
                    # or for the final stop, which retries until it is delivered.
                    logger.info("append to %s skipped: %s", self.ts, slack_error_code(error))
                    return
                # The workspace does not stream for apps (or not here): edit a message instead, from now on.
                logger.info("streaming unavailable (%s); editing messages instead", slack_error_code(error))
                self.services.slack_state.streaming_supported = False
                self.streaming = False
        try:
            await self._edit(final=final)
        except SlackApiError as error:
            if self.ts is None:
                raise
            logger.info("edit of %s skipped: %s", self.ts, slack_error_code(error))

    def _paced(self, method: str, *, last: float, every: float) -> bool:
        """Whether an intermediate call may go now: this message's own interval, then the workspace's budget."""
        if self.services.clock.monotonic() - last < every:
            return False
        return self.services.pacer.try_take(self.incoming.team_id, method, leave=pacing.KEPT_FOR_FINAL)

    async def _stream(self, *, final: bool) -> None:
        slack = self.slack
        pending = self.text[self.sent :]
        if self.ts is None:
            if not final and len(pending) < STREAM_FLUSH_CHARS // 4:
                return
            started = await slack.chat_startStream(
                channel=self.thread.channel_id,
                thread_ts=self.thread.thread_ts,
                markdown_text=pending,
                recipient_team_id=self.incoming.user_team_id or self.incoming.team_id,
                recipient_user_id=self.incoming.user_id,
            )
            self.ts, self.sent = str(started["ts"]), len(self.text)
            self.last_edit = self.services.clock.monotonic()
        elif (
            not final
            and len(pending) >= STREAM_FLUSH_CHARS
            and self._paced("chat.appendStream", last=self.last_edit, every=APPEND_EVERY_SECONDS)
        ):
            await slack.chat_appendStream(channel=self.thread.channel_id, ts=self.ts, markdown_text=pending)
            self.sent = len(self.text)
            self.last_edit = self.services.clock.monotonic()

    async def _edit(self, *, final: bool) -> None:
        slack = self.slack
        if self.ts is None:
            posted = await slack.chat_postMessage(
                channel=self.thread.channel_id,
                thread_ts=self.thread.thread_ts,
                text=self.text + " ▌",
                metadata=self._metadata(),
            )
            self.ts, self.last_edit = str(posted["ts"]), self.services.clock.monotonic()
            return
        if final or not self._paced("chat.update", last=self.last_edit, every=EDIT_EVERY_SECONDS):
            return
        await slack.chat_update(channel=self.thread.channel_id, ts=self.ts, text=self.text + " ▌")
        self.last_edit = self.services.clock.monotonic()

    async def _close(self, *, footer: str | None) -> None:
        """Finish the current message: its whole text, the footer on the last one, the metadata.

        Whatever fails, the final text is delivered: the last call is retried with backoff, and a
        message that cannot be finished in place is replaced by a new one holding the whole answer."""
        parts = slack_blocks.split_text(self.text) or ["…"]
        final_blocks = [slack_blocks.section(piece) for piece in parts]
        if footer:
            final_blocks.append(slack_blocks.context(footer))
        slack = self.slack
        if self.ts is None and self.streaming:
            self.streaming = False  # too short to have started a stream: post it whole
        if self.ts is None:
            await self._post_whole(final_blocks)
            return
        channel, ts = self.thread.channel_id, self.ts
        if self.streaming:
            rest = self.text[self.sent :]
            method = "chat.stopStream"

            async def finish() -> Any:
                return await slack.chat_stopStream(
                    channel=channel,
                    ts=ts,
                    markdown_text=rest or None,
                    blocks=[slack_blocks.context(footer)] if footer else None,
                    metadata=self._metadata(),
                )
        else:
            method = "chat.update"

            async def finish() -> Any:
                await self.services.pacer.take(self.incoming.team_id, "chat.update")
                return await slack.chat_update(
                    channel=channel, ts=ts, text=self.text, blocks=final_blocks, metadata=self._metadata()
                )

        if await self._with_backoff(method, finish):
            await self._keep(ts)
            return
        logger.warning("could not finish %s with %s; posting the whole answer anew", ts, method)
        await self._post_whole(final_blocks)
        if not self.streaming:
            with contextlib.suppress(SlackApiError):
                await slack.chat_delete(channel=channel, ts=ts)

    async def _post_whole(self, final_blocks: list[dict[str, Any]]) -> None:
        posted: dict[str, Any] = {}

        async def post() -> None:
            response = await self.slack.chat_postMessage(
                channel=self.thread.channel_id,
                thread_ts=self.thread.thread_ts,
                text=self.text,
                blocks=final_blocks,
                metadata=self._metadata(),
            )
            posted["ts"] = str(response["ts"])

        if await self._with_backoff("chat.postMessage", post):
            await self._keep(posted["ts"])
        else:
            logger.error("the answer in %s could not be delivered", self.thread.thread_ts)

    async def _keep(self, ts: str) -> None:
        """Record this part of the answer as the thread's history (as written, without the model's label)."""
        text = unescape(self.text.removeprefix(self.label))
        turn = ChatTurn(
            thread_id=thread_id_of(self.thread), ts=ts, role="assistant", model=self.model, part=self.part, text=text
        )
        await record_turn(self.services, turn)

    async def _with_backoff(self, method: str, call: Callable[[], Awaitable[Any]]) -> bool:
        """``call`` until Slack takes it, waiting longer each time (on the injected clock); False if it never did."""
        for attempt, delay in enumerate(FINAL_RETRY_DELAYS):
            try:
                await call()
                return True
            except SlackApiError as error:
                code = slack_error_code(error)
                if code not in TRANSIENT_SLACK_ERRORS or attempt == len(FINAL_RETRY_DELAYS) - 1:
                    logger.warning("%s failed for good (%s)", method, code)
                    return False
                await self.services.clock.sleep(delay)
        return False

    async def finish(self, footer: str) -> None:
        if not self.text.strip() or self.text == self.label:
            self.text = self.label + "_(no answer)_"
        await self._close(footer=footer)

    async def abandon(self) -> None:
        """Close a message the provider stopped feeding, so nothing is left half-streamed."""
        if self.ts is not None:
            self.text += "\n_(interrupted)_"
            await self._close(footer=None)
