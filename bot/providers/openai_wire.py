"""Reading OpenAI-shaped answers and errors into the bot's neutral types, defensively: the SDK does not
validate responses, and real hosts leave fields out, list events in their own order or put a gateway
in the way."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from typing import Any

import openai
from openai.types.fine_tuning import FineTuningJob

from bot.logging import redact
from bot.providers.types import (
    ChatUsage,
    Checkpoint,
    DeploymentPhase,
    DeploymentState,
    ProviderError,
    ProviderErrorKind,
    ProviderEvent,
    ProviderJob,
)
from bot.training.status import JobStatus

logger = logging.getLogger(__name__)

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


def _time(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def job_of(job: FineTuningJob) -> ProviderJob:
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


def event_of(event: Any) -> ProviderEvent:
    return ProviderEvent(
        id=str(event.id),
        created_at=_time(event.created_at) or datetime.now(UTC),
        level=str(event.level or "info"),
        message=str(event.message or ""),
        type=str(event.type or "message"),
        data=event.data if isinstance(event.data, dict) else {},
    )


def file_object(found: Any) -> Any:
    """A file as retrieved; its status may be missing, but an answer without the file's id is not one."""
    if not getattr(found, "id", None):
        raise ValueError(f"not a file object: {type(found).__name__}")
    return found


def reported_dates(model: Any) -> tuple[date | None, date | None]:
    """(last training day, shutdown) as a models API reports them: Azure's ``deprecation`` (Unix seconds
    for fine_tune and inference), OpenAI's ``shutdown_date`` (ISO day, shutdown only)."""
    deprecation = getattr(model, "deprecation", None)
    if isinstance(deprecation, dict):
        return _day(deprecation.get("fine_tune")), _day(deprecation.get("inference"))
    return None, _day(getattr(model, "shutdown_date", None))


def _day(value: Any) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).date()
    return date.fromisoformat(str(value)[:10])


def answer_and_usage(completion: Any) -> tuple[str, ChatUsage]:
    text = completion.choices[0].message.content if completion.choices else ""
    usage = completion.usage
    return str(text or ""), ChatUsage(
        int(usage.prompt_tokens or 0) if usage else 0, int(usage.completion_tokens or 0) if usage else 0
    )


def checkpoints_of(page: Any) -> list[Checkpoint]:
    return [
        Checkpoint(
            id=checkpoint.id,
            step=int(checkpoint.step_number or 0),
            model=str(checkpoint.fine_tuned_model_checkpoint or ""),
            metrics=checkpoint.metrics.model_dump() if checkpoint.metrics else {},
        )
        for checkpoint in page.data
    ]


async def first_items(pager: Any, limit: int) -> list[Any]:
    """Up to ``limit`` items of an SDK listing, fetching its pages as needed."""
    found: list[Any] = []
    async for item in pager:
        found.append(item)
        if len(found) >= limit:
            break
    return found


def after_cursor(listed: list[ProviderEvent], last_seen: str | None) -> list[ProviderEvent]:
    """The listed events in time order, each once, and only those after ``last_seen`` when it is among them."""
    if len(listed) > 1 and listed[0].created_at >= listed[-1].created_at:
        listed = listed[::-1]
    unique = list({event.id: event for event in listed}.values())
    ordered = sorted(unique, key=lambda event: event.created_at)
    seen_at = next((index for index, event in enumerate(ordered) if event.id == last_seen), None)
    return ordered if seen_at is None else ordered[seen_at + 1 :]


def translate(error: Exception) -> ProviderError:
    """Map an SDK or transport error to a kind the bot can explain, keeping the provider's message word for word.

    Anything that is not an API error (a dropped connection the transport reports in its own words, a
    response the SDK could not read) is an outage whose outcome is unknown. A ProviderError raised inside
    the SDK's call (an Entra token that could not be had) stays as it is."""
    if isinstance(error, ProviderError):
        return error
    if not isinstance(error, openai.OpenAIError):
        logger.warning("unreadable provider answer: %s", redact(f"{type(error).__name__}: {error}"))
        return ProviderError(
            ProviderErrorKind.OUTAGE,
            "Its answer could not be read: not the API's JSON (a proxy or gateway may be in the way).",
            ambiguous=True,
        )
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


# Nebius's deployment statuses (providers.md §1.2); an unknown one keeps being polled.
NEBIUS_PHASES = {"active": DeploymentPhase.ACTIVE, "error": DeploymentPhase.FAILED, "failed": DeploymentPhase.FAILED}
# Azure's provisioningState: Accepted, Creating, Updating, Succeeded, Failed, Canceled, Deleting.
AZURE_PHASES = {
    "succeeded": DeploymentPhase.ACTIVE,
    "failed": DeploymentPhase.FAILED,
    "canceled": DeploymentPhase.FAILED,
    "deleting": DeploymentPhase.GONE,
}


def nebius_deployment(name: str, answer: Any) -> DeploymentState:
    """``POST /v0/models`` and ``GET /v0/models/{name}``: ``{name, base_model, source, status}``."""
    if not isinstance(answer, dict):
        raise ValueError("a deployment that is not a JSON object")
    raw = str(answer.get("status") or "")
    detail = answer.get("error") or answer.get("status_details") or ""
    message = str(detail.get("message", detail) if isinstance(detail, dict) else detail)
    return DeploymentState(
        str(answer.get("name") or name), NEBIUS_PHASES.get(raw, DeploymentPhase.DEPLOYING), raw, message
    )


def azure_deployment(name: str, answer: dict[str, Any] | None) -> DeploymentState:
    """An ARM deployment resource (``properties.provisioningState``); None is Azure's 404."""
    if answer is None:
        return DeploymentState(name, DeploymentPhase.GONE)
    found = answer.get("properties")
    properties: dict[str, Any] = found if isinstance(found, dict) else {}
    raw = str(properties.get("provisioningState") or "")
    phase = AZURE_PHASES.get(raw.lower(), DeploymentPhase.DEPLOYING)
    return DeploymentState(name, phase, raw, "" if phase is not DeploymentPhase.FAILED else f"provisioning {raw}")


def management_error(status: int, answer: dict[str, Any]) -> ProviderError:
    """An ARM error body ``{"error": {"code", "message"}}`` as the bot's kinds."""
    found = answer.get("error")
    error: dict[str, Any] = found if isinstance(found, dict) else {}
    code = str(error.get("code") or "") or None
    message = redact(str(error.get("message") or f"HTTP {status} from Azure's management API"))
    if status in (401, 403):
        return ProviderError(ProviderErrorKind.MANAGEMENT_AUTH, message, code=code)
    if status == 429:
        kind = ProviderErrorKind.QUOTA if code and "quota" in code.lower() else ProviderErrorKind.RATE_LIMITED
        return ProviderError(kind, message, code=code)
    if status >= 500:
        return ProviderError(ProviderErrorKind.OUTAGE, message, code=code, ambiguous=True)
    return ProviderError(ProviderErrorKind.BAD_REQUEST, message, code=code)
