"""The loss curve of a finished job, as a PNG for Slack."""

from __future__ import annotations

from collections.abc import Sequence

from bot.charts import close, figure, png


def loss_curve_png(
    *, title: str, steps: Sequence[int], train: Sequence[float | None], valid: Sequence[float | None]
) -> bytes:
    """Training (and validation, when there is any) loss by step."""
    drawn, axes = figure(figsize=(8, 4.2), dpi=110)
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
        return png(drawn)
    finally:
        close(drawn)
