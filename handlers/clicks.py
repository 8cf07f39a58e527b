"""What every button listener shares: whose team, and one way to answer the person who clicked."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.errors import UserFacingError


def team_of(body: dict[str, Any]) -> str:
    return str((body.get("team") or {}).get("id") or body.get("team_id") or "")


async def answer_clicker(respond: AsyncRespond, work: Awaitable[str | None]) -> None:
    """Run a button's use-case; its sentence (or its error's) goes to the clicker, and only to them."""
    try:
        sentence = await work
    except UserFacingError as error:
        sentence = error.sentence
    if sentence:
        await respond(text=sentence, response_type="ephemeral", replace_original=False)
