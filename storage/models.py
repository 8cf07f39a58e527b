"""Every table of the bot, in one module.

Each row carries ``team_id`` so one database can serve several Slack workspaces. Timestamps are
timezone-aware UTC. The invariants DESIGN.md lists are unique constraints here, not hopes in code.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel


def utc_now() -> datetime:
    return datetime.now(UTC)


class Team(SQLModel, table=True):
    """A Slack workspace the bot serves."""

    team_id: str = Field(primary_key=True, max_length=32)
    name: str = Field(default="", max_length=200)
    created_at: datetime = Field(default_factory=utc_now)


class SlackEvent(SQLModel, table=True):
    """One row per Slack ``event_id`` handled, so a retried delivery is recognised and dropped."""

    __tablename__ = "slack_event"
    event_id: str = Field(primary_key=True, max_length=64)
    team_id: str = Field(max_length=32, index=True)
    received_at: datetime = Field(default_factory=utc_now)


class IntakeStatus(StrEnum):
    RUNNING = "running"
    DONE = "done"  # answered in the file's thread, with a report or with what went wrong
    GIVEN_UP = "given_up"  # interrupted too often; its thread says to share it again


class FileIntake(SQLModel, table=True):
    """One share of a file being taken in: the claim that only one replica handles it, and what a
    restarted bot needs to resume it if the one handling it died."""

    __tablename__ = "file_intake"
    __table_args__ = (UniqueConstraint("file_id", "message_ts", name="uq_file_intake_share"),)
    id: int | None = Field(default=None, primary_key=True)
    team_id: str = Field(max_length=32)
    channel_id: str = Field(max_length=32)
    file_id: str = Field(max_length=32)
    user_id: str = Field(max_length=32)
    message_ts: str = Field(max_length=32)
    thread_ts: str | None = Field(default=None, max_length=32)
    status: str = Field(default=IntakeStatus.RUNNING, max_length=16, index=True)
    attempts: int = 1
    lease_owner: str | None = Field(default=None, max_length=64)
    lease_expires_at: datetime | None = None
    created_at: datetime = Field(default_factory=utc_now)
    updated_at: datetime = Field(default_factory=utc_now)


class Dataset(SQLModel, table=True):
    """A training file the team shared; the bot keeps its own content-addressed copy."""

    __table_args__ = (UniqueConstraint("team_id", "sha256", name="uq_dataset_team_sha256"),)
    id: int | None = Field(default=None, primary_key=True)
    team_id: str = Field(foreign_key="team.team_id", max_length=32, index=True)
    channel_id: str = Field(max_length=32)
    message_ts: str = Field(max_length=32)
    slack_file_id: str = Field(default="", max_length=32)
    uploaded_by: str = Field(max_length=32)
    filename: str = Field(max_length=255)
    bytes: int
    sha256: str = Field(max_length=64)
    format: str = Field(default="unknown", max_length=32)
    valid: bool = False
    examples: int = 0
    total_tokens: int = 0
    report: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # Lineage: version n+1 is built from version n and the team's collected examples.
    parent_id: int | None = Field(default=None, foreign_key="dataset.id")
    version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    created_at: datetime = Field(default_factory=utc_now)


class TrainingJob(SQLModel, table=True):
    """A fine-tuning job the bot started (or was asked to start) for a team."""

    __table_args__ = (
        UniqueConstraint("request_id", name="uq_job_request_id"),
        UniqueConstraint("provider", "provider_job_id", name="uq_job_provider_job"),
    )
    id: int | None = Field(default=None, primary_key=True)
    team_id: str = Field(foreign_key="team.team_id", max_length=32, index=True)
    dataset_id: int = Field(foreign_key="dataset.id", index=True)
    validation_dataset_id: int | None = Field(default=None, foreign_key="dataset.id")
    request_id: str = Field(max_length=64)
    provider: str = Field(max_length=32)
    provider_job_id: str | None = Field(default=None, max_length=128)
    base_model: str = Field(max_length=200)
    method: str = Field(default="supervised", max_length=32)
    hyperparameters: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    suffix: str | None = Field(default=None, max_length=64)
    seed: int | None = None
    status: str = Field(default="starting", max_length=32, index=True)
    raw_status: str = Field(default="", max_length=64)
    error_message: str = Field(default="")
    fine_tuned_model: str | None = Field(default=None, max_length=255)
    requested_by: str = Field(max_length=32)
    channel_id: str = Field(max_length=32)
    thread_ts: str = Field(max_length=32)
    progress_message_ts: str | None = Field(default=None, max_length=32)
    estimated_cost_usd: float | None = None
    actual_cost_usd: float | None = None
    trained_tokens: int | None = None
    step: int | None = None
    total_steps: int | None = None
    train_loss: float | None = None
    valid_loss: float | None = None
    estimated_finish: datetime | None = None
    result_file_id: str | None = Field(default=None, max_length=128)
    cancelled_by: str | None = Field(default=None, max_length=32)
    model_deleted_at: datetime | None = None
    # The day the fine-tuned model stops answering (the provider's shutdown_date, else its base model's).
    model_retires: date | None = None
    # Retrain elsewhere: the job whose dataset and settings this one was made from, at another provider.
    retrained_from_id: int | None = Field(default=None, foreign_key="trainingjob.id")
    last_event_id: str | None = Field(default=None, max_length=128)
    next_poll_at: datetime | None = Field(default=None, index=True)
    poll_failures: int = 0
    lease_owner: str | None = Field(default=None, max_length=64)
    lease_expires_at: datetime | None = None
    created_at: datetime = Field(default_factory=utc_now)
    updated_at: datetime = Field(default_factory=utc_now)
    finished_at: datetime | None = None


class JobEvent(SQLModel, table=True):
    """A provider event (message or metrics) of a job, recorded once."""

    __tablename__ = "job_event"
    __table_args__ = (UniqueConstraint("job_id", "provider_event_id", name="uq_job_event_provider_event"),)
    id: int | None = Field(default=None, primary_key=True)
    team_id: str = Field(foreign_key="team.team_id", max_length=32)
    job_id: int = Field(foreign_key="trainingjob.id", index=True)
    provider_event_id: str = Field(max_length=128)
    created_at: datetime
    level: str = Field(default="info", max_length=16)
    type: str = Field(default="message", max_length=16)
    message: str = ""
    step: int | None = None
    train_loss: float | None = None
    valid_loss: float | None = None
    train_accuracy: float | None = None
    valid_accuracy: float | None = None


class NotificationKind(StrEnum):
    """What a notification posts; the file kinds upload a file made when it is posted."""

    MILESTONE = "milestone"  # a job's status changed
    RESULT = "result"  # a job's, an evaluation's or a golden set's outcome
    CHART = "chart"  # a job's loss curves (a file)
    DIRECT = "direct"  # the requester's own copy of a job's outcome, by direct message
    STOPPED = "stopped"  # an evaluation stopped before the end
    EVAL_CHART = "eval_chart"  # an evaluation's scores (a file)
    GOLDEN_FILE = "golden_file"  # a golden set's answers (a file)
    REMINDER = "reminder"  # a model's shutdown is near, in the approval channel
    REMINDER_DM = "reminder_dm"  # the same, to whoever trained it


FILE_KINDS = (NotificationKind.CHART, NotificationKind.GOLDEN_FILE, NotificationKind.EVAL_CHART)


class NotificationStatus(StrEnum):
    PENDING = "pending"  # owed; waits out ``claimed_until`` after a failed attempt
    SENDING = "sending"  # a replica is posting it until ``claimed_until``
    SENT = "sent"
    FAILED = "failed"  # given up for good, with one log line naming the fix


class Notification(SQLModel, table=True):
    """Outbox row: a Slack message the bot owes, posted exactly once.

    ``subject`` names what the message is about (``job:12``, ``model:ft:…``) so one table serves
    job milestones, results and retirement reminders alike.
    """

    __table_args__ = (UniqueConstraint("team_id", "subject", "kind", "key", name="uq_notification_once"),)
    id: int | None = Field(default=None, primary_key=True)
    team_id: str = Field(foreign_key="team.team_id", max_length=32)
    subject: str = Field(max_length=255)
    kind: str = Field(max_length=32)  # a NotificationKind
    key: str = Field(default="", max_length=128)
    channel_id: str = Field(max_length=32)
    thread_ts: str | None = Field(default=None, max_length=32)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(default=NotificationStatus.PENDING, max_length=16, index=True)
    slack_ts: str | None = Field(default=None, max_length=32)
    attempts: int = 0
    # While a replica is posting it: until then nobody else may. While pending: not retried before then.
    claimed_until: datetime | None = None
    # The replica posting it, so that a shutdown can hand it back at once.
    claimed_by: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utc_now)
    sent_at: datetime | None = None


class DeploymentStatus(StrEnum):
    DEPLOYING = "deploying"  # asked of the provider, not answering yet
    ACTIVE = "active"
    FAILED = "failed"
    DELETED = "deleted"  # stopped from Slack, or gone at the provider (Azure deletes idle ones)


LIVE_DEPLOYMENT = frozenset({DeploymentStatus.DEPLOYING, DeploymentStatus.ACTIVE})


class Deployment(SQLModel, table=True):
    """A fine-tuned model served under a name of its own where the provider needs that before chat
    (Azure, Nebius); billed by the hour at some, so its life is on the record."""

    __tablename__ = "deployment"
    # A model has one live deployment at most: ``live_job_id`` is its job's id while deploying or active,
    # NULL once it ended, so a second Deploy click finds the first.
    __table_args__ = (UniqueConstraint("live_job_id", name="uq_deployment_live"),)

    id: int | None = Field(default=None, primary_key=True)
    team_id: str = Field(foreign_key="team.team_id", max_length=32, index=True)
    job_id: int = Field(foreign_key="trainingjob.id", index=True)
    live_job_id: int | None = Field(default=None, foreign_key="trainingjob.id")
    provider: str = Field(max_length=32)
    model: str = Field(max_length=255)
    name: str = Field(max_length=64)  # what chat requests call it
    status: str = Field(default=DeploymentStatus.DEPLOYING, max_length=16, index=True)
    hourly_usd: float | None = None
    requested_by: str = Field(max_length=32)
    channel_id: str = Field(max_length=32)
    thread_ts: str = Field(max_length=32)
    message_ts: str | None = Field(default=None, max_length=32)  # the message edited as it goes
    error_message: str = ""
    ended_by: str | None = Field(default=None, max_length=32)
    created_at: datetime = Field(default_factory=utc_now)
    updated_at: datetime = Field(default_factory=utc_now)
    active_at: datetime | None = None
    ended_at: datetime | None = None


class ChatThread(SQLModel, table=True):
    """A Slack thread bound to a model (and optionally a second model to compare with)."""

    __tablename__ = "chat_thread"
    __table_args__ = (UniqueConstraint("channel_id", "thread_ts", name="uq_chat_thread"),)
    id: int | None = Field(default=None, primary_key=True)
    team_id: str = Field(foreign_key="team.team_id", max_length=32)
    channel_id: str = Field(max_length=32)
    thread_ts: str = Field(max_length=32)
    model: str = Field(max_length=255)
    # Where each model answers; "" is the default provider (rows from before providers were recorded).
    provider: str = Field(default="", max_length=32, sa_column_kwargs={"server_default": ""})
    compare_model: str | None = Field(default=None, max_length=255)
    compare_provider: str = Field(default="", max_length=32, sa_column_kwargs={"server_default": ""})
    system_prompt: str | None = None
    started_by: str = Field(max_length=32)
    created_at: datetime = Field(default_factory=utc_now)
    # Whether chat_turn holds the whole conversation; threads from before it are read from Slack once.
    records_turns: bool = Field(default=False, sa_column_kwargs={"server_default": "0"})


class ChatTurn(SQLModel, table=True):
    """One message of a chat thread as it happened: a person's question or one part of a model's answer.

    The conversation is read from here, so a chat turn costs no conversations.replies, which Slack
    limits hard for distributed apps (once a minute, 15 messages)."""

    __tablename__ = "chat_turn"
    __table_args__ = (UniqueConstraint("thread_id", "ts", name="uq_chat_turn"),)
    id: int | None = Field(default=None, primary_key=True)
    thread_id: int = Field(foreign_key="chat_thread.id", index=True)
    ts: str = Field(max_length=32)
    role: str = Field(max_length=16)
    # The model that wrote an answer, and which part of it this message is (long answers span several).
    model: str | None = Field(default=None, max_length=255)
    part: int = 0
    text: str
    created_at: datetime = Field(default_factory=utc_now)


class AuditEntry(SQLModel, table=True):
    """Who decided what, and when: starts, approvals, denials, cancellations, deletions."""

    __tablename__ = "audit_entry"
    id: int | None = Field(default=None, primary_key=True)
    team_id: str = Field(foreign_key="team.team_id", max_length=32, index=True)
    actor: str = Field(max_length=32)
    action: str = Field(max_length=32)
    subject: str = Field(default="", max_length=255)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utc_now)


class HomeViewer(SQLModel, table=True):
    """Who has opened the App Home recently, so it can be refreshed for them after a change."""

    __tablename__ = "home_viewer"
    team_id: str = Field(foreign_key="team.team_id", max_length=32, primary_key=True)
    user_id: str = Field(max_length=32, primary_key=True)
    opened_at: datetime = Field(default_factory=utc_now)


class GoldenSetStatus(StrEnum):
    RUNNING = "running"  # answers being recorded, under a lease
    DONE = "done"
    FAILED = "failed"


class GoldenSet(SQLModel, table=True):
    """A model's recorded answers to a fixed list of prompts: its behaviour, kept after the model is gone."""

    __tablename__ = "golden_set"
    id: int | None = Field(default=None, primary_key=True)
    team_id: str = Field(foreign_key="team.team_id", max_length=32, index=True)
    model: str = Field(max_length=255, index=True)
    provider: str = Field(default="", max_length=32, sa_column_kwargs={"server_default": ""})
    dataset_id: int = Field(foreign_key="dataset.id")
    status: str = Field(default=GoldenSetStatus.RUNNING, max_length=16, index=True)
    total: int = 0
    channel_id: str = Field(max_length=32)
    thread_ts: str = Field(max_length=32)
    progress_message_ts: str | None = Field(default=None, max_length=32)
    started_by: str = Field(max_length=32)
    error_message: str = ""
    lease_owner: str | None = Field(default=None, max_length=64)
    lease_expires_at: datetime | None = None
    created_at: datetime = Field(default_factory=utc_now)
    finished_at: datetime | None = None


