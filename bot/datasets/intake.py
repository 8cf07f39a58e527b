"""Dataset intake: a JSONL file shared in Slack becomes a stored dataset with a report in its thread.

Each share is claimed once, whichever of file_share and file_shared comes first, and taken in under a
lease that another replica resumes if this one dies; the download and the validation are in store.py."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.datasets import views
from bot.datasets.store import IntakeError, download, run_validation, validation_options
from bot.errors import slack_error_code
from bot.mrkdwn import escape
from bot.references import require_dataset, stored_copy
from bot.services import Services
from storage import repositories
from storage.models import Dataset, FileIntake, IntakeStatus

logger = logging.getLogger(__name__)


# How long an intake may go unheard from before another replica resumes it; ticks renew it meanwhile.
INTAKE_LEASE = timedelta(minutes=5)


MAX_INTAKE_ATTEMPTS = 3


@dataclass(frozen=True)
class SharedFile:
    team_id: str
    channel_id: str
    file_id: str
    user_id: str
    message_ts: str | None = None
    # The parent's ts when the file was shared as a thread reply: answers go to that thread, never under a reply.
    thread_ts: str | None = None

    @property
    def answer_ts(self) -> str | None:
        return self.thread_ts or self.message_ts


# file_shared may come before Slack has finished sharing: files.info is asked again, this long apart.
SHARE_LOOKUP_DELAYS = (0.5, 1.0, 2.0, 4.0)


def _share_of(file: dict[str, Any], channel_id: str) -> tuple[str, str | None] | None:
    """The ts of the message that shared ``file`` in ``channel_id``, and its thread's (file_shared lacks both)."""
    for visibility in ("public", "private"):
        shares = (file.get("shares") or {}).get(visibility, {}).get(channel_id) or []
        if shares:
            thread_ts = shares[0].get("thread_ts")
            return str(shares[0]["ts"]), (str(thread_ts) if thread_ts and thread_ts != shares[0]["ts"] else None)
    return None


async def _find_share(services: Services, shared: SharedFile) -> tuple[dict[str, Any], SharedFile] | None:
    """For file_shared: files.info until the share shows, a few times, then None (the file_share message,
    which carries the ts itself, does the work then)."""
    for delay in (0.0, *SHARE_LOOKUP_DELAYS):
        await services.clock.sleep(delay)
        file = (await services.slack_for(shared.team_id).files_info(file=shared.file_id))["file"]
        found = _share_of(file, shared.channel_id)
        if found is not None:
            message_ts, thread_ts = found
            return file, dataclasses.replace(shared, message_ts=message_ts, thread_ts=thread_ts)
    return None


async def receive_file(services: Services, shared: SharedFile) -> None:
    """Handle one shared file exactly once, whichever of file_share / file_shared arrives first.

    Only an event that knows where the file was shared claims it: a file_shared whose share Slack has
    not finished leaves the file to the file_share message instead of claiming it and answering nowhere."""
    file: dict[str, Any] | None = None
    if shared.message_ts is None:
        found = await _find_share(services, shared)
        if found is None:
            logger.info(
                "file %s shows no share in %s yet; its file_share message will", shared.file_id, shared.channel_id
            )
            return
        file, shared = found
    intake_id = await _claim(services, shared)
    if intake_id is None:
        return
    await _take_in(services, shared, intake_id, file)


async def _take_in(services: Services, shared: SharedFile, intake_id: int, file: dict[str, Any] | None) -> None:
    """The intake under its lease: this replica's ticks renew it; if the replica dies, another resumes it."""
    services.runtime.intakes.add(intake_id)
    try:
        await _answer(services, shared, file)
    except asyncio.CancelledError:  # a shutdown: free the share at once for the next process to resume
        await _finish(services, intake_id, None)
        raise
    finally:
        services.runtime.intakes.discard(intake_id)
    await _finish(services, intake_id, IntakeStatus.DONE)


async def _finish(services: Services, intake_id: int, status: IntakeStatus | None) -> None:
    async with services.db.session() as session, session.begin():
        await repositories.finish_file_intake(
            session, intake_id=intake_id, status=status or IntakeStatus.RUNNING, now=services.clock.now()
        )


