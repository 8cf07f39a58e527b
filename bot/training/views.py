"""How a training job looks in Slack: the Train form, the job card, approvals, progress and the result."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.datasets.report import FORMAT_NAMES
from bot.models.views import model_actions
from bot.mrkdwn import escape
from bot.slack_blocks import (
    FALLBACK_TEXT_LIMIT,
    Block,
    button,
    confirm_dialog,
    context,
    fields_section,
    modal,
    money,
    option,
    section,
    select_input,
    shorten,
    split_text,
    text_input,
)
from bot.training.status import ACTIVE, STATUS_ICONS, JobStatus

# Sections a job's failure may take in its result message, leaving room for the advice.
RESULT_TEXT_SECTIONS = 10


def still_starting_text(job_id: int, provider: str) -> str:
    return (
        f"Job #{job_id} is still being handed to {escape(provider)}; its card in the thread gets a Cancel button "
        "as soon as it has started, or the thread says that it did not start."
    )


TRAIN_CALLBACK = "train_submit"


def model_label(model: Any) -> str:
    """e.g. ``gpt-4o-mini-2024-07-18 · training ends 2027-01-06 · shutdown 2027-01-14``."""
    parts = [model.id]
    if model.training_retires:
        parts.append(f"training ends {model.training_retires:%Y-%m-%d}")
    if model.inference_retires:
        parts.append(f"shutdown {model.inference_retires:%Y-%m-%d}")
    return " · ".join(parts)


def _by_provider(offers: Sequence[Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Option groups, one per provider, so that one select picks the provider and the model together."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for offer in offers:
        groups.setdefault(offer.label, []).append(option(model_label(offer.model), offer.value))
    return list(groups.items())


def train_modal(
    *,
    dataset: Any,
    offers: Sequence[Any],
    grouped: bool,
    choice: dict[str, str],
    validation_choices: Sequence[Any],
    estimate: str,
    private_metadata: str,
    capabilities: Any,
    methods: Sequence[str] = ("supervised", "dpo"),
    notes: Sequence[str] = (),
) -> Block:
    """The Train… modal: base model (with retirement dates), the ``methods`` the chosen model trains with, the
    hyperparameters its host takes, suffix, estimate; ``notes`` say where the form was prefilled from
    (Retrain elsewhere)."""
    named = {"supervised": "supervised (chat examples)", "dpo": "dpo (preference pairs)"}
    offered = [method for method in named if method in methods] or ["supervised"]
    method_options = [option(named[method], method) for method in offered]
    chosen_method = choice.get("method", "supervised")
    blocks: list[Block] = [
        section(
            f"*Dataset:* `{escape(dataset.filename)}` (#{dataset.id}) — "
            f"{escape(FORMAT_NAMES.get(dataset.format, dataset.format))}, "
            f"{dataset.examples:,} examples"
        ),
        *([context(shorten(escape(" ".join(notes)), 3000))] if notes else []),
        select_input(
            "model",
            "Base model",
            action_id="train_model",
            options=[option(model_label(offer.model), offer.value) for offer in offers],
            groups=_by_provider(offers) if grouped else None,
            selected=choice.get("model"),
            dispatch=True,
        ),
        select_input(
            "method",
            "Method",
            action_id="train_method",
            options=method_options,
            selected=chosen_method if chosen_method in offered else offered[0],
            dispatch=True,
        ),
        *_hyperparameter_inputs(choice, capabilities, suffix_limit=capabilities.suffix_limit),
    ]
    if "lora" in capabilities.adapters:
        blocks.append(context("This host trains a LoRA adapter on the base model, not a full copy of it."))
    if validation_choices:
        blocks.append(
            select_input(
                "validation",
                "Validation dataset",
                action_id="train_validation",
                options=[
                    option(f"#{d.id} {d.filename} ({d.examples:,} examples)", str(d.id)) for d in validation_choices
                ],
                selected=choice.get("validation"),
                optional=True,
            )
        )
    blocks.append({**section(estimate), "block_id": "estimate"})
    return modal(
        callback_id=TRAIN_CALLBACK,
        title="Train a model",
        submit="Start training",
        private_metadata=private_metadata,
        blocks=blocks,
    )


# The Train form's field for each hyperparameter a host may take: (label, hint).
HYPERPARAMETER_FIELDS = {
    "learning_rate_multiplier": ("Learning-rate multiplier", "auto, or a number above 0, up to 10"),
    "learning_rate": ("Learning rate", "auto, or the rate itself, e.g. 0.00002 or 2e-5 (above 0, up to 0.1)"),
    "lora_r": ("LoRA rank", "auto, or 1 to 256: a higher rank learns more, and costs more"),
    "warmup_ratio": ("Warm-up ratio", "auto, or 0 to 0.5 of the steps spent warming up"),
    "weight_decay": ("Weight decay", "auto, or 0 to 1"),
}


def _hyperparameter_inputs(choice: dict[str, str], capabilities: Any, *, suffix_limit: int) -> list[Block]:
    """Epochs and batch size, the learning rate as the chosen host takes it (a multiplier or the rate
    itself), the host's own extras (LoRA rank…), beta for DPO, then suffix and seed, as last chosen."""
    inputs = [
        text_input(
            "n_epochs",
            "Epochs",
            initial=choice.get("n_epochs", "auto"),
            hint="auto, or 1 to 50 (press Enter to update the estimate)",
            dispatch_on_enter="train_epochs",
        ),
        text_input("batch_size", "Batch size", initial=choice.get("batch_size", "auto"), hint="auto, or 1 to 256"),
    ]
    for name in (capabilities.learning_rate_field, *capabilities.extra_hyperparameters):
        label, hint = HYPERPARAMETER_FIELDS[name]
        inputs.append(text_input(name, label, initial=choice.get(name, "auto"), hint=hint))
    if choice.get("method") == "dpo":
        inputs.append(
            text_input(
                "beta", "Beta (DPO)", initial=choice.get("beta", "auto"), hint="auto, or a number above 0, up to 2"
            )
        )
    return [
        *inputs,
        text_input(
            "suffix",
            "Suffix",
            initial=choice.get("suffix", ""),
            optional=True,
            max_length=suffix_limit,
            hint=f"up to {suffix_limit} characters, becomes part of the model's name",
        ),
        text_input(
            "seed", "Seed", initial=choice.get("seed", ""), optional=True, hint="a whole number, for repeatable runs"
        ),
    ]


