"""Pure Block Kit builders: data in, Slack blocks out. No I/O, so every view is unit-testable."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from bot.datasets.report import CODE_TITLES
from bot.mrkdwn import escape
from bot.training.status import STATUS_ICONS, JobStatus
from storage.models import EvalStatus, GoldenSetStatus

Block = dict[str, Any]

# Slack rejects a section whose text is longer than this (invalid_blocks).
SECTION_TEXT_LIMIT = 3000
FIELD_TEXT_LIMIT = 2000
# A message's top-level text is truncated by Slack past 4,000 characters (msg_too_long past 40,000).
FALLBACK_TEXT_LIMIT = 3000
# Sections a job's failure may take in its result message, leaving room for the advice.
RESULT_TEXT_SECTIONS = 10


def section(text: str) -> Block:
    """A mrkdwn section; text past Slack's 3,000 characters is cut with an ellipsis rather than refused
    (callers split what must be shown whole: split_text)."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": shorten(text, SECTION_TEXT_LIMIT)}}


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": shorten(text, SECTION_TEXT_LIMIT)}]}


def help_blocks(command: str, entries: Sequence[tuple[str, str]]) -> list[Block]:
    """The `/finetune help` answer: one line per subcommand, usage then what it does."""
    lines = [f"`{escape(command)} {escape(usage)}` — {escape(summary)}" for usage, summary in entries]
    return [
        section(f"*What `{escape(command)}` can do*"),
        section("\n".join(lines)),
        context("Drop a `.jsonl` file in a channel I'm in and I'll validate it in its thread."),
    ]


def help_text(command: str, entries: Sequence[tuple[str, str]]) -> str:
    """Plain-text fallback of help_blocks, for notifications and screen readers."""
    lines = [f"What {command} can do:", *(f"{command} {usage} — {summary}" for usage, summary in entries)]
    return escape("\n".join(lines))


def fields_section(texts: Sequence[str]) -> Block:
    """A section of two-column fields: at most ten, each cut at Slack's 2,000 characters."""
    return {
        "type": "section",
        "fields": [{"type": "mrkdwn", "text": shorten(text, FIELD_TEXT_LIMIT)} for text in list(texts)[:10]],
    }


def header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": text[:150], "emoji": True}}


def button(text: str, action_id: str, value: str, *, style: str | None = None) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": text, "emoji": True},
        "action_id": action_id,
        "value": value,
    }
    if style:
        element["style"] = style
    return element


