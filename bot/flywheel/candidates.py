"""The data flywheel's candidates: what the team approves and corrects in chat threads.

In a chat or compare thread, a 👍 on a model's reply keeps the conversation up to that reply as a
candidate example; a reply starting with ``correct:`` keeps it with the corrected answer; a 👍 on one
of two compared answers and a 👎 on the other (by the same person) keep a preference pair. Taking
the reaction back withdraws the candidate. The bot acknowledges with a reaction of its own, never
a message per vote. `/finetune candidates` curates them.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError

from bot import policy, slack_blocks
from bot.chat.threads import MENTION, Turn, record_question, thread_turns
from bot.datasets.examples import example_key, existing_keys
from bot.errors import NotAllowed, NotFound
from bot.flywheel import views as flywheel_views
from bot.mrkdwn import escape
from bot.references import dataset_path, require_dataset
from bot.services import Services
from storage import repositories
from storage.models import AuditEntry, Candidate, CandidateKind, CandidateStatus, ChatThread, Dataset

logger = logging.getLogger(__name__)

THUMBS_UP = {"+1", "thumbsup"}
THUMBS_DOWN = {"-1", "thumbsdown"}
ACKNOWLEDGED = "inbox_tray"  # the bot's quiet "kept it"
CORRECTION = re.compile(r"^\s*(?:<@[UW][A-Z0-9]+>\s*)?correct:\s*", re.IGNORECASE)


def is_correction(text: str) -> bool:
    return CORRECTION.match(text) is not None


def _conversation(thread: ChatThread, turns: list[Turn], upto: int, model: str | None) -> list[dict[str, str]]:
    """The messages a model saw before turn ``upto``: the people's, and its own answers only (as in chat)."""
    messages = [{"role": "system", "content": thread.system_prompt}] if thread.system_prompt else []
    messages += [
        {"role": turn.role, "content": turn.text} for turn in turns[:upto] if turn.role == "user" or turn.model == model
    ]
    return messages


async def _target_dataset(services: Services, thread: ChatThread) -> Dataset | None:
    """The dataset the thread's fine-tuned model was trained on: the one its candidates will extend."""
    async with services.db.session() as session:
        for model in (thread.model, thread.compare_model):
            if not model:
                continue
            job = await repositories.find_job_by_model(session, team_id=thread.team_id, model=model)
            if job is not None:
                return await session.get(Dataset, job.dataset_id)
    return None


async def _thread_of(services: Services, team_id: str, channel_id: str, ts: str) -> ChatThread | None:
    """The chat thread a message belongs to (a reaction names only the message)."""
    try:
        found = await services.slack_for(team_id).conversations_replies(channel=channel_id, ts=ts, limit=1)
    except SlackApiError as error:
        logger.info("reaction on %s/%s not followed: %s", channel_id, ts, error.response.get("error"))
        return None
    messages = found.get("messages") or []
    if not messages or not messages[0].get("thread_ts"):
        return None
    async with services.db.session() as session:
        return await repositories.get_chat_thread(session, channel_id=channel_id, thread_ts=messages[0]["thread_ts"])


def _answer_at(turns: list[Turn], ts: str) -> int | None:
    return next((i for i, turn in enumerate(turns) if turn.role == "assistant" and ts in turn.parts), None)


async def _acknowledge(services: Services, thread: ChatThread, channel_id: str, ts: str, *, keep: bool) -> None:
    slack = services.slack_for(thread.team_id)
    try:
        if keep:
            await slack.reactions_add(channel=channel_id, timestamp=ts, name=ACKNOWLEDGED)
        else:
            await slack.reactions_remove(channel=channel_id, timestamp=ts, name=ACKNOWLEDGED)
    except SlackApiError as error:
        if error.response.get("error") not in ("already_reacted", "no_reaction"):
            logger.info("acknowledgement not shown: %s", error.response.get("error"))


async def audit_candidate(services: Services, *, team_id: str, actor: str, action: str, candidate: Candidate) -> None:
    async with services.db.session() as session, session.begin():
        session.add(
            AuditEntry(
                team_id=team_id,
                actor=actor,
                action=action,
                subject=f"candidate:{candidate.id}",
                detail={"kind": candidate.kind, "dataset_id": candidate.dataset_id, "message_ts": candidate.message_ts},
                created_at=services.clock.now(),
            )
        )


@dataclass(frozen=True)
class Reaction:
    team_id: str
    user: str
    name: str
    channel_id: str
    ts: str
    added: bool