def estimate_text(*, model: str, epochs: int, capped_tokens: int, cost: float | None) -> str:
    return (
        f"*Estimate on {escape(model)}:* {epochs} epoch{'s' if epochs != 1 else ''} × {capped_tokens:,} tokens = "
        f"{epochs * capped_tokens:,} billed tokens ≈ *{money(cost)}*"
    )


def estimate_pending_text(*, model: str) -> str:
    return f"*Estimate on {escape(model)}:* ⏳ counting the tokens for this model…"


def _hyperparameters_text(hyperparameters: dict[str, Any]) -> str:
    names = {
        "n_epochs": "epochs",
        "batch_size": "batch",
        "learning_rate_multiplier": "LR ×",
        "learning_rate": "LR",
        "lora_r": "LoRA rank",
        "warmup_ratio": "warm-up",
        "weight_decay": "weight decay",
        "beta": "beta",
    }
    return escape(", ".join(f"{names.get(key, key)} {value}" for key, value in hyperparameters.items()))


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 1:
        return "under a minute"
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


STATUS_WORDS = {
    "validating": "validating files",
    "queued": "queued",
    "running": "running",
    "paused": "paused",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "cancelled",
    "unknown": "status unknown",
    "starting": "starting",
    "awaiting_approval": "awaiting approval",
    "denied": "denied",
    "not_started": "not started",
}