class GoldenAnswer(SQLModel, table=True):
    """One prompt of a golden set and the model's answer to it."""

    __tablename__ = "golden_answer"
    __table_args__ = (UniqueConstraint("golden_set_id", "position", name="uq_golden_answer_position"),)
    id: int | None = Field(default=None, primary_key=True)
    team_id: str = Field(foreign_key="team.team_id", max_length=32)
    golden_set_id: int = Field(foreign_key="golden_set.id", index=True)
    position: int
    messages: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    answer: str = ""
    completion_tokens: int = 0
    created_at: datetime = Field(default_factory=utc_now)


class EvalStatus(StrEnum):
    AWAITING_CONFIRMATION = "awaiting_confirmation"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class EvalSide(StrEnum):
    """Who gave an evaluation's answer: the model measured, the one it is measured against, or the judge."""

    CANDIDATE = "candidate"
    BASELINE = "baseline"
    JUDGE = "judge"


class Evaluation(SQLModel, table=True):
    """A model measured against another on held-out examples: its plan, its progress and its scores.

    It is created awaiting confirmation (its estimated cost shown to whoever asked), runs under a
    lease that a restarted replica can take over, and keeps its metrics once finished.
    """

    id: int | None = Field(default=None, primary_key=True)
    team_id: str = Field(foreign_key="team.team_id", max_length=32, index=True)
    model: str = Field(max_length=255)
    # Each side answers at its own provider, so a model on one is measured against a model on another.
    provider: str = Field(default="", max_length=32, sa_column_kwargs={"server_default": ""})
    baseline_model: str = Field(max_length=255)
    baseline_provider: str = Field(default="", max_length=32, sa_column_kwargs={"server_default": ""})
    judge_model: str | None = Field(default=None, max_length=255)
    judge_provider: str = Field(default="", max_length=32, sa_column_kwargs={"server_default": ""})
    dataset_id: int = Field(foreign_key="dataset.id")
    job_id: int | None = Field(default=None, foreign_key="trainingjob.id")
    status: str = Field(default=EvalStatus.AWAITING_CONFIRMATION, max_length=32, index=True)
    total: int = 0
    overlap: int = 0  # examples whose prompt is also in the model's training data
    channel_id: str = Field(max_length=32)
    thread_ts: str = Field(max_length=32)
    progress_message_ts: str | None = Field(default=None, max_length=32)
    requested_by: str = Field(max_length=32)
    estimated_cost_usd: float | None = None
    cost_usd: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    metrics: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    error_message: str = ""
    lease_owner: str | None = Field(default=None, max_length=64)
    lease_expires_at: datetime | None = None
    created_at: datetime = Field(default_factory=utc_now)
    started_at: datetime | None = None
    finished_at: datetime | None = None