async def resume_interrupted_intakes(services: Services, *, owner: str) -> int:
    """A tick's part: keep this replica's intakes leased, and resume those whose replica died mid-way.

    A share interrupted MAX_INTAKE_ATTEMPTS times is given up with a message in its thread.
    Returns how many it resumed or gave up."""
    now = services.clock.now()
    async with services.db.session() as session, session.begin():
        await repositories.renew_leases(
            session, FileIntake, owner=owner, ids=sorted(services.runtime.intakes), expires_at=now + INTAKE_LEASE
        )
        stalled = await repositories.claim_stalled_intakes(
            session, owner=owner, now=now, lease=INTAKE_LEASE, status=IntakeStatus.RUNNING, limit=20
        )
        rows = [row for intake_id in stalled if (row := await session.get(FileIntake, intake_id)) is not None]
    for row in rows:
        shared = SharedFile(
            team_id=row.team_id,
            channel_id=row.channel_id,
            file_id=row.file_id,
            user_id=row.user_id,
            message_ts=row.message_ts,
            thread_ts=row.thread_ts,
        )
        assert row.id is not None
        logger.info("resuming the intake of %s (attempt %s)", row.file_id, row.attempts)
        services.background(_resume(services, shared, row.id, attempts=row.attempts))
    return len(rows)


async def _resume(services: Services, shared: SharedFile, intake_id: int, *, attempts: int) -> None:
    if attempts <= MAX_INTAKE_ATTEMPTS:
        await _take_in(services, shared, intake_id, None)
        return
    await _finish(services, intake_id, IntakeStatus.GIVEN_UP)
    assert shared.message_ts is not None and shared.answer_ts is not None
    await _say(services, shared, shared.answer_ts, views.intake_given_up_text(attempts - 1))
    await _unreact(services, shared, shared.message_ts, "eyes")
    await _react(services, shared, shared.message_ts, "x")


async def _answer(services: Services, shared: SharedFile, file: dict[str, Any] | None) -> None:
    """Look the file up (unless the event brought it), download, validate, and answer in its thread."""
    reacted_ts, message_ts = shared.message_ts, shared.answer_ts
    assert reacted_ts is not None and message_ts is not None
    if file is None:
        try:
            file = (await services.slack_for(shared.team_id).files_info(file=shared.file_id))["file"]
        except SlackApiError as error:
            await _say(services, shared, message_ts, views.file_info_refused_text(slack_error_code(error)))
            return
    name = str(file.get("name") or "")
    if not name.lower().endswith(".jsonl"):
        if name.lower().endswith(".json"):
            await _say(services, shared, message_ts, views.not_jsonl_text(name))
        await _answered(services, shared)
        return
    await _react(services, shared, reacted_ts, "eyes")
    outcome = "x"
    answered = interrupted = False
    try:
        dataset, earlier = await _ingest(services, shared, file, message_ts)
        if earlier is not None:
            await _say(services, shared, message_ts, views.same_data_text(earlier))
        report = dataset.report
        await services.slack_for(shared.team_id).chat_postMessage(
            channel=shared.channel_id,
            thread_ts=message_ts,
            text=views.report_text(name, report),
            blocks=views.report_blocks(dataset_id=_id(dataset), filename=name, report=report),
            unfurl_links=False,
        )
        outcome = "white_check_mark" if report.get("valid") else "x"
        answered = True
    except asyncio.CancelledError:  # a shutdown: the share stays 👀 for the next process to resume
        interrupted = True
        raise
    except IntakeError as error:
        await _say(services, shared, message_ts, error.sentence)
        answered = not error.retry
    except Exception:
        reference = uuid.uuid4().hex[:8]
        logger.exception("intake of %s failed (reference %s)", shared.file_id, reference)
        await _say(
            services,
            shared,
            message_ts,
            f"Sorry, I could not check `{escape(name)}` because of a problem on my side (reference "
            f"`{escape(reference)}`). "
            "Please share the file again; if it keeps failing, tell your admin the reference.",
        )
    finally:
        if answered:  # else the advice holds: sharing the file again is a new share, taken in anew
            await _answered(services, shared)
        if not interrupted:
            await _unreact(services, shared, reacted_ts, "eyes")
            await _react(services, shared, reacted_ts, outcome)


def _answered_key(shared: SharedFile) -> str:
    return f"file:{shared.file_id}:answered"