def progress_line(job: Any, *, now: Any) -> str:
    """``⏳ running · step 12/48 · train loss 0.84 · valid loss 0.91 · 6 min elapsed · ETA 14:32 UTC``."""
    parts = [f"{STATUS_ICONS.get(JobStatus(job.status), '❔')} *{STATUS_WORDS.get(job.status, job.status)}*"]
    if job.step and job.total_steps:
        parts.append(f"step {job.step}/{job.total_steps}")
    if job.train_loss is not None:
        parts.append(f"train loss {job.train_loss:.3f}")
    if job.valid_loss is not None:
        parts.append(f"valid loss {job.valid_loss:.3f}")
    end = job.finished_at or now
    parts.append(f"{_duration((end - job.created_at).total_seconds())} elapsed")
    if job.estimated_finish and not job.finished_at:
        parts.append(f"ETA {job.estimated_finish:%H:%M} UTC")
    return " · ".join(parts)


def job_card(job: Any, *, dataset_name: str, title: str, now: Any = None) -> list[Block]:
    """The card of a job in its dataset's thread, with a Cancel button while it can be cancelled."""
    fields = [
        f"*Job*\n`{escape(job.provider_job_id or '—')}` (#{job.id})",
        f"*Base model*\n`{escape(job.base_model)}`",
        f"*Method*\n{escape(job.method)}",
        f"*Hyperparameters*\n{_hyperparameters_text(job.hyperparameters)}",
        f"*Estimate*\n{money(job.estimated_cost_usd)}",
        f"*Asked by*\n<@{job.requested_by}>",
    ]
    result: list[Block] = [
        section(f"{title} on `{escape(dataset_name)}`"),
        fields_section(fields),
    ]
    if now is not None:
        result.append(context(progress_line(job, now=now)))
    if job.provider_job_id and job.status in ACTIVE:
        cancel = button("Cancel", "job_cancel", str(job.id), style="danger")
        cancel["confirm"] = confirm_dialog(
            title="Cancel this job?",
            text=f"Training of `{escape(job.base_model)}` on `{escape(dataset_name)}` stops for good.",
            yes="Cancel the job",
            no="Keep training",
        )
        result.append({"type": "actions", "block_id": f"job:{job.id}", "elements": [cancel]})
    return result


def approval_request(job: Any, *, dataset_name: str, reason: str) -> list[Block]:
    return [
        section(
            f"⏳ <@{job.requested_by}> asks to train `{escape(job.base_model)}` on `{escape(dataset_name)}` "
            f"(job #{job.id}).\n"
            f"Estimate: *{money(job.estimated_cost_usd)}*. It needs an admin's approval because {reason}."
        ),
        fields_section(
            [f"*Method*\n{escape(job.method)}", f"*Hyperparameters*\n{_hyperparameters_text(job.hyperparameters)}"]
        ),
        {
            "type": "actions",
            "block_id": f"approval:{job.id}",
            "elements": [
                button("Approve", "job_approve", str(job.id), style="primary"),
                button("Deny", "job_deny", str(job.id), style="danger"),
            ],
        },
    ]


def approval_decided(job: Any, *, dataset_name: str, decision: str, admin: str) -> list[Block]:
    icon = "✅ Approved" if decision == "approved" else "🚫 Denied"
    return [
        section(
            f"{icon} by <@{admin}>: `{escape(job.base_model)}` on `{escape(dataset_name)}` for <@{job.requested_by}> "
            f"(job #{job.id}, estimate {money(job.estimated_cost_usd)})."
        )
    ]


def milestone_text(job: Any) -> str:
    icon = STATUS_ICONS.get(JobStatus(job.status), "❔")
    return f"{icon} Job #{job.id} is {STATUS_WORDS.get(job.status, job.status)}."


