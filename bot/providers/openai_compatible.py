"""One adapter for every host that speaks OpenAI's fine-tuning API, through the official SDK.

Variants: ``openai``; ``azure`` (``AsyncAzureOpenAI``: endpoint, api-version, api-key; deployment
names kept apart from fine-tuned model ids); ``compatible`` (any base URL); ``sandbox`` (the built-in
emulator). All run on the SDK's aiohttp transport.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, cast

import openai
from openai import AsyncAzureOpenAI, AsyncOpenAI, DefaultAioHttpClient
from openai.types.fine_tuning import FineTuningJob

from bot.logging import redact
from bot.models import catalog
from bot.providers.types import (
    BaseModelInfo,
    ChatUsage,
    Checkpoint,
    JobRequest,
    ProviderError,
    ProviderErrorKind,
    ProviderEvent,
    ProviderJob,
)
from bot.settings import Settings
from bot.training.status import JobStatus

logger = logging.getLogger(__name__)

UPLOAD_PART_BYTES = 64 * 1024 * 1024
# A job emits a metrics event per step; a first poll of a long job may page through many of them.
MAX_EVENT_PAGES = 50

RAW_STATUS = {
    "validating_files": JobStatus.VALIDATING,
    "queued": JobStatus.QUEUED,
    "running": JobStatus.RUNNING,
    "pausing": JobStatus.PAUSED,
    "paused": JobStatus.PAUSED,
    "succeeded": JobStatus.SUCCEEDED,
    "failed": JobStatus.FAILED,
    "cancelled": JobStatus.CANCELLED,
}
PROVIDER_LABELS = {
    "openai": "OpenAI",
    "azure": "Azure OpenAI",
    "compatible": "the OpenAI-compatible host",
    "sandbox": "the sandbox",
}


def _time(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _job(job: FineTuningJob) -> ProviderJob:
    """The SDK does not validate responses, so every field is read defensively."""
    raw = str(job.status or "")
    error = job.error
    hyper = job.hyperparameters.model_dump(exclude_none=True) if job.hyperparameters else {}
    method = getattr(job, "method", None)
    if method is not None and method.type:
        details = getattr(method, method.type, None)
        if details is not None and getattr(details, "hyperparameters", None) is not None:
            hyper = details.hyperparameters.model_dump(exclude_none=True)
    return ProviderJob(
        id=job.id,
        status=RAW_STATUS.get(raw, JobStatus.UNKNOWN),
        raw_status=raw,
        model=str(job.model or ""),
        created_at=_time(job.created_at) or datetime.now(UTC),
        fine_tuned_model=job.fine_tuned_model,
        finished_at=_time(job.finished_at),
        estimated_finish=_time(job.estimated_finish),
        trained_tokens=job.trained_tokens,
        error_code=error.code if error else None,
        error_message=error.message if error else None,
        hyperparameters=hyper,
        metadata=dict(job.metadata or {}),
        result_files=tuple(job.result_files or ()),
    )


def translate(error: openai.OpenAIError) -> ProviderError:
    """Map an SDK error to a kind the bot can explain, keeping the provider's message word for word."""
    body = getattr(error, "body", None)
    message = str(body.get("message")) if isinstance(body, dict) and body.get("message") else str(error)
    message = redact(message)  # providers echo part of a rejected key; none of it goes to Slack
    code = str(getattr(error, "code", None) or "") or None
    param = getattr(error, "param", None)
    if isinstance(error, openai.APITimeoutError | openai.APIConnectionError):
        return ProviderError(ProviderErrorKind.OUTAGE, message, ambiguous=True)
    if isinstance(error, openai.AuthenticationError | openai.PermissionDeniedError):
        return ProviderError(ProviderErrorKind.AUTH, message, code=code)
    if isinstance(error, openai.RateLimitError):
        kind = ProviderErrorKind.QUOTA if code == "insufficient_quota" else ProviderErrorKind.RATE_LIMITED
        return ProviderError(kind, message, code=code)
    if isinstance(error, openai.NotFoundError):
        return ProviderError(ProviderErrorKind.NOT_FOUND, message, code=code)
    if isinstance(error, openai.BadRequestError | openai.UnprocessableEntityError):
        if code == "context_length_exceeded":
            return ProviderError(ProviderErrorKind.CONTEXT_TOO_LONG, message, code=code)
        if code == "model_not_available" or param == "model":
            return ProviderError(ProviderErrorKind.MODEL_UNAVAILABLE, message, code=code)
        if code in ("invalid_file", "invalid_training_file") or param in ("training_file", "validation_file"):
            return ProviderError(ProviderErrorKind.INVALID_FILE, message, code=code)
        return ProviderError(ProviderErrorKind.BAD_REQUEST, message, code=code)
    if isinstance(error, openai.InternalServerError | openai.APIStatusError):
        return ProviderError(ProviderErrorKind.OUTAGE, message, code=code, ambiguous=True)
    return ProviderError(ProviderErrorKind.OUTAGE, message, ambiguous=True)


