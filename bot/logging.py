"""Logging set-up with a filter that keeps secrets out of every log line."""

from __future__ import annotations

import logging
import re

# Slack tokens (xoxb-, xapp-, xoxp-…), OpenAI keys (sk-…), webhook secrets (whsec_…) and bearer headers.
SECRET_PATTERN = re.compile(
    r"(xox[abposr]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+|sk-[A-Za-z0-9_-]*\*+[A-Za-z0-9]*|sk-[A-Za-z0-9_-]{8,}"
    r"|whsec_[A-Za-z0-9+/=]+|(?i:bearer)\s+[A-Za-z0-9._~+/=-]+)"
)


def redact(text: str) -> str:
    return SECRET_PATTERN.sub("[redacted]", text)


class RedactSecrets(logging.Filter):
    """Rewrites each record's final message with secrets masked; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The SDKs log request bodies at DEBUG; keep them at INFO unless asked for.
    for noisy in (
        "slack_bolt",
        "slack_sdk",
        "openai",
        "httpx2",
        "aiohttp.access",
        "aiosqlite",
        "apscheduler",
    ):
        logging.getLogger(noisy).setLevel(max(logging.getLevelName(level), logging.INFO))
