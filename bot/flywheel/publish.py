"""`/finetune dataset next`: the next version of a dataset, from its accepted candidates.

Version n+1 is the previous file plus the accepted candidates, validated and stored like any dataset.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from collections import Counter
from pathlib import Path
from typing import Any

from bot.datasets import views as dataset_views
from bot.datasets.examples import example_key, existing_keys
from bot.datasets.intake import run_validation, validation_options
from bot.errors import UserFacingError
from bot.flywheel import views as flywheel_views
from bot.flywheel.candidates import dataset_or_explain, may_curate
from bot.home import tab as home_tab
from bot.mrkdwn import escape
from bot.references import dataset_path
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


def _store(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


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


async def publish_next(services: Services, *, team_id: str, user_id: str, reference: str) -> str:
    """Build version n+1 from version n and its accepted candidates; post its report with a diff and Train…."""
    parent = await dataset_or_explain(services, team_id=team_id, reference=reference)
    if not may_curate(services, parent, user_id):
        # Publishing moves the pending candidates, and the right to drop them, to the new version.
        raise UserFacingError(
            f"Only an admin or <@{parent.uploaded_by}>, who shared `{escape(parent.filename)}`, can publish its "
            "next version."
        )
    async with services.db.session() as session:
        pending = await repositories.pending_candidates(session, team_id=team_id, dataset_id=parent.id or 0)
        job = await repositories.latest_job_for_dataset(session, team_id=team_id, dataset_id=parent.id or 0)
    source = dataset_path(services, parent.sha256)
    existing = await asyncio.to_thread(existing_keys, source)
    added: list[tuple[Candidate, dict[str, Any]]] = []
    left_out: Counter[str] = Counter()
    for candidate in pending:
        line = _as_line(candidate, parent.format)
        if line is None:
            left_out["not this dataset's format" if candidate.kind != CandidateKind.REJECTED else ""] += 1
            continue
        key = example_key(line)
        if key in existing:
            left_out["already in the data"] += 1
            continue
        existing.add(key)
        added.append((candidate, line))
    left_out.pop("", None)
    if not added:
        raise UserFacingError(
            f"There is nothing new for `{escape(parent.filename)}`: no pending candidates"
            + (f" ({', '.join(f'{n} {why}' for why, n in left_out.items())})" if left_out else "")
            + ". 👍 a good answer, or reply `correct: …` under a wrong one, in a chat with its model."
        )
    content = await asyncio.to_thread(_next_content, source, [line for _, line in added])
    sha256 = hashlib.sha256(content).hexdigest()
    stored = dataset_path(services, sha256)
    await asyncio.to_thread(_store, stored, content)
    options = validation_options(services, model=job.base_model if job else None, method=job.method if job else None)
    report = await run_validation(services, stored, len(content), options)
    version = parent.version + 1
    name = _version_name(parent, version)
    diff = {
        "added": dict(Counter(candidate.kind for candidate, _ in added)),
        "contributors": sorted({candidate.contributor for candidate, _ in added}),
        "left_out": dict(left_out),
        "tokens_added": report.tokens.total - parent.total_tokens,
        "examples_before": parent.examples,
        "parent_id": parent.id,
        "corrections_added_not_replacing": sum(
            1 for candidate, _ in added if candidate.kind == CandidateKind.CORRECTED
        ),
    }
    root = await services.slack.chat_postMessage(
        channel=parent.channel_id,
        text=flywheel_views.version_announcement(parent, name=name, version=version, diff=diff),
    )
    async with services.db.session() as session, session.begin():
        dataset, created = await repositories.add_dataset(
            session,
            dataset=Dataset(
                team_id=team_id,
                channel_id=parent.channel_id,
                message_ts=str(root["ts"]),
                uploaded_by=user_id,
                filename=name,
                bytes=len(content),
                sha256=sha256,
                format=report.format,
                valid=report.valid,
                examples=report.examples,
                total_tokens=report.tokens.total,
                report={**report.to_storage(), "diff": diff},
                parent_id=parent.id,
                version=version,
                created_at=services.clock.now(),
            ),
        )
        await repositories.publish_candidates(
            session, candidate_ids=[c.id or 0 for c, _ in added], dataset_id=dataset.id or 0, now=services.clock.now()
        )
        session.add(
            AuditEntry(
                team_id=team_id,
                actor=user_id,
                action="publish",
                subject=f"dataset:{dataset.id}",
                detail={"parent_id": parent.id, "version": version, "added": diff["added"]},
                created_at=services.clock.now(),
            )
        )
    if not created:
        await services.slack.chat_update(
            channel=parent.channel_id,
            ts=str(root["ts"]),
            text=(
                f"`{escape(name)}` has the same bytes as dataset #{dataset.id}: its report is in that dataset's thread."
            ),
        )
        return f"These are the same bytes as dataset #{dataset.id}; nothing new was stored."
    await services.slack.chat_postMessage(
        channel=parent.channel_id,
        thread_ts=str(root["ts"]),
        text=dataset_views.report_text(name, dataset.report),
        blocks=flywheel_views.version_report_blocks(
            dataset, diff=diff, retrain_cost=dataset.report["billing"]["estimated_cost_usd"]
        ),
    )
    await home_tab.refresh_homes(services, team_id=team_id)
    return (
        f"Published `{escape(name)}` (dataset #{dataset.id}): {len(added)} examples added; its report is in the "
        "channel."
    )
