"""What every button listener shares: whose team, and one way to answer the person who clicked."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Sequence
from typing import Any

from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.webhook_response import WebhookResponse

from bot.errors import MalformedRequest, refusal_of
from bot.numbers import whole_number


def team_of(body: dict[str, Any]) -> str:
    return str((body.get("team") or {}).get("id") or body.get("team_id") or "")


async def answer_clicker(respond: AsyncRespond, work: Awaitable[str | None]) -> None:
    """Run a button's use-case; its sentence (or its error's) goes to the clicker, and only to them."""
    await answer_clicker_in_place(respond, work, replace_original=False)


async def answer_clicker_in_place(
    respond: AsyncRespond, work: Awaitable[str | None], *, replace_original: bool
) -> None:
    """``answer_clicker``; with ``replace_original``, an outcome (not a refusal) replaces the message clicked,
    whose buttons it spent. This is the listeners' one mapping of refusals: anything else is a bug, which
    the app's error hook logs."""
    try:
        sentence = await work
    except Exception as error:
        refusal = refusal_of(error)
        if refusal is None:
            raise
        await respond(text=refusal, response_type="ephemeral", replace_original=False)
        return
    if sentence:
        await respond(text=sentence, response_type="ephemeral", replace_original=replace_original)


class DirectRespond(AsyncRespond):
    """``respond()`` for a click that Slack sent without a ``response_url``: one on the Home tab or in a
    modal. The answer goes to the person as a direct message from the app, where they can read it."""

    def __init__(self, client: AsyncWebClient, user_id: str) -> None:
        super().__init__(response_url=None)
        self._client = client
        self._user_id = user_id

    async def __call__(  # type: ignore[override]
        self, text: str | dict[str, Any] = "", blocks: Sequence[dict[str, Any]] | None = None, **_: Any
    ) -> WebhookResponse:
        # replace_original, delete_original and response_type mean nothing without an original message.
        opened = await self._client.conversations_open(users=self._user_id)
        posted = await self._client.chat_postMessage(
            channel=str(opened["channel"]["id"]), text=str(text), blocks=list(blocks) if blocks else None
        )
        return WebhookResponse(url="", status_code=200, body=json.dumps(posted.data), headers={})


def answers_from_views(body: dict[str, Any], client: AsyncWebClient) -> DirectRespond | None:
    """The responder for a click from a view (Slack gives those no response_url), else None."""
    if body.get("type") not in ("block_actions", "view_submission") or body.get("response_url"):
        return None
    if body.get("response_urls"):
        return None
    user_id = str((body.get("user") or {}).get("id") or "")
    return DirectRespond(client, user_id) if user_id else None


def clicked_value(body: dict[str, Any]) -> str:
    """The value of the button that was clicked."""
    actions = body.get("actions")
    if not isinstance(actions, list) or not actions or not isinstance(actions[0], dict):
        raise MalformedRequest("a block action without actions")
    return str(actions[0].get("value") or "")


def clicked_id(body: dict[str, Any]) -> int:
    """The id a button carries (a job, an evaluation, a candidate): the bot only makes whole numbers."""
    value = whole_number(clicked_value(body), low=1)
    if value is None:
        raise MalformedRequest(f"a button value that is not an id: {clicked_value(body)[:40]!r}")
    return value
