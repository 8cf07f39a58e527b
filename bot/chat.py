"""Chatting with models in Slack threads, and comparing two models on the team's own prompts.

A thread is bound to a model (ChatThread row). Every reply in it goes to the model with the
thread's history, oldest first, trimmed from the oldest turns to fit the model's context window.
The answer streams into the thread (chat.startStream/appendStream/stopStream where the workspace
allows it, otherwise a placeholder edited about once a second), split into several messages
rather than past Slack's limits, and ends with a small footer of token usage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError

from bot import blocks, catalog, pacing
from bot.datasets.tokens import TokenCounter
from bot.errors import UserFacingError, slack_error_code
from bot.mrkdwn import escape, unescape
from bot.providers import ProviderError, ProviderErrorKind
from bot.providers.types import ChatUsage
from bot.references import resolve_model
from bot.services import Services
from storage import repositories
from storage.db import OUTAGE_ERRORS
from storage.models import ChatThread, ChatTurn

logger = logging.getLogger(__name__)

ANSWER_EVENT = "finetune_chat"
NOTICE_EVENT = "finetune_notice"
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
MENTION = re.compile(r"<@[UW][A-Z0-9]+>\s*")


@dataclass(frozen=True)
class Incoming:
    team_id: str
    channel_id: str
    thread_ts: str
    ts: str
    user_id: str
    text: str
    user_team_id: str = ""


async def start_chat(
    services: Services,
    *,
    team_id: str,
    channel_id: str,
    user_id: str,
    reference: str,
    system: str | None = None,
    compare_with: str | None = None,
) -> str:
    """Post the thread's root message and bind the thread; returns its ts. ``compare_with="base"`` compares."""
    chosen = await resolve_model(services, team_id=team_id, reference=reference)
    other = None
    if compare_with is not None:
        other = (
            catalog.base_model_id(chosen.model)
            if compare_with == "base"
            else (await resolve_model(services, team_id=team_id, reference=compare_with)).model
        )
        if other == chosen.model:
            raise UserFacingError(f"`{escape(chosen.model)}` is its own base; pick another model to compare it with.")
    prompt = system if system is not None else chosen.default_system
    channel_id = channel_id or chosen.home_channel or user_id  # from the Home tab: the job's channel, else a DM
    text, root_blocks = blocks.chat_root(model=chosen.model, compare_model=other, system_prompt=prompt, user=user_id)
    root = await services.slack.chat_postMessage(channel=channel_id, text=text, blocks=root_blocks)
    async with services.db.session() as session, session.begin():
        await repositories.ensure_team(session, team_id=team_id)
        await repositories.add_chat_thread(
            session,
            thread=ChatThread(
                team_id=team_id,
                channel_id=str(root["channel"]),
                thread_ts=str(root["ts"]),
                model=chosen.model,
                compare_model=other,
                system_prompt=prompt,
                started_by=user_id,
                created_at=services.clock.now(),
                records_turns=True,
            ),
        )
    return str(root["ts"])


# A question acked just before a database restart is answered once it is back: waits between tries.
# Real seconds (asyncio.sleep), since they wait for a real server, not for the bot's own schedule.
OUTAGE_WAITS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0)


async def _chat_thread(services: Services, incoming: Incoming) -> ChatThread | None:
    for wait in (*OUTAGE_WAITS, None):
        try:
            async with services.db.session() as session:
                return await repositories.get_chat_thread(
                    session, channel_id=incoming.channel_id, thread_ts=incoming.thread_ts
                )
        except OUTAGE_ERRORS:
            if wait is None:
                raise
            logger.warning("database unavailable for the question %s; trying again in %s s", incoming.ts, wait)
            await asyncio.sleep(wait)
    return None


