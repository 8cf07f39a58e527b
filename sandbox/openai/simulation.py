"""The emulated account at work (OpenAIState): jobs move through OpenAI's lifecycle as the virtual clock
moves, a training file is read and hyperparameters checked as OpenAI does, tokens are counted, and
models answer: a fine-tuned one with the assistant turn of the training example whose prompt shares
the most words with the question (so demos and evaluations see a real difference from the base model,
which gives a plain deterministic reply), a judge with a verdict."""

from __future__ import annotations

import asyncio
import csv
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
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

from sandbox.holds import Hold
from sandbox.openai import azure_management
from sandbox.openai.state import (
    ALIASES,
    DEFAULT_MODELS,
    METRICS_EVERY_STEPS,
    MIN_EXAMPLES,
    ORG_SLUG,
    QUEUE_SECONDS,
    STEP_SECONDS,
    VALIDATION_SECONDS,
    ApiError,
    BaseModel,
    Example,
    FaultRule,
    FineTunedModel,
    HostQuirks,
    Job,
    NebiusDeployment,
    PendingUpload,
    SandboxClock,
    StoredFile,
)

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
        fine_tuning_closes: str | None = None,
        nebius: bool = False,
    ) -> None:
        self.azure_ids = azure_ids
        # Nebius Token Factory's rules (sandbox/openai/nebius.py); pass models=NEBIUS_MODELS with it.
        self.nebius = nebius
        self.nebius_deployments: dict[str, NebiusDeployment] = {}
        # Azure's management API (sandbox/openai/azure_management.py): an Entra token, not the API key.
        self.management_token = "entra-sandbox-" + secrets.token_hex(12)
        self.arm_deployments: dict[str, azure_management.ArmDeployment] = {}
        # A managed identity (sandbox/openai/entra.py): the secret its token endpoint wants, the tokens it gave.
        self.identity_header = secrets.token_hex(16)
        self.identity_client_id = str(uuid.uuid4())
        self.entra_tokens: dict[str, str] = {}
        # From this day (YYYY-MM-DD) every job create is refused with a 403, as OpenAI's from 2027-01-06.
        self.fine_tuning_closes = fine_tuning_closes
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
        self.quirks = HostQuirks(file_status=None) if nebius else HostQuirks()
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

    def today(self) -> str:
        return time.strftime("%Y-%m-%d", time.gmtime(self.now()))

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

    async def wait_for_chats(self, count: int, *, timeout: float = 30.0) -> None:
        """Wait until ``count`` chat requests have arrived (tests use it instead of sleeping)."""

        async def _wait() -> None:
            async with self._chatted:
                await self._chatted.wait_for(lambda: len(self.chat_requests) >= count)

        await asyncio.wait_for(_wait(), timeout)

    async def wait_for(self, predicate: Callable[[], Any], *, timeout: float = 30.0) -> Any:
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
        azure_management.advance(self)

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
            examples.append(example_from(messages))
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
                # Without a validation file the valid_* metrics are left out: the schema types them as numbers.
                "metrics": {
                    name: value
                    for name, value in {
                        "step": float(job.step),
                        "train_loss": metrics["train_loss"],
                        "train_mean_token_accuracy": metrics["train_mean_token_accuracy"],
                        "valid_loss": metrics.get("valid_loss"),
                        "valid_mean_token_accuracy": metrics.get("valid_mean_token_accuracy"),
                        "full_valid_loss": metrics.get("valid_loss"),
                        "full_valid_mean_token_accuracy": metrics.get("valid_mean_token_accuracy"),
                    }.items()
                    if value is not None
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


def example_from(messages: list[dict[str, Any]]) -> Example:
    system = next((message_text(m) for m in messages if m.get("role") == "system"), None)
    last_assistant = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=len(messages))
    prompt = " ".join(message_text(m) for m in messages[:last_assistant] if m.get("role") == "user")
    answer_message = messages[last_assistant] if last_assistant < len(messages) else {}
    answer = message_text(answer_message)
    if not answer and answer_message.get("tool_calls"):
        answer = json.dumps(answer_message["tool_calls"][0].get("function", {}))
    return Example(words(prompt), answer, system)


def require(body: dict[str, Any], name: str) -> Any:
    if body.get(name) in (None, ""):
        raise ApiError(400, f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter")
    return body[name]


def check_hyperparameters(method: str, raw: dict[str, Any]) -> dict[str, Any]:
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


JUDGED = re.compile(
    r"\[Reference answer\]\n(?P<reference>.*?)\n\n\[Answer A\]\n(?P<a>.*?)\n\n\[Answer B\]\n(?P<b>.*?)\n\n", re.S
)


def judgement(question: str) -> str | None:
    """A base model asked to grade two answers against a reference: the sandbox's stand-in for a judge
    picks the one sharing more words with the reference, as a careful grader would on such data."""
    found = JUDGED.search(question)
    if found is None:
        return None
    reference = words(found["reference"])
    a, b = (sum((reference & words(found[side])).values()) for side in ("a", "b"))
    return "A" if a > b else "B" if b > a else "tie"


async def pieces(answer: str, *, delay: float = 0.0) -> AsyncIterator[str]:
    for match in re.finditer(r"\S+\s*|\s+", answer):
        yield match.group(0)
        await asyncio.sleep(delay)
