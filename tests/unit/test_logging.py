"""Secrets never reach the logs."""

from __future__ import annotations

import errno
import logging

import pytest

from bot.app import _log_unhandled_error
from bot.logging import RedactSecrets, redact


@pytest.mark.parametrize(
    "secret",
    [
        "xoxb-1234-5678-abcdefABCDEF",
        "xapp-1-A0FINETUNE-1234-abcdef",
        "sk-proj-abcdefghijklmnop1234",
        "sk-pro****************abcd",
        "whsec_c2VjcmV0LXNlY3JldA==",
        "Bearer eyJhbGciOi.payload.sig",
        # an Entra ID access token on its own, as azure-identity's errors may quote it
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL21hbmFnZW1lbnQuYXp1cmUuY29tIn0.c2lnbmF0dXJl",
    ],
)
def test_secrets_are_redacted(secret: str) -> None:
    assert secret not in redact(f"calling with {secret} now")
    assert "[redacted]" in redact(f"calling with {secret} now")


def test_the_log_filter_rewrites_messages_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.redaction")
    logger.addFilter(RedactSecrets())
    with caplog.at_level(logging.INFO, logger="test.redaction"):
        logger.info("token %s", "xoxb-9-9-secretvalue")
        try:
            raise RuntimeError("failed with sk-live-abcdefghijklmn")
        except RuntimeError:
            logger.exception("boom")
    text = caplog.text
    assert "secretvalue" not in text and "abcdefghijklmn" not in text
    assert text.count("[redacted]") >= 2


async def test_a_file_error_in_a_listener_names_the_file_not_the_database(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    await _log_unhandled_error(
        OSError(errno.ENOSPC, "No space left on device", "/data/datasets/ab.jsonl"), {"type": "event_callback"}
    )
    await _log_unhandled_error(ConnectionRefusedError(111, "Connect call failed"), {"type": "event_callback"})
    first, second = caplog.records
    assert "cannot use /data/datasets/ab.jsonl" in first.getMessage() and "No space left" in first.getMessage()
    assert "database" not in first.getMessage() and "database unavailable" in second.getMessage()
    assert first.exc_info is None and second.exc_info is None
