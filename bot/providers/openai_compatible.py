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
from datetime import date
from pathlib import Path
from typing import Any, cast

import openai
from openai import AsyncAzureOpenAI, AsyncOpenAI, DefaultAioHttpClient

from bot.clock import Clock, SystemClock
from bot.models import catalog
from bot.providers.azure_management import DATA_PLANE_SCOPE, AzureManagement, EntraTokens
from bot.providers.calendar import Calendar
from bot.providers.capabilities import CAPABILITIES, Capabilities, LearningRateStyle, provider_label
from bot.providers.nebius import NebiusDeployments
from bot.providers.openai_wire import (
    after_cursor,
    answer_and_usage,
    checkpoints_of,
    event_of,
    file_object,
    first_items,
    job_of,
    reported_dates,
    translate,
)
from bot.providers.types import (
    BaseModelInfo,
    ChatEnd,
    ChatUsage,
    Checkpoint,
    DeploymentState,
    JobRequest,
    ProviderError,
    ProviderErrorKind,
    ProviderEvent,
    ProviderJob,
)
from bot.settings import NEBIUS_API, ProviderConfig, Settings

logger = logging.getLogger(__name__)

UPLOAD_PART_BYTES = 64 * 1024 * 1024
# How long an uploaded file may stay "uploaded" (still being processed) before the launch gives up.
FILE_PROCESSING_WAIT_SECONDS = 300.0
FILE_POLL_MAX_SECONDS = 15.0
# A job emits a metrics event per step; a first poll of a long job may page through many of them.
MAX_EVENT_PAGES = 50

# Azure fine-tunes these with SFT only, although OpenAI offers DPO on them too (providers.md §1.1).
AZURE_SUPERVISED_ONLY = ("gpt-4o-mini-2024-07-18",)
# Nebius tunes some bases under another id than it serves them under (providers.md §1.2).
NEBIUS_SERVING_IDS = {
    "meta-llama/Llama-3.1-8B-Instruct": "meta-llama/Meta-Llama-3.1-8B-Instruct",
}
# Nebius trains LoRA adapters with these unless the form says otherwise (its cookbook's example job).
NEBIUS_FIXED_HYPERPARAMETERS = {"lora": True, "packing": True}


