"""Chatting with models in Slack threads, and comparing two models on the team's own prompts.

A thread is bound to a model (ChatThread row). Every reply in it goes to the model with the
thread's history, oldest first, trimmed from the oldest turns to fit the model's context window.
The answer streams into the thread (bot.chat.writer), split into several messages rather than past
Slack's limits, and ends with a small footer of token usage.
"""

from __future__ import annotations

import asyncio
import logging

from bot import slack_blocks
from bot.chat import views as chat_views
from bot.chat.threads import (
    MENTION,
    ContextTooLong,
    Incoming,
    context_window,
    fit_to_context,
    record_question,
    thread_turns,
)
from bot.chat.writer import AnswerWriter
from bot.errors import InvalidInput
from bot.models import catalog, serving
from bot.mrkdwn import escape
from bot.providers import ProviderError, ProviderErrorKind
from bot.providers.types import ChatEnd
from bot.references import resolve_model
from bot.services import Services
from storage import repositories
from storage.db import OUTAGE_ERRORS
from storage.models import ChatThread

logger = logging.getLogger(__name__)

NOTICE_EVENT = "finetune_notice"


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
    chosen = await resolve_model(services, team_id=team_id, reference=reference, answering=True)
    other, other_provider = None, ""
    if compare_with is not None:
        against = f"{catalog.base_model_id(chosen.model)}@{chosen.provider}" if compare_with == "base" else compare_with
        compared = await resolve_model(services, team_id=team_id, reference=against, answering=True)
        other, other_provider = compared.model, compared.provider
        if (other, other_provider) == (chosen.model, chosen.provider):
            raise InvalidInput(f"`{escape(chosen.model)}` is its own base; pick another model to compare it with.")
    prompt = system if system is not None else chosen.default_system
    channel_id = channel_id or chosen.home_channel or user_id  # from the Home tab: the job's channel, else a DM
    text, root_blocks = chat_views.chat_root(
        model=chosen.model, compare_model=other, system_prompt=prompt, user=user_id
    )
    root = await services.slack_for(team_id).chat_postMessage(channel=channel_id, text=text, blocks=root_blocks)
    async with services.db.session() as session, session.begin():
        await repositories.ensure_team(session, team_id=team_id)
        await repositories.add_chat_thread(
            session,
            thread=ChatThread(
                team_id=team_id,
                channel_id=str(root["channel"]),
                thread_ts=str(root["ts"]),
                model=chosen.model,
                provider=chosen.provider,
                compare_model=other,
                compare_provider=other_provider,
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
    models = [(thread.model, thread.provider)]
    if thread.compare_model:
        models.append((thread.compare_model, thread.compare_provider))
    for model, provider in models:
        try:
            await _answer(services, thread, incoming, (model, provider), history, question, labelled=len(models) > 1)
        except ProviderError as error:  # before the answer began (a wrong key listing the models): said in the thread
            await _notice(services, thread, error.sentence)


async def _history(services: Services, thread: ChatThread, *, before: str) -> list[tuple[str, str, str | None]]:
    """The thread as (role, text, model) turns, oldest first, up to the message being answered."""
    return [
        (turn.role, turn.text, turn.model)
        for turn in await thread_turns(services, thread)
        if float(turn.parts[0]) < float(before)
    ]


async def _retired(services: Services, model: str, provider: str) -> str | None:
    """The sentence for a model past its shutdown date at its provider, or None while it still answers."""
    base = catalog.base_model_id(model)
    today = services.clock.now().date()
    known = {m.id: m for m in await services.base_models(provider)}
    retires = known[base].inference_retires if base in known else None
    retires = retires or services.providers.get(provider).published_shutdown(model)
    if retires is not None and today >= retires:
        return (
            f"`{escape(model)}` was retired on {retires:%Y-%m-%d} and no longer answers at "
            f"{services.providers.label_of(provider)}. "
            "Its training data is still here: `/finetune datasets`."
        )
    return None


async def _answer(
    services: Services,
    thread: ChatThread,
    incoming: Incoming,
    answerer: tuple[str, str],
    history: list[tuple[str, str, str | None]],
    question: str,
    *,
    labelled: bool,
) -> None:
    """One model's answer (``answerer``: the model and its provider), streamed into the thread."""
    model, provider = answerer
    retired = await _retired(services, model, provider)
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
            window=context_window(services, model),
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
    try:
        served = await serving.served_as(services, team_id=thread.team_id, provider=provider, model=model)
    except serving.NotServing as missing:
        await _not_serving(services, thread, missing)
        return
    label = f"*{escape(model)}*\n" if labelled else ""
    writer = AnswerWriter(services, thread, incoming, model=model, label=label)
    end = ChatEnd(usage=None)
    try:
        stream = services.providers.get(provider).stream_chat(
            model=model, messages=messages, max_tokens=reserve, served_as=served
        )
        async for piece in stream:
            if isinstance(piece, ChatEnd):
                end = piece
            else:
                await writer.add(piece)
    except ProviderError as error:
        await writer.abandon()
        gone = None
        if served is not None and error.kind == ProviderErrorKind.NOT_FOUND:
            gone = await serving.vanished(services, team_id=thread.team_id, provider=provider, model=model)
        if gone is not None:
            await _not_serving(services, thread, gone)
            return
        await _notice(services, thread, await _failure_text(services, thread, answerer, error))
        return
    footer = f"{escape(model)} · {len(messages) - 1} message(s) of context"
    if end.usage is not None:
        footer += f" · {end.usage.prompt_tokens:,} in · {end.usage.completion_tokens:,} out tokens"
    if end.cut_off:
        footer = f"✂️ Cut off: the answer reached the {reserve:,}-token limit · " + footer
    await writer.finish(footer)


async def _failure_text(services: Services, thread: ChatThread, answerer: tuple[str, str], error: ProviderError) -> str:
    model, provider = answerer
    label = services.providers.label_of(provider)
    if error.kind == ProviderErrorKind.NOT_FOUND:
        retired = await _retired(services, model, provider)
        if retired:
            return retired
        async with services.db.session() as session:
            job = await repositories.find_job_by_model(session, team_id=thread.team_id, model=model)
        planned = f" (it was due to retire on {job.model_retires:%Y-%m-%d})" if job and job.model_retires else ""
        if job is not None and job.model_deleted_at is not None:
            return f"`{escape(model)}` was deleted on {job.model_deleted_at:%Y-%m-%d}{planned}; it no longer answers."
        return f"`{escape(model)}` is not available any more at {label}{planned}."
    if error.kind == ProviderErrorKind.CONTEXT_TOO_LONG:
        return (
            f"The conversation no longer fits `{escape(model)}`'s context: “{escape(error.provider_message)}” "
            "Start a new chat."
        )
    if error.kind == ProviderErrorKind.RATE_LIMITED:
        return f"{label} is rate-limiting requests right now; ask again in a minute."
    return f"`{escape(model)}` could not answer: “{escape(error.provider_message)}” Try again in a moment."


async def _not_serving(services: Services, thread: ChatThread, missing: serving.NotServing) -> None:
    """Why the model does not answer, with the Deploy button that makes it."""
    await _notice(services, thread, missing.sentence, actions=await serving.deploy_actions(services, missing.job_id))


async def _notice(
    services: Services, thread: ChatThread, text: str, *, actions: slack_blocks.Block | None = None
) -> None:
    """A sentence in the chat's thread, not an answer; ``actions`` offers what to click about it."""
    await services.slack_for(thread.team_id).chat_postMessage(
        channel=thread.channel_id,
        thread_ts=thread.thread_ts,
        text=f"⚠️ {text}",
        blocks=[slack_blocks.section(f"⚠️ {text}"), actions] if actions else None,
        metadata={"event_type": NOTICE_EVENT, "event_payload": {}},
    )
