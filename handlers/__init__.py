"""Slack listeners. ``register`` is the one table of every listener the bot has.

Listeners receive ``services`` like any Bolt argument: bot.app puts it in each request's context.
"""

from __future__ import annotations

import re

from slack_bolt.async_app import AsyncApp

from bot.services import Services
from handlers import chat, commands, datasets, evaluation, flywheel, home, models, training, workspaces


async def _acknowledge_event() -> None:
    """Events we subscribe to but do not act on still get a 200, or Slack would retry them."""


def register(app: AsyncApp, services: Services) -> None:
    subcommands = [
        commands.HELP,
        *datasets.SUBCOMMANDS,
        *training.SUBCOMMANDS,
        *chat.SUBCOMMANDS,
        *evaluation.SUBCOMMANDS,
        *flywheel.SUBCOMMANDS,
        *models.SUBCOMMANDS,
        *home.SUBCOMMANDS,
    ]
    app.command(commands.COMMAND)(commands.make_dispatcher(services, subcommands))

    app.event({"type": "message", "subtype": "file_share"})(datasets.on_file_share)
    app.event("file_shared")(datasets.on_file_shared)
    app.action("dataset_details")(datasets.show_details)

    app.action("dataset_train")(training.train_button)
    for changed in ("train_model", "train_method", "train_epochs"):
        app.action(changed)(training.modal_changed)
    app.view("train_submit")(training.modal_submitted)
    app.action("job_approve")(training.approve_button)
    app.action("job_deny")(training.deny_button)
    app.action("job_cancel")(training.cancel_button)
    app.action("model_retrain")(training.retrain_button)

    app.event("message", matchers=[chat.is_thread_reply])(chat.on_thread_message)
    app.event("app_mention")(chat.on_mention)
    app.action("chat_start")(chat.chat_button)
    app.action("compare_start")(chat.compare_button)
    app.action("model_delete")(models.delete_button)
    app.action("model_deploy")(models.deploy_button)
    app.action("model_undeploy")(models.undeploy_button)

    app.event("reaction_added")(flywheel.reaction_added)
    app.event("reaction_removed")(flywheel.reaction_removed)
    app.action("candidate_drop")(flywheel.drop_button)

    app.action("eval_open")(evaluation.open_button)
    app.action("eval_previous")(evaluation.previous_button)
    app.view("eval_submit")(evaluation.form_submitted)
    app.action("eval_confirm")(evaluation.confirm_button)
    app.action("eval_cancel")(evaluation.cancel_button)
    app.action("eval_retry")(evaluation.retry_button)

    app.event("app_home_opened")(home.home_opened)
    app.action("home_page")(home.home_page)

    app.event("app_uninstalled")(workspaces.app_uninstalled)
    app.event("tokens_revoked")(workspaces.tokens_revoked)

    # Last: Bolt runs the first listener that matches, so this only catches what nothing above took.
    app.event(re.compile(".*"))(_acknowledge_event)
