"""Slack listeners. ``register`` is the one table of every listener the bot has."""

from __future__ import annotations

import re

from slack_bolt.async_app import AsyncApp

from bot.services import Services
from handlers import commands


async def _acknowledge_event() -> None:
    """Events we subscribe to but do not act on still get a 200, or Slack would retry them."""


def register(app: AsyncApp, services: Services) -> None:
    subcommands = [commands.HELP]
    app.command(commands.COMMAND)(commands.make_dispatcher(services, subcommands))
    # Last: Bolt runs the first listener that matches, so this only catches what nothing above took.
    app.event(re.compile(".*"))(_acknowledge_event)
