"""Charts for Slack: matplotlib drawing into memory, and the PNG every chart ends as."""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: render to memory

from matplotlib import pyplot


def figure(*grid: int, **options: Any) -> tuple[Any, Any]:
    """A new figure and its axes (``pyplot.subplots``); close it with ``close``."""
    return pyplot.subplots(*grid, **options)


def close(drawn: Any) -> None:
    pyplot.close(drawn)


def png(drawn: Any) -> bytes:
    drawn.tight_layout()
    buffer = io.BytesIO()
    drawn.savefig(buffer, format="png")
    return buffer.getvalue()
