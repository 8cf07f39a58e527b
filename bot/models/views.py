"""How a model looks in Slack: its actions, retirement and reminders, golden-set progress."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.mrkdwn import escape
from bot.slack_blocks import Block, button, confirm_dialog, shorten
from storage.models import GoldenSetStatus


@dataclass(frozen=True)
class Serving:
    """Where a provider serves a model only once deployed: whether it is (``status``: "" for not deployed,
    else a live deployment's status), and what serving it costs, said before Deploy is clicked."""

    status: str
    cost: str


def deploy_button(job_id: int, model: str, serving: Serving) -> Block:
    deploy = button("🚀 Deploy", "model_deploy", str(job_id), style="primary")
    deploy["confirm"] = confirm_dialog(
        title="Deploy this model?", text=shorten(f"`{escape(model)}`: {serving.cost}", 300), yes="Deploy", no="Not now"
    )
    return deploy


def stop_serving_button(job_id: int, model: str) -> Block:
    stop = button("🛑 Stop serving", "model_undeploy", str(job_id))
    stop["confirm"] = confirm_dialog(
        title="Stop serving it?",
        text=f"`{escape(model)}` stops answering until it is deployed again. The model itself stays.",
        yes="Stop serving",
        no="Keep it",
    )
    return stop


def model_actions(
    job_id: int,
    model: str,
    *,
    retired: bool = False,
    retrain: bool = False,
    previous: str | None = None,
    serving: Serving | None = None,
) -> Block:
    """Chat, Compare with base, Evaluate, Deploy or Stop serving (``serving``: where the provider needs a
    deployment), Retrain elsewhere (``retrain``: when another provider is configured) and Delete model, under
    a finished job's result; ``previous`` names the model this one was retrained from, to evaluate them
    against each other while it answers. A model past its shutdown is only offered for retraining and
    deletion (it no longer answers)."""
    delete = button("🗑 Delete model", "model_delete", str(job_id), style="danger")
    delete["confirm"] = confirm_dialog(
        title="Delete this model?",
        text=f"`{escape(model)}` will be deleted at the provider for good. Its training data stays in the bot.",
        yes="Delete",
        no="Keep it",
    )
    answering: list[Block] = []
    if not retired:
        answering = [
            button("💬 Chat", "chat_start", str(job_id), style="primary"),
            button("⚖️ Compare with base", "compare_start", str(job_id)),
            button("📏 Evaluate", "eval_open", str(job_id)),
        ]
        if previous:
            answering.append(button(shorten(f"📏 Evaluate against {previous}", 75), "eval_previous", str(job_id)))
        if serving is not None:
            live = serving.status in ("deploying", "active")
            answering.insert(0, stop_serving_button(job_id, model) if live else deploy_button(job_id, model, serving))
    return {
        "type": "actions",
        "block_id": f"model:{job_id}",
        "elements": [
            *answering,
            *([button("🔁 Retrain elsewhere", "model_retrain", str(job_id))] if retrain else []),
            delete,
        ],
    }


def retirement_text(retires: Any, *, today: Any) -> str:
    """``retires 2027-01-14 (54 days left)``, with ⚠️ under 30 days."""
    if retires is None:
        return "no retirement date known"
    left = (retires - today).days
    if left < 0:
        return f"retired on {retires:%Y-%m-%d}"
    warning = "⚠️ " if left < 30 else ""
    return f"{warning}retires {retires:%Y-%m-%d} ({left} day{'s' if left != 1 else ''} left)"


def model_line(job: Any, *, today: Any, provider: str) -> str:
    """One model: where it answers (``provider``, as people name it), its base, who made it, when it retires."""
    created = f"{job.finished_at:%Y-%m-%d}" if job.finished_at else "—"
    return (
        f"• `{escape(job.fine_tuned_model)}` at {escape(provider)} — base `{escape(job.base_model)}`, created "
        f"{created} by "
        f"<@{job.requested_by}>, "
        f"{retirement_text(job.model_retires, today=today)}"
    )


def reminder_text(job: Any, *, left: int) -> str:
    when = "tomorrow" if left == 1 else ("today" if left == 0 else f"in {left} days")
    model = escape(job.fine_tuned_model)
    return (
        f"⚠️ `{model}` stops answering {when} ({job.model_retires:%Y-%m-%d}). Keep its behaviour: "
        f"`/finetune record {model}` records its answers, and `/finetune export "
        f"{model}` puts its training data and golden set in the thread."
    )


def training_reminder_text(provider: str, models: list[str], *, day: Any, left: int) -> str:
    when = "tomorrow" if left == 1 else ("today" if left == 0 else f"in {left} days")
    named = ", ".join(f"`{escape(model)}`" for model in models)
    return (
        f"⏳ {escape(provider)} stops training {named} {when} ({day:%Y-%m-%d}): no new job on "
        f"{'it' if len(models) == 1 else 'them'} can start there after that. The bot keeps every dataset "
        "(`/finetune datasets`), so the team can train them again on another provider."
    )


def golden_progress(golden: Any, *, done: int) -> str:
    bar = "▓" * int(10 * done / max(golden.total, 1)) + "░" * (10 - int(10 * done / max(golden.total, 1)))
    icon = {GoldenSetStatus.DONE: "✅", GoldenSetStatus.FAILED: "❌"}.get(golden.status, "⏳")
    return (
        f"{icon} Recording a golden set of `{escape(golden.model)}`: {bar} {done:,}/{golden.total:,} prompts answered"
    )


def golden_summary(golden: Any, *, done: int) -> str:
    if golden.status == GoldenSetStatus.DONE:
        return (
            f"📼 <@{golden.started_by}>, golden set #{golden.id} of `{escape(golden.model)}` is recorded: "
            f"{done:,} prompts and their answers, kept by the bot. The JSONL file follows; `/finetune export` "
            "gets it again later."
        )
    return (
        f"❌ <@{golden.started_by}>, the golden set of `{escape(golden.model)}` stopped at {done:,}/{golden.total:,}: "
        f"“{escape(golden.error_message)}” Run `/finetune record {escape(golden.model)}` again to finish it."
    )