async def on_reaction(services: Services, reaction: Reaction) -> None:
    """A 👍 or 👎 added to or removed from a model's answer in a chat thread."""
    name = reaction.name.split("::")[0]  # skin tones: "+1::skin-tone-3"
    if name not in THUMBS_UP | THUMBS_DOWN or reaction.user == services.slack_state.bot_user_id:
        return
    # Slack's retries of this event were dropped by event id before any listener (bot/app.py); a vote
    # delivered again in another event still finds its row (one per person, message and kind).
    thread = await _thread_of(services, reaction.team_id, reaction.channel_id, reaction.ts)
    if thread is None:
        return
    dataset = await _target_dataset(services, thread)
    if dataset is None:
        return  # no fine-tuned model of the team here: nothing to extend
    turns = await thread_turns(services, thread)
    index = _answer_at(turns, reaction.ts)
    if index is None:
        return  # a reaction on a question or a notice, not on an answer
    answer = turns[index]
    kind = CandidateKind.APPROVED if name in THUMBS_UP else CandidateKind.REJECTED
    key = {"channel_id": reaction.channel_id, "message_ts": answer.parts[0], "contributor": reaction.user}
    if reaction.added:
        example = {
            "messages": [
                *_conversation(thread, turns, index, answer.model),
                {"role": "assistant", "content": answer.text},
            ]
        }
        await _keep(services, thread, dataset, kind=kind, model=answer.model or "", example=example, **key)
    else:
        await _withdraw(services, thread, kind=kind, **key)
    if thread.compare_model:
        await _pair(services, thread, dataset, turns, index, reaction.user)


async def _keep(
    services: Services,
    thread: ChatThread,
    dataset: Dataset,
    *,
    kind: str,
    model: str,
    example: dict[str, Any],
    channel_id: str,
    message_ts: str,
    contributor: str,
) -> None:
    now = services.clock.now()
    async with services.db.session() as session, session.begin():
        candidate, changed = await repositories.keep_candidate(
            session,
            candidate=Candidate(
                team_id=thread.team_id,
                dataset_id=dataset.id or 0,
                kind=kind,
                channel_id=channel_id,
                thread_ts=thread.thread_ts,
                message_ts=message_ts,
                model=model,
                contributor=contributor,
                example=example,
                created_at=now,
                updated_at=now,
            ),
        )
    if not changed:
        return
    await audit_candidate(
        services, team_id=thread.team_id, actor=contributor, action=f"collect {kind}", candidate=candidate
    )
    if kind != CandidateKind.REJECTED:
        await _acknowledge(services, thread, channel_id, message_ts, keep=True)


async def _withdraw(
    services: Services, thread: ChatThread, *, kind: str, channel_id: str, message_ts: str, contributor: str
) -> None:
    async with services.db.session() as session, session.begin():
        candidate = await repositories.withdraw_candidate(
            session,
            channel_id=channel_id,
            message_ts=message_ts,
            kind=kind,
            contributor=contributor,
            now=services.clock.now(),
        )
        still_kept = await repositories.pending_candidates_on(session, channel_id=channel_id, message_ts=message_ts)
    if candidate is None:
        return
    await audit_candidate(
        services, team_id=thread.team_id, actor=contributor, action=f"withdraw {kind}", candidate=candidate
    )
    if not still_kept:
        await _acknowledge(services, thread, channel_id, message_ts, keep=False)


async def _pair(
    services: Services, thread: ChatThread, dataset: Dataset, turns: list[Turn], index: int, user: str
) -> None:
    """In a compare thread: a 👍 on one answer to a question and a 👎 on the other make a preference pair."""
    question = max((i for i in range(index) if turns[i].role == "user"), default=None)
    if question is None:
        return
    answers: list[int] = []
    for i in range(question + 1, len(turns)):  # the answers to that question: the turns right after it
        if turns[i].role != "assistant":
            break
        answers.append(i)
    if len(answers) != 2:
        return
    async with services.db.session() as session:
        votes = {
            i: await repositories.pending_votes(
                session, channel_id=thread.channel_id, message_ts=turns[i].parts[0], contributor=user
            )
            for i in answers
        }
    liked = [i for i in answers if CandidateKind.APPROVED in votes[i]]
    disliked = [i for i in answers if CandidateKind.REJECTED in votes[i]]
    anchor = {"channel_id": thread.channel_id, "message_ts": turns[question].parts[0], "contributor": user}
    if len(liked) == 1 and len(disliked) == 1 and liked != disliked:
        better, worse = turns[liked[0]], turns[disliked[0]]
        example = {
            "input": {"messages": _conversation(thread, turns, question + 1, better.model)},
            "preferred_output": [{"role": "assistant", "content": better.text}],
            "non_preferred_output": [{"role": "assistant", "content": worse.text}],
        }
        await _keep(
            services,
            thread,
            dataset,
            kind=CandidateKind.PREFERENCE,
            model=better.model or "",
            example=example,
            **anchor,
        )
    else:
        await _withdraw(services, thread, kind=CandidateKind.PREFERENCE, **anchor)


