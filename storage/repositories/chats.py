"""Chat threads and their turns, kept as they happen."""

from __future__ import annotations

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import (
    ChatThread,
    ChatTurn,
)
from storage.repositories.common import insert_new


async def add_chat_thread(session: AsyncSession, *, thread: ChatThread) -> ChatThread:
    session.add(thread)
    await session.flush()
    return thread


async def add_chat_turn(session: AsyncSession, *, turn: ChatTurn) -> bool:
    """Keep a message of a chat thread once (a Slack retry or a replica records it again: no-op)."""
    return await insert_new(session, [turn]) == 1


async def mark_thread_recorded(session: AsyncSession, *, thread_id: int, recorded: bool = True) -> None:
    """Whether chat_turn holds the whole thread (False: read it from Slack next time)."""
    await session.exec(update(ChatThread).where(col(ChatThread.id) == thread_id).values(records_turns=recorded))


async def list_chat_turns(session: AsyncSession, *, thread_id: int) -> list[ChatTurn]:
    """The thread's messages in Slack's order (by ts)."""
    statement = select(ChatTurn).where(ChatTurn.thread_id == thread_id)
    turns = list((await session.exec(statement)).all())
    return sorted(turns, key=lambda turn: float(turn.ts))


async def get_chat_thread(session: AsyncSession, *, channel_id: str, thread_ts: str) -> ChatThread | None:
    statement = select(ChatThread).where(ChatThread.channel_id == channel_id, ChatThread.thread_ts == thread_ts)
    return (await session.exec(statement)).first()
