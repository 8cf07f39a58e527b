"""Asking a model many questions in a row, as recordings and evaluations do, without tripping on rate limits."""

from __future__ import annotations

import asyncio

from bot.providers.types import ChatUsage, FineTuneProvider, ProviderError, ProviderErrorKind

RATE_LIMIT_ATTEMPTS = 5
FIRST_WAIT_SECONDS = 0.5


async def complete_patiently(
    provider: FineTuneProvider, *, model: str, messages: list[dict[str, str]], max_tokens: int
) -> tuple[str, ChatUsage]:
    """One whole answer; a rate limit is waited out, doubling the wait, before its error is raised.

    The SDK already honours Retry-After a couple of times; this covers the longer bursts of a batch.
    """
    for attempt in range(RATE_LIMIT_ATTEMPTS):
        try:
            return await provider.complete_chat(model=model, messages=messages, max_tokens=max_tokens)
        except ProviderError as error:
            if error.kind != ProviderErrorKind.RATE_LIMITED or attempt == RATE_LIMIT_ATTEMPTS - 1:
                raise
            await asyncio.sleep(FIRST_WAIT_SECONDS * 2**attempt)
    raise AssertionError("unreachable: the last attempt returns or raises")