def safe_cut(text: str, limit: int) -> int:
    """Where to cut ``text`` at most ``limit`` characters in, never inside an escape such as ``&lt;``."""
    entity = text.rfind("&", max(0, limit - 5), limit)
    if entity != -1 and ";" not in text[entity:limit]:
        return entity or limit
    return limit


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis, never inside an escape such as ``&lt;``."""
    if len(text) <= limit:
        return text
    return text[: safe_cut(text, limit - 1)] + "…"


def split_text(text: str, limit: int = SECTION_TEXT_LIMIT) -> list[str]:
    """Split on line breaks into pieces Slack accepts; a single overlong line is cut at ``limit``."""
    pieces: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:
            if current:
                pieces.append(current)
                current = ""
            cut = safe_cut(line, limit)
            pieces.append(line[:cut])
            line = line[cut:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            pieces.append(current)
            current = line
        else:
            current = candidate
    if current:
        pieces.append(current)
    return pieces


# --- dataset reports ---------------------------------------------------------------------------------

FORMAT_NAMES = {"chat": "chat", "preference": "preference (DPO)", "prompt_completion": "prompt-completion"}


def _code_title(code: str) -> str:
    return CODE_TITLES.get(code, code)


def _issue_lines(issues: list[dict[str, Any]], counts: dict[str, int], *, show_messages: int) -> list[str]:
    by_code: dict[str, list[dict[str, Any]]] = {}
    for issue in issues:
        by_code.setdefault(issue["code"], []).append(issue)
    lines = []
    for code, members in by_code.items():
        total = counts.get(code, len(members))
        where = ", ".join(str(m["line"]) for m in members if m["line"] is not None)
        more = total - len(members)
        location = ""
        if where:
            location = f" — line{'s' if total > 1 else ''} {where}" + (f" and {more:,} more" if more > 0 else "")
        lines.append(f"• *{escape(_code_title(code))}* `{escape(code)}`{location}")
        lines += [f"    _{escape(m['message'])}_" for m in members[:show_messages]]
    return lines


def money(value: float | None) -> str:
    if value is None:
        return "unknown"
    return f"${value:,.2f}" if value >= 0.01 else "under $0.01"


def precise_money(value: float | None) -> str:
    """Money for small sums (an evaluation costs fractions of a cent): ``$0.0041`` rather than "under $0.01"."""
    if value is None:
        return "unknown"
    return f"${value:,.2f}" if value >= 0.01 or value == 0 else f"${value:.4f}"


def report_text(filename: str, report: dict[str, Any]) -> str:
    """One-line fallback text for notifications."""
    icon = "✅" if report["valid"] else "❌"
    billing = report["billing"]
    if not report["valid"]:
        problems = sum(report["error_counts"].values())
        return f"{icon} {escape(filename)}: {problems:,} problem(s) to fix before training."
    return (
        f"{icon} {escape(filename)}: {escape(FORMAT_NAMES.get(report['format'], report['format']))}, "
        f"{report['examples']:,} examples, "
        f"{report['tokens']['total']:,} tokens, about {money(billing['estimated_cost_usd'])} to train."
    )


def report_blocks(*, dataset_id: int, filename: str, report: dict[str, Any]) -> list[Block]:
    """The validation report: verdict first, then what to fix, then tokens and cost."""
    valid = report["valid"]
    fmt = FORMAT_NAMES.get(report["format"], "unknown format")
    error_total = sum(report["error_counts"].values())
    title = f"✅ {filename} is ready to train" if valid else f"❌ {filename} needs fixing ({error_total:,} problem"
    if not valid:
        title += "s)" if error_total != 1 else ")"
    result: list[Block] = [
        header(title),
        context(
            f"{escape(fmt)} · {report['examples']:,} examples · method {escape(report.get('method', 'supervised'))} · "
            f"dataset #{dataset_id}"
        ),
    ]
    if report["errors"]:
        lines = _issue_lines(report["errors"], report["error_counts"], show_messages=1)
        result += [section(piece) for piece in split_text("*Errors*\n" + "\n".join(lines))][:20]
    if report["warnings"]:
        warning_counts = report.get("warning_counts", {})
        lines = _issue_lines(report["warnings"], warning_counts, show_messages=1)
        result += [
            section(piece) for piece in split_text("*Warnings* (the file can still train)\n" + "\n".join(lines))
        ][:10]
    tokens, billing = report["tokens"], report["billing"]
    if tokens["total"]:
        result.append(
            section(
                f"*Tokens per example* ({escape(billing['model'])}): min {tokens['min']:,} · "
                f"mean {tokens['mean']:,.1f} · "
                f"p50 {tokens['p50']:,} · p95 {tokens['p95']:,} · max {tokens['max']:,}\n"
                f"*Training estimate:* {billing['epochs']} epochs × capped tokens = {billing['billed_tokens']:,} "
                f"billed tokens ≈ *{money(billing['estimated_cost_usd'])}*"
            )
        )
    for note in report.get("notes", []):
        result.append(context(escape(note)))
    actions = [button("Details", "dataset_details", str(dataset_id))]
    if valid:
        actions.insert(0, button("Train…", "dataset_train", str(dataset_id), style="primary"))
    result.append({"type": "actions", "block_id": f"dataset:{dataset_id}", "elements": actions})
    return result


def report_details_blocks(*, dataset_id: int, filename: str, report: dict[str, Any]) -> list[Block]:
    """Every listed line with its sentence, for the person who clicked Details."""
    lines = [f"*{escape(filename)}* (dataset #{dataset_id}) — first lines per problem, with what is wrong:"]
    if report["errors"]:
        lines += ["", "*Errors*", *_issue_lines(report["errors"], report["error_counts"], show_messages=5)]
    if report["warnings"]:
        counts = report.get("warning_counts", {})
        lines += ["", "*Warnings*", *_issue_lines(report["warnings"], counts, show_messages=5)]
    if not report["errors"] and not report["warnings"]:
        lines.append("Nothing to fix: no errors and no warnings.")
    if report.get("common_system_prompt"):
        prompt = report["common_system_prompt"]
        shown = escape(prompt[:500]) + ("…" if len(prompt) > 500 else "")
        lines += ["", f"*Most common system prompt:* _{shown}_"]
    pieces = split_text("\n".join(lines))
    return [section(piece) for piece in pieces[:49]]


def intake_given_up_text(interruptions: int) -> str:
    return (
        f"Sorry, I could not check this file: taking it in was interrupted {interruptions} times (the bot "
        "restarted while downloading or validating it). Please share it again; if this keeps happening, tell "
        "your admin."
    )


def still_starting_text(job_id: int, provider: str) -> str:
    return (
        f"Job #{job_id} is still being handed to {escape(provider)}; its card in the thread gets a Cancel button "
        "as soon as it has started, or the thread says that it did not start."
    )


def not_jsonl_text(filename: str) -> str:
    return (
        f"`{escape(filename)}` looks like plain JSON. I validate fine-tuning data in JSONL: one JSON object per line, "
        "saved as `.jsonl`. Convert it (for example `jq -c '.[]' data.json > data.jsonl`) and share it again."
    )


def same_data_text(earlier: Any) -> str:
    return (
        f"These are the same bytes as dataset #{earlier.id} (`{escape(earlier.filename)}`, shared by "
        f"<@{earlier.uploaded_by}> on {earlier.created_at:%Y-%m-%d}), so I'm reusing it. Its report:"
    )


def too_large_text(filename: str, size: int, limit: int) -> str:
    return (
        f"`{escape(filename)}` is {size / 2**20:,.1f} MB, over the {limit / 2**20:,.0f} MB limit "
        "(FINETUNE_MAX_FILE_MB; OpenAI's own limit is 512 MB). Split it into smaller files and share them again."
    )


def download_refused_text(filename: str, status: int) -> str:
    return (
        f"Slack refused to let me download `{escape(filename)}` (HTTP {status}, or its sign-in page). "
        "Check that the app has the files:read scope and is a member of this channel, then share the file again."
    )


def file_info_refused_text(code: str) -> str:
    return (
        f"Slack would not tell me about this file (`{escape(code)}`), so I could not check it. If the file is "
        "still there, share it again; if it keeps happening, check that the app has the files:read scope."
    )


def datasets_list_blocks(datasets: Sequence[Any], *, workspace_url: str) -> list[Block]:
    if not datasets:
        return [section("No datasets yet. Drop a `.jsonl` file in a channel I'm in and I'll validate it.")]
    lines = []
    for dataset in datasets:
        icon = "✅" if dataset.valid else "❌"
        link = f"{workspace_url}archives/{dataset.channel_id}/p{dataset.message_ts.replace('.', '')}"
        lines.append(
            f"{icon} *#{dataset.id}* <{link}|{escape(dataset.filename)}> — "
            f"{escape(FORMAT_NAMES.get(dataset.format, dataset.format))}, "
            f"{dataset.examples:,} examples, {dataset.total_tokens:,} tokens · <@{dataset.uploaded_by}> · "
            f"{dataset.created_at:%b %d}"
        )
    return [section("*Recent datasets*"), *(section(piece) for piece in split_text("\n".join(lines)))]


# --- training -----------------------------------------------------------------------------------------

TRAIN_CALLBACK = "train_submit"


def _option(text: str, value: str) -> dict[str, Any]:
    return {"text": {"type": "plain_text", "text": text[:75], "emoji": True}, "value": value}


def _text_input(
    block_id: str,
    label: str,
    *,
    initial: str,
    hint: str,
    optional: bool = False,
    max_length: int | None = None,
    dispatch_on_enter: str | None = None,
) -> Block:
    element: dict[str, Any] = {"type": "plain_text_input", "action_id": dispatch_on_enter or block_id}
    if initial:
        element["initial_value"] = initial
    if max_length:
        element["max_length"] = max_length
    block: Block = {
        "type": "input",
        "block_id": block_id,
        "optional": optional,
        "label": {"type": "plain_text", "text": label},
        "hint": {"type": "plain_text", "text": hint},
        "element": element,
    }
    if dispatch_on_enter:
        element["dispatch_action_config"] = {"trigger_actions_on": ["on_enter_pressed"]}
        block["dispatch_action"] = True
    return block


def model_label(model: Any) -> str:
    """e.g. ``gpt-4o-mini-2024-07-18 · training ends 2027-01-06 · shutdown 2027-01-14``."""
    parts = [model.id]
    if model.training_retires:
        parts.append(f"training ends {model.training_retires:%Y-%m-%d}")
    if model.inference_retires:
        parts.append(f"shutdown {model.inference_retires:%Y-%m-%d}")
    return " · ".join(parts)


def train_modal(
    *,
    dataset: Any,
    models: Sequence[Any],
    choice: dict[str, str],
    validation_choices: Sequence[Any],
    estimate: str,
    private_metadata: str,
) -> Block:
    """The Train… modal: base model (with retirement dates), method, hyperparameters, suffix, estimate."""
    model_options = [_option(model_label(model), model.id) for model in models]
    selected = next((option for option in model_options if option["value"] == choice.get("model")), None)
    model_select: dict[str, Any] = {"type": "static_select", "action_id": "train_model", "options": model_options}
    if selected:
        model_select["initial_option"] = selected
    methods = [_option("supervised (chat examples)", "supervised"), _option("dpo (preference pairs)", "dpo")]
    method_select = {
        "type": "static_select",
        "action_id": "train_method",
        "options": methods,
        "initial_option": next(o for o in methods if o["value"] == choice.get("method", "supervised")),
    }
    blocks_: list[Block] = [
        section(
            f"*Dataset:* `{escape(dataset.filename)}` (#{dataset.id}) — "
            f"{escape(FORMAT_NAMES.get(dataset.format, dataset.format))}, "
            f"{dataset.examples:,} examples"
        ),
        {
            "type": "input",
            "block_id": "model",
            "dispatch_action": True,
            "element": model_select,
            "label": {"type": "plain_text", "text": "Base model"},
        },
        {
            "type": "input",
            "block_id": "method",
            "dispatch_action": True,
            "element": method_select,
            "label": {"type": "plain_text", "text": "Method"},
        },
        _text_input(
            "n_epochs",
            "Epochs",
            initial=choice.get("n_epochs", "auto"),
            hint="auto, or 1 to 50 (press Enter to update the estimate)",
            dispatch_on_enter="train_epochs",
        ),
        _text_input("batch_size", "Batch size", initial=choice.get("batch_size", "auto"), hint="auto, or 1 to 256"),
        _text_input(
            "learning_rate_multiplier",
            "Learning-rate multiplier",
            initial=choice.get("learning_rate_multiplier", "auto"),
            hint="auto, or a number above 0, up to 10",
        ),
    ]
    if choice.get("method") == "dpo":
        blocks_.append(
            _text_input(
                "beta", "Beta (DPO)", initial=choice.get("beta", "auto"), hint="auto, or a number above 0, up to 2"
            )
        )
    blocks_ += [
        _text_input(
            "suffix",
            "Suffix",
            initial=choice.get("suffix", ""),
            optional=True,
            max_length=64,
            hint="up to 64 characters, becomes part of the model's name",
        ),
        _text_input(
            "seed", "Seed", initial=choice.get("seed", ""), optional=True, hint="a whole number, for repeatable runs"
        ),
    ]
    if validation_choices:
        options = [_option(f"#{d.id} {d.filename} ({d.examples:,} examples)", str(d.id)) for d in validation_choices]
        element: dict[str, Any] = {"type": "static_select", "action_id": "train_validation", "options": options}
        picked = next((o for o in options if o["value"] == choice.get("validation")), None)
        if picked:
            element["initial_option"] = picked
        blocks_.append(
            {
                "type": "input",
                "block_id": "validation",
                "optional": True,
                "element": element,
                "label": {"type": "plain_text", "text": "Validation dataset"},
            }
        )
    blocks_ += [section(estimate)]
    blocks_[-1]["block_id"] = "estimate"
    return {
        "type": "modal",
        "callback_id": TRAIN_CALLBACK,
        "title": {"type": "plain_text", "text": "Train a model"},
        "submit": {"type": "plain_text", "text": "Start training"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "private_metadata": private_metadata,
        "blocks": blocks_,
    }


def estimate_text(*, model: str, epochs: int, capped_tokens: int, cost: float | None) -> str:
    return (
        f"*Estimate on {escape(model)}:* {epochs} epoch{'s' if epochs != 1 else ''} × {capped_tokens:,} tokens = "
        f"{epochs * capped_tokens:,} billed tokens ≈ *{money(cost)}*"
    )


def estimate_pending_text(*, model: str) -> str:
    return f"*Estimate on {escape(model)}:* ⏳ counting the tokens for this model…"


def _hyperparameters_text(hyperparameters: dict[str, Any]) -> str:
    names = {"n_epochs": "epochs", "batch_size": "batch", "learning_rate_multiplier": "LR ×", "beta": "beta"}
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
    if job.provider_job_id and job.status in ("validating", "queued", "running", "paused", "unknown"):
        cancel = button("Cancel", "job_cancel", str(job.id), style="danger")
        cancel["confirm"] = {
            "title": {"type": "plain_text", "text": "Cancel this job?"},
            "text": {
                "type": "mrkdwn",
                "text": f"Training of `{escape(job.base_model)}` on `{escape(dataset_name)}` stops for good.",
            },
            "confirm": {"type": "plain_text", "text": "Cancel the job"},
            "deny": {"type": "plain_text", "text": "Keep training"},
        }
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
) -> tuple[str, list[Block]]:
    """The outcome in the thread: who asked, what came out, and what to do next."""
    who = f"<@{job.requested_by}>"
    if job.status == "succeeded":
        duration = _duration(((job.finished_at or now) - job.created_at).total_seconds())
        losses = " · ".join(
            part
            for part in (
                f"train {job.train_loss:.3f}" if job.train_loss is not None else "",
                f"valid {job.valid_loss:.3f}" if job.valid_loss is not None else "",
            )
            if part
        )
        fields = [
            f"*Model*\n`{escape(job.fine_tuned_model)}`",
            f"*Base model*\n`{escape(job.base_model)}`",
            f"*Trained tokens*\n{job.trained_tokens or 0:,}",
            f"*Cost*\n{money(job.actual_cost_usd)} (estimate {money(job.estimated_cost_usd)})",
            f"*Duration*\n{duration}",
            f"*Final loss*\n{losses or '—'}",
        ]
        text = f"✅ {who}, your model is ready: {escape(job.fine_tuned_model)}"
        result: list[Block] = [
            section(f"✅ {who}, fine-tuning on `{escape(dataset_name)}` succeeded."),
            fields_section(fields),
        ]
        if checkpoints:
            lines = ["*Checkpoints*"]
            for checkpoint in checkpoints[:3]:
                metrics = checkpoint.metrics
                train = metrics.get("train_loss")
                valid = metrics.get("valid_loss")
                detail = ", ".join(
                    part
                    for part in (
                        f"train loss {train:.3f}" if train is not None else "",
                        f"valid loss {valid:.3f}" if valid is not None else "",
                    )
                    if part
                )
                lines.append(f"• step {checkpoint.step}: `{escape(checkpoint.model)}` — {detail}")
            result.append(section("\n".join(lines)))
        result.append(model_actions(job.id, job.fine_tuned_model))
        return text, result
    if job.status == "failed":
        message = job.error_message or "(no reason given)"
        file_problem = error_code in ("invalid_training_file", "invalid_file") or "training file" in message.lower()
        advice = (
            "Fix the training file as the message says, share it again, and click Train… on the new report."
            if file_problem
            else "Nothing is billed for a failed job. Click Train… on the report to try again; if it fails the same "
            "way, the message above is what to fix."
        )
        text = shorten(
            f"❌ {who}, fine-tuning on {escape(dataset_name)} failed: {escape(message)}", FALLBACK_TEXT_LIMIT
        )
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
    by = f"<@{job.cancelled_by}>" if job.cancelled_by else f"someone at {escape(provider_label)} (not from Slack)"
    text = f"🛑 {who}, fine-tuning on {escape(dataset_name)} was cancelled by {by}."
    return text, [section(text)]


def chat_root(
    *, model: str, compare_model: str | None, system_prompt: str | None, user: str
) -> tuple[str, list[Block]]:
    """The root message of a chat (or compare) thread: which model(s), which system prompt, how to talk."""
    if compare_model:
        text = f"⚖️ Compare `{escape(model)}` with `{escape(compare_model)}`"
        how = "Reply in this thread: each message is answered by both models, one after the other."
    else:
        text = f"💬 Chat with `{escape(model)}`"
        how = "Reply in this thread (or mention me in it) to talk to the model."
    prompt = f"*System prompt:* _{shorten(escape(system_prompt), 1500)}_" if system_prompt else "*System prompt:* none"
    return text, [section(text), section(prompt), context(f"{how} Started by <@{user}>.")]


def model_actions(job_id: int, model: str) -> Block:
    """Chat, Compare with base, Evaluate and Delete model, under a finished job's result."""
    delete = button("🗑 Delete model", "model_delete", str(job_id), style="danger")
    delete["confirm"] = {
        "title": {"type": "plain_text", "text": "Delete this model?"},
        "text": {
            "type": "mrkdwn",
            "text": f"`{escape(model)}` will be deleted at the provider for good. Its training data stays in the bot.",
        },
        "confirm": {"type": "plain_text", "text": "Delete"},
        "deny": {"type": "plain_text", "text": "Keep it"},
    }
    return {
        "type": "actions",
        "block_id": f"model:{job_id}",
        "elements": [
            button("💬 Chat", "chat_start", str(job_id), style="primary"),
            button("⚖️ Compare with base", "compare_start", str(job_id)),
            button("📏 Evaluate", "eval_open", str(job_id)),
            delete,
        ],
    }


