"""The loss curve of a finished job, as a PNG for Slack."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: render to memory

from matplotlib import pyplot


def loss_curve_png(
    *, title: str, steps: Sequence[int], train: Sequence[float | None], valid: Sequence[float | None]
) -> bytes:
    """Training (and validation, when there is any) loss by step."""
    figure, axes = pyplot.subplots(figsize=(8, 4.2), dpi=110)
    try:
        train_points = [(s, v) for s, v in zip(steps, train, strict=True) if v is not None]
        valid_points = [(s, v) for s, v in zip(steps, valid, strict=True) if v is not None]
        if train_points:
            axes.plot(*zip(*train_points, strict=True), label="training loss", color="#1d6fb8", linewidth=1.6)
        if valid_points:
            axes.plot(*zip(*valid_points, strict=True), label="validation loss", color="#e07b00", linewidth=1.6)
        axes.set_title(title, fontsize=10)
        axes.set_xlabel("step")
        axes.set_ylabel("loss")
        axes.grid(alpha=0.3)
        axes.legend()
        return _png(figure)
    finally:
        pyplot.close(figure)


CANDIDATE_COLOR, BASELINE_COLOR = "#1d6fb8", "#9aa5b1"


def evaluation_png(*, title: str, metrics: dict[str, Any], model: str, baseline: str) -> bytes:
    """Per-class F1 of both models for a classification; otherwise their scores and the head-to-head record."""
    if metrics["classification"]:
        classes = metrics["candidate"]["per_class"][:20]
        base = {row["label"]: row["f1"] for row in metrics["baseline"]["per_class"]}
        figure, axes = pyplot.subplots(figsize=(8, 1.6 + 0.45 * len(classes)), dpi=110)
        try:
            positions = range(len(classes))
            axes.barh(
                [p - 0.2 for p in positions], [row["f1"] for row in classes], 0.4, label=model, color=CANDIDATE_COLOR
            )
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
            return _save(figure, axes, title)
        finally:
            pyplot.close(figure)
    figure, (scores, record) = pyplot.subplots(1, 2, figsize=(9, 3.6), dpi=110, width_ratios=[3, 2])
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
        figure.suptitle(title, fontsize=10)
        return _png(figure)
    finally:
        pyplot.close(figure)


def _save(figure: Any, axes: Any, title: str) -> bytes:
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3, axis="x")
    axes.legend(fontsize=7)
    return _png(figure)


def _png(figure: Any) -> bytes:
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
