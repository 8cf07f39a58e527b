"""Secrets never reach the logs."""

from __future__ import annotations

import logging

import pytest

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