class EvaluationAnswer(SQLModel, table=True):
    """One model's answer to one example of an evaluation (or the judge's verdict on the pair)."""

    __tablename__ = "evaluation_answer"
    __table_args__ = (UniqueConstraint("evaluation_id", "position", "side", name="uq_evaluation_answer"),)
    id: int | None = Field(default=None, primary_key=True)
    team_id: str = Field(foreign_key="team.team_id", max_length=32)
    evaluation_id: int = Field(foreign_key="evaluation.id", index=True)
    position: int
    side: str = Field(max_length=16)  # an EvalSide
    answer: str = ""
    error: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    created_at: datetime = Field(default_factory=utc_now)


class CandidateStatus(StrEnum):
    PENDING = "pending"  # waiting for the next version of its dataset
    WITHDRAWN = "withdrawn"  # its 👍 or correction was taken back
    DROPPED = "dropped"  # the dataset's owner or an admin left it out
    PUBLISHED = "published"  # part of a published version (``published_dataset_id``)


class CandidateKind(StrEnum):
    APPROVED = "approved"  # a 👍 on a reply
    CORRECTED = "corrected"  # a ``correct:`` reply
    PREFERENCE = "preference"  # a 👍 on one of two compared answers and a 👎 on the other
    REJECTED = "rejected"  # a 👎 alone: kept to pair with a 👍, never published


