"""How the flywheel looks in Slack: candidates and new dataset versions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.datasets.views import report_blocks
from bot.mrkdwn import escape
from bot.slack_blocks import Block, button, context, excerpt, money, section

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
    return f"_{escape(excerpt(str(question), 90))}_ → {escape(excerpt(str(answer), 120))}"


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
