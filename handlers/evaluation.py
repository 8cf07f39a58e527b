"""Evaluation listeners: `/finetune eval`, the Evaluate button and its form, Run / Cancel / Try again."""

from __future__ import annotations

from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.errors import UsageError
from bot.evaluation import plan as evaluation_plan
from bot.evaluation import previous as evaluation_previous
from bot.evaluation import run as evaluation_run
from bot.mrkdwn import escape
from bot.services import Services
from handlers.clicks import answer_clicker, answer_clicker_in_place, clicked_id, team_of
from handlers.commands import CommandRequest, Subcommand

EVAL_USAGE = "/finetune eval <model|job> <dataset> [against <model>]"


async def eval_command(request: CommandRequest) -> None:
    words = request.args.split()
    if len(words) == 2:
        against = None
    elif len(words) == 4 and words[2].lower() == "against":
        against = words[3]
    else:
        raise UsageError(
            f"Usage: `{escape(EVAL_USAGE)}` (the dataset holds held-out examples, by number or file name)."
        )
    _, confirmation, text = await evaluation_plan.plan(
        request.services,
        team_id=request.team_id,
        user_id=request.user_id,
        reference=words[0],
        dataset_reference=words[1],
        against=against,
    )
    await request.respond(text=text, blocks=confirmation, response_type="ephemeral")


SUBCOMMANDS = [
    Subcommand(
        "eval",
        "eval <model|job> <dataset> [against <model>]",
        "score a model against its base (or another) on held-out data; shows the cost first",
        eval_command,
    )
]


async def open_button(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, services: Services) -> None:
    await ack()

    async def opened() -> None:
        await evaluation_plan.open_form(
            services, team_id=team_of(body), trigger_id=body["trigger_id"], job_id=clicked_id(body)
        )

    await answer_clicker(respond, opened())


async def previous_button(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, services: Services) -> None:
    """📏 Evaluate against the model this one was retrained from: its estimate, to the clicker only."""
    await ack()

    async def planned() -> None:
        _, confirmation, text = await evaluation_previous.plan_against_previous(
            services, team_id=team_of(body), user_id=body["user"]["id"], job_id=clicked_id(body)
        )
        await respond(text=text, blocks=confirmation, response_type="ephemeral", replace_original=False)

    await answer_clicker(respond, planned())


async def form_submitted(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], services: Services) -> None:
    await ack()
    services.background(
        evaluation_plan.plan_from_form(services, team_id=team_of(body), user_id=body["user"]["id"], view=view)
    )


async def _decide(body: dict[str, Any], respond: AsyncRespond, decision: Any, services: Services) -> None:
    # The estimate's buttons are spent: the ephemeral message becomes the outcome.
    await answer_clicker_in_place(
        respond,
        decision(services, team_id=team_of(body), user_id=body["user"]["id"], evaluation_id=clicked_id(body)),
        replace_original=True,
    )


async def confirm_button(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, services: Services) -> None:
    await ack()
    await _decide(body, respond, evaluation_run.confirm, services)


async def cancel_button(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, services: Services) -> None:
    await ack()
    await _decide(body, respond, evaluation_run.call_off, services)


async def retry_button(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, services: Services) -> None:
    await ack()
    await answer_clicker(
        respond,
        evaluation_run.retry(
            services, team_id=team_of(body), user_id=body["user"]["id"], evaluation_id=clicked_id(body)
        ),
    )
