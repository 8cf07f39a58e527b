"""Dataset listeners: files shared in channels, `/finetune datasets`, `/finetune validate`, Details."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot import references
from bot.asker import Asker
from bot.datasets import intake
from bot.datasets import views as dataset_views
from bot.errors import UsageError
from bot.home import tab as home_tab
from bot.mrkdwn import escape
from bot.services import Services
from handlers import arguments, chat
from handlers.clicks import clicked_value, team_of
from handlers.commands import CommandRequest, Subcommand

logger = logging.getLogger(__name__)


async def on_file_share(event: dict[str, Any], body: dict[str, Any], services: Services) -> None:
    """message/file_share: the message that carries the files (has the ts to answer in)."""
    shared = [
        intake.SharedFile(
            team_id=body.get("team_id", ""),
            channel_id=event["channel"],
            file_id=file["id"],
            user_id=event.get("user", ""),
            message_ts=event["ts"],
            thread_ts=event["thread_ts"] if event.get("thread_ts") not in (None, event["ts"]) else None,
        )
        for file in event.get("files") or []
    ]
    services.background(_take_in(services, shared), asker=_asker(event, body))
    mentioned = f"<@{services.slack_state.bot_user_id}>" in str(event.get("text") or "")
    if await chat.is_thread_reply({**event, "subtype": None}) and not mentioned:
        # A reply that carries a file is also a turn of the conversation (a mention comes as app_mention).
        await chat.on_thread_message(event, body, services)


async def on_file_shared(event: dict[str, Any], body: dict[str, Any], services: Services) -> None:
    """file_shared: may arrive first or alone; intake finds the sharing message through files.info."""
    shared = intake.SharedFile(
        team_id=body.get("team_id", ""),
        channel_id=event.get("channel_id", ""),
        file_id=event.get("file_id", ""),
        user_id=event.get("user_id", ""),
    )
    services.background(_take_in(services, [shared]), asker=Asker(shared.team_id, shared.user_id, shared.channel_id))


def _asker(event: dict[str, Any], body: dict[str, Any]) -> Asker:
    """The sharer, answered in the thread the files' message starts (or is in)."""
    thread = event.get("thread_ts") or event["ts"]
    return Asker(body.get("team_id", ""), event.get("user", ""), event["channel"], thread)


async def _take_in(services: Services, files: list[intake.SharedFile]) -> None:
    """Validation can take a while: it runs as the bot's own work, which a shutdown waits for."""
    for shared in files:
        await intake.receive_file(services, shared)
    if files:
        await home_tab.refresh_homes(services, team_id=files[0].team_id)


async def list_datasets(request: CommandRequest) -> None:
    datasets = await intake.recent_datasets(request.services, team_id=request.team_id)
    await request.respond(
        text=f"{len(datasets)} recent dataset(s)",
        blocks=dataset_views.datasets_list_blocks(datasets, workspace_url=request.services.slack_state.workspace_url),
        response_type="ephemeral",
    )


VALIDATE_USAGE = "/finetune validate <dataset> [model=…] [method=supervised|dpo]"


async def revalidate(request: CommandRequest) -> None:
    words, options = arguments.parse(request.args, allowed={"model", "method"}, usage=VALIDATE_USAGE)
    if len(words) != 1:
        raise UsageError(f"Which dataset? Usage: `{escape(VALIDATE_USAGE)}` (see `/finetune datasets`).")
    if options.get("method") not in (None, "supervised", "dpo"):
        raise UsageError(f"method must be supervised or dpo. Usage: `{escape(VALIDATE_USAGE)}`")
    dataset = await intake.revalidate(
        request.services,
        team_id=request.team_id,
        reference=words[0],
        model=options.get("model"),
        method=options.get("method"),
    )
    await request.respond(
        text=f"Re-checked `{escape(dataset.filename)}` (dataset #{dataset.id}); the report is in the file's thread.",
        response_type="ephemeral",
    )


SUBCOMMANDS = [
    Subcommand("datasets", "datasets", "the team's recent datasets", list_datasets),
    Subcommand(
        "validate", "validate <dataset> [model=…] [method=…]", "re-run a dataset's report in its thread", revalidate
    ),
]


async def show_details(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, services: Services) -> None:
    await ack()
    action = {"value": clicked_value(body)}
    team_id = team_of(body)
    dataset = await references.find_dataset(services, team_id=team_id, reference=action.get("value", ""))
    if dataset is None:
        await respond(
            text="That dataset is gone from the bot's records.", response_type="ephemeral", replace_original=False
        )
        return
    assert dataset.id is not None
    await respond(
        text=f"Details of {escape(dataset.filename)}",
        blocks=dataset_views.report_details_blocks(
            dataset_id=dataset.id, filename=dataset.filename, report=dataset.report
        ),
        response_type="ephemeral",
        replace_original=False,
    )