async def on_message(services: Services, incoming: Incoming) -> None:
    """Answer a reply in a chat thread (the app's middleware lets one of its message and mention through)."""
    thread = await _chat_thread(services, incoming)
    if thread is None:
        return
    question = MENTION.sub("", incoming.text).strip()
    await record_question(services, thread, ts=incoming.ts, text=question)
    history = await _history(services, thread, before=incoming.ts)
    models = [thread.model, *([thread.compare_model] if thread.compare_model else [])]
    for model in models:
        try:
            await _answer(services, thread, incoming, model, history, question, labelled=len(models) > 1)
        except ProviderError as error:  # before the answer began (a wrong key listing the models): said in the thread
            await _notice(services, thread, error.sentence())


async def _history(services: Services, thread: ChatThread, *, before: str) -> list[tuple[str, str, str | None]]:
    """The thread as (role, text, model) turns, oldest first, up to the message being answered."""
    return [
        (turn.role, turn.text, turn.model)
        for turn in await thread_turns(services, thread)
        if float(turn.parts[0]) < float(before)
    ]


@dataclass
class Turn:
    """One question or one model's whole answer; ``parts`` are the ts of its messages (answers may span several)."""

    role: str
    text: str
    model: str | None
    parts: list[str]


async def record_question(services: Services, thread: ChatThread, *, ts: str, text: str) -> None:
    """Keep a person's message of a chat thread as it comes (a repeat of the same ts is a no-op)."""
    await _record(services, ChatTurn(thread_id=_thread_id(thread), ts=ts, role="user", text=text))


async def _record(services: Services, turn: ChatTurn) -> None:
    """Keep a turn; in a database outage the conversation goes on, and the turn is read from Slack later."""
    turn.created_at = services.clock.now()
    try:
        async with services.db.session() as session, session.begin():
            await repositories.add_chat_turn(session, turn=turn)
    except OUTAGE_ERRORS as error:
        logger.warning("chat turn %s not kept (%s); the thread will be read from Slack", turn.ts, type(error).__name__)
        await _forget_recorded(services, turn.thread_id)


async def _forget_recorded(services: Services, thread_id: int) -> None:
    """A turn is missing from the database: the next read recovers the thread from Slack."""
    with contextlib.suppress(*OUTAGE_ERRORS):
        async with services.db.session() as session, session.begin():
            await repositories.mark_thread_recorded(session, thread_id=thread_id, recorded=False)


def _thread_id(thread: ChatThread) -> int:
    assert thread.id is not None
    return thread.id


async def thread_turns(services: Services, thread: ChatThread) -> list[Turn]:
    """The conversation of a chat thread, oldest first: people's messages and the models' answers.

    Read from the database, where each message is kept as it happens; a thread from before that is
    read from Slack once (conversations.replies is limited hard) and kept from then on."""
    try:
        if not thread.records_turns:
            await _recover_from_slack(services, thread)
        async with services.db.session() as session:
            rows = await repositories.list_chat_turns(session, thread_id=_thread_id(thread))
    except OUTAGE_ERRORS as error:
        logger.warning(
            "chat turns of %s unreadable (%s); reading the thread from Slack", thread.id, type(error).__name__
        )
        rows = await _rows_in_slack(services, thread)
    return _conversation(rows)


def _conversation(rows: list[ChatTurn]) -> list[Turn]:
    """Messages as turns: the parts of one long answer join into one."""
    turns: list[Turn] = []
    for row in rows:
        if row.role == "assistant":
            if row.part and turns and turns[-1].role == "assistant" and turns[-1].model == row.model:
                turns[-1].text += row.text
                turns[-1].parts.append(row.ts)
            else:
                turns.append(Turn("assistant", row.text, row.model, [row.ts]))
        else:
            turns.append(Turn("user", row.text, None, [row.ts]))
    return turns


async def _recover_from_slack(services: Services, thread: ChatThread) -> None:
    """Keep what a thread holds in Slack: for threads started before turns were kept, or that missed one."""
    for turn in await _rows_in_slack(services, thread):
        await _record(services, turn)
    async with services.db.session() as session, session.begin():
        await repositories.mark_thread_recorded(session, thread_id=_thread_id(thread))
    thread.records_turns = True