# --- models, reminders, App Home -----------------------------------------------------------------------

HOME_PAGE_SIZE = 8


def lineage(dataset: Any) -> str:
    """`` (v2 of #1)`` for a version the flywheel built; nothing for a shared file."""
    parent = getattr(dataset, "parent_id", None)
    return f" (v{dataset.version} of #{parent})" if parent else ""


def retirement_text(retires: Any, *, today: Any) -> str:
    """``retires 2027-01-14 (54 days left)``, with ⚠️ under 30 days."""
    if retires is None:
        return "no retirement date known"
    left = (retires - today).days
    if left < 0:
        return f"retired on {retires:%Y-%m-%d}"
    warning = "⚠️ " if left < 30 else ""
    return f"{warning}retires {retires:%Y-%m-%d} ({left} day{'s' if left != 1 else ''} left)"


def model_line(job: Any, *, today: Any) -> str:
    created = f"{job.finished_at:%Y-%m-%d}" if job.finished_at else "—"
    return (
        f"• `{escape(job.fine_tuned_model)}` — base `{escape(job.base_model)}`, created {created} by "
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


def _page(items: Sequence[Any], page: int) -> tuple[list[Any], int, int]:
    pages = max(1, -(-len(items) // HOME_PAGE_SIZE))
    page = min(max(page, 1), pages)
    return list(items[(page - 1) * HOME_PAGE_SIZE : page * HOME_PAGE_SIZE]), page, pages


def _pager(section_name: str, page: int, pages: int, all_pages: dict[str, int]) -> Block | None:
    if pages <= 1:
        return None
    elements = []
    if page > 1:
        elements.append(button("◀ Previous", "home_page", json.dumps({**all_pages, section_name: page - 1})))
    if page < pages:
        elements.append(button("Next ▶", "home_page", json.dumps({**all_pages, section_name: page + 1})))
    return {"type": "actions", "block_id": f"pager:{section_name}", "elements": elements}


def home_view(
    *,
    datasets: Sequence[Any],
    jobs: Sequence[Any],
    models: Sequence[Any],
    evaluations: Sequence[tuple[Any, str]],
    spend: float,
    budget: float | None,
    pages: dict[str, int],
    now: Any,
) -> Block:
    """The Home tab: datasets, jobs, models (with retirement dates), evaluations and this month's spend, paged."""
    today = now.date()
    result: list[Block] = [header("Fine-tuning, together")]
    budget_text = f" of the ${budget:,.2f} monthly budget" if budget is not None else ""
    result.append(section(f"*This month's training spend:* {money(spend)}{budget_text}"))

    shown, page, count = _page(datasets, pages.get("datasets", 1))
    result += [{"type": "divider"}, section(f"*Datasets* ({len(datasets)}) — page {page} of {count}")]
    for dataset in shown:
        icon = "✅" if dataset.valid else "❌"
        block = section(
            f"{icon} *#{dataset.id}* `{escape(dataset.filename)}`{lineage(dataset)} — "
            f"{escape(FORMAT_NAMES.get(dataset.format, dataset.format))}, "
            f"{dataset.examples:,} examples, {dataset.total_tokens:,} tokens · {dataset.created_at:%b %d}"
        )
        if dataset.valid:
            block["accessory"] = button("Train…", "dataset_train", str(dataset.id))
        result.append(block)
    if not datasets:
        result.append(context("Drop a `.jsonl` file in a channel I'm in to add one."))
    pager = _pager("datasets", page, count, pages)
    result += [pager] if pager else []

    shown, page, count = _page(jobs, pages.get("jobs", 1))
    result += [{"type": "divider"}, section(f"*Jobs* ({len(jobs)}) — page {page} of {count}")]
    for job in shown:
        cost = money(job.actual_cost_usd if job.actual_cost_usd is not None else job.estimated_cost_usd)
        result.append(
            section(
                f"*#{job.id}* `{escape(job.base_model)}` · <@{job.requested_by}> · {cost}\n"
                f"{progress_line(job, now=now)}"
            )
        )
    pager = _pager("jobs", page, count, pages)
    result += [pager] if pager else []

    shown, page, count = _page(models, pages.get("models", 1))
    result += [{"type": "divider"}, section(f"*Models* ({len(models)}) — page {page} of {count}")]
    for job in shown:
        result.append(section(model_line(job, today=today)))
        result.append(model_actions(job.id, job.fine_tuned_model))
    pager = _pager("models", page, count, pages)
    result += [pager] if pager else []

    shown, page, count = _page(evaluations, pages.get("evaluations", 1))
    result += [{"type": "divider"}, section(f"*Evaluations* ({len(evaluations)}) — page {page} of {count}")]
    for evaluation, dataset_name in shown:
        result.append(section(evaluation_line(evaluation, dataset_name=dataset_name)))
    if not evaluations:
        result.append(context("Click 📏 Evaluate under a model to measure it on held-out data."))
    pager = _pager("evaluations", page, count, pages)
    result += [pager] if pager else []
    return {"type": "home", "private_metadata": json.dumps(pages), "blocks": result[:100]}


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


# --- evaluations ---------------------------------------------------------------------------------------

EVAL_SHOWN_CLASSES = 12
EVAL_CONFUSION_MAX_COLUMNS = 8
EVAL_EXCERPT_CHARS = 240


def short_model(model: str) -> str:
    """A column header for a model: a fine-tune's suffix (``ft:base:org:suffix:id``), else the id."""
    if model.startswith("ft:"):
        parts = model.split(":")
        return (parts[3] if len(parts) > 3 and parts[3] else parts[-1])[:20]
    return model[:24]


def _excerpt(text: str, limit: int = EVAL_EXCERPT_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


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
                    f"*Example {difference['position'] + 1}* — _{escape(_excerpt(difference['question']))}_\n"
                    f"• expected: {escape(_excerpt(difference['expected']))}\n"
                    f"• `{first}`: {escape(_excerpt(difference['candidate']))}\n"
                    f"• `{second}`: {escape(_excerpt(difference['baseline']))}"
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
    options = [_option(f"#{d.id} {d.filename} ({d.examples:,} examples)", str(d.id)) for d in list(datasets)[:100]]
    select: dict[str, Any] = {"type": "static_select", "action_id": "eval_dataset", "options": options}
    initial = next((o for o in options if o["value"] == str(initial_dataset_id)), None)
    if initial is not None:
        select["initial_option"] = initial
    return {
        "type": "modal",
        "callback_id": "eval_submit",
        "private_metadata": json.dumps({"job_id": job.id}),
        "title": {"type": "plain_text", "text": "Evaluate"},
        "submit": {"type": "plain_text", "text": "Estimate"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            section(f"Measure `{escape(job.fine_tuned_model)}` on examples it did not train on."),
            {
                "type": "input",
                "block_id": "eval_dataset",
                "label": {"type": "plain_text", "text": "Held-out dataset"},
                "element": select,
            },
            _text_input(
                "eval_against",
                "Against",
                initial="",
                hint=f"Another model to beat; empty means its base, {job.base_model}.",
                optional=True,
            ),
            context("You will see the estimated cost before anything runs."),
        ],
    }


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


# --- data flywheel -------------------------------------------------------------------------------------

CANDIDATES_SHOWN = 20
FLYWHEEL_KINDS = {"approved": "👍 approved reply", "corrected": "✏️ correction", "preference": "⚖️ preference pair"}


def _candidate_summary(example: dict[str, Any]) -> str:
    messages = example.get("messages") or (example.get("input") or {}).get("messages") or []
    question = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
    answer = (
        messages[-1]["content"]
        if example.get("messages")
        else (example.get("preferred_output") or [{}])[0].get("content", "")
    )
    return f"_{escape(_excerpt(str(question), 90))}_ → {escape(_excerpt(str(answer), 120))}"


def candidates_blocks(
    dataset: Any, pending: Sequence[Any], *, duplicates: set[int | None], may_drop: bool
) -> tuple[str, list[Block]]:
    """`/finetune candidates`: what the team collected for the next version, by kind and contributor."""
    text = f"{len(pending):,} candidate(s) for the next version of `{escape(dataset.filename)}`"
    if not pending:
        return text, [
            section(f"*{text}*"),
            context(
                "👍 a good answer, or reply `correct: …` under a wrong one, in a chat with the model trained on it."
            ),
        ]
    by_kind = ", ".join(
        f"{count} {FLYWHEEL_KINDS.get(kind, kind)}{'s' if count != 1 else ''}"
        for kind, count in sorted(_count(c.kind for c in pending).items())
    )
    by_person = ", ".join(f"<@{who}> {count}" for who, count in sorted(_count(c.contributor for c in pending).items()))
    result: list[Block] = [section(f"*{text}*\nBy kind: {by_kind}\nBy contributor: {by_person}")]
    if duplicates:
        result.append(context(f"⚠️ {len(duplicates)} already in the data (marked below); they will be left out."))
    for candidate in pending[:CANDIDATES_SHOWN]:
        flag = " ⚠️ duplicate" if candidate.id in duplicates else ""
        block = section(
            f"*#{candidate.id}* {FLYWHEEL_KINDS.get(candidate.kind, candidate.kind)} by <@{candidate.contributor}>"
            f"{flag}\n{_candidate_summary(candidate.example)}"
        )
        if may_drop:
            block["accessory"] = button("Drop", "candidate_drop", str(candidate.id))
        result.append(block)
    if len(pending) > CANDIDATES_SHOWN:
        result.append(context(f"… and {len(pending) - CANDIDATES_SHOWN} more."))
    result.append(context(f"`/finetune dataset next {dataset.id}` publishes them as the next version."))
    return text, result


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def _added_words(diff: dict[str, Any]) -> str:
    return ", ".join(
        f"{count} {FLYWHEEL_KINDS.get(kind, kind)}{'s' if count != 1 else ''}"
        for kind, count in sorted(diff["added"].items())
    )


def version_announcement(parent: Any, *, name: str, version: int, diff: dict[str, Any]) -> str:
    people = ", ".join(f"<@{who}>" for who in diff["contributors"])
    return (
        f"📦 `{escape(name)}`: version {version} of `{escape(parent.filename)}` (#{parent.id}), "
        f"with {_added_words(diff)} "
        f"collected in chats by {people}."
    )


def version_report_blocks(dataset: Any, *, diff: dict[str, Any], retrain_cost: float | None) -> list[Block]:
    """The new version's report, with what changed since its parent above it."""
    lines = [
        f"*What changed since #{diff['parent_id']}:* {diff['examples_before']:,} → {dataset.examples:,} examples "
        f"({_added_words(diff)}), {diff['tokens_added']:+,} tokens; retraining costs about {money(retrain_cost)}.",
    ]
    if diff["corrections_added_not_replacing"]:
        lines.append(
            f"{diff['corrections_added_not_replacing']} correction(s) went in as new examples: nothing already in "
            "the data was replaced or removed."
        )
    if "preference" in diff["added"] and dataset.format == "chat":
        lines.append("Preference pairs went in as their preferred answer, since this is chat data.")
    if diff["left_out"]:
        lines.append("Left out: " + ", ".join(f"{n} {why}" for why, n in diff["left_out"].items()) + ".")
    report = report_blocks(dataset_id=dataset.id, filename=dataset.filename, report=dataset.report)
    return [report[0], section("\n".join(lines)), *report[1:]]
