"""Job states: one enum, its ACTIVE and TERMINAL sets, and one idempotent transition function.

A job's life before the provider (awaiting approval, denied, not started) and at the provider
(validating … succeeded) is one status column; the provider's own raw status is kept beside it.
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    # Before the provider has the job.
    AWAITING_APPROVAL = "awaiting_approval"
    STARTING = "starting"
    DENIED = "denied"
    NOT_STARTED = "not_started"
    # At the provider, normalized.
    VALIDATING = "validating"
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"  # a raw status we do not know yet: keep polling


ACTIVE = frozenset({JobStatus.VALIDATING, JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.PAUSED, JobStatus.UNKNOWN})
TERMINAL = frozenset(
    {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.DENIED, JobStatus.NOT_STARTED}
)

STATUS_ICONS = {
    JobStatus.AWAITING_APPROVAL: "⏳",
    JobStatus.STARTING: "⏳",
    JobStatus.DENIED: "🚫",
    JobStatus.NOT_STARTED: "❌",
    JobStatus.VALIDATING: "⏳",
    JobStatus.QUEUED: "⏳",
    JobStatus.RUNNING: "⏳",
    JobStatus.PAUSED: "⏸️",
    JobStatus.SUCCEEDED: "✅",
    JobStatus.FAILED: "❌",
    JobStatus.CANCELLED: "🛑",
    JobStatus.UNKNOWN: "❔",
}


def transition(current: str, new: JobStatus) -> JobStatus | None:
    """The status to record, or None when nothing changes.

    Idempotent and monotonic: the same status twice is no change, and a terminal status is final
    (a late or repeated poll can never revive a finished job).
    """
    present = JobStatus(current)
    if present == new or present in TERMINAL:
        return None
    return new
