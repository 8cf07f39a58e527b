"""The outbox: every message the bot owes the team, posted exactly once.

A notification is claimed (so two replicas never post it together), posted with Slack message
metadata carrying its outbox id, then recorded as sent. If the bot dies between posting and
recording, the claim expires, the next attempt finds the message in the thread by that metadata,
and records it instead of posting it again.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

from slack_sdk.errors import SlackApiError

from bot import slack_blocks, workspaces
from bot.errors import slack_error_code, slack_error_data
from bot.evaluation import charts as evaluation_charts
from bot.services import Services
from bot.training import charts as training_charts
from storage import repositories
from storage.models import FILE_KINDS, Evaluation, Notification, NotificationKind, NotificationStatus

logger = logging.getLogger(__name__)

METADATA_EVENT = "finetune_notification"
CLAIM = timedelta(minutes=2)
_REINSTALL = "the bot token no longer works: reinstall the app and set SLACK_BOT_TOKEN to its new token"
_BUG = "Slack refused the message itself; please report it with the notification id"
# Slack errors that no retry will fix: the notification ends as failed, and the log says what to do.
PERMANENT = {
    "missing_scope": "the app lacks the scope {needed}: add it under oauth_config.scopes.bot in manifest.yml and "
    "reinstall the app",
    "channel_not_found": "the channel is gone or private to the app: invite the app to it, or check the channel",
    "not_in_channel": "the app is not in the channel: /invite @finetune-bot there",
    "is_archived": "the channel is archived: unarchive it, or work in another channel",
    "invalid_auth": _REINSTALL,
    "not_authed": _REINSTALL,
    "token_revoked": _REINSTALL,
    "account_inactive": _REINSTALL,
    "user_not_found": "the person left the workspace: nobody is left to tell",
    "user_disabled": "the person's account is deactivated: nobody is left to tell",
    "cannot_dm_bot": "the recipient is a bot: nobody is left to tell",
    "invalid_blocks": _BUG,
    "msg_too_long": _BUG,
    "no_text": _BUG,
}
# Any other failure is retried after a delay that doubles each time, then given up.
RETRY_FIRST = timedelta(seconds=15)
RETRY_MOST = timedelta(minutes=30)
MAX_ATTEMPTS = 12


def _metadata(notification_id: int) -> dict[str, Any]:
    return {"event_type": METADATA_EVENT, "event_payload": {"outbox_id": notification_id}}


async def deliver_pending(services: Services, *, limit: int = 100) -> int:
    """Post what the outbox holds, oldest first; returns how many were sent now."""
    async with services.db.session() as session:
        pending = await repositories.pending_notifications(session, now=services.clock.now(), limit=limit)
    sent = 0
    for notification in pending:
        sent += await _deliver(services, notification)
    return sent


async def _deliver(services: Services, notification: Notification) -> int:
    assert notification.id is not None
    now = services.clock.now()
    async with services.db.session() as session, session.begin():
        attempt = await repositories.claim_notification(
            session, notification_id=notification.id, owner=services.owner, now=now, lease=CLAIM
        )
    if attempt is None:
        return 0  # another replica has it
    try:
        channel = await _channel(services, notification)
        posted = await _already_posted(services, notification, channel) if attempt > 1 else None
        if posted is None:
            posted = await _post(services, notification, channel)
    except workspaces.WorkspaceNotInstalled as error:
        logger.warning("notification %s (%s) given up: %s", notification.id, notification.kind, error)
        async with services.db.session() as session, session.begin():
            await repositories.finish_notification(
                session, notification_id=notification.id, status=NotificationStatus.FAILED, now=services.clock.now()
            )
        return 0
    except SlackApiError as error:
        await _postpone_or_give_up(services, notification, error, attempt=attempt)
        return 0
    async with services.db.session() as session, session.begin():
        await repositories.finish_notification(
            session,
            notification_id=notification.id,
            status=NotificationStatus.SENT,
            now=services.clock.now(),
            slack_ts=posted,
        )
    return 1


async def _postpone_or_give_up(
    services: Services, notification: Notification, error: SlackApiError, *, attempt: int
) -> None:
    """A permanent error ends the notification, with one line naming the fix; any other waits and retries."""
    assert notification.id is not None
    # A 5xx from Slack may carry a plain-text body rather than JSON.
    data = slack_error_data(error)
    code = slack_error_code(error)
    now = services.clock.now()
    retry_at = None
    if code in PERMANENT:
        status = NotificationStatus.FAILED
        fix = PERMANENT[code].format(needed=data.get("needed") or "it needs")
        logger.error("notification %s (%s) given up: Slack said %s; %s", notification.id, notification.kind, code, fix)
    elif attempt >= MAX_ATTEMPTS:
        status = NotificationStatus.FAILED
        logger.error(
            "notification %s (%s) given up after %s attempts: %s", notification.id, notification.kind, attempt, code
        )
    else:
        status = NotificationStatus.PENDING
        retry_at = now + min(RETRY_FIRST * 2 ** (attempt - 1), RETRY_MOST)
        logger.warning(
            "notification %s (%s) not posted: %s; trying again at %s",
            notification.id,
            notification.kind,
            code,
            f"{retry_at:%H:%M:%S} UTC",
        )
    async with services.db.session() as session, session.begin():
        await repositories.finish_notification(
            session, notification_id=notification.id, status=status, now=now, retry_at=retry_at
        )


async def _channel(services: Services, notification: Notification) -> str:
    """Direct messages are addressed to a user; Slack posts them in the conversation it opens."""
    if notification.channel_id.startswith(("U", "W")):
        opened = await services.slack_for(notification.team_id).conversations_open(users=notification.channel_id)
        return str(opened["channel"]["id"])
    return notification.channel_id


async def _post(services: Services, notification: Notification, channel: str) -> str:
    assert notification.id is not None
    payload = notification.payload
    if notification.kind in FILE_KINDS:
        content = await _file_content(services, NotificationKind(notification.kind), payload)
        uploaded = await services.slack_for(notification.team_id, once=True).files_upload_v2(
            channel=channel,
            thread_ts=notification.thread_ts,
            content=content,
            filename=payload["filename"],
            title=payload["title"],
        )
        return str(uploaded["file"]["id"])
    response = await services.slack_for(notification.team_id, once=True).chat_postMessage(
        channel=channel,
        thread_ts=notification.thread_ts,
        text=payload["text"],
        blocks=payload.get("blocks"),
        metadata=_metadata(notification.id),
        unfurl_links=False,
    )
    return str(response["ts"])


async def _already_posted(services: Services, notification: Notification, channel: str) -> str | None:
    """Look in the thread (or the conversation) for what an earlier attempt may have posted."""
    assert notification.id is not None
    if notification.thread_ts:
        pages = await services.slack_for(notification.team_id).conversations_replies(
            channel=channel, ts=notification.thread_ts, include_all_metadata=True, limit=200
        )
    else:
        pages = await services.slack_for(notification.team_id).conversations_history(
            channel=channel, include_all_metadata=True, limit=200
        )
    async for page in pages:
        for message in page.get("messages", []):
            if notification.kind in FILE_KINDS:
                titles = [f.get("title") for f in message.get("files", [])]
                if notification.payload["title"] in titles:
                    return str(message["files"][0]["id"])
                continue
            payload = (message.get("metadata") or {}).get("event_payload") or {}
            if payload.get("outbox_id") == notification.id:
                logger.info("notification %s was already posted (%s); recording it", notification.id, message["ts"])
                return str(message["ts"])
    return None


async def _file_content(services: Services, kind: NotificationKind, payload: dict[str, Any]) -> bytes:
    if kind == NotificationKind.CHART:
        return await _chart(services, payload)
    if kind == NotificationKind.EVAL_CHART:
        async with services.db.session() as session:
            evaluation = await session.get(Evaluation, int(payload["evaluation_id"]))
        assert evaluation is not None
        return evaluation_charts.evaluation_png(
            title=payload["title"],
            metrics=evaluation.metrics,
            model=slack_blocks.short_model(evaluation.model),
            baseline=slack_blocks.short_model(evaluation.baseline_model),
        )
    return await golden_set_jsonl(services, int(payload["golden_set_id"]))


async def _chart(services: Services, payload: dict[str, Any]) -> bytes:
    async with services.db.session() as session:
        metrics = await repositories.list_job_events(session, job_id=int(payload["job_id"]), kind="metrics")
    return training_charts.loss_curve_png(
        title=payload["title"],
        steps=[event.step or 0 for event in metrics],
        train=[event.train_loss for event in metrics],
        valid=[event.valid_loss for event in metrics],
    )


async def golden_set_jsonl(services: Services, golden_set_id: int) -> bytes:
    """A recorded golden set as chat JSONL: each prompt with the model's answer as the assistant turn."""
    async with services.db.session() as session:
        answers = await repositories.list_golden_answers(session, golden_set_id=golden_set_id)
    lines = [
        json.dumps(
            {"messages": [*answer.messages, {"role": "assistant", "content": answer.answer}]}, ensure_ascii=False
        )
        for answer in answers
    ]
    return ("\n".join(lines) + "\n").encode()