class OpenAICompatibleProvider:
    """The FineTuneProvider for OpenAI-shaped APIs."""

    def __init__(
        self,
        *,
        name: str,
        config: ProviderConfig,
        client: AsyncOpenAI,
        settings: Settings,
        clock: Clock | None = None,
        observe: Callable[[str], None] | None = None,
        entra: EntraTokens | None = None,
    ) -> None:
        self.name = name
        self.kind: str = config.kind
        self.config = config
        self.label = provider_label(name, config)
        self.capabilities: Capabilities = CAPABILITIES[config.kind]
        self.client = client
        self.settings = settings
        self.clock = clock or SystemClock()
        self.calendar = Calendar(
            kind=config.kind,
            name=name,
            training_overrides=settings.finetune_training_retirements,
            inference_overrides=settings.finetune_inference_retirements,
        )
        # Entra ID tokens (Azure without an api_key, or deploying without a management_token), made on first use.
        self.entra = entra or EntraTokens(label=self.label)
        # Azure's management API, where the settings say which account the bot deploys in.
        self._azure = (
            AzureManagement(config, label=self.label, entra=self.entra, observe=lambda outcome: self._observe(outcome))
            if config.kind == "azure" and config.deploys_from_bot
            else None
        )
        # Told each call's outcome ("ok" or the error's kind): the bot counts them for /metrics.
        self._observe = observe or (lambda _outcome: None)

    async def aclose(self) -> None:
        await self.client.close()
        if self._azure is not None:
            await self._azure.aclose()
        await self.entra.aclose()

    async def _call(
        self,
        coroutine: Any,
        *,
        read: Callable[[Any], Any] = lambda answer: answer,
        forbidden: ProviderErrorKind = ProviderErrorKind.AUTH,
    ) -> Any:
        """Await one SDK call and ``read`` its answer; every failure, a garbled answer included, comes out as
        a ProviderError. ``forbidden`` is what a 403 means for this call (on job create: fine-tuning closed
        to the organization)."""
        try:
            result = read(await coroutine)
        except Exception as error:  # the seam's promise: only ProviderError crosses it
            translated = translate(error)
            if isinstance(error, openai.PermissionDeniedError):
                translated.kind = forbidden
            translated.provider_label = self.label
            self._observe(translated.kind.value)
            raise translated from error
        self._observe("ok")
        return result

    def published_shutdown(self, model: str) -> date | None:
        """The day ``model`` stops answering here by the settings or the provider's published schedule."""
        return self.calendar.inference_retires(model)

    async def list_base_models(self) -> list[BaseModelInfo]:
        offered = self.config.base_models or list(catalog.CATALOG)
        listing = first_items(self.client.models.list(), 10_000)
        listed: dict[str, tuple[date | None, date | None]] = await self._call(
            listing, read=lambda found: {str(model.id): reported_dates(model) for model in found}
        )
        models = []
        for model_id in offered:
            if model_id not in listed:
                continue
            reported_training, reported_inference = listed[model_id]
            inference = self.calendar.inference_retires(model_id, reported=reported_inference)
            training = self.calendar.training_retires(model_id, reported=reported_training, inference=inference)
            models.append(BaseModelInfo(model_id, self._methods(model_id), training, inference))
        return models

    def _methods(self, model: str) -> tuple[str, ...]:
        info = catalog.lookup(model)
        methods = info.methods if info else ("supervised",)
        if self.kind == "azure" and catalog.base_model_id(model) in AZURE_SUPERVISED_ONLY:
            return ("supervised",)
        return methods

    async def upload_dataset(self, path: Path, *, filename: str, size: int) -> str:
        if size > self.settings.finetune_uploads_threshold_mb * 1024 * 1024:
            file_id = await self._upload_in_parts(path, filename=filename, size=size)
        else:
            with path.open("rb") as stream:
                created = await self._call(self.client.files.create(file=(filename, stream), purpose="fine-tune"))
            file_id = str(created.id)
        await self._processed(file_id, filename=filename)
        return file_id

    async def _processed(self, file_id: str, *, filename: str) -> None:
        """Wait, a bounded time, until the host has processed the file. A host that gives no status
        (None or missing, as Nebius does) has nothing more to do; the SDK's own wait would poll 30 minutes."""
        waited, delay = 0.0, 1.0
        while True:
            found = await self._call(self.client.files.retrieve(file_id), read=file_object)
            status = getattr(found, "status", None)
            if status in (None, "processed"):
                return
            if status in ("error", "deleted"):
                details = getattr(found, "status_details", None)
                error = ProviderError(
                    ProviderErrorKind.INVALID_FILE, str(details or f"{filename} could not be processed.")
                )
                error.provider_label = self.label
                raise error
            if waited >= FILE_PROCESSING_WAIT_SECONDS:
                error = ProviderError(
                    ProviderErrorKind.OUTAGE,
                    f"{filename} was still being processed (status “{status}”) after "
                    f"{FILE_PROCESSING_WAIT_SECONDS / 60:.0f} minutes.",
                )
                error.provider_label = self.label
                raise error
            await self.clock.sleep(delay)
            waited += delay
            delay = min(delay * 2, FILE_POLL_MAX_SECONDS)

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
        arguments: dict[str, Any] = {
            "model": request.model,
            "training_file": request.training_file,
            "metadata": request.metadata,
        }
        if self.capabilities.learning_rate is LearningRateStyle.ABSOLUTE:
            arguments["hyperparameters"] = self._top_level_hyperparameters(request.hyperparameters)
        else:
            arguments["method"] = {"type": request.method, request.method: {"hyperparameters": request.hyperparameters}}
        if request.validation_file:
            arguments["validation_file"] = request.validation_file
        if request.suffix:
            arguments["suffix"] = request.suffix
        if request.seed is not None:
            arguments["seed"] = request.seed
        if self.kind == "azure":
            arguments["extra_body"] = {"trainingType": self.config.training_type}
        # No SDK retries here: a retried POST after a timeout can create a second job (openai.md §1.4).
        client = self.client.with_options(max_retries=0)
        created = client.fine_tuning.jobs.create(**arguments)
        return cast(ProviderJob, await self._call(created, read=job_of, forbidden=ProviderErrorKind.TRAINING_CLOSED))

    def _top_level_hyperparameters(self, chosen: dict[str, Any]) -> dict[str, Any]:
        """Nebius's shape: every hyperparameter beside the job (no ``method`` block), the absolute rate in
        ``learning_rate_multiplier`` as its API reads it, LoRA and packing on; "auto" is left to the host."""
        values = {name: value for name, value in chosen.items() if value != "auto"}
        if "learning_rate" in values:
            values["learning_rate_multiplier"] = values.pop("learning_rate")
        return {**NEBIUS_FIXED_HYPERPARAMETERS, **values}

    async def find_jobs(self, *, metadata: dict[str, str]) -> list[ProviderJob]:
        """Jobs carrying all of ``metadata``; a host that cannot filter by it is listed and filtered here."""
        searched = metadata if self.capabilities.metadata_search else openai.omit
        jobs = first_items(self.client.fine_tuning.jobs.list(limit=20, metadata=searched), 100)
        found = cast(list[ProviderJob], await self._call(jobs, read=lambda listed: [job_of(job) for job in listed]))
        return [job for job in found if all(job.metadata.get(key) == value for key, value in metadata.items())]

    async def get_job(self, job_id: str) -> ProviderJob:
        return cast(ProviderJob, await self._call(self.client.fine_tuning.jobs.retrieve(job_id), read=job_of))

    async def cancel_job(self, job_id: str) -> ProviderJob:
        return cast(ProviderJob, await self._call(self.client.fine_tuning.jobs.cancel(job_id), read=job_of))

    async def pause_job(self, job_id: str) -> ProviderJob:
        return cast(ProviderJob, await self._call(self.client.fine_tuning.jobs.pause(job_id), read=job_of))

    async def resume_job(self, job_id: str) -> ProviderJob:
        return cast(ProviderJob, await self._call(self.client.fine_tuning.jobs.resume(job_id), read=job_of))

    async def events_since(self, job_id: str, *, last_seen: str | None) -> list[ProviderEvent]:
        """Events after the cursor ``last_seen`` (the newest event id seen), oldest first, each once.

        OpenAI lists newest first, so paging stops at the cursor; a host that lists oldest first is
        read to its end (the newest come last), and whichever order a page is in, the result is sorted
        by time and deduplicated by id."""
        listed = await self._call(self._listed_events(job_id, last_seen))
        return after_cursor(listed, last_seen)

    async def _listed_events(self, job_id: str, last_seen: str | None) -> list[ProviderEvent]:
        listed: list[ProviderEvent] = []
        page = await self.client.fine_tuning.jobs.list_events(job_id, limit=100)
        for _ in range(MAX_EVENT_PAGES):
            listed += [event_of(event) for event in page.data]
            newest_first = len(listed) < 2 or listed[0].created_at >= listed[-1].created_at
            if newest_first and any(event.id == last_seen for event in listed):
                break
            if not page.has_next_page():
                break
            page = await page.get_next_page()
        return listed

    async def checkpoints(self, job_id: str) -> list[Checkpoint]:
        """The job's checkpoints; none on a host without the route (checkpoints are a bonus, not the result)."""
        listing = self.client.fine_tuning.jobs.checkpoints.list(job_id, limit=10)
        try:
            return cast(list[Checkpoint], await self._call(listing, read=checkpoints_of))
        except ProviderError as error:
            if error.kind == ProviderErrorKind.NOT_FOUND:
                return []
            raise

    async def file_content(self, file_id: str) -> bytes:
        return cast(
            bytes, await self._call(self.client.files.content(file_id), read=lambda answer: bytes(answer.read()))
        )

    def chat_target(self, model: str) -> str:
        """What to call the model in a chat request when no deployment of the bot's names it: a deployment
        made by hand (Azure's ``deployments`` setting), or the id a base is served under (Nebius)."""
        if model in self.config.deployments:
            return self.config.deployments[model]
        served = {**(NEBIUS_SERVING_IDS if self.kind == "nebius" else {}), **self.config.serving_ids}
        return served.get(model, model)

    async def stream_chat(
        self, *, model: str, messages: list[dict[str, str]], max_tokens: int, served_as: str | None = None
    ) -> AsyncIterator[str | ChatEnd]:
        """The answer as it arrives, piece by piece, then how it ended: its token usage, and whether it was
        cut off at ``max_tokens``."""
        request: Any = self.client.chat.completions.create(
            model=served_as or self.chat_target(model),
            messages=cast(Any, messages),
            stream=True,
            stream_options={"include_usage": True},
            max_completion_tokens=max_tokens,
        )
        stream = await self._call(request)
        usage: ChatUsage | None = None
        finish_reason: str | None = None
        try:
            async for chunk in stream:
                if chunk.choices:
                    choice = chunk.choices[0]
                    finish_reason = choice.finish_reason or finish_reason
                    if choice.delta and choice.delta.content:
                        yield choice.delta.content
                if chunk.usage is not None:
                    usage = ChatUsage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
        except Exception as error:  # as in _call: only ProviderError crosses the seam
            translated = translate(error)
            translated.provider_label = self.label
            raise translated from error
        yield ChatEnd(usage=usage, cut_off=finish_reason == "length")

    async def model_shutdown(self, model: str) -> date | None:
        """The provider's shutdown date for a model, when it gives one."""
        reported = await self._call(self.client.models.retrieve(model), read=reported_dates)
        return cast(date | None, reported[1])

    async def complete_chat(
        self, *, model: str, messages: list[dict[str, str]], max_tokens: int, served_as: str | None = None
    ) -> tuple[str, ChatUsage]:
        """One whole answer (for recordings and evaluations, where nobody watches it arrive) and its usage."""
        request: Any = self.client.chat.completions.create(
            model=served_as or self.chat_target(model), messages=cast(Any, messages), max_completion_tokens=max_tokens
        )
        return cast(tuple[str, ChatUsage], await self._call(request, read=answer_and_usage))

    async def delete_model(self, model: str) -> None:
        await self._call(self.client.models.delete(model))

    # --- deployments: Nebius's /v0/models, Azure's management API ---

    async def deploy(self, *, model: str, base_model: str, name: str, job_id: str) -> DeploymentState:
        if self.kind == "nebius":
            found = await self.checkpoints(job_id)
            newest = max(found, key=lambda checkpoint: checkpoint.step) if found else None
            source = f"{job_id}:{newest.id}" if newest else job_id
            return await NebiusDeployments(self.client, self._call).deploy(
                name=name, base_model=base_model, source=source
            )
        return await self._management().deploy(model=model, name=name)

    async def deployment_state(self, name: str) -> DeploymentState:
        if self.kind == "nebius":
            return await NebiusDeployments(self.client, self._call).state(name)
        return await self._management().state(name)

    async def undeploy(self, name: str) -> None:
        if self.kind == "nebius":
            await NebiusDeployments(self.client, self._call).undeploy(name)
            return
        await self._management().undeploy(name)

    def _management(self) -> AzureManagement:
        """Azure's management API, where the bot may deploy; otherwise the refusal that says why not."""
        if self._azure is not None:
            return self._azure
        if self.kind == "azure":
            message = (
                "Deployments at Azure OpenAI are made by hand here: an admin deploys the model in the Azure portal "
                "and lists it in the provider's deployments, or sets subscription_id, resource_group and account "
                "so that the bot deploys it."
            )
        else:
            message = f"{self.label} serves fine-tuned models without a deployment."
        error = ProviderError(ProviderErrorKind.BAD_REQUEST, message)
        error.provider_label = self.label
        raise error

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
    name: str,
    config: ProviderConfig,
    settings: Settings,
    *,
    clock: Clock | None = None,
    observe: Callable[[str], None] | None = None,
) -> OpenAICompatibleProvider:
    """The adapter for one configured provider, on the SDK's aiohttp transport."""
    http_client = DefaultAioHttpClient()
    key = config.api_key.get_secret_value() if config.api_key else None
    entra = EntraTokens(label=provider_label(name, config))
    if config.kind == "azure" and config.api_version == "v1":
        # Azure's v1 API: OpenAI's own paths under /openai/v1/, no api-version, the deployment as the model.
        client: AsyncOpenAI = AsyncOpenAI(
            base_url=f"{(config.base_url or '').rstrip('/')}/openai/v1/",
            api_key=key or entra.provider(DATA_PLANE_SCOPE),
            max_retries=3,
            http_client=http_client,
        )
    elif config.kind == "azure":
        client = AsyncAzureOpenAI(
            azure_endpoint=config.base_url or "",
            api_version=config.api_version,
            max_retries=3,
            http_client=http_client,
            **({"api_key": key} if key else {"azure_ad_token_provider": entra.provider(DATA_PLANE_SCOPE)}),
        )
    else:
        base_url = config.base_url or (NEBIUS_API if config.kind == "nebius" else None)
        client = AsyncOpenAI(api_key=key or "sandbox", base_url=base_url, max_retries=3, http_client=http_client)
    return OpenAICompatibleProvider(
        name=name, config=config, client=client, settings=settings, clock=clock, observe=observe, entra=entra
    )
