"""Provider-neutral types: what the bot knows of models, jobs, events and errors, whoever hosts them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from bot.errors import ProviderRefused
from bot.mrkdwn import escape
from bot.providers.capabilities import Capabilities
from bot.training.status import JobStatus


@dataclass(frozen=True)
class BaseModelInfo:
    """A base model that can be fine-tuned, and when it stops being trainable and answering."""

    id: str
    methods: tuple[str, ...]
    training_retires: date | None
    inference_retires: date | None

    def trainable_on(self, day: date) -> bool:
        return self.training_retires is None or day < self.training_retires


@dataclass(frozen=True)
class JobRequest:
    model: str
    training_file: str
    method: str
    hyperparameters: dict[str, Any]
    metadata: dict[str, str]
    validation_file: str | None = None
    suffix: str | None = None
    seed: int | None = None


@dataclass(frozen=True)
class ProviderJob:
    """A job as the provider reports it: a normalized status and the raw one, verbatim."""

    id: str
    status: JobStatus
    raw_status: str
    model: str
    created_at: datetime
    fine_tuned_model: str | None = None
    finished_at: datetime | None = None
    estimated_finish: datetime | None = None
    trained_tokens: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    result_files: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProviderEvent:
    id: str
    created_at: datetime
    level: str
    message: str
    type: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Checkpoint:
    id: str
    step: int
    model: str
    metrics: dict[str, float | None]


@dataclass(frozen=True)
class ChatUsage:
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class ChatEnd:
    """How a streamed answer ended: its usage (None when the host sent none) and whether it stopped at
    the token limit (``finish_reason: length``) rather than where the model meant to."""

    usage: ChatUsage | None
    cut_off: bool = False


class DeploymentPhase(StrEnum):
    DEPLOYING = "deploying"
    ACTIVE = "active"
    FAILED = "failed"
    GONE = "gone"  # no such deployment at the provider (deleted, or never made)


@dataclass(frozen=True)
class DeploymentState:
    """A deployment as the provider reports it, with the provider's own words for a failure."""

    name: str
    phase: DeploymentPhase
    raw_status: str = ""
    message: str = ""


class ProviderErrorKind(StrEnum):
    AUTH = "auth"
    MANAGEMENT_AUTH = "management_auth"
    ENTRA = "entra"  # azure-identity found no identity to get a token with
    TRAINING_CLOSED = "training_closed"
    CONTEXT_TOO_LONG = "context_too_long"
    QUOTA = "quota"
    RATE_LIMITED = "rate_limited"
    INVALID_FILE = "invalid_file"
    MODEL_UNAVAILABLE = "model_unavailable"
    BAD_REQUEST = "bad_request"
    NOT_FOUND = "not_found"
    OUTAGE = "outage"


# What a person can do about each kind of refusal, said after the provider's own words.
ADVICE = {
    ProviderErrorKind.AUTH: "An admin needs to check the provider key (OPENAI_API_KEY or AZURE_OPENAI_API_KEY).",
    ProviderErrorKind.MANAGEMENT_AUTH: (
        "An admin needs to give the bot an Entra ID token for Azure's management API: the provider's "
        "management_token, or azure-identity's credentials (README, Providers)."
    ),
    ProviderErrorKind.ENTRA: (
        "An admin needs to give the bot an identity at Azure (a managed identity, or AZURE_TENANT_ID, "
        "AZURE_CLIENT_ID and AZURE_CLIENT_SECRET) or the provider's api_key (README, Providers)."
    ),
    ProviderErrorKind.TRAINING_CLOSED: (
        "This organization can no longer create fine-tuning jobs at {host}: train on another provider "
        "(README, Providers, says how an admin adds one)."
    ),
    ProviderErrorKind.QUOTA: "The provider account is out of quota: add credit or raise its limit, then try again.",
    ProviderErrorKind.INVALID_FILE: "Fix the file as the message says and share it again.",
    ProviderErrorKind.MODEL_UNAVAILABLE: "Pick another base model with Train… on the report.",
    ProviderErrorKind.RATE_LIMITED: "The provider is busy even after several tries; wait a minute and try again.",
    ProviderErrorKind.OUTAGE: "The provider seems to be having trouble; try again in a few minutes.",
    ProviderErrorKind.BAD_REQUEST: "Change what the message points at and try again.",
    ProviderErrorKind.NOT_FOUND: "Try again with Train… on the report.",
}