async def _rows_in_slack(services: Services, thread: ChatThread) -> list[ChatTurn]:
    """The thread's messages as Slack has them (conversations.replies, which Slack limits hard)."""
    pages = await services.slack.conversations_replies(
        channel=thread.channel_id, ts=thread.thread_ts, include_all_metadata=True, limit=200
    )
    found: list[ChatTurn] = []
    async for page in pages:
        for message in page.get("messages", []):
            if message["ts"] == thread.thread_ts:
                continue
            metadata = message.get("metadata") or {}
            text = unescape(str(message.get("text") or ""))
            if message.get("user") == services.slack_state.bot_user_id:
                if metadata.get("event_type") != ANSWER_EVENT:
                    continue
                payload = metadata.get("event_payload") or {}
                if payload.get("label") and "\n" in text:
                    text = text.split("\n", 1)[1]
                found.append(
                    ChatTurn(
                        thread_id=_thread_id(thread),
                        ts=str(message["ts"]),
                        role="assistant",
                        model=str(payload.get("model") or ""),
                        part=int(payload.get("part") or 0),
                        text=text,
                    )
                )
            elif message.get("subtype") in (None, "thread_broadcast", "file_share") and not message.get("bot_id"):
                found.append(
                    ChatTurn(
                        thread_id=_thread_id(thread),
                        ts=str(message["ts"]),
                        role="user",
                        text=MENTION.sub("", text).strip(),
                    )
                )
    return found


def _context_window(services: Services, model: str) -> int:
    base = catalog.base_model_id(model)
    configured = services.settings.finetune_context_windows.get(base)
    if configured:
        return configured
    info = catalog.lookup(model)
    return info.context_window if info else 128_000


def fit_to_context(
    *,
    system: str | None,
    turns: list[tuple[str, str]],
    question: str,
    window: int,
    reserve: int,
    counter: TokenCounter,
) -> list[dict[str, str]]:
    """The messages to send: the system prompt, as many recent turns as fit, then the question.

    Counted as OpenAI counts a prompt (3 per message, role and content, 3 to prime the reply); the
    oldest turns go first. Raises when even the question alone does not fit.
    """

    def cost(role: str, text: str) -> int:
        return 3 + counter.count(role) + counter.count(text)

    budget = window - reserve - 3
    fixed = cost("user", question) + (cost("system", system) if system else 0)
    if fixed > budget:
        raise ContextTooLong(fixed, budget)
    kept: list[tuple[str, str]] = []
    used = fixed
    for role, text in reversed(turns):
        used += cost(role, text)
        if used > budget:
            break
        kept.append((role, text))
    kept.reverse()
    while kept and kept[0][0] != "user":  # a trimmed history starts with a question, not an answer
        kept.pop(0)
    messages = [{"role": "system", "content": system}] if system else []
    messages += [{"role": role, "content": text} for role, text in kept]
    messages.append({"role": "user", "content": question})
    return messages


class ContextTooLong(Exception):
    def __init__(self, needed: int, budget: int) -> None:
        super().__init__(f"{needed} > {budget}")
        self.needed = needed
        self.budget = budget


async def _retired(services: Services, model: str) -> str | None:
    """The sentence for a model past its shutdown date, or None while it still answers."""
    base = catalog.base_model_id(model)
    today = services.clock.now().date()
    known = {m.id: m for m in await services.base_models()}
    retires = known[base].inference_retires if base in known else None
    retires = retires or services.provider.published_shutdown(model)
    if retires is not None and today >= retires:
        return (
            f"`{escape(model)}` was retired on {retires:%Y-%m-%d} and no longer answers. "
            "Its training data is still here: `/finetune datasets`."
        )
    return None


