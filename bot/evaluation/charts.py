"""An evaluation's chart, as a PNG for Slack."""

from __future__ import annotations

from typing import Any

from bot.charts import close, figure, png

CANDIDATE_COLOR, BASELINE_COLOR = "#1d6fb8", "#9aa5b1"


def evaluation_png(*, title: str, metrics: dict[str, Any], model: str, baseline: str) -> bytes:
    """Per-class F1 of both models for a classification; otherwise their scores and the head-to-head record."""
    draw = _per_class_png if metrics["classification"] else _scores_png
    return draw(title=title, metrics=metrics, model=model, baseline=baseline)


def _per_class_png(*, title: str, metrics: dict[str, Any], model: str, baseline: str) -> bytes:
    """Per-class F1 of both models, one pair of bars per label."""
    classes = metrics["candidate"]["per_class"][:20]
    base = {row["label"]: row["f1"] for row in metrics["baseline"]["per_class"]}
    drawn, axes = figure(figsize=(8, 1.6 + 0.45 * len(classes)), dpi=110)
    try:
        positions = range(len(classes))
        axes.barh([p - 0.2 for p in positions], [row["f1"] for row in classes], 0.4, label=model, color=CANDIDATE_COLOR)
        axes.barh(
            [p + 0.2 for p in positions],
            [base[row["label"]] for row in classes],
            0.4,
            label=baseline,
            color=BASELINE_COLOR,
        )
        axes.set_yticks(list(positions), [row["label"][:30] for row in classes])
        axes.invert_yaxis()
        axes.set_xlim(0, 1)
        axes.set_xlabel("F1")
        return _finish(drawn, axes, title)
    finally:
        close(drawn)


def _scores_png(*, title: str, metrics: dict[str, Any], model: str, baseline: str) -> bytes:
    """Both models' scores side by side, and the head-to-head record."""
    drawn, (scores, record) = figure(1, 2, figsize=(9, 3.6), dpi=110, width_ratios=[3, 2])
    try:
        names = ["exact match", "normalized match", "token overlap F1"]
        keys = ["exact_match", "normalized_match", "token_f1"]
        positions = range(len(names))
        scores.bar(
            [p - 0.2 for p in positions],
            [metrics["candidate"][k] for k in keys],
            0.4,
            label=model,
            color=CANDIDATE_COLOR,
        )
        scores.bar(
            [p + 0.2 for p in positions],
            [metrics["baseline"][k] for k in keys],
            0.4,
            label=baseline,
            color=BASELINE_COLOR,
        )
        scores.set_xticks(list(positions), names, fontsize=8)
        scores.set_ylim(0, 1.2)  # room for the legend above the bars
        scores.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
        scores.legend(fontsize=7, loc="upper left", ncol=2)
        scores.grid(alpha=0.3, axis="y")
        head = metrics["head_to_head"]
        left = 0
        for label, count, color in (
            ("wins", head["wins"], CANDIDATE_COLOR),
            ("ties", head["ties"], "#d9d9d9"),
            ("losses", head["losses"], BASELINE_COLOR),
        ):
            if count:
                record.barh([0], [count], left=left, color=color)
                record.text(left + count / 2, 0, f"{label}\n{count}", ha="center", va="center", fontsize=8)
            left += count
        record.set_yticks([])
        record.set_xlabel("examples")
        record.set_title(f"win rate {head['win_rate']:.0%}", fontsize=9)
        drawn.suptitle(title, fontsize=10)
        return png(drawn)
    finally:
        close(drawn)


def _finish(drawn: Any, axes: Any, title: str) -> bytes:
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3, axis="x")
    axes.legend(fontsize=7)
    return png(drawn)
