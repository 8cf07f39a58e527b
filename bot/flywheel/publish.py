"""`/finetune dataset next`: the next version of a dataset, from its accepted candidates.

Version n+1 is the previous file plus the accepted candidates, validated and stored like any dataset.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import Counter
from pathlib import Path
from typing import Any

from bot.datasets import views as dataset_views
from bot.datasets.examples import example_key, existing_keys
from bot.datasets.store import keep_bytes, run_validation, validation_options
from bot.errors import NotAllowed, NotFound, UserFacingError
from bot.flywheel import views as flywheel_views
from bot.flywheel.candidates import may_curate
from bot.home import tab as home_tab
from bot.mrkdwn import escape
from bot.references import dataset_path, require_dataset
from bot.services import Services
from storage import repositories
from storage.models import AuditEntry, Candidate, CandidateKind, Dataset

logger = logging.getLogger(__name__)


def _next_content(source: Path, lines: list[dict[str, Any]]) -> bytes:
    """The previous version's bytes unchanged, then the new examples, one JSON line each."""
    content = source.read_bytes()
    if content and not content.endswith(b"\n"):
        content += b"\n"
    return content + "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()


def _version_name(dataset: Dataset, version: int) -> str:
    stem = re.sub(r"(-v\d+)?\.jsonl$", "", dataset.filename)
    return f"{stem}-v{version}.jsonl"


def _as_line(candidate: Candidate, target_format: str) -> dict[str, Any] | None:
    """The candidate as a line of the target dataset, or None when it cannot be one."""
    if candidate.kind == CandidateKind.REJECTED:
        return None
    if target_format == "preference":
        return candidate.example if candidate.kind == CandidateKind.PREFERENCE else None
    if candidate.kind == CandidateKind.PREFERENCE:  # chat data: the preferred answer is a good example on its own
        example = candidate.example
        return {"messages": [*example["input"]["messages"], *example["preferred_output"]]}
    return candidate.example


def _additions(
    pending: list[Candidate], target_format: str, existing: set[str]
) -> tuple[list[tuple[Candidate, dict[str, Any]]], Counter[str]]:
    """The candidates that become new lines (with their lines), and why the others were left out."""
    added: list[tuple[Candidate, dict[str, Any]]] = []
    left_out: Counter[str] = Counter()
    for candidate in pending:
        line = _as_line(candidate, target_format)
        if line is None:
            if candidate.kind != CandidateKind.REJECTED:  # a lone 👎 is not a line in any format
                left_out["not this dataset's format"] += 1
            continue
        key = example_key(line)
        if key in existing:
            left_out["already in the data"] += 1
            continue
        existing.add(key)
        added.append((candidate, line))
    return added, left_out


def _nothing_new(parent: Dataset, left_out: Counter[str]) -> UserFacingError:
    why = f" ({', '.join(f'{n} {reason}' for reason, n in left_out.items())})" if left_out else ""
    return NotFound(
        f"There is nothing new for `{escape(parent.filename)}`: no pending candidates{why}. "
        "👍 a good answer, or reply `correct: …` under a wrong one, in a chat with its model."
    )


def _diff(
    parent: Dataset, added: list[tuple[Candidate, dict[str, Any]]], left_out: Counter[str], tokens: int
) -> dict[str, Any]:
    """What changed from version n, as the new version's report keeps it."""
    return {
        "added": dict(Counter(candidate.kind for candidate, _ in added)),
        "contributors": sorted({candidate.contributor for candidate, _ in added}),
        "left_out": dict(left_out),
        "tokens_added": tokens - parent.total_tokens,
        "examples_before": parent.examples,
        "parent_id": parent.id,
        "corrections_added_not_replacing": sum(1 for c, _ in added if c.kind == CandidateKind.CORRECTED),
    }


