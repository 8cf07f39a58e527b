"""An OpenAI emulator: files, uploads, fine-tuning jobs, models and chat completions over real HTTP.

The official ``openai`` SDK runs against it unchanged (``base_url=http://127.0.0.1:PORT/v1``), and
so does ``AsyncAzureOpenAI`` in Azure mode (paths under ``/openai/``, ``api-version`` query,
``api-key`` header, deployments apart from model ids). Jobs move through OpenAI's lifecycle on a
virtual clock that tests advance by hand; faults (429 with retry-after, 500, slow answers, a job
scripted to fail) are injected per endpoint.

A fine-tuned model answers from what it learned: the assistant reply of the training example whose
prompt shares the most words with the question, so demos and evaluations see a real difference
from the base model, which gives a plain deterministic reply.

This module imports nothing from the bot: it is the outside world.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import csv
import dataclasses
import functools
import hashlib
import io
import itertools
import json
import math
import random
import re
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, web

from sandbox.holds import Hold

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
    random: random.Random = field(default_factory=lambda: random.Random(7))


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
            "status_details": None,
            "expires_at": None,
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


WORD = re.compile(r"[\w']+")


def words(text: str) -> Counter[str]:
    return Counter(word.lower() for word in WORD.findall(text))


def approximate_tokens(text: str) -> int:
    """A stand-in tokenizer: about four characters a token, as OpenAI's docs rule of thumb says."""
    return max(1, math.ceil(len(text) / 4)) if text else 0


@functools.cache
def _encoding() -> Any:
    import bpe_openai  # the same tables OpenAI counts with; loaded on the first chat only

    return bpe_openai.get_encoding("o200k_base")


def count_prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """Exactly as OpenAI bills a chat prompt: 3 per message, its role and content, and 3 to prime the reply."""
    encoding = _encoding()
    total = 3
    for message in messages:
        total += 3 + len(encoding.encode_ordinary(str(message.get("role", ""))))
        total += len(encoding.encode_ordinary(message_text(message)))
    return total


def message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


