"""Model listeners: `/finetune models|record|delete` and the Delete button."""

from __future__ import annotations

from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.errors import UsageError
from bot.models import golden, lifecycle, serving
from bot.mrkdwn import escape
from bot.services import Services
from handlers.clicks import answer_clicker, clicked_id, clicked_value, team_of
from handlers.commands import CommandRequest, Subcommand


async def models_command(request: CommandRequest) -> None:
    text, listing = await lifecycle.models_blocks(request.services, team_id=request.team_id)
    await request.respond(text=text, blocks=listing, response_type="ephemeral")


async def record_command(request: CommandRequest) -> None:
    words = request.args.split()
    if len(words) not in (1, 2):
        raise UsageError(
            f"Usage: `{escape('/finetune record <model|job> [dataset]')}` (default: the model's training prompts)."
        )
    recording = await golden.start_recording(
        request.services,
        team_id=request.team_id,
        user_id=request.user_id,
        reference=words[0],
        dataset_reference=words[1] if len(words) == 2 else None,
    )
    await request.respond(
        text=f"Recording {recording.total:,} prompts through `{escape(recording.model)}`; progress is in its thread.",
        response_type="ephemeral",
    )


async def delete_command(request: CommandRequest) -> None:
    words = request.args.split()
    if len(words) != 1:
        raise UsageError(f"Which model? Usage: `{escape('/finetune delete <model|job>')}`")
    await request.respond(
        text="Delete this model?",
        blocks=await lifecycle.confirmation(request.services, team_id=request.team_id, reference=words[0]),
        response_type="ephemeral",
    )


async def delete_button(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, services: Services) -> None:
    await ack()
    await answer_clicker(
        respond,
        lifecycle.delete_model(
            services, team_id=team_of(body), user_id=body["user"]["id"], reference=clicked_value(body)
        ),
    )


async def deploy_button(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, services: Services) -> None:
    await ack()
    await answer_clicker(
        respond, serving.deploy(services, team_id=team_of(body), user_id=body["user"]["id"], job_id=clicked_id(body))
    )


async def undeploy_button(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, services: Services) -> None:
    await ack()
    await answer_clicker(
        respond,
        serving.stop_serving(services, team_id=team_of(body), user_id=body["user"]["id"], job_id=clicked_id(body)),
    )


SUBCOMMANDS = [
    Subcommand("models", "models", "the team's fine-tuned models with their retirement dates", models_command),
    Subcommand(
        "record",
        "record <model> [dataset]",
        "record a model's answers as a golden set, before it retires",
        record_command,
    ),
    Subcommand(
        "delete",
        "delete <model|job>",
        "delete a fine-tuned model (its requester or an admin; asks first)",
        delete_command,
    ),
]
