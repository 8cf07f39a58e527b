"""The bot's own copy of each dataset: downloaded and validated here, content-addressed on disk.

The bot never trusts a URL from the event: it asks files.info, downloads only from Slack's file
host (or the configured emulator) with the bot token, streams to disk under the size cap while
hashing, and keeps its own content-addressed copy, so the data outlives any provider."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from bot.datasets import views
from bot.datasets.report import Report
from bot.datasets.validate import PARALLEL_MIN_BYTES, ValidationOptions, validate_path
from bot.errors import UserFacingError
from bot.mrkdwn import escape
from bot.references import dataset_path
from bot.services import Services

SLACK_FILE_HOSTS = ("files.slack.com",)


DOWNLOAD_CHUNK = 1 << 20


class IntakeError(UserFacingError):
    """Something about the shared file that its owner can fix; the sentence goes to the file's thread.

    ``retry``: the sentence says to share the file again, so the file is not marked answered."""

    def __init__(self, sentence: str, *, retry: bool = False) -> None:
        super().__init__(sentence)
        self.retry = retry


def allowed_hosts(services: Services) -> set[str]:
    hosts = set(SLACK_FILE_HOSTS)
    api_host = urlsplit(services.settings.slack_api_url).hostname
    if api_host and api_host != "slack.com":  # the emulator serves its own files
        hosts.add(api_host)
    return hosts


def validation_options(services: Services, *, model: str | None = None, method: str | None = None) -> ValidationOptions:
    settings = services.settings
    return ValidationOptions(
        model=model or settings.finetune_default_model,
        method=method,
        max_bytes=settings.max_file_bytes,
        prices=settings.finetune_training_prices,
    )


async def run_validation(services: Services, path: Path, size: int, options: ValidationOptions) -> Report:
    """Validate off the event loop: a thread for small files, a separate process for large ones."""
    async with services.runtime.validation_slots:
        if size < PARALLEL_MIN_BYTES:
            return await asyncio.to_thread(validate_path, path, options)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(services.validation_pool(), validate_path, path, options)


async def download(services: Services, url: str, name: str, *, team_id: str) -> tuple[Path, str, int]:
    """Stream a Slack file to the bot's store; returns (path, sha256, bytes)."""
    settings = services.settings
    host = urlsplit(url).hostname or ""
    if not url or host not in allowed_hosts(services):
        raise IntakeError(
            f"I could not download `{escape(name)}`: its link does not point to Slack's file host, so I did "
            "not follow it."
        )
    token = await services.bot_token(team_id)
    partial = settings.finetune_data_dir / "incoming" / f"{uuid.uuid4().hex}.part"
    partial.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(url, headers={"Authorization": f"Bearer {token}"}, allow_redirects=False) as response,
        ):
            if response.status != 200 or response.content_type == "text/html":
                raise IntakeError(views.download_refused_text(name, response.status), retry=True)
            with partial.open("wb") as sink:
                async for chunk in response.content.iter_chunked(DOWNLOAD_CHUNK):
                    size += len(chunk)
                    if size > settings.max_file_bytes:
                        raise IntakeError(views.too_large_text(name, size, settings.max_file_bytes))
                    digest.update(chunk)
                    await asyncio.to_thread(sink.write, chunk)
        sha256 = digest.hexdigest()
        final = dataset_path(services, sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        partial.replace(final)
        return final, sha256, size
    except aiohttp.ClientError as error:
        raise IntakeError(
            f"I could not download `{escape(name)}` from Slack ({type(error).__name__}); please share it again.",
            retry=True,
        ) from None
    finally:
        partial.unlink(missing_ok=True)


async def keep_bytes(services: Services, content: bytes) -> tuple[Path, str]:
    """The bot's own content-addressed copy of ``content`` (written once, whole or not at all): its path and sha256."""
    sha256 = hashlib.sha256(content).hexdigest()
    path = dataset_path(services, sha256)
    if not path.exists():
        await asyncio.to_thread(_write_whole, path, content)
    return path, sha256


def _write_whole(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{uuid.uuid4().hex}.part")
    partial.write_bytes(content)
    partial.replace(path)