class OpenAIState:
    """Everything the emulated account holds, plus the clock, the faults and a log of calls."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        clock: SandboxClock | None = None,
        models: tuple[BaseModel, ...] = DEFAULT_MODELS,
        azure_ids: bool = False,
    ) -> None:
        self.azure_ids = azure_ids
        self.api_key = api_key or "sk-sandbox-" + secrets.token_hex(12)
        self.clock = clock or SandboxClock()
        self.base_models = {model.id: model for model in models}
        self.files: dict[str, StoredFile] = {}
        self.uploads: dict[str, PendingUpload] = {}
        self.jobs: dict[str, Job] = {}
        self.fine_tuned: dict[str, FineTunedModel] = {}
        self.deleted_models: set[str] = set()
        self.deployments: dict[str, str] = {}
        self.faults: dict[str, FaultRule] = {}
        self.holds: dict[str, Hold] = {}
        # Some OpenAI-compatible hosts accept metadata[...] on the job list and ignore it.
        self.ignores_metadata_filter = False
        self.scripted_failures: list[dict[str, Any]] = []
        self.calls: list[tuple[str, str]] = []
        self.chat_requests: list[dict[str, Any]] = []
        # Seconds between streamed words: a real model takes a while, which is when pacing matters.
        self.stream_delay_seconds = 0.0
        self._chatted = asyncio.Condition()
        self._answered = asyncio.Condition()
        self._ids = itertools.count(1)

    def new_id(self, prefix: str, length: int = 24) -> str:
        digest = hashlib.sha256(f"{prefix}{next(self._ids)}{secrets.token_hex(4)}".encode()).hexdigest()
        return prefix + digest[:length]

    def now(self) -> int:
        return int(self.clock.now())

    # --- test controls ---

    def inject(self, endpoint: str = "*", **rule: Any) -> FaultRule:
        """Faults for ``endpoint`` ("POST /fine_tuning/jobs", "GET /fine_tuning/jobs/{id}", or "*")."""
        self.faults[endpoint] = FaultRule(**rule)
        return self.faults[endpoint]

    def hold(self, endpoint: str, *, before_work: bool = False) -> Hold:
        """Keep the next call of ``endpoint`` (as in ``inject``) waiting: after its work, or before it."""
        self.holds[endpoint] = Hold(before_work=before_work)
        return self.holds[endpoint]

    def fail_next_job(self, *, code: str = "server_error", message: str, at_step: int = 1) -> None:
        """The next job created fails while running, at ``at_step``, with this error."""
        self.scripted_failures.append({"code": code, "message": message, "at_step": at_step})

    async def wait_for_chats(self, count: int, *, timeout: float = 10.0) -> None:
        """Wait until ``count`` chat requests have arrived (tests use it instead of sleeping)."""

        async def _wait() -> None:
            async with self._chatted:
                await self._chatted.wait_for(lambda: len(self.chat_requests) >= count)

        await asyncio.wait_for(_wait(), timeout)

    async def wait_for(self, predicate: Callable[[], Any], *, timeout: float = 10.0) -> Any:
        """Wait until ``predicate()`` is truthy after some answered request; returns its value."""

        async def _wait() -> Any:
            async with self._answered:
                while not (value := predicate()):
                    await self._answered.wait()
                return value

        return await asyncio.wait_for(_wait(), timeout)

    async def answered(self) -> None:
        async with self._answered:
            self._answered.notify_all()

    def deploy(self, model_id: str, deployment: str) -> None:
        """Azure mode: make a (fine-tuned) model callable under a deployment name."""
        self.deployments[deployment] = model_id

    def model_exists(self, model_id: str) -> bool:
        if model_id in self.deleted_models:
            return False
        return model_id in self.base_models or model_id in self.fine_tuned or model_id in ALIASES

    def resolve_base(self, model_id: str) -> BaseModel | None:
        model_id = ALIASES.get(model_id, model_id)
        if model_id in self.fine_tuned:
            model_id = self.fine_tuned[model_id].base
        return self.base_models.get(model_id)

    # --- job simulation ---

    def advance_jobs(self) -> None:
        now = self.clock.now()
        for job in self.jobs.values():
            self._simulate(job, now)

    def _event(
        self,
        job: Job,
        at: float,
        message: str,
        *,
        level: str = "info",
        type: str = "message",
        data: dict[str, Any] | None = None,
    ) -> None:
        job.events.append(
            {
                "id": f"ftevent-{job.id[6:14]}{len(job.events) + 1:06d}",
                "object": "fine_tuning.job.event",
                "created_at": int(at),
                "level": level,
                "message": message,
                "data": data or {},
                "type": type,
            }
        )

    def _finish(self, job: Job, at: float, status: str) -> None:
        job.status = status
        job.finished_at = int(at)

    def _simulate(self, job: Job, now: float) -> None:
        while job.simulated_until < now:
            if job.status == "validating_files":
                ready = job.phase_started + VALIDATION_SECONDS
                if ready > now:
                    break
                job.simulated_until = ready
                problem = self._validate_training(job)
                if problem is not None:
                    job.error = problem
                    self._event(job, ready, problem["message"], level="error")
                    self._finish(job, ready, "failed")
                    break
                self._event(job, ready, "Files validated, moving job to queued state")
                job.status, job.phase_started = "queued", ready
            elif job.status == "queued":
                start = job.phase_started + QUEUE_SECONDS
                if start > now:
                    break
                job.simulated_until = start
                self._event(job, start, "Fine-tuning job started")
                job.status, job.phase_started = "running", start
            elif job.status == "running":
                next_step_at = job.phase_started + STEP_SECONDS
                if next_step_at > now:
                    break
                job.simulated_until = next_step_at
                job.phase_started = next_step_at
                job.step += 1
                self._train_step(job, next_step_at)
                if job.status != "running":
                    break
            else:
                break
        if job.status in ("validating_files", "queued", "running", "paused"):
            job.simulated_until = max(job.simulated_until, now)

    def _validate_training(self, job: Job) -> dict[str, Any] | None:
        training = self.files.get(job.training_file)
        if training is None:
            return {
                "code": "invalid_training_file",
                "message": f"File {job.training_file} not found.",
                "param": "training_file",
            }
        lines = [line for line in training.content.split(b"\n") if line.strip()]
        if len(lines) < MIN_EXAMPLES:
            return {
                "code": "invalid_training_file",
                "message": (
                    f"The job failed due to an invalid training file. Training file has {len(lines)} example(s), "
                    f"but must have at least {MIN_EXAMPLES} examples"
                ),
                "param": "training_file",
            }
        examples: list[Example] = []
        tokens = 0
        for number, raw in enumerate(lines, start=1):
            try:
                record = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                return self._invalid_line(number, "is not valid JSON")
            if not isinstance(record, dict):
                return self._invalid_line(number, "is not a JSON object")
            if job.method == "dpo":
                if "input" not in record or "preferred_output" not in record or "non_preferred_output" not in record:
                    return self._invalid_line(
                        number, "is missing one of 'input', 'preferred_output' or 'non_preferred_output'"
                    )
                messages = list(record["input"].get("messages", [])) + list(record["preferred_output"])
            else:
                if not isinstance(record.get("messages"), list) or not record["messages"]:
                    return self._invalid_line(number, "is missing the 'messages' list")
                messages = record["messages"]
                if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages):
                    return self._invalid_line(number, "has no assistant message")
            for message in messages:
                if not isinstance(message, dict) or "role" not in message:
                    return self._invalid_line(number, "has a message without 'role'")
                tokens += 3 + approximate_tokens(message_text(message))
            examples.append(_example_from(messages))
        job.examples = examples
        job.training_tokens = tokens
        epochs = job.hyperparameters["n_epochs"]
        if epochs == "auto":
            n = len(examples)
            epochs = 3 if 100 <= 3 * n <= 25000 else (min(25, 100 // n) if 3 * n < 100 else max(1, 25000 // n))
            job.hyperparameters["n_epochs"] = epochs
        if job.hyperparameters["batch_size"] == "auto":
            job.hyperparameters["batch_size"] = max(1, min(8, len(examples) // 10))
        if job.hyperparameters["learning_rate_multiplier"] == "auto":
            job.hyperparameters["learning_rate_multiplier"] = 1.8
        if job.method == "dpo" and job.hyperparameters.get("beta") == "auto":
            job.hyperparameters["beta"] = 0.1
        steps_per_epoch = math.ceil(len(examples) / job.hyperparameters["batch_size"])
        job.total_steps = min(steps_per_epoch * epochs, 120)
        return None

    @staticmethod
    def _invalid_line(number: int, problem: str) -> dict[str, Any]:
        return {
            "code": "invalid_training_file",
            "message": f"The job failed due to an invalid training file. Invalid file format. Line {number} {problem}.",
            "param": "training_file",
        }

    def _train_step(self, job: Job, at: float) -> None:
        failure = job.scripted_failure
        if failure is not None and job.step >= failure["at_step"]:
            job.error = {"code": failure["code"], "message": failure["message"], "param": None}
            self._event(job, at, failure["message"], level="error")
            self._finish(job, at, "failed")
            return
        progress = job.step / job.total_steps
        rng = random.Random(f"{job.id}:{job.step}")
        train_loss = round(0.25 + 1.9 * math.exp(-3.2 * progress) + rng.uniform(-0.06, 0.06), 4)
        valid_loss = round(train_loss + 0.08 + rng.uniform(-0.03, 0.05), 4) if job.validation_file else None
        accuracy = round(min(0.99, 1 - train_loss / 2.6), 4)
        metrics: dict[str, Any] = {
            "step": job.step,
            "train_loss": train_loss,
            "train_mean_token_accuracy": accuracy,
            "total_steps": job.total_steps,
        }
        summary = f"Step {job.step}/{job.total_steps}: training loss={train_loss:.4f}"
        if valid_loss is not None:
            metrics["valid_loss"] = valid_loss
            metrics["valid_mean_token_accuracy"] = round(min(0.99, 1 - valid_loss / 2.6), 4)
            summary += f", validation loss={valid_loss:.4f}"
        job.metrics.append({k: v for k, v in metrics.items() if k != "total_steps"})
        if job.step % METRICS_EVERY_STEPS == 0 or job.step == job.total_steps:
            self._event(job, at, summary, type="metrics", data=metrics)
        steps_per_epoch = max(1, job.total_steps // int(job.hyperparameters["n_epochs"]))
        if job.step % steps_per_epoch == 0 or job.step == job.total_steps:
            self._checkpoint(job, at, metrics)
        if job.step >= job.total_steps:
            self._succeed(job, at)

    def _model_id(self, job: Job, *, azure: bool = False) -> str:
        short = hashlib.sha256(job.id.encode()).hexdigest()
        if azure:
            return f"{job.model}.ft-{short[:32]}"
        return f"ft:{job.model}:{ORG_SLUG}:{job.suffix or ''}:{short[:8]}"

    def _checkpoint(self, job: Job, at: float, metrics: dict[str, Any]) -> None:
        job.checkpoints.append(
            {
                "id": self.new_id("ftckpt_"),
                "object": "fine_tuning.job.checkpoint",
                "created_at": int(at),
                "fine_tuned_model_checkpoint": f"{self._model_id(job)}:ckpt-step-{job.step}",
                "fine_tuning_job_id": job.id,
                "metrics": {
                    "step": float(job.step),
                    "train_loss": metrics["train_loss"],
                    "train_mean_token_accuracy": metrics["train_mean_token_accuracy"],
                    "valid_loss": metrics.get("valid_loss"),
                    "valid_mean_token_accuracy": metrics.get("valid_mean_token_accuracy"),
                    "full_valid_loss": metrics.get("valid_loss"),
                    "full_valid_mean_token_accuracy": metrics.get("valid_mean_token_accuracy"),
                },
                "step_number": job.step,
            }
        )

    def _succeed(self, job: Job, at: float) -> None:
        model_id = self._model_id(job, azure=self.azure_ids)
        job.fine_tuned_model = model_id
        job.trained_tokens = job.training_tokens * int(job.hyperparameters["n_epochs"])
        results = io.StringIO()
        writer = csv.writer(results, lineterminator="\n")
        writer.writerow(["step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy"])
        for row in job.metrics:
            writer.writerow(
                [
                    row["step"],
                    row["train_loss"],
                    row["train_mean_token_accuracy"],
                    row.get("valid_loss", ""),
                    row.get("valid_mean_token_accuracy", ""),
                ]
            )
        result_file = StoredFile(
            self.new_id("file-"), "step_metrics.csv", "fine-tune-results", results.getvalue().encode(), int(at)
        )
        self.files[result_file.id] = result_file
        job.result_files = [result_file.id]
        self.fine_tuned[model_id] = FineTunedModel(model_id, job.model, int(at), job.id, job.examples)
        self._event(job, at, f"New fine-tuned model created: {model_id}")
        self._event(job, at, "The job has successfully completed")
        self._finish(job, at, "succeeded")


def _example_from(messages: list[dict[str, Any]]) -> Example:
    system = next((message_text(m) for m in messages if m.get("role") == "system"), None)
    last_assistant = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=len(messages))
    prompt = " ".join(message_text(m) for m in messages[:last_assistant] if m.get("role") == "user")
    answer_message = messages[last_assistant] if last_assistant < len(messages) else {}
    answer = message_text(answer_message)
    if not answer and answer_message.get("tool_calls"):
        answer = json.dumps(answer_message["tool_calls"][0].get("function", {}))
    return Example(words(prompt), answer, system)


# --- request parsing helpers ---------------------------------------------------------------------


def _require(body: dict[str, Any], name: str) -> Any:
    if body.get(name) in (None, ""):
        raise ApiError(400, f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter")
    return body[name]


def _check_hyperparameters(method: str, raw: dict[str, Any]) -> dict[str, Any]:
    bounds: dict[str, tuple[type, float, float]] = {
        "n_epochs": (int, 1, 50),
        "batch_size": (int, 1, 256),
        "learning_rate_multiplier": (float, 0.0, 10.0),
    }
    if method == "dpo":
        bounds["beta"] = (float, 0.0, 2.0)
    unknown = set(raw) - set(bounds)
    if unknown:
        name = sorted(unknown)[0]
        raise ApiError(
            400,
            f"Unrecognized hyperparameter: '{name}'.",
            param=f"hyperparameters.{name}",
            code="invalid_hyperparameters",
        )
    values: dict[str, Any] = {}
    for name, (kind, low, high) in bounds.items():
        value = raw.get(name, "auto")
        if value == "auto":
            values[name] = "auto"
            continue
        valid_type = isinstance(value, int | float) and not isinstance(value, bool)
        if kind is int:
            valid_type = valid_type and float(value).is_integer()
        exclusive_low = kind is float
        in_range = valid_type and (value > low if exclusive_low else value >= low) and value <= high
        if not in_range:
            low_word = "greater than" if exclusive_low else "at least"
            raise ApiError(
                400,
                f"Invalid value for '{name}': expected 'auto' or a number {low_word} {low:g} and at most {high:g}.",
                param=f"hyperparameters.{name}",
                code="invalid_hyperparameters",
            )
        values[name] = int(value) if kind is int else float(value)
    return values


def _paginate(items: list[dict[str, Any]], query: Any, *, default_limit: int) -> dict[str, Any]:
    try:
        limit = int(query.get("limit", default_limit))
    except ValueError:
        raise ApiError(400, "Invalid 'limit': expected an integer.", param="limit") from None
    if not 1 <= limit <= 100:
        raise ApiError(400, "Invalid 'limit': must be between 1 and 100.", param="limit")
    after = query.get("after")
    start = 0
    if after:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise ApiError(400, f"Invalid 'after': no object with id {after!r}.", param="after")
        start = ids.index(after) + 1
    page = items[start : start + limit]
    return {"object": "list", "data": page, "has_more": start + limit < len(items)}


# --- the HTTP server ------------------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class OpenAIEmulator:
    """The aiohttp server around an ``OpenAIState``; OpenAI paths under /v1, Azure's under /openai."""

    def __init__(self, state: OpenAIState | None = None) -> None:
        self.state = state or OpenAIState()
        self.runner: web.AppRunner | None = None
        self.port = 0
        self.host = "127.0.0.1"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def azure_endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def web_app(self) -> web.Application:
        app = web.Application(client_max_size=FILE_LIMIT_BYTES + 1024 * 1024, middlewares=[self._middleware])
        routes = [
            ("POST", "/files", self.create_file),
            ("GET", "/files", self.list_files),
            ("GET", "/files/{id}", self.get_file),
            ("DELETE", "/files/{id}", self.delete_file),
            ("GET", "/files/{id}/content", self.file_content),
            ("POST", "/uploads", self.create_upload),
            ("POST", "/uploads/{id}/parts", self.add_upload_part),
            ("POST", "/uploads/{id}/complete", self.complete_upload),
            ("POST", "/uploads/{id}/cancel", self.cancel_upload),
            ("POST", "/fine_tuning/jobs", self.create_job),
            ("GET", "/fine_tuning/jobs", self.list_jobs),
            ("GET", "/fine_tuning/jobs/{id}", self.get_job),
            ("POST", "/fine_tuning/jobs/{id}/cancel", self.cancel_job),
            ("POST", "/fine_tuning/jobs/{id}/pause", self.pause_job),
            ("POST", "/fine_tuning/jobs/{id}/resume", self.resume_job),
            ("GET", "/fine_tuning/jobs/{id}/events", self.list_events),
            ("GET", "/fine_tuning/jobs/{id}/checkpoints", self.list_checkpoints),
            ("GET", "/models", self.list_models),
            ("GET", "/models/{id}", self.get_model),
            ("DELETE", "/models/{id}", self.delete_model),
            ("POST", "/chat/completions", self.chat_completions),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, "/v1" + path, handler)
            app.router.add_route(method, "/openai" + path, handler)
        app.router.add_route("POST", "/openai/deployments/{deployment}/chat/completions", self.chat_completions)
        app.router.add_route("POST", "/sandbox/clock", self.control_clock)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> OpenAIEmulator:
        self.runner = web.AppRunner(self.web_app(), access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, host, port).start()
        self.host, self.port = host, self.runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        for hold in self.state.holds.values():
            hold.released.set()
        if self.runner is not None:
            await self.runner.cleanup()

    # --- cross-cutting: auth, Azure, faults, errors ---

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        state = self.state
        request_id = "req_" + secrets.token_hex(12)
        try:
            if request.path.startswith("/sandbox/"):
                return await handler(request)
            azure = request.path.startswith("/openai/")
            if azure:
                key = request.headers.get("api-key") or _bearer(request)
                if not request.query.get("api-version"):
                    raise ApiError(404, "Resource not found", code="404", type="invalid_request_error")
            else:
                key = _bearer(request)
            if key != state.api_key:
                shown = (key or "")[:6] + "****" if key else "none"
                if azure:
                    raise ApiError(
                        401,
                        "Access denied due to invalid subscription key or wrong API endpoint.",
                        code="401",
                        type="invalid_request_error",
                    )
                raise ApiError(
                    401,
                    f"Incorrect API key provided: {shown}. You can find your API key at "
                    "https://platform.openai.com/account/api-keys.",
                    code="invalid_api_key",
                )
            endpoint = f"{request.method} {_endpoint_name(request)}"
            state.calls.append((request.method, request.path))
            rule = state.faults.get(endpoint) or state.faults.get("*")
            if rule is not None and rule.delay_seconds:
                await asyncio.sleep(rule.delay_seconds)
            if rule is not None and not rule.after_processing:
                self._maybe_fail(rule)
            hold = state.holds.get(endpoint)
            if hold is not None and hold.before_work:
                await hold.stop_here()
            state.advance_jobs()
            response = await handler(request)
            if hold is not None and not hold.before_work:
                await hold.stop_here()
            if rule is not None and rule.after_processing:
                self._maybe_fail(rule)
        except ApiError as error:
            body = {"error": {"message": error.message, "type": error.type, "param": error.param, "code": error.code}}
            response = web.json_response(body, status=error.status, headers=error.headers)
        response.headers["x-request-id"] = request_id
        await state.answered()
        return response

    @staticmethod
    def _maybe_fail(rule: FaultRule) -> None:
        if rule.times is not None and rule.times <= 0:
            return
        roll = rule.random.random()
        if roll >= rule.rate_429 + rule.rate_500:
            return
        if rule.times is not None:
            rule.times -= 1
        if roll < rule.rate_429:
            raise ApiError(
                429,
                "Rate limit reached for requests. Please try again in 20ms.",
                type="requests",
                code="rate_limit_exceeded",
                headers={"retry-after-ms": str(rule.retry_after_ms), "retry-after": "1"},
            )
        raise ApiError(
            500,
            "The server had an error while processing your request. Sorry about that!",
            type="server_error",
            code="server_error",
        )

    async def _json(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(400, "We could not parse the JSON body of your request.") from None
        if not isinstance(body, dict):
            raise ApiError(400, "The request body must be a JSON object.")
        return body

    # --- files ---

    async def create_file(self, request: web.Request) -> web.Response:
        if not request.content_type.startswith("multipart/"):
            raise ApiError(400, "Expected a multipart/form-data body.")
        reader = await request.multipart()
        purpose, filename, content = None, None, io.BytesIO()
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "purpose":
                purpose = (await part.read()).decode()
            elif part.name == "file":
                filename = part.filename or "file"
                while chunk := await part.read_chunk(1 << 20):
                    content.write(chunk)
                    if content.tell() > FILE_LIMIT_BYTES:
                        raise ApiError(
                            413,
                            "File is too large: the maximum size is 512 MB. Use the Uploads API for larger files.",
                            param="file",
                            code="file_too_large",
                        )
        if filename is None:
            raise ApiError(400, "Missing required parameter: 'file'.", param="file")
        if purpose not in ("fine-tune", "batch", "assistants", "vision", "user_data", "evals"):
            raise ApiError(400, f"Invalid value for 'purpose': {purpose!r}.", param="purpose")
        if purpose == "fine-tune" and not filename.endswith(".jsonl"):
            raise ApiError(400, "Invalid file format for Fine-Tuning API. Must be .jsonl", param="file")
        stored = StoredFile(self.state.new_id("file-"), filename, purpose, content.getvalue(), self.state.now())
        self.state.files[stored.id] = stored
        return web.json_response(stored.to_api())

    def _file(self, request: web.Request) -> StoredFile:
        stored = self.state.files.get(request.match_info["id"])
        if stored is None:
            raise ApiError(404, f"No such File object: {request.match_info['id']}", param="id")
        return stored

    async def list_files(self, request: web.Request) -> web.Response:
        files = sorted(self.state.files.values(), key=lambda f: f.created_at, reverse=True)
        purpose = request.query.get("purpose")
        items = [f.to_api() for f in files if purpose in (None, f.purpose)]
        page = _paginate(items, request.query, default_limit=100)
        page["first_id"] = page["data"][0]["id"] if page["data"] else None
        page["last_id"] = page["data"][-1]["id"] if page["data"] else None
        return web.json_response(page)

    async def get_file(self, request: web.Request) -> web.Response:
        return web.json_response(self._file(request).to_api())

    async def delete_file(self, request: web.Request) -> web.Response:
        stored = self._file(request)
        del self.state.files[stored.id]
        return web.json_response({"id": stored.id, "object": "file", "deleted": True})

    async def file_content(self, request: web.Request) -> web.Response:
        return web.Response(body=self._file(request).content, content_type="application/octet-stream")

    # --- uploads ---

    async def create_upload(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        size = _require(body, "bytes")
        if not isinstance(size, int) or not 0 < size <= UPLOAD_LIMIT_BYTES:
            raise ApiError(400, "Invalid 'bytes': an Upload holds at most 8 GB.", param="bytes")
        upload = PendingUpload(
            self.state.new_id("upload_"),
            _require(body, "filename"),
            _require(body, "purpose"),
            _require(body, "mime_type"),
            size,
            self.state.now(),
        )
        self.state.uploads[upload.id] = upload
        return web.json_response(upload.to_api())

    def _upload(self, request: web.Request) -> PendingUpload:
        upload = self.state.uploads.get(request.match_info["id"])
        if upload is None:
            raise ApiError(404, f"No such Upload object: {request.match_info['id']}", param="upload_id")
        if upload.status == "pending" and self.state.now() > upload.created_at + 3600:
            upload.status = "expired"
        return upload

    async def add_upload_part(self, request: web.Request) -> web.Response:
        upload = self._upload(request)
        if upload.status != "pending":
            raise ApiError(400, f"Upload {upload.id} is {upload.status}; parts can only be added while pending.")
        reader = await request.multipart()
        data = b""
        async for part in reader:
            if isinstance(part, BodyPartReader) and part.name == "data":
                data = await part.read()
        if len(data) > PART_LIMIT_BYTES:
            raise ApiError(400, "Each part may be at most 64 MB.", param="data")
        part_id = self.state.new_id("part_")
        upload.parts[part_id] = data
        return web.json_response(
            {"id": part_id, "object": "upload.part", "created_at": self.state.now(), "upload_id": upload.id}
        )

    async def complete_upload(self, request: web.Request) -> web.Response:
        upload = self._upload(request)
        body = await self._json(request)
        part_ids = _require(body, "part_ids")
        if upload.status != "pending":
            raise ApiError(400, f"Upload {upload.id} is {upload.status}.")
        missing = [p for p in part_ids if p not in upload.parts]
        if missing:
            raise ApiError(400, f"Unknown part id {missing[0]!r}.", param="part_ids")
        content = b"".join(upload.parts[p] for p in part_ids)
        if len(content) != upload.size:
            raise ApiError(
                400,
                f"The parts add up to {len(content)} bytes, but the Upload was created for {upload.size}.",
                param="part_ids",
            )
        if body.get("md5") and hashlib.md5(content).hexdigest() != body["md5"]:
            raise ApiError(400, "The md5 checksum does not match the uploaded bytes.", param="md5")
        stored = StoredFile(self.state.new_id("file-"), upload.filename, upload.purpose, content, self.state.now())
        self.state.files[stored.id] = stored
        upload.file, upload.status, upload.parts = stored, "completed", {}
        return web.json_response(upload.to_api())

    async def cancel_upload(self, request: web.Request) -> web.Response:
        upload = self._upload(request)
        if upload.status != "pending":
            raise ApiError(400, f"Upload {upload.id} is {upload.status} and cannot be cancelled.")
        upload.status, upload.parts = "cancelled", {}
        return web.json_response(upload.to_api())

    # --- fine-tuning jobs ---

    async def create_job(self, request: web.Request) -> web.Response:
        state = self.state
        body = await self._json(request)
        model = _require(body, "model")
        training_file = _require(body, "training_file")
        base = state.resolve_base(model)
        if base is None or not state.model_exists(model):
            raise ApiError(
                400,
                f"Model {model} is not available for fine-tuning or does not exist.",
                param="model",
                code="model_not_available",
            )
        if not base.fine_tunable:
            raise ApiError(
                400, f"Model {model} is not available for fine-tuning.", param="model", code="model_not_available"
            )
        if base.shutdown_date and time.strftime("%Y-%m-%d", time.gmtime(state.now())) >= base.shutdown_date:
            raise ApiError(
                400,
                f"Model {model} has been shut down on {base.shutdown_date} and can no longer be fine-tuned.",
                param="model",
                code="model_not_available",
            )
        for name in ("training_file", "validation_file"):
            file_id = body.get(name)
            if file_id is None:
                continue
            stored = state.files.get(file_id)
            if stored is None:
                raise ApiError(400, f"invalid {name}: {file_id}", param=name, code="invalid_file")
            if stored.purpose != "fine-tune":
                raise ApiError(
                    400,
                    f"File {file_id} has purpose {stored.purpose!r}; fine-tuning needs 'fine-tune'.",
                    param=name,
                    code="invalid_file",
                )
        method_spec = body.get("method") or {"type": "supervised"}
        method = method_spec.get("type")
        if method not in ("supervised", "dpo"):
            raise ApiError(400, f"Invalid method type: {method!r}.", param="method.type")
        if method not in base.methods:
            raise ApiError(
                400,
                f"Model {model} does not support the {method} method.",
                param="method.type",
                code="model_not_available",
            )
        raw_hyper = dict(body.get("hyperparameters") or {})
        raw_hyper.update((method_spec.get(method) or {}).get("hyperparameters") or {})
        hyperparameters = _check_hyperparameters(method, raw_hyper)
        suffix = body.get("suffix")
        if suffix is not None and not (isinstance(suffix, str) and 1 <= len(suffix) <= 64):
            raise ApiError(400, "Invalid 'suffix': expected a string of 1 to 64 characters.", param="suffix")
        seed = body.get("seed")
        if seed is None:
            seed = random.Random(training_file).randint(0, 2_147_483_647)
        if not isinstance(seed, int) or not 0 <= seed <= 2_147_483_647:
            raise ApiError(400, "Invalid 'seed': expected an integer from 0 to 2147483647.", param="seed")
        metadata = body.get("metadata") or {}
        if len(metadata) > 16 or any(len(k) > 64 or len(str(v)) > 512 for k, v in metadata.items()):
            raise ApiError(
                400,
                "Invalid 'metadata': at most 16 pairs, keys up to 64 and values up to 512 characters.",
                param="metadata",
            )
        now = state.now()
        job = Job(
            id=state.new_id("ftjob-"),
            model=ALIASES.get(model, model),
            training_file=training_file,
            validation_file=body.get("validation_file"),
            method=method,
            hyperparameters=hyperparameters,
            suffix=suffix,
            seed=seed,
            metadata={k: str(v) for k, v in metadata.items()},
            created_at=now,
            phase_started=now,
            simulated_until=now,
        )
        if state.scripted_failures:
            job.scripted_failure = state.scripted_failures.pop(0)
        state._event(job, now, f"Created fine-tuning job: {job.id}")
        state._event(job, now, f"Validating training file: {training_file}")
        state.jobs[job.id] = job
        return web.json_response(job.to_api())

    def _job(self, request: web.Request) -> Job:
        job = self.state.jobs.get(request.match_info["id"])
        if job is None:
            raise ApiError(
                404,
                f"Could not find fine-tuning job with ID {request.match_info['id']}",
                param="id",
                code="fine_tune_not_found",
            )
        return job

    async def list_jobs(self, request: web.Request) -> web.Response:
        wanted = {key[9:-1]: value for key, value in request.query.items() if key.startswith("metadata[")}
        if self.state.ignores_metadata_filter:
            wanted = {}
        jobs = sorted(self.state.jobs.values(), key=lambda j: (j.created_at, j.id), reverse=True)
        items = [j.to_api() for j in jobs if all(j.metadata.get(k) == v for k, v in wanted.items())]
        return web.json_response(_paginate(items, request.query, default_limit=20))

    async def get_job(self, request: web.Request) -> web.Response:
        return web.json_response(self._job(request).to_api())

    async def cancel_job(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if job.status not in ("validating_files", "queued", "running", "paused"):
            raise ApiError(400, f"Job {job.id} has already {job.status}; it cannot be cancelled.", code="invalid_state")
        now = self.state.clock.now()
        self.state._event(job, now, "Fine-tuning job cancelled")
        self.state._finish(job, now, "cancelled")
        return web.json_response(job.to_api())

    async def pause_job(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if job.status != "running":
            raise ApiError(
                400, f"Only a running job can be paused; job {job.id} is {job.status}.", code="invalid_state"
            )
        job.status = "paused"
        self.state._event(job, self.state.clock.now(), "Fine-tuning job paused")
        return web.json_response(job.to_api())

    async def resume_job(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if job.status != "paused":
            raise ApiError(
                400, f"Only a paused job can be resumed; job {job.id} is {job.status}.", code="invalid_state"
            )
        now = self.state.clock.now()
        job.status, job.phase_started = "queued", now
        self.state._event(job, now, "Fine-tuning job resumed")
        return web.json_response(job.to_api())

    async def list_events(self, request: web.Request) -> web.Response:
        job = self._job(request)
        newest_first = list(reversed(job.events))
        return web.json_response(_paginate(newest_first, request.query, default_limit=20))

    async def list_checkpoints(self, request: web.Request) -> web.Response:
        job = self._job(request)
        newest_first = list(reversed(job.checkpoints))
        page = _paginate(newest_first, request.query, default_limit=10)
        page["first_id"] = page["data"][0]["id"] if page["data"] else None
        page["last_id"] = page["data"][-1]["id"] if page["data"] else None
        return web.json_response(page)

    # --- models ---

    def _model_api(self, model_id: str) -> dict[str, Any]:
        state = self.state
        if model_id in state.fine_tuned:
            tuned = state.fine_tuned[model_id]
            base = state.base_models[tuned.base]
            return {
                "id": model_id,
                "object": "model",
                "created": tuned.created,
                "owned_by": ORGANIZATION,
                "shutdown_date": base.shutdown_date,
            }
        base = state.base_models[ALIASES.get(model_id, model_id)]
        return {
            "id": model_id,
            "object": "model",
            "created": base.created,
            "owned_by": base.owned_by,
            "shutdown_date": base.shutdown_date,
        }

    async def list_models(self, request: web.Request) -> web.Response:
        ids = [*self.state.base_models, *(m for m in self.state.fine_tuned if m not in self.state.deleted_models)]
        return web.json_response({"object": "list", "data": [self._model_api(m) for m in ids]})

    async def get_model(self, request: web.Request) -> web.Response:
        model_id = request.match_info["id"]
        if not self.state.model_exists(model_id):
            raise ApiError(404, f"The model '{model_id}' does not exist", param="model", code="model_not_found")
        return web.json_response(self._model_api(model_id))

    async def delete_model(self, request: web.Request) -> web.Response:
        model_id = request.match_info["id"]
        if model_id not in self.state.fine_tuned or model_id in self.state.deleted_models:
            raise ApiError(404, f"The model '{model_id}' does not exist", param="model", code="model_not_found")
        self.state.deleted_models.add(model_id)
        return web.json_response({"id": model_id, "object": "model", "deleted": True})

    # --- chat ---

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        state = self.state
        body = await self._json(request)
        deployment = request.match_info.get("deployment")
        if deployment is not None:
            model = state.deployments.get(deployment)
            if model is None:
                raise ApiError(
                    404,
                    "The API deployment for this resource does not exist. If you created the "
                    "deployment within the last 5 minutes, please wait a moment and try again.",
                    code="DeploymentNotFound",
                )
        else:
            model = _require(body, "model")
        messages = _require(body, "messages")
        state.chat_requests.append({"model": model, "messages": messages})
        async with state._chatted:
            state._chatted.notify_all()
        if not state.model_exists(model):
            raise ApiError(
                404, f"The model `{model}` does not exist or you do not have access to it.", code="model_not_found"
            )
        base = state.resolve_base(model)
        if (
            base is not None
            and base.shutdown_date
            and time.strftime("%Y-%m-%d", time.gmtime(state.now())) >= base.shutdown_date
        ):
            raise ApiError(
                404,
                f"The model `{model}` has been deprecated and was shut down on {base.shutdown_date}.",
                code="model_not_found",
            )
        prompt_tokens = count_prompt_tokens(messages)
        window = base.context_window if base else 128_000
        if prompt_tokens > window:
            raise ApiError(
                400,
                f"This model's maximum context length is {window} tokens. However, your messages resulted in "
                f"{prompt_tokens} tokens. Please reduce the length of the messages.",
                param="messages",
                code="context_length_exceeded",
            )
        answer = self._answer(model, messages)
        completion_tokens = approximate_tokens(answer)
        created = state.now()
        completion_id = "chatcmpl-" + secrets.token_hex(12)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        if not body.get("stream"):
            return web.json_response(
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": answer, "refusal": None},
                            "logprobs": None,
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                    "system_fingerprint": "fp_sandbox",
                    "service_tier": "default",
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
            payload = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_sandbox",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
                **extra,
            }
            return f"data: {json.dumps(payload)}\n\n".encode()

        await response.write(chunk({"role": "assistant", "content": ""}))
        async for piece in _pieces(answer, delay=self.state.stream_delay_seconds):
            await response.write(chunk({"content": piece}))
        await response.write(chunk({}, "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            usage_chunk: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [],
                "usage": usage,
            }
            await response.write(f"data: {json.dumps(usage_chunk)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    def _answer(self, model: str, messages: list[dict[str, Any]]) -> str:
        question = next((message_text(m) for m in reversed(messages) if m.get("role") == "user"), "")
        verdict = _judgement(question)
        if verdict is not None and model not in self.state.fine_tuned:
            return verdict
        tuned = self.state.fine_tuned.get(model)
        if tuned is not None and tuned.examples:
            asked = words(question)
            best = max(tuned.examples, key=lambda e: (sum((asked & e.prompt_words).values()), -len(e.answer)))
            return best.answer
        base_name = self.state.resolve_base(model)
        label = base_name.id if base_name else model
        return (
            f"[{label}] Thanks for your question. Here is a general answer: "
            f'"{question.strip()[:200]}" is a good thing to ask; it depends on your context, so give me '
            "more details and I will be more specific."
        )

    async def control_clock(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.state.clock.advance(float(body.get("advance", 0)))
        if "speed" in body:
            self.state.clock.speed = float(body["speed"])
        return web.json_response({"now": self.state.clock.now()})


JUDGED = re.compile(
    r"\[Reference answer\]\n(?P<reference>.*?)\n\n\[Answer A\]\n(?P<a>.*?)\n\n\[Answer B\]\n(?P<b>.*?)\n\n", re.S
)


def _judgement(question: str) -> str | None:
    """A base model asked to grade two answers against a reference: the sandbox's stand-in for a judge
    picks the one sharing more words with the reference, as a careful grader would on such data."""
    found = JUDGED.search(question)
    if found is None:
        return None
    reference = words(found["reference"])
    a, b = (sum((reference & words(found[side])).values()) for side in ("a", "b"))
    return "A" if a > b else "B" if b > a else "tie"


async def _pieces(answer: str, *, delay: float = 0.0) -> AsyncIterator[str]:
    for match in re.finditer(r"\S+\s*|\s+", answer):
        yield match.group(0)
        await asyncio.sleep(delay)


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    return header[7:] if header.startswith("Bearer ") else None


def _endpoint_name(request: web.Request) -> str:
    """The route's path as listed in the docs, e.g. '/fine_tuning/jobs/{id}/events'."""
    resource = request.match_info.route.resource
    canonical = resource.canonical if resource is not None else request.path
    return canonical.removeprefix("/v1").removeprefix("/openai")


async def serve_forever(port: int, host: str = "127.0.0.1") -> None:
    """`finetune-bot sandbox openai`: run the emulator alone, at 60× real time, and say how to use it."""
    emulator = await OpenAIEmulator(OpenAIState(clock=SandboxClock(time.time(), speed=60.0))).start(host, port)
    print(f"OpenAI emulator on {emulator.base_url} (jobs run at 60x speed)")  # noqa: T201
    print(f"  OPENAI_BASE_URL={emulator.base_url}")  # noqa: T201
    print(f"  OPENAI_API_KEY={emulator.state.api_key}")  # noqa: T201
    print(f"  Azure mode: AZURE_OPENAI_ENDPOINT={emulator.azure_endpoint}")  # noqa: T201
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.Event().wait()
    await emulator.stop()
