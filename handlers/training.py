"""Training listeners: Train… button, `/finetune train`, the modal, approvals, `/finetune status|jobs|cancel`
and Cancel."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.errors import MalformedRequest, UsageError, refusal_of
from bot.mrkdwn import escape
from bot.services import Services
from bot.training import cancel, listing, modal, retrain, start
from handlers import arguments
from handlers.clicks import answer_clicker, clicked_id, clicked_value, team_of
from handlers.commands import CommandRequest, Subcommand

logger = logging.getLogger(__name__)

TRAIN_USAGE = (
    "/finetune train <dataset> [model=…] [method=supervised|dpo] [epochs=…] [batch_size=…] [lr_multiplier=…] "
    "[beta=…] [suffix=…] [validation=<dataset>] [seed=…]"
)
# What people type → the modal's field names.
TRAIN_OPTIONS = {
    "model": "model",
    "method": "method",
    "epochs": "n_epochs",
    "batch_size": "batch_size",
    "lr_multiplier": "learning_rate_multiplier",
    "beta": "beta",
    "suffix": "suffix",
    "validation": "validation",
    "seed": "seed",
}


async def train_command(request: CommandRequest) -> None:
    words, options = arguments.parse(request.args, allowed=set(TRAIN_OPTIONS), usage=TRAIN_USAGE)
    if len(words) != 1:
        raise UsageError(f"Which dataset? Usage: `{escape(TRAIN_USAGE)}`")
    assert request.trigger_id is not None
    await modal.open_train_modal(
        request.services,
        team_id=request.team_id,
        user_id=request.user_id,
        trigger_id=request.trigger_id,
        reference=words[0],
        overrides={TRAIN_OPTIONS[key]: value for key, value in options.items()},
    )


async def status_command(request: CommandRequest) -> None:
    reference = request.args.split()[0] if request.args.split() else None
    text, card = await listing.status_blocks(request.services, team_id=request.team_id, reference=reference)
    await request.respond(text=text, blocks=card, response_type="ephemeral")


async def jobs_command(request: CommandRequest) -> None:
    text, jobs = await listing.jobs_list_blocks(request.services, team_id=request.team_id)
    await request.respond(text=text, blocks=jobs, response_type="ephemeral")


async def cancel_command(request: CommandRequest) -> None:
    words = request.args.split()
    if len(words) != 1:
        raise UsageError(f"Which job? Usage: `{escape('/finetune cancel <job>')}` (see `/finetune jobs`).")
    card = await cancel.cancel_confirmation(
        request.services, team_id=request.team_id, user_id=request.user_id, reference=words[0]
    )
    await request.respond(text="Cancel this job?", blocks=card, response_type="ephemeral")


RETRAIN_USAGE = "/finetune retrain <model|job> [on <provider>]"


async def retrain_command(request: CommandRequest) -> None:
    words = request.args.split()
    if not (len(words) == 1 or (len(words) == 3 and words[1].lower() == "on")):
        raise UsageError(f"Usage: `{escape(RETRAIN_USAGE)}`, e.g. `/finetune retrain #12 on azure`.")
    assert request.trigger_id is not None
    await retrain.open_retrain_form(
        request.services,
        team_id=request.team_id,
        user_id=request.user_id,
        trigger_id=request.trigger_id,
        reference=words[0],
        target=words[2] if len(words) == 3 else None,
    )


SUBCOMMANDS = [
    Subcommand("train", "train <dataset> [model=…] [epochs=…] …", "start fine-tuning (opens a form)", train_command),
    Subcommand("status", "status [job]", "a job's progress (the newest one by default)", status_command),
    Subcommand("jobs", "jobs", "the team's recent jobs with status and progress", jobs_command),
    Subcommand(
        "retrain",
        "retrain <model|job> [on <provider>]",
        "train the same data and settings at another provider (opens a form)",
        retrain_command,
    ),
    Subcommand(
        "cancel", "cancel <job>", "cancel a running job (its requester or an admin; asks first)", cancel_command
    ),
]


async def train_button(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, services: Services) -> None:
    await ack()
    await answer_clicker(
        respond,
        modal.open_train_modal(
            services,
            team_id=team_of(body),
            user_id=body["user"]["id"],
            trigger_id=body["trigger_id"],
            reference=clicked_value(body),
            overrides={},
        ),
    )


async def retrain_button(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, services: Services) -> None:
    await ack()
    await answer_clicker(
        respond,
        retrain.open_retrain_form(
            services,
            team_id=team_of(body),
            user_id=body["user"]["id"],
            trigger_id=body["trigger_id"],
            reference=f"#{clicked_id(body)}",
        ),
    )


async def modal_changed(ack: AsyncAck, body: dict[str, Any], services: Services) -> None:
    """The model, method or epochs changed in the modal: recompute the estimate."""
    await ack()
    await modal.refresh_modal(services, team_id=team_of(body), view=body["view"])


async def modal_submitted(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], services: Services) -> None:
    team_id = team_of(body)
    try:
        errors, submission = await modal.check_submission(
            services, team_id=team_id, user_id=body["user"]["id"], view=view
        )
    except MalformedRequest:
        await ack()  # not the bot's form: close it, and the error hook writes one warning line
        raise
    except Exception as error:
        refusal = refusal_of(error)
        if refusal is None:
            await ack()  # the form closes; the error hook logs the bug with its traceback
            raise
        await ack(response_action="errors", errors={"model": refusal[:150]})
        return
    if submission is None:
        await ack(response_action="errors", errors=errors)
        return
    await ack()
    await start.start(services, team_id=team_id, user_id=body["user"]["id"], submission=submission)


async def _decide(
    ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, services: Services, *, approve: bool
) -> None:
    await ack()
    admin = body["user"]["id"]
    job_id = clicked_id(body)
    container = body.get("container") or {}
    await answer_clicker(
        respond,
        start.decide(
            services,
            team_id=team_of(body),
            admin=admin,
            job_id=job_id,
            approve=approve,
            approval_message=(container.get("channel_id", ""), container.get("message_ts", "")),
        ),
    )


async def approve_button(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, services: Services) -> None:
    await _decide(ack, body, respond, services, approve=True)


async def deny_button(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, services: Services) -> None:
    await _decide(ack, body, respond, services, approve=False)


async def cancel_button(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, services: Services) -> None:
    await ack()
    await answer_clicker(
        respond,
        cancel.cancel(services, team_id=team_of(body), user_id=body["user"]["id"], job_id=clicked_id(body)),
    )
