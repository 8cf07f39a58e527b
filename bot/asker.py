"""Who asked for work that runs after their request was answered, and how a refusal reaches them."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import slack_error_code

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Asker:
    """A person and where they asked (a channel, and the thread when there was one)."""

    team_id: str
    user_id: str
    channel_id: str = ""
    thread_ts: str | None = None


async def tell(slack: AsyncWebClient, asker: Asker, sentence: str) -> None:
    """``sentence`` for the asker only: ephemeral where they asked, else (no channel, or one that refuses an
    ephemeral post) as a direct message from the app, so a refusal is never only in the log."""
    if asker.channel_id:
        try:
            await slack.chat_postEphemeral(
                channel=asker.channel_id, user=asker.user_id, thread_ts=asker.thread_ts, text=sentence
            )
            return
        except SlackApiError as error:
            logger.warning(
                "cannot answer %s in %s (%s); writing to them directly",
                asker.user_id,
                asker.channel_id,
                slack_error_code(error),
            )
    opened = await slack.conversations_open(users=asker.user_id)
    await slack.chat_postMessage(channel=str(opened["channel"]["id"]), text=sentence)
