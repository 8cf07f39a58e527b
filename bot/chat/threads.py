"""A chat thread's conversation: its turns as kept, read back from Slack when missing, fitted to a context."""

from __future__ import annotations

import contextlib
import logging
import re
from dataclasses import dataclass

from bot.datasets.tokens import TokenCounter
from bot.models import catalog
from bot.mrkdwn import unescape
from bot.services import Services
from storage import repositories
from storage.db import OUTAGE_ERRORS
from storage.models import ChatThread, ChatTurn

logger = logging.getLogger(__name__)

ANSWER_EVENT = "finetune_chat"
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


@dataclass
class Turn:
    """One question or one model's whole answer; ``parts`` are the ts of its messages (answers may span several)."""

    role: str
    text: str
    model: str | None
    parts: list[str]


async def record_question(services: Services, thread: ChatThread, *, ts: str, text: str) -> None:
    """Keep a person's message of a chat thread as it comes (a repeat of the same ts is a no-op)."""
    await record_turn(services, ChatTurn(thread_id=thread_id_of(thread), ts=ts, role="user", text=text))


async def record_turn(services: Services, turn: ChatTurn) -> None:
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


def thread_id_of(thread: ChatThread) -> int:
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
            rows = await repositories.list_chat_turns(session, thread_id=thread_id_of(thread))
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
        await record_turn(services, turn)
    async with services.db.session() as session, session.begin():
        await repositories.mark_thread_recorded(session, thread_id=thread_id_of(thread))
    thread.records_turns = True


async def _rows_in_slack(services: Services, thread: ChatThread) -> list[ChatTurn]:
    """The thread's messages as Slack has them (conversations.replies, which Slack limits hard)."""
    pages = await services.slack_for(thread.team_id).conversations_replies(
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
                        thread_id=thread_id_of(thread),
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
                        thread_id=thread_id_of(thread),
                        ts=str(message["ts"]),
                        role="user",
                        text=MENTION.sub("", text).strip(),
                    )
                )
    return found


def context_window(services: Services, model: str) -> int:
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
