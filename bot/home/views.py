"""The App Home tab."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
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
    provider_label: Callable[[str], str],
    retrain: bool = False,
    servings: dict[Any, Any] | None = None,
) -> Block:
    """The Home tab: datasets, jobs, models (with retirement dates), evaluations and this month's spend, paged."""
    budget_text = f" of the ${budget:,.2f} monthly budget" if budget is not None else ""
    result: list[Block] = [
        header("Fine-tuning, together"),
        section(f"*This month's training spend:* {money(spend)}{budget_text}"),
    ]
    result += _paged(
        "datasets", datasets, pages, _dataset_blocks, empty="Drop a `.jsonl` file in a channel I'm in to add one."
    )
    result += _paged("jobs", jobs, pages, lambda job: [_job_block(job, now=now)])
    result += _paged(
        "models",
        models,
        pages,
        lambda job: [
            section(model_line(job, today=now.date(), provider=provider_label(job.provider))),
            model_actions(
                job.id,
                job.fine_tuned_model,
                retired=job.model_retires is not None and now.date() >= job.model_retires,
                retrain=retrain,
                serving=(servings or {}).get(job.id),
            ),
        ],
    )
    result += _paged(
        "evaluations",
        evaluations,
        pages,
        lambda shown: [section(evaluation_line(shown[0], dataset_name=shown[1]))],
        empty="Click 📏 Evaluate under a model to measure it on held-out data.",
    )
    return {"type": "home", "private_metadata": json.dumps(pages), "blocks": result[:100]}


def _paged(
    name: str,
    rows: Sequence[Any],
    pages: dict[str, int],
    render: Callable[[Any], list[Block]],
    *,
    empty: str | None = None,
) -> list[Block]:
    """One section of the Home tab: its title with the count, the rows of its page, and its pager."""
    shown, page, count = _page(rows, pages.get(name, 1))
    blocks: list[Block] = [
        {"type": "divider"},
        section(f"*{name.capitalize()}* ({len(rows)}) — page {page} of {count}"),
    ]
    for row in shown:
        blocks += render(row)
    if not rows and empty:
        blocks.append(context(empty))
    pager = _pager(name, page, count, pages)
    return blocks + ([pager] if pager else [])


def _dataset_blocks(dataset: Any) -> list[Block]:
    icon = "✅" if dataset.valid else "❌"
    block = section(
        f"{icon} *#{dataset.id}* `{escape(dataset.filename)}`{lineage(dataset)} — "
        f"{escape(FORMAT_NAMES.get(dataset.format, dataset.format))}, "
        f"{dataset.examples:,} examples, {dataset.total_tokens:,} tokens · {dataset.created_at:%b %d}"
    )
    if dataset.valid:
        block["accessory"] = button("Train…", "dataset_train", str(dataset.id))
    return [block]


def _job_block(job: Any, *, now: Any) -> Block:
    cost = money(job.actual_cost_usd if job.actual_cost_usd is not None else job.estimated_cost_usd)
    return section(
        f"*#{job.id}* `{escape(job.base_model)}` · <@{job.requested_by}> · {cost}\n{progress_line(job, now=now)}"
    )
