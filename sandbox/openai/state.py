"""What the emulated OpenAI account is made of: its base models, files and uploads, fine-tuning jobs and
the models they made, the virtual clock tests advance by hand, and the faults to inject.

Nothing here imports the bot: it is the outside world."""

from __future__ import annotations

import builtins
import dataclasses
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

FILE_LIMIT_BYTES = 512 * 1024 * 1024


UPLOAD_LIMIT_BYTES = 8 * 1024**3


PART_LIMIT_BYTES = 64 * 1024 * 1024


MIN_EXAMPLES = 10


ORGANIZATION = "org-sandbox"


ORG_SLUG = "sandbox"


# Seconds of virtual time each phase takes.
VALIDATION_SECONDS = 20


QUEUE_SECONDS = 40


STEP_SECONDS = 6


METRICS_EVERY_STEPS = 1


@dataclass(frozen=True)
class BaseModel:
    id: str
    created: int
    owned_by: str = "system"
    shutdown_date: str | None = None
    fine_tunable: bool = True
    methods: tuple[str, ...] = ("supervised",)
    context_window: int = 128_000
    # The last day it can be fine-tuned, where the host says so apart from its shutdown (Azure).
    fine_tune_until: str | None = None


DEFAULT_MODELS = (
    BaseModel("gpt-4o-mini-2024-07-18", 1721172741, shutdown_date="2027-01-14", methods=("supervised", "dpo")),
    BaseModel("gpt-4o-2024-08-06", 1722814719, shutdown_date="2027-01-14", methods=("supervised", "dpo")),
    BaseModel("gpt-4.1-2025-04-14", 1744316542, shutdown_date="2027-01-14", methods=("supervised", "dpo")),
    BaseModel("gpt-4.1-mini-2025-04-14", 1744317547, shutdown_date="2027-01-14", methods=("supervised", "dpo")),
    BaseModel("gpt-4.1-nano-2025-04-14", 1744321025, shutdown_date="2026-10-23", methods=("supervised", "dpo")),
    BaseModel("gpt-3.5-turbo-0125", 1706048358, shutdown_date="2026-10-23", context_window=16_385),
    BaseModel("gpt-5.2", 1764000000, fine_tunable=False, context_window=400_000),
)


# The built-in sandbox's own offer: the same models on no provider's calendar, so the demo and a bot
# running on the sandbox train and chat on any date. DEFAULT_MODELS are OpenAI's, with its dates.
SANDBOX_MODELS = tuple(dataclasses.replace(model, shutdown_date=None) for model in DEFAULT_MODELS)


# An Azure OpenAI resource's fine-tunable models, on Azure's own calendar (providers.md §1.1): training
# until April 2027 and the fine-tunes' deployments until October; gpt-4o-mini takes SFT only.
AZURE_MODELS = (
    BaseModel("gpt-4o-mini-2024-07-18", 1721172741, shutdown_date="2027-10-01", fine_tune_until="2027-04-01"),
    BaseModel(
        "gpt-4o-2024-08-06",
        1722814719,
        shutdown_date="2027-10-01",
        fine_tune_until="2027-04-01",
        methods=("supervised", "dpo"),
    ),
    BaseModel(
        "gpt-4.1-2025-04-14",
        1744316542,
        shutdown_date="2027-10-14",
        fine_tune_until="2027-04-14",
        methods=("supervised", "dpo"),
    ),
    BaseModel(
        "gpt-4.1-mini-2025-04-14",
        1744317547,
        shutdown_date="2027-10-14",
        fine_tune_until="2027-04-14",
        methods=("supervised", "dpo"),
    ),
)


# A Nebius Token Factory project (providers.md §1.2): bases tuned under one id and served under another
# (the serving ids answer chat but cannot be tuned), no calendar.
NEBIUS_MODELS = (
    BaseModel("meta-llama/Llama-3.1-8B-Instruct", 1721692800, owned_by="nebius", context_window=131_072),
    BaseModel("meta-llama/Llama-3.3-70B-Instruct", 1733443200, owned_by="nebius", context_window=131_072),
    BaseModel(
        "meta-llama/Meta-Llama-3.1-8B-Instruct",
        1721692800,
        owned_by="nebius",
        fine_tunable=False,
        context_window=131_072,
    ),
)
# Tuning id -> the id it answers chat under; a tuning id that is not also a serving id gets a 404 in chat.
NEBIUS_SERVING_IDS = {
    "meta-llama/Llama-3.1-8B-Instruct": "meta-llama/Meta-Llama-3.1-8B-Instruct",
}
# Seconds of virtual time a LoRA deployment (POST /v0/models) takes to become active.
NEBIUS_DEPLOY_SECONDS = 30


# OpenAI accepts no new fine-tuning jobs from this day: a 403 on create (providers.md §0, §4.1).
OPENAI_FINE_TUNING_CLOSES = "2027-01-06"


ALIASES = {"gpt-4o-mini": "gpt-4o-mini-2024-07-18", "gpt-4o": "gpt-4o-2024-08-06", "gpt-4.1": "gpt-4.1-2025-04-14"}


