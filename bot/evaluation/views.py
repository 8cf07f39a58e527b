"""How an evaluation looks in Slack: the form, the confirmation, progress and the report."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from bot.mrkdwn import escape
from bot.slack_blocks import (
    Block,
    button,
    context,
    excerpt,
    modal,
    option,
    precise_money,
    section,
    select_input,
    short_model,
    text_input,
)
from storage.models import EvalStatus

EVAL_SHOWN_CLASSES = 12
EVAL_CONFUSION_MAX_COLUMNS = 8


def _overlap_warning(evaluation: Any) -> str:
    return (
        f"⚠️ {evaluation.overlap:,} of {evaluation.total:,} examples are also in `{escape(evaluation.model)}`'s "
        "training data "
        "(the same conversation): its scores on them say little about new data, and look better than they are."
    )


def evaluation_confirmation(evaluation: Any, *, dataset_name: str, usable: int, tokens: int) -> tuple[str, list[Block]]:
    """What an evaluation will ask and cost, with Run and Cancel: shown to the person who asked."""
    requests = 2 + (1 if evaluation.judge_model else 0)
    text = (
        f"📏 Evaluate `{escape(evaluation.model)}` against `{escape(evaluation.baseline_model)}` on "
        f"`{escape(dataset_name)}`: "
        f"{evaluation.total:,} examples, estimated cost {precise_money(evaluation.estimated_cost_usd)}."
    )
    lines = [
        text,
        f"{evaluation.total * requests:,} requests ({requests} per example), about {tokens:,} tokens"
        + (f", judged by `{escape(evaluation.judge_model)}`" if evaluation.judge_model else "")
        + ".",
    ]
    if usable > evaluation.total:
        lines.append(
            f"The first {evaluation.total:,} of its {usable:,} examples are used (FINETUNE_EVAL_MAX_EXAMPLES)."
        )
    result: list[Block] = [section("\n".join(lines))]
    if evaluation.overlap:
        result.append(section(_overlap_warning(evaluation)))
    if evaluation.estimated_cost_usd is None:
        result.append(context("No price is known for one of these models, so the cost is unknown, not zero."))
    result.append(
        {
            "type": "actions",
            "block_id": f"eval:{evaluation.id}",
            "elements": [
                button("▶️ Run evaluation", "eval_confirm", str(evaluation.id), style="primary"),
                button("Cancel", "eval_cancel", str(evaluation.id)),
            ],
        }
    )
    return text, result


def evaluation_progress(evaluation: Any, *, dataset_name: str, done: int) -> str:
    filled = int(10 * done / max(evaluation.total, 1))
    icon = {EvalStatus.DONE: "✅", EvalStatus.FAILED: "❌"}.get(evaluation.status, "⏳")
    return (
        f"{icon} Evaluation #{evaluation.id}: `{escape(evaluation.model)}` against "
        f"`{escape(evaluation.baseline_model)}` on `{escape(dataset_name)}`: "
        f"{'▓' * filled}{'░' * (10 - filled)} {done:,}/{evaluation.total:,} examples"
    )


def _percent(value: float) -> str:
    return f"{value:.1%}"


def _score_table(metrics: dict[str, Any], model: str, baseline: str) -> str:
    candidate, base = metrics["candidate"], metrics["baseline"]
    rows = [
        ("exact match", _percent(candidate["exact_match"]), _percent(base["exact_match"])),
        ("normalized match", _percent(candidate["normalized_match"]), _percent(base["normalized_match"])),
        ("token overlap F1", f"{candidate['token_f1']:.3f}", f"{base['token_f1']:.3f}"),
    ]
    if metrics["classification"]:
        for key, name in (
            ("macro_precision", "macro precision"),
            ("macro_recall", "macro recall"),
            ("macro_f1", "macro F1"),
            ("micro_f1", "micro F1"),
        ):
            rows.append((name, f"{candidate[key]:.3f}", f"{base[key]:.3f}"))
    if candidate["failed"] or base["failed"]:
        rows.append(("failed requests", str(candidate["failed"]), str(base["failed"])))
    first, second = short_model(model), short_model(baseline)
    width = max(len(first), 10)
    lines = [f"{'':<18} {first:>{width}}  {second}"]
    lines += [f"{name:<18} {a:>{width}}  {b}" for name, a, b in rows]
    return "```\n" + escape("\n".join(lines)) + "\n```"


def _class_table(metrics: dict[str, Any], model: str, baseline: str) -> str:
    candidate = metrics["candidate"]["per_class"]
    base = {row["label"]: row for row in metrics["baseline"]["per_class"]}
    first, second = short_model(model), short_model(baseline)
    lines = [f"{'class':<20} {'n':>4}  {'F1 ' + first:>14}  F1 {second}"]
    for row in candidate[:EVAL_SHOWN_CLASSES]:
        lines.append(f"{row['label'][:20]:<20} {row['support']:>4}  {row['f1']:>14.3f}  {base[row['label']]['f1']:.3f}")
    if len(candidate) > EVAL_SHOWN_CLASSES:
        lines.append(f"… and {len(candidate) - EVAL_SHOWN_CLASSES} more classes")
    return "*Per class*\n```\n" + escape("\n".join(lines)) + "\n```"


def _confusion(metrics: dict[str, Any], model: str) -> str | None:
    confusion = metrics["candidate"]["confusion"]
    labels = confusion["labels"]
    if len(labels) > EVAL_CONFUSION_MAX_COLUMNS:
        return None
    names = [label[:10] for label in labels]
    lines = ["expected ↓ said →  " + " ".join(f"{name:>10}" for name in names)]
    for label, row in zip(labels, confusion["rows"], strict=False):
        lines.append(f"{label[:18]:<18} " + " ".join(f"{count:>10}" for count in row))
    return f"*Confusion matrix of `{escape(short_model(model))}`*\n```\n" + escape("\n".join(lines)) + "\n```"


def evaluation_report(evaluation: Any, *, dataset_name: str) -> tuple[str, list[Block]]:
    """The finished evaluation in its thread: scores side by side, where they differ most, and its cost."""
    metrics = evaluation.metrics
    record = metrics["head_to_head"]
    who = f"<@{evaluation.requested_by}>"
    text = (
        f"📏 {who}, evaluation #{evaluation.id} is done: `{escape(evaluation.model)}` won {record['wins']:,}, "
        f"tied {record['ties']:,} and lost {record['losses']:,} of {metrics['examples']:,} examples against "
        f"`{escape(evaluation.baseline_model)}` on `{escape(dataset_name)}`."
    )
    result: list[Block] = [
        section(text),
        section(_score_table(metrics, evaluation.model, evaluation.baseline_model)),
        context(
            f"Win rate {_percent(record['win_rate'])} (a tie counts half), decided by {escape(record['decided_by'])}. "
            "Normalized match ignores case, punctuation and spacing."
        ),
    ]
    if metrics["classification"]:
        result.append(section(_class_table(metrics, evaluation.model, evaluation.baseline_model)))
        matrix = _confusion(metrics, evaluation.model)
        if matrix:
            result.append(section(matrix))
    if evaluation.overlap:
        result.append(section(_overlap_warning(evaluation)))
    if metrics["differences"]:
        result.append(section(f"*Where the two differ most* ({len(metrics['differences'])} examples)"))
        first, second = escape(short_model(evaluation.model)), escape(short_model(evaluation.baseline_model))
        for difference in metrics["differences"]:
            result.append(
                section(
                    f"*Example {difference['position'] + 1}* — _{escape(excerpt(difference['question']))}_\n"
                    f"• expected: {escape(excerpt(difference['expected']))}\n"
                    f"• `{first}`: {escape(excerpt(difference['candidate']))}\n"
                    f"• `{second}`: {escape(excerpt(difference['baseline']))}"
                )
            )
    usage = metrics["usage"]
    parts = [
        f"`{escape(short_model(side['model']))}` {side['prompt_tokens']:,} in / {side['completion_tokens']:,} out "
        f"({precise_money(side['cost_usd'])})"
        for side in usage.values()
    ]
    result.append(
        context(f"This evaluation's own cost: {precise_money(evaluation.cost_usd)} — " + "; ".join(parts) + ".")
    )
    return text, result


def evaluation_stopped(evaluation: Any, *, done: int) -> tuple[str, list[Block]]:
    text = (
        f"❌ <@{evaluation.requested_by}>, evaluation #{evaluation.id} stopped at {done:,}/{evaluation.total:,} "
        f"examples: “{escape(evaluation.error_message)}”"
    )
    return text, [
        section(text),
        context("The answers so far are kept: Try again goes on from where it stopped and asks nothing twice."),
        {
            "type": "actions",
            "block_id": f"eval_retry:{evaluation.id}",
            "elements": [button("🔁 Try again", "eval_retry", str(evaluation.id))],
        },
    ]


def evaluation_modal(job: Any, *, datasets: Sequence[Any], initial_dataset_id: int | None) -> Block:
    """The Evaluate button's form: the held-out dataset and the model to beat (the base by default)."""
    return modal(
        callback_id="eval_submit",
        title="Evaluate",
        submit="Estimate",
        private_metadata=json.dumps({"job_id": job.id}),
        blocks=[
            section(f"Measure `{escape(job.fine_tuned_model)}` on examples it did not train on."),
            select_input(
                "eval_dataset",
                "Held-out dataset",
                action_id="eval_dataset",
                options=[
                    option(f"#{d.id} {d.filename} ({d.examples:,} examples)", str(d.id)) for d in list(datasets)[:100]
                ],
                selected=str(initial_dataset_id),
            ),
            text_input(
                "eval_against",
                "Against",
                initial="",
                hint=f"Another model to beat; empty means its base, {job.base_model}.",
                optional=True,
            ),
            context("You will see the estimated cost before anything runs."),
        ],
    )


def evaluation_line(evaluation: Any, *, dataset_name: str) -> str:
    icons = {EvalStatus.DONE: "✅", EvalStatus.FAILED: "❌", EvalStatus.RUNNING: "⏳", EvalStatus.CANCELLED: "🚫"}
    icon = icons.get(evaluation.status, "❔")
    head = (
        f"{icon} *#{evaluation.id}* `{escape(evaluation.model)}` vs `{escape(evaluation.baseline_model)}` on "
        f"`{escape(dataset_name)}`"
    )
    if evaluation.status == EvalStatus.DONE:
        metrics = evaluation.metrics
        key = "macro_f1" if metrics["classification"] else "token_f1"
        name = "macro F1" if metrics["classification"] else "overlap F1"
        return (
            f"{head}\n{name} {metrics['candidate'][key]:.3f} vs {metrics['baseline'][key]:.3f} · win rate "
            f"{_percent(metrics['head_to_head']['win_rate'])} · {evaluation.finished_at:%b %d}"
        )
    return f"{head} · {escape(evaluation.status.replace('_', ' '))}"
