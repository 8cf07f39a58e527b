"""Logging set-up: one JSON object a line (or plain text), request ids, and no secret in any line."""

from __future__ import annotations

import json
import logging
import re
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Literal

# The Slack request being handled; background work started by it inherits the id (asyncio copies
# the context into each task), so one request's lines can be found together.
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

# Slack tokens (xoxb-, xapp-, xoxp-…), OpenAI keys (sk-…), webhook secrets (whsec_…) and bearer headers.
SECRET_PATTERN = re.compile(
    r"(xox[abposr]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+|sk-[A-Za-z0-9_-]*\*+[A-Za-z0-9]*|sk-[A-Za-z0-9_-]{8,}"
    r"|whsec_[A-Za-z0-9+/=]+|(?i:bearer)\s+[A-Za-z0-9._~+/=-]+"
    # Entra ID access tokens are JWTs: header.payload.signature, each base64url, the header {"…
    r"|eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)"
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


class JsonLines(logging.Formatter):
    """One JSON object a line: time (UTC), level, logger, message, request_id, exception."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        current = request_id.get()
        if current:
            line["request_id"] = current
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(self.formatException(record.exc_info))
        if record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False)


class TextWithRequestId(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        current = request_id.get()
        return f"{text} [request {current}]" if current else text


def configure_logging(level: str, log_format: Literal["json", "text"] = "text") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonLines() if log_format == "json" else TextWithRequestId("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
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