class Candidate(SQLModel, table=True):
    """An example the team collected in a chat thread for the next version of a dataset.

    ``kind``: ``approved`` (a 👍 on a reply), ``corrected`` (a ``correct:`` reply or the Correct… form),
    ``preference`` (a 👍 and a 👎 on two compared answers) or ``rejected`` (a 👎 alone, kept only to
    pair with a 👍; never published). One per person, message and kind: a retried event or a second
    vote finds the first.
    """

    __table_args__ = (UniqueConstraint("channel_id", "message_ts", "kind", "contributor", name="uq_candidate_vote"),)
    id: int | None = Field(default=None, primary_key=True)
    team_id: str = Field(foreign_key="team.team_id", max_length=32, index=True)
    dataset_id: int = Field(foreign_key="dataset.id", index=True)
    kind: str = Field(max_length=16)
    channel_id: str = Field(max_length=32)
    thread_ts: str = Field(max_length=32)
    message_ts: str = Field(max_length=32)
    model: str = Field(max_length=255)
    contributor: str = Field(max_length=32)
    example: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(default=CandidateStatus.PENDING, max_length=16, index=True)
    published_dataset_id: int | None = Field(default=None, foreign_key="dataset.id")
    created_at: datetime = Field(default_factory=utc_now)
    updated_at: datetime = Field(default_factory=utc_now)