async def publish_next(services: Services, *, team_id: str, user_id: str, reference: str) -> str:
    """Build version n+1 from version n and its accepted candidates; post its report with a diff and Train…."""
    parent = await require_dataset(services, team_id=team_id, reference=reference)
    if not may_curate(services, parent, user_id):
        # Publishing moves the pending candidates, and the right to drop them, to the new version.
        raise NotAllowed(
            f"Only an admin or <@{parent.uploaded_by}>, who shared `{escape(parent.filename)}`, can publish its "
            "next version."
        )
    async with services.db.session() as session:
        pending = await repositories.pending_candidates(session, team_id=team_id, dataset_id=parent.id or 0)
        job = await repositories.latest_job_for_dataset(session, team_id=team_id, dataset_id=parent.id or 0)
    source = dataset_path(services, parent.sha256)
    added, left_out = _additions(pending, parent.format, await asyncio.to_thread(existing_keys, source))
    if not added:
        raise _nothing_new(parent, left_out)
    content = await asyncio.to_thread(_next_content, source, [line for _, line in added])
    stored, sha256 = await keep_bytes(services, content)
    options = validation_options(services, model=job.base_model if job else None, method=job.method if job else None)
    report = await run_validation(services, stored, len(content), options)
    version = parent.version + 1
    name = _version_name(parent, version)
    diff = _diff(parent, added, left_out, report.tokens.total)
    root = await services.slack_for(team_id).chat_postMessage(
        channel=parent.channel_id,
        text=flywheel_views.version_announcement(parent, name=name, version=version, diff=diff),
    )
    version_row = Dataset(
        team_id=team_id,
        channel_id=parent.channel_id,
        message_ts=str(root["ts"]),
        uploaded_by=user_id,
        filename=name,
        bytes=len(content),
        sha256=sha256,
        **{**report.row_fields(), "report": {**report.to_storage(), "diff": diff}},
        parent_id=parent.id,
        version=version,
        created_at=services.clock.now(),
    )
    dataset, created = await _record_version(services, version_row, [c for c, _ in added], actor=user_id)
    if not created:
        return await _same_bytes(services, parent, ts=str(root["ts"]), name=name, dataset=dataset)
    await services.slack_for(team_id).chat_postMessage(
        channel=parent.channel_id,
        thread_ts=str(root["ts"]),
        text=dataset_views.report_text(name, dataset.report),
        blocks=flywheel_views.version_report_blocks(dataset, diff=diff, retrain_cost=report.billing.estimated_cost_usd),
    )
    await home_tab.refresh_homes(services, team_id=team_id)
    return (
        f"Published `{escape(name)}` (dataset #{dataset.id}): {len(added)} examples added; its report is in the "
        "channel."
    )


async def _record_version(
    services: Services, version: Dataset, published: list[Candidate], *, actor: str
) -> tuple[Dataset, bool]:
    """Keep the new version, mark its candidates published and audit it, in one transaction."""
    async with services.db.session() as session, session.begin():
        dataset, created = await repositories.add_dataset(session, dataset=version)
        await repositories.publish_candidates(
            session, candidate_ids=[c.id or 0 for c in published], dataset_id=dataset.id or 0, now=services.clock.now()
        )
        session.add(
            AuditEntry(
                team_id=version.team_id,
                actor=actor,
                action="publish",
                subject=f"dataset:{dataset.id}",
                detail={
                    "parent_id": version.parent_id,
                    "version": version.version,
                    "added": version.report["diff"]["added"],
                },
                created_at=services.clock.now(),
            )
        )
    return dataset, created


async def _same_bytes(services: Services, parent: Dataset, *, ts: str, name: str, dataset: Dataset) -> str:
    """The new version's bytes are an existing dataset's: the announcement points there instead."""
    await services.slack_for(parent.team_id).chat_update(
        channel=parent.channel_id,
        ts=ts,
        text=f"`{escape(name)}` has the same bytes as dataset #{dataset.id}: its report is in that dataset's thread.",
    )
    return f"These are the same bytes as dataset #{dataset.id}; nothing new was stored."