async def _answer(
    services: Services,
    thread: ChatThread,
    incoming: Incoming,
    model: str,
    history: list[tuple[str, str, str | None]],
    question: str,
    *,
    labelled: bool,
) -> None:
    retired = await _retired(services, model)
    if retired is not None:
        await _notice(services, thread, retired)
        return
    turns = [(role, text) for role, text, answered_by in history if role == "user" or answered_by == model]
    counter = services.token_counter(catalog.encoding_for(model))
    reserve = services.settings.finetune_chat_max_tokens
    try:
        messages = fit_to_context(
            system=thread.system_prompt,
            turns=turns,
            question=question,
            window=_context_window(services, model),
            reserve=reserve,
            counter=counter,
        )
    except ContextTooLong as too_long:
        await _notice(
            services,
            thread,
            f"That message is too long for `{escape(model)}`: {too_long.needed:,} tokens with the system "
            "prompt, and it "
            f"reads at most {too_long.budget:,} before answering. Please shorten it.",
        )
        return
    label = f"*{escape(model)}*\n" if labelled else ""
    writer = _Writer(services, thread, incoming, model=model, label=label)
    usage: ChatUsage | None = None
    try:
        async for piece in services.provider.stream_chat(model=model, messages=messages, max_tokens=reserve):
            if isinstance(piece, ChatUsage):
                usage = piece
            else:
                await writer.add(piece)
    except ProviderError as error:
        await writer.abandon()
        await _notice(services, thread, await _failure_text(services, thread, model, error))
        return
    footer = f"{escape(model)} · {len(messages) - 1} message(s) of context"
    if usage is not None:
        footer += f" · {usage.prompt_tokens:,} in · {usage.completion_tokens:,} out tokens"
    await writer.finish(footer)


async def _failure_text(services: Services, thread: ChatThread, model: str, error: ProviderError) -> str:
    if error.kind == ProviderErrorKind.NOT_FOUND:
        retired = await _retired(services, model)
        if retired:
            return retired
        async with services.db.session() as session:
            job = await repositories.find_job_by_model(session, team_id=thread.team_id, model=model)
        planned = f" (it was due to retire on {job.model_retires:%Y-%m-%d})" if job and job.model_retires else ""
        if job is not None and job.model_deleted_at is not None:
            return f"`{escape(model)}` was deleted on {job.model_deleted_at:%Y-%m-%d}{planned}; it no longer answers."
        return f"`{escape(model)}` is not available any more at {services.provider.label}{planned}."
    if error.kind == ProviderErrorKind.CONTEXT_TOO_LONG:
        return (
            f"The conversation no longer fits `{escape(model)}`'s context: “{escape(error.provider_message)}” "
            "Start a new chat."
        )
    if error.kind == ProviderErrorKind.RATE_LIMITED:
        return f"{services.provider.label} is rate-limiting requests right now; ask again in a minute."
    return f"`{escape(model)}` could not answer: “{escape(error.provider_message)}” Try again in a moment."


async def _notice(services: Services, thread: ChatThread, text: str) -> None:
    await services.slack.chat_postMessage(
        channel=thread.channel_id,
        thread_ts=thread.thread_ts,
        text=f"⚠️ {text}",
        metadata={"event_type": NOTICE_EVENT, "event_payload": {}},
    )


class _Writer:
    """Writes one model's answer into the thread: streamed when Slack allows it, else edited in place.

    An answer longer than PART_CHARS continues in a new message, so Slack's limits never cut it.
    """

    def __init__(self, services: Services, thread: ChatThread, incoming: Incoming, *, model: str, label: str) -> None:
        self.services = services
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
            cut = blocks.safe_cut(piece, room)
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
        slack = self.services.slack
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
        slack = self.services.slack
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
        parts = blocks.split_text(self.text) or ["…"]
        final_blocks = [blocks.section(piece) for piece in parts]
        if footer:
            final_blocks.append(blocks.context(footer))
        slack = self.services.slack
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
                    blocks=[blocks.context(footer)] if footer else None,
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
            response = await self.services.slack.chat_postMessage(
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
            thread_id=_thread_id(self.thread), ts=ts, role="assistant", model=self.model, part=self.part, text=text
        )
        await _record(self.services, turn)

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