class OpenAICompatibleProvider:
    """The FineTuneProvider for OpenAI-shaped APIs."""

    def __init__(
        self, *, name: str, client: AsyncOpenAI, settings: Settings, observe: Callable[[str], None] | None = None
    ) -> None:
        self.name = name
        self.label = PROVIDER_LABELS.get(name, name)
        self.client = client
        self.settings = settings
        # Told each call's outcome ("ok" or the error's kind): the bot counts them for /metrics.
        self._observe = observe or (lambda _outcome: None)

    async def aclose(self) -> None:
        await self.client.close()

    async def _call(self, coroutine: Any) -> Any:
        try:
            result = await coroutine
        except openai.OpenAIError as error:
            translated = translate(error)
            translated.provider_label = self.label
            self._observe(translated.kind.value)
            raise translated from error
        self._observe("ok")
        return result

    def training_retires(self, model: str, inference_retires: date | None) -> date | None:
        """The last day to train: settings first, then OpenAI's end of fine-tuning (on OpenAI only), never
        after shutdown."""
        configured = self.settings.finetune_training_retirements.get(model)
        if configured is not None:
            return configured
        candidates = [day for day in (inference_retires,) if day is not None]
        if self.name == "openai":
            candidates.append(catalog.OPENAI_TRAINING_ENDS)
        return min(candidates) if candidates else None

    def published_shutdown(self, model: str) -> date | None:
        """The shutdown date the catalog publishes for ``model``'s base: OpenAI's calendar, which the
        built-in sandbox does not follow (it runs on any date, so the demo does too)."""
        if self.name == "sandbox":
            return None
        info = catalog.lookup(model)
        return info.inference_retires if info else None

    async def list_base_models(self) -> list[BaseModelInfo]:
        offered = self.settings.finetune_base_models or list(catalog.CATALOG)
        listed: dict[str, date | None] = {}
        async for model in await self._call(self.client.models.list()):
            shutdown = getattr(model, "shutdown_date", None)
            listed[model.id] = date.fromisoformat(shutdown) if shutdown else None
        models = []
        for model_id in offered:
            if model_id not in listed:
                continue
            info = catalog.lookup(model_id)
            inference = listed[model_id] or self.published_shutdown(model_id)
            methods = info.methods if info else ("supervised",)
            models.append(BaseModelInfo(model_id, methods, self.training_retires(model_id, inference), inference))
        return models

    async def upload_dataset(self, path: Path, *, filename: str, size: int) -> str:
        if size > self.settings.finetune_uploads_threshold_mb * 1024 * 1024:
            file_id = await self._upload_in_parts(path, filename=filename, size=size)
        else:
            with path.open("rb") as stream:
                created = await self._call(self.client.files.create(file=(filename, stream), purpose="fine-tune"))
            file_id = str(created.id)
        processed = await self._call(self.client.files.wait_for_processing(file_id, poll_interval=1.0))
        if getattr(processed, "status", None) == "error":
            raise ProviderError(
                ProviderErrorKind.INVALID_FILE, str(processed.status_details or f"{filename} could not be processed.")
            )
        return file_id

    async def _upload_in_parts(self, path: Path, *, filename: str, size: int) -> str:
        """The Uploads API: parts of at most 64 MB read one at a time, then completed with an md5."""
        upload = await self._call(
            self.client.uploads.create(
                bytes=size, filename=filename, mime_type="application/jsonl", purpose="fine-tune"
            )
        )
        checksum = hashlib.md5()
        part_ids = []
        with path.open("rb") as stream:
            while chunk := stream.read(UPLOAD_PART_BYTES):
                checksum.update(chunk)
                part = await self._call(self.client.uploads.parts.create(upload.id, data=chunk))
                part_ids.append(part.id)
        done = await self._call(self.client.uploads.complete(upload.id, part_ids=part_ids, md5=checksum.hexdigest()))
        if done.file is None:
            raise ProviderError(ProviderErrorKind.OUTAGE, f"The upload of {filename} did not complete.")
        return str(done.file.id)

    async def create_job(self, request: JobRequest) -> ProviderJob:
        method: dict[str, Any] = {"type": request.method, request.method: {"hyperparameters": request.hyperparameters}}
        arguments: dict[str, Any] = {
            "model": request.model,
            "training_file": request.training_file,
            "method": method,
            "metadata": request.metadata,
        }
        if request.validation_file:
            arguments["validation_file"] = request.validation_file
        if request.suffix:
            arguments["suffix"] = request.suffix
        if request.seed is not None:
            arguments["seed"] = request.seed
        # No SDK retries here: a retried POST after a timeout can create a second job (openai.md §1.4).
        client = self.client.with_options(max_retries=0)
        return _job(await self._call(client.fine_tuning.jobs.create(**arguments)))

    async def find_jobs(self, *, metadata: dict[str, str]) -> list[ProviderJob]:
        found = []
        async for job in await self._call(self.client.fine_tuning.jobs.list(metadata=metadata, limit=20)):
            found.append(_job(job))
            if len(found) >= 100:
                break
        return found

    async def get_job(self, job_id: str) -> ProviderJob:
        return _job(await self._call(self.client.fine_tuning.jobs.retrieve(job_id)))

    async def cancel_job(self, job_id: str) -> ProviderJob:
        return _job(await self._call(self.client.fine_tuning.jobs.cancel(job_id)))

    async def pause_job(self, job_id: str) -> ProviderJob:
        return _job(await self._call(self.client.fine_tuning.jobs.pause(job_id)))

    async def resume_job(self, job_id: str) -> ProviderJob:
        return _job(await self._call(self.client.fine_tuning.jobs.resume(job_id)))

    async def events_since(self, job_id: str, *, last_seen: str | None) -> list[ProviderEvent]:
        """Events newer than ``last_seen``, oldest first (the API lists newest first, in pages)."""
        newer: list[ProviderEvent] = []
        page = await self._call(self.client.fine_tuning.jobs.list_events(job_id, limit=100))
        for _ in range(MAX_EVENT_PAGES):
            for event in page.data:
                if event.id == last_seen:
                    return newer[::-1]
                newer.append(
                    ProviderEvent(
                        id=event.id,
                        created_at=_time(event.created_at) or datetime.now(UTC),
                        level=str(event.level or "info"),
                        message=str(event.message or ""),
                        type=str(event.type or "message"),
                        data=event.data if isinstance(event.data, dict) else {},
                    )
                )
            if not page.has_next_page():
                break
            page = await self._call(page.get_next_page())
        return newer[::-1]

    async def checkpoints(self, job_id: str) -> list[Checkpoint]:
        page = await self._call(self.client.fine_tuning.jobs.checkpoints.list(job_id, limit=10))
        found = []
        for checkpoint in page.data:
            metrics = checkpoint.metrics.model_dump() if checkpoint.metrics else {}
            found.append(
                Checkpoint(
                    id=checkpoint.id,
                    step=int(checkpoint.step_number or 0),
                    model=str(checkpoint.fine_tuned_model_checkpoint or ""),
                    metrics=metrics,
                )
            )
        return found

    async def file_content(self, file_id: str) -> bytes:
        response = await self._call(self.client.files.content(file_id))
        return bytes(response.read())

    def chat_target(self, model: str) -> str:
        """What to call the model in a chat request: Azure serves a fine-tune under its deployment name."""
        if self.name == "azure":
            return self.settings.azure_openai_deployments.get(model, model)
        return model

    async def stream_chat(
        self, *, model: str, messages: list[dict[str, str]], max_tokens: int
    ) -> AsyncIterator[str | ChatUsage]:
        """The answer as it arrives, piece by piece, then its token usage."""
        request: Any = self.client.chat.completions.create(
            model=self.chat_target(model),
            messages=cast(Any, messages),
            stream=True,
            stream_options={"include_usage": True},
            max_completion_tokens=max_tokens,
        )
        stream = await self._call(request)
        try:
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content
                if chunk.usage is not None:
                    yield ChatUsage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
        except openai.OpenAIError as error:
            raise translate(error) from error

    async def model_shutdown(self, model: str) -> date | None:
        """The provider's shutdown date for a model, when it gives one."""
        found = await self._call(self.client.models.retrieve(model))
        shutdown = getattr(found, "shutdown_date", None)
        return date.fromisoformat(shutdown) if shutdown else None

    async def complete_chat(
        self, *, model: str, messages: list[dict[str, str]], max_tokens: int
    ) -> tuple[str, ChatUsage]:
        """One whole answer (for recordings and evaluations, where nobody watches it arrive) and its usage."""
        request: Any = self.client.chat.completions.create(
            model=self.chat_target(model), messages=cast(Any, messages), max_completion_tokens=max_tokens
        )
        completion = await self._call(request)
        text = completion.choices[0].message.content if completion.choices else ""
        usage = completion.usage
        return str(text or ""), ChatUsage(
            int(usage.prompt_tokens or 0) if usage else 0, int(usage.completion_tokens or 0) if usage else 0
        )

    async def delete_model(self, model: str) -> None:
        await self._call(self.client.models.delete(model))

    def verify_webhook(self, body: bytes, headers: dict[str, str], *, secret: str) -> dict[str, Any]:
        """Check a Standard Webhooks signature (300 s tolerance); returns the event, raises ProviderError."""
        try:
            self.client.webhooks.verify_signature(payload=body, headers=headers, secret=secret, tolerance=300)
        except (openai.InvalidWebhookSignatureError, ValueError) as error:
            raise ProviderError(ProviderErrorKind.BAD_REQUEST, str(error)) from None
        event = json.loads(body)
        if not isinstance(event, dict):
            raise ProviderError(ProviderErrorKind.BAD_REQUEST, "The webhook body is not a JSON object.")
        return event


def build_provider(
    settings: Settings, *, base_url: str | None = None, observe: Callable[[str], None] | None = None
) -> OpenAICompatibleProvider:
    """The configured provider; ``base_url`` overrides OPENAI_BASE_URL (the sandbox's own emulator)."""
    http_client = DefaultAioHttpClient()
    if settings.finetune_provider == "azure":
        key = settings.azure_openai_api_key.get_secret_value() if settings.azure_openai_api_key else None
        client: AsyncOpenAI = AsyncAzureOpenAI(
            azure_endpoint=base_url or settings.azure_openai_endpoint or "",
            api_key=key,
            api_version=settings.openai_api_version,
            max_retries=3,
            http_client=http_client,
        )
    else:
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        client = AsyncOpenAI(
            api_key=key or "sandbox",
            base_url=base_url or settings.openai_base_url,
            max_retries=3,
            http_client=http_client,
        )
    return OpenAICompatibleProvider(name=settings.finetune_provider, client=client, settings=settings, observe=observe)