def result_blocks(
    job: Any,
    *,
    dataset_name: str,
    checkpoints: Sequence[Any],
    provider_label: str,
    now: Any,
    error_code: str | None = None,
    retrain: bool = False,
    previous: str | None = None,
    serving: Any = None,
) -> tuple[str, list[Block]]:
    """The outcome in the thread: who asked, what came out, and what to do next (``retrain``, ``previous``
    and ``serving`` as in ``model_actions``)."""
    who = f"<@{job.requested_by}>"
    if job.status == "succeeded":
        actions = model_actions(job.id, job.fine_tuned_model, retrain=retrain, previous=previous, serving=serving)
        return _succeeded(job, who=who, dataset_name=dataset_name, checkpoints=checkpoints, now=now, actions=actions)
    if job.status == "failed":
        return _failed(job, who=who, dataset_name=dataset_name, provider_label=provider_label, error_code=error_code)
    by = f"<@{job.cancelled_by}>" if job.cancelled_by else f"someone at {escape(provider_label)} (not from Slack)"
    text = f"🛑 {who}, fine-tuning on {escape(dataset_name)} was cancelled by {by}."
    return text, [section(text)]


def _losses(train: float | None, valid: float | None, *, word: str = "") -> str:
    parts = (
        f"train {word}{train:.3f}" if train is not None else "",
        f"valid {word}{valid:.3f}" if valid is not None else "",
    )
    return ", ".join(part for part in parts if part) if word else " · ".join(part for part in parts if part)


def _succeeded(
    job: Any, *, who: str, dataset_name: str, checkpoints: Sequence[Any], now: Any, actions: Block
) -> tuple[str, list[Block]]:
    duration = _duration(((job.finished_at or now) - job.created_at).total_seconds())
    fields = [
        f"*Model*\n`{escape(job.fine_tuned_model)}`",
        f"*Base model*\n`{escape(job.base_model)}`",
        f"*Trained tokens*\n{job.trained_tokens or 0:,}",
        f"*Cost*\n{money(job.actual_cost_usd)} (estimate {money(job.estimated_cost_usd)})",
        f"*Duration*\n{duration}",
        f"*Final loss*\n{_losses(job.train_loss, job.valid_loss) or '—'}",
    ]
    text = f"✅ {who}, your model is ready: {escape(job.fine_tuned_model)}"
    result: list[Block] = [
        section(f"✅ {who}, fine-tuning on `{escape(dataset_name)}` succeeded."),
        fields_section(fields),
    ]
    if checkpoints:
        lines = ["*Checkpoints*"]
        for checkpoint in checkpoints[:3]:
            detail = _losses(checkpoint.metrics.get("train_loss"), checkpoint.metrics.get("valid_loss"), word="loss ")
            lines.append(f"• step {checkpoint.step}: `{escape(checkpoint.model)}` — {detail}")
        result.append(section("\n".join(lines)))
    result.append(actions)
    return text, result


def _failed(
    job: Any, *, who: str, dataset_name: str, provider_label: str, error_code: str | None
) -> tuple[str, list[Block]]:
    message = job.error_message or "(no reason given)"
    file_problem = error_code in ("invalid_training_file", "invalid_file") or "training file" in message.lower()
    advice = (
        "Fix the training file as the message says, share it again, and click Train… on the new report."
        if file_problem
        else "Nothing is billed for a failed job. Click Train… on the report to try again; if it fails the same "
        "way, the message above is what to fix."
    )
    text = shorten(f"❌ {who}, fine-tuning on {escape(dataset_name)} failed: {escape(message)}", FALLBACK_TEXT_LIMIT)
    host = escape(provider_label[:1].upper() + provider_label[1:])
    says = f"❌ {who}, fine-tuning on `{escape(dataset_name)}` failed. {host} says:"
    quoted = "\n".join(f"> {line}" for line in escape(message).split("\n"))
    # A provider's message has no length limit: it is split over sections, and whatever does not fit in
    # one message is cut with a note, never an exception that loses the result.
    pieces = split_text(f"{says}\n{quoted}")
    shown = [section(piece) for piece in pieces[:RESULT_TEXT_SECTIONS]]
    if len(pieces) > RESULT_TEXT_SECTIONS:
        shown.append(context(f"… the rest of the message is at {escape(provider_label)} (job #{job.id})."))
    return text, [*shown, context(advice)]