class ApiError(Exception):
    """Answered with OpenAI's error body ``{"error": {message, type, param, code}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers or {}


class SandboxClock:
    """Virtual time: ``advance`` moves it by hand; ``speed`` > 0 also lets it run faster than real time."""

    def __init__(self, start: float = 1795251600.0, speed: float = 0.0) -> None:
        self._start = start
        self._offset = 0.0
        self._real_start = time.monotonic()
        self.speed = speed

    def now(self) -> float:
        return self._start + self._offset + (time.monotonic() - self._real_start) * self.speed

    def advance(self, seconds: float) -> None:
        self._offset += seconds


@dataclass
class FaultRule:
    """Per-endpoint faults: a share of 429s and 500s (seeded, so runs repeat) and a delay."""

    rate_429: float = 0.0
    rate_500: float = 0.0
    delay_seconds: float = 0.0
    retry_after_ms: int = 20
    times: int | None = None  # at most this many faults, then the endpoint behaves
    # Fail after doing the work: the answer is lost but the job exists (a timeout seen from the client).
    after_processing: bool = False
    # Answer 200 with an HTML page instead of JSON, as a gateway in front of a host does when it breaks.
    html_page: bool = False
    random: random.Random = field(default_factory=lambda: random.Random(7))


@dataclass
class HostQuirks:
    """Where real OpenAI-compatible hosts depart from OpenAI (providers.md §1.2, §4.1), one switch each."""

    # What a file reports as its status: Nebius-like hosts give none (None); "uploaded" never finishes.
    file_status: str | None = "processed"
    events_oldest_first: bool = False
    # Accepts metadata[...] on the job list and lists every job anyway.
    ignores_metadata_filter: bool = False
    # No /fine_tuning/jobs/{id}/checkpoints route at all: a framework's bare 404.
    no_checkpoints: bool = False
    # Fine-tuning closed to this organization (OpenAI from 2027-01-06): 403 on create.
    fine_tuning_closed: bool = False
    # The account is out of credit: 429 insufficient_quota on create.
    out_of_quota: bool = False


@dataclass
class NebiusDeployment:
    """A fine-tune served under ``name`` (POST /v0/models), active once its time has come."""

    name: str
    base_model: str
    source: str
    model: str  # the fine-tuned model it serves
    created_at: int
    status: str = "deploying"
    active_at: int = 0

    def to_api(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "base_model": self.base_model,
            "source": self.source,
            "status": self.status,
            "created_at": self.created_at,
        }


@dataclass
class StoredFile:
    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.content),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            # expires_at and status_details are left out, not null: the published schema types them as an
            # integer and a string, and lists neither as required.
        }


@dataclass
class PendingUpload:
    id: str
    filename: str
    purpose: str
    mime_type: str
    size: int
    created_at: int
    parts: dict[str, builtins.bytes] = field(default_factory=dict)
    status: str = "pending"
    file: StoredFile | None = None

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "upload",
            "bytes": self.size,
            "created_at": self.created_at,
            "expires_at": self.created_at + 3600,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": self.status,
            "file": self.file.to_api() if self.file else None,
        }


@dataclass
class Example:
    prompt_words: Counter[str]
    answer: str
    system: str | None


@dataclass
class Job:
    id: str
    model: str
    training_file: str
    validation_file: str | None
    method: str
    hyperparameters: dict[str, Any]
    suffix: str | None
    seed: int
    metadata: dict[str, str]
    created_at: int
    status: str = "validating_files"
    error: dict[str, Any] | None = None
    fine_tuned_model: str | None = None
    finished_at: int | None = None
    trained_tokens: int | None = None
    result_files: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    examples: list[Example] = field(default_factory=list)
    training_tokens: int = 0
    total_steps: int = 0
    step: int = 0
    phase_started: float = 0.0
    simulated_until: float = 0.0
    scripted_failure: dict[str, Any] | None = None
    metrics: list[dict[str, float]] = field(default_factory=list)
    training_type: str | None = None  # Azure's trainingType, as the create asked

    def method_block(self) -> dict[str, Any]:
        return {"type": self.method, self.method: {"hyperparameters": self.hyperparameters}}

    def to_api(self) -> dict[str, Any]:
        estimated_finish = None
        if self.status in ("queued", "running") and self.total_steps:
            remaining = (self.total_steps - self.step) * STEP_SECONDS + (
                QUEUE_SECONDS if self.status == "queued" else 0
            )
            estimated_finish = int(self.simulated_until + remaining)
        return {
            "id": self.id,
            "object": "fine_tuning.job",
            "created_at": self.created_at,
            "error": self.error,
            "fine_tuned_model": self.fine_tuned_model,
            "finished_at": self.finished_at,
            "hyperparameters": {
                k: self.hyperparameters[k] for k in ("batch_size", "learning_rate_multiplier", "n_epochs")
            },
            "model": self.model,
            "organization_id": ORGANIZATION,
            "result_files": self.result_files,
            "seed": self.seed,
            "status": self.status,
            "trained_tokens": self.trained_tokens,
            "training_file": self.training_file,
            "validation_file": self.validation_file,
            "estimated_finish": estimated_finish,
            "integrations": [],
            "metadata": self.metadata or None,
            "method": self.method_block(),
            "user_provided_suffix": self.suffix,
        }


@dataclass
class FineTunedModel:
    id: str
    base: str
    created: int
    job_id: str
    examples: list[Example]