async def _claim(services: Services, shared: SharedFile) -> int | None:
    """Take this share of the file, unless the file was already answered (its report is in Slack).

    Returns the intake's id, leased to this replica, or None when it is not ours to handle."""
    assert shared.message_ts is not None
    now = services.clock.now()
    intake = FileIntake(
        team_id=shared.team_id,
        channel_id=shared.channel_id,
        file_id=shared.file_id,
        user_id=shared.user_id,
        message_ts=shared.message_ts,
        thread_ts=shared.thread_ts,
        lease_owner=services.owner,
        lease_expires_at=now + INTAKE_LEASE,
        created_at=now,
        updated_at=now,
    )
    async with services.db.session() as session, session.begin():
        await repositories.ensure_team(session, team_id=shared.team_id)
        if await repositories.has_slack_event(session, event_id=_answered_key(shared)):
            return None
        if not await repositories.add_file_intake(session, intake=intake):
            return None
    return intake.id


async def _answered(services: Services, shared: SharedFile) -> None:
    async with services.db.session() as session, session.begin():
        await repositories.claim_slack_event(
            session, event_id=_answered_key(shared), team_id=shared.team_id, now=services.clock.now()
        )


def _id(dataset: Dataset) -> int:
    assert dataset.id is not None
    return dataset.id


async def _ingest(
    services: Services, shared: SharedFile, file: dict[str, Any], message_ts: str
) -> tuple[Dataset, Dataset | None]:
    """Download, store and validate; returns the dataset and, for repeated bytes, the earlier one."""
    settings = services.settings
    name = str(file["name"])
    declared = int(file.get("size") or 0)
    if declared > settings.max_file_bytes:
        raise IntakeError(views.too_large_text(name, declared, settings.max_file_bytes))
    stored, sha256, size = await download(
        services, str(file.get("url_private_download") or ""), name, team_id=shared.team_id
    )
    async with services.db.session() as session:
        earlier = await repositories.find_dataset_by_sha(session, team_id=shared.team_id, sha256=sha256)
    if earlier is not None:
        return earlier, earlier
    report = await run_validation(services, stored, size, validation_options(services))
    async with services.db.session() as session, session.begin():
        dataset, created = await repositories.add_dataset(
            session,
            dataset=Dataset(
                team_id=shared.team_id,
                channel_id=shared.channel_id,
                message_ts=message_ts,
                slack_file_id=shared.file_id,
                uploaded_by=shared.user_id,
                filename=name,
                bytes=size,
                sha256=sha256,
                **report.row_fields(),
                created_at=services.clock.now(),
            ),
        )
    return dataset, (None if created else dataset)


async def _say(services: Services, shared: SharedFile, thread_ts: str, text: str) -> None:
    await services.slack_for(shared.team_id).chat_postMessage(
        channel=shared.channel_id, thread_ts=thread_ts, text=text, unfurl_links=False
    )


async def _react(services: Services, shared: SharedFile, ts: str, name: str) -> None:
    try:
        await services.slack_for(shared.team_id).reactions_add(channel=shared.channel_id, timestamp=ts, name=name)
    except SlackApiError as error:
        if error.response.get("error") != "already_reacted":
            logger.warning("could not add :%s: (%s)", name, error.response.get("error"))


async def _unreact(services: Services, shared: SharedFile, ts: str, name: str) -> None:
    try:
        await services.slack_for(shared.team_id).reactions_remove(channel=shared.channel_id, timestamp=ts, name=name)
    except SlackApiError as error:
        logger.info("could not remove :%s: (%s)", name, error.response.get("error"))


async def recent_datasets(services: Services, *, team_id: str, limit: int = 15) -> list[Dataset]:
    async with services.db.session() as session:
        return await repositories.list_datasets(session, team_id=team_id, limit=limit)


async def revalidate(
    services: Services, *, team_id: str, reference: str, model: str | None, method: str | None
) -> Dataset:
    """Run the report again on the bot's stored copy (with another model or method) and post it in the thread."""
    dataset = await require_dataset(services, team_id=team_id, reference=reference)
    stored = stored_copy(services, dataset)
    report = await run_validation(
        services, stored, dataset.bytes, validation_options(services, model=model, method=method)
    )
    async with services.db.session() as session, session.begin():
        row = await repositories.get_dataset(session, team_id=team_id, dataset_id=_id(dataset))
        assert row is not None
        row.report, row.valid, row.format = report.to_storage(), report.valid, report.format
        row.examples, row.total_tokens = report.examples, report.tokens.total
        session.add(row)
    await services.slack_for(team_id).chat_postMessage(
        channel=dataset.channel_id,
        thread_ts=dataset.message_ts,
        text=views.report_text(dataset.filename, row.report),
        blocks=views.report_blocks(dataset_id=_id(dataset), filename=dataset.filename, report=row.report),
        unfurl_links=False,
    )
    return row
