"""How a dataset looks in Slack: the validation report, its details, intake refusals, `/finetune datasets`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.datasets.report import CODE_TITLES, FORMAT_NAMES
from bot.mrkdwn import escape
from bot.slack_blocks import Block, button, context, header, money, section, split_text


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
