"""The App Home tab."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from bot.datasets.report import FORMAT_NAMES
from bot.evaluation.views import evaluation_line
from bot.models.views import model_actions, model_line
from bot.mrkdwn import escape
from bot.slack_blocks import Block, button, context, header, money, section
from bot.training.views import progress_line

HOME_PAGE_SIZE = 8


def lineage(dataset: Any) -> str:
    """`` (v2 of #1)`` for a version the flywheel built; nothing for a shared file."""
    parent = getattr(dataset, "parent_id", None)
    return f" (v{dataset.version} of #{parent})" if parent else ""


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