async def on_correction(
    services: Services, *, team_id: str, channel_id: str, thread_ts: str, ts: str, user: str, text: str
) -> None:
    """``correct: …`` in a chat thread: the conversation with the corrected answer in place of the model's."""
    async with services.db.session() as session:
        thread = await repositories.get_chat_thread(session, channel_id=channel_id, thread_ts=thread_ts)
    if thread is None:
        return
    corrected = CORRECTION.sub("", text, count=1).strip()
    dataset = await _target_dataset(services, thread)
    turns = [turn for turn in await thread_turns(services, thread) if float(turn.parts[0]) < float(ts)]
    await record_question(services, thread, ts=ts, text=MENTION.sub("", text).strip())
    last_answer = max((i for i, turn in enumerate(turns) if turn.role == "assistant"), default=None)
    if dataset is None or last_answer is None or not corrected:
        await services.slack_for(team_id).chat_postEphemeral(
            channel=channel_id,
            user=user,
            thread_ts=thread_ts,
            text="I kept nothing: write the right answer after `correct:`, below an answer of the team's "
            "fine-tuned model.",
        )
        return
    question = max(i for i in range(last_answer) if turns[i].role == "user")
    model = turns[last_answer].model
    example = {
        "messages": [
            *_conversation(thread, turns, question + 1, model),
            {"role": "assistant", "content": corrected},
        ]
    }
    await _keep(
        services,
        thread,
        dataset,
        kind=CandidateKind.CORRECTED,
        model=model or "",
        example=example,
        channel_id=channel_id,
        message_ts=ts,
        contributor=user,
    )


async def candidates_view(
    services: Services, *, team_id: str, user_id: str, reference: str
) -> tuple[str, list[slack_blocks.Block]]:
    """The pending candidates for a dataset: counts by kind and contributor, duplicates flagged."""
    dataset = await require_dataset(services, team_id=team_id, reference=reference)
    async with services.db.session() as session:
        pending = await repositories.pending_candidates(session, team_id=team_id, dataset_id=dataset.id or 0)
    existing = await asyncio.to_thread(existing_keys, dataset_path(services, dataset.sha256))
    duplicates = {c.id for c in pending if example_key(c.example) in existing}
    may_drop = may_curate(services, dataset, user_id)
    return flywheel_views.candidates_blocks(dataset, pending, duplicates=duplicates, may_drop=may_drop)


def may_curate(services: Services, dataset: Dataset, user_id: str) -> bool:
    return policy.may_act_on(services.settings, user_id, owner=dataset.uploaded_by)


async def drop(services: Services, *, team_id: str, user_id: str, candidate_id: int) -> str:
    async with services.db.session() as session:
        candidate = await repositories.get_candidate(session, team_id=team_id, candidate_id=candidate_id)
        dataset = await session.get(Dataset, candidate.dataset_id) if candidate else None
    if candidate is None or dataset is None:
        raise NotFound("That candidate no longer exists.")
    if not may_curate(services, dataset, user_id):
        raise NotAllowed(
            f"Only an admin or <@{dataset.uploaded_by}>, who shared `{escape(dataset.filename)}`, can drop candidates."
        )
    async with services.db.session() as session, session.begin():
        dropped = await repositories.set_candidate_status(
            session,
            candidate_id=candidate_id,
            from_status=CandidateStatus.PENDING,
            to_status=CandidateStatus.DROPPED,
            now=services.clock.now(),
        )
    if not dropped:
        return f"Candidate #{candidate_id} is {escape(candidate.status)} already; nothing changed."
    await audit_candidate(services, team_id=team_id, actor=user_id, action="drop candidate", candidate=candidate)
    return f"Dropped candidate #{candidate_id}; it will not be in the next version of `{escape(dataset.filename)}`."