class ProviderError(ProviderRefused):
    """A provider call that failed, with the provider's own words kept verbatim.

    ``ambiguous`` means the request may have been carried out anyway (a timeout, a dropped
    connection, a 5xx): callers that create things must look before they retry.
    """

    def __init__(self, kind: ProviderErrorKind, message: str, *, code: str | None = None, ambiguous: bool = False):
        super().__init__(message)
        self.kind = kind
        self.provider_message = message
        self.code = code
        self.ambiguous = ambiguous
        # Who refused, as people name it; the adapter sets it ("OpenAI", "Azure OpenAI").
        self.provider_label = "the provider"

    @property
    def advice(self) -> str:
        return ADVICE[self.kind].format(host=self.provider_label)

    @property
    def sentence(self) -> str:
        """The refusal as a person reads it: who refused, their words verbatim (escaped), what to do."""
        host = self.provider_label[:1].upper() + self.provider_label[1:]
        return f"{host} refused: “{escape(self.provider_message[:500])}” {self.advice}"


class FineTuneProvider(Protocol):
    """What the bot needs from a fine-tuning host. Every method raises ProviderError on failure."""

    name: str  # as configured, and as rows record it
    kind: str  # what the host is: openai, azure, compatible, sandbox
    label: str  # how the host is named to people, e.g. "OpenAI", "Azure OpenAI"
    capabilities: Capabilities

    async def list_base_models(self) -> list[BaseModelInfo]: ...

    async def upload_dataset(self, path: Path, *, filename: str, size: int) -> str:
        """Upload a training file (in parts when large); returns the file id once processed."""
        ...

    async def create_job(self, request: JobRequest) -> ProviderJob:
        """One attempt, without retries: the caller decides, after looking for the job by metadata."""
        ...

    async def find_jobs(self, *, metadata: dict[str, str]) -> list[ProviderJob]: ...

    async def get_job(self, job_id: str) -> ProviderJob: ...

    async def cancel_job(self, job_id: str) -> ProviderJob: ...

    async def pause_job(self, job_id: str) -> ProviderJob: ...

    async def resume_job(self, job_id: str) -> ProviderJob: ...

    async def events_since(self, job_id: str, *, last_seen: str | None) -> list[ProviderEvent]:
        """Events after ``last_seen``, oldest first, each once, whatever order the host lists them in.

        ``last_seen`` is opaque to the bot: the ``id`` of the last event this method returned."""
        ...

    async def checkpoints(self, job_id: str) -> list[Checkpoint]: ...

    async def file_content(self, file_id: str) -> bytes: ...

    async def model_shutdown(self, model: str) -> date | None: ...

    def published_shutdown(self, model: str) -> date | None:
        """The shutdown date published for ``model``'s base outside the API (the catalog), if this host follows it."""
        ...

    def chat_target(self, model: str) -> str:
        """The name a chat request uses: the model id, or its deployment name where the host deploys."""
        ...

    def stream_chat(
        self, *, model: str, messages: list[dict[str, str]], max_tokens: int, served_as: str | None = None
    ) -> AsyncIterator[str | ChatEnd]:
        """The answer piece by piece, then one ChatEnd; ``served_as`` is the model's deployment, if it has one."""
        ...

    async def complete_chat(
        self, *, model: str, messages: list[dict[str, str]], max_tokens: int, served_as: str | None = None
    ) -> tuple[str, ChatUsage]:
        """One whole answer and its token usage (prompt tokens too: an evaluation's cost is both)."""
        ...

    async def delete_model(self, model: str) -> None: ...

    async def deploy(self, *, model: str, base_model: str, name: str, job_id: str) -> DeploymentState:
        """Ask the provider to serve the fine-tune ``model`` (made from ``base_model`` by job ``job_id``) under
        ``name``."""
        ...

    async def deployment_state(self, name: str) -> DeploymentState: ...

    async def undeploy(self, name: str) -> None:
        """Stop serving ``name``; one already gone is not an error."""
        ...

    def verify_webhook(self, body: bytes, headers: dict[str, str], *, secret: str) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...
