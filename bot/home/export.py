"""`/finetune export`: a dataset's stored file, or a model's golden set, uploaded to its thread."""

from __future__ import annotations

import logging
from typing import Any

from bot import notifier
from bot.errors import NotFound
from bot.mrkdwn import escape
from bot.references import find_dataset, resolve_model, stored_copy
from bot.services import Services
from storage import repositories
from storage.models import Dataset

logger = logging.getLogger(__name__)


async def export(services: Services, *, team_id: str, reference: str) -> str:
    """Upload the bot's copy of a dataset (and, for a model, its golden set) to the data's thread."""
    dataset: Dataset | None = await find_dataset(services, team_id=team_id, reference=reference)
    golden_content = b""
    model = None
    if dataset is None:
        chosen = await resolve_model(services, team_id=team_id, reference=reference)
        async with services.db.session() as session:
            job = await repositories.find_job_by_model(session, team_id=team_id, model=chosen.model)
            if job is None:
                raise NotFound(
                    f"I have no dataset or model `{escape(reference)}`; see `/finetune datasets` and "
                    "`/finetune models`."
                )
            dataset = await session.get(Dataset, job.dataset_id)
            golden = await repositories.latest_golden_set(session, team_id=team_id, model=chosen.model)
        if golden is not None and golden.id is not None:
            golden_content = await notifier.golden_set_jsonl(services, golden.id)
        model = chosen.model
    assert dataset is not None
    stored = stored_copy(services, dataset)
    uploads: list[dict[str, Any]] = [
        {
            "file": str(stored),
            "filename": dataset.filename,
            "title": f"{dataset.filename} (dataset #{dataset.id}, the bot's copy)",
        }
    ]
    if golden_content:
        uploads.append({"content": golden_content, "filename": "golden-set.jsonl", "title": f"Golden set of {model}"})
    comment = f"📦 Export of `{escape(dataset.filename)}`" + (
        f" and the golden set of `{escape(model)}`" if golden_content else ""
    )
    await services.slack_for(team_id).files_upload_v2(
        file_uploads=uploads, channel=dataset.channel_id, thread_ts=dataset.message_ts, initial_comment=comment
    )
    if model and not golden_content:
        return f"Exported `{escape(dataset.filename)}` to its thread. "
        f"`{escape(model)}` has no golden set yet: `/finetune record {escape(model)}`."
    return f"Exported to the thread of `{escape(dataset.filename)}`."
