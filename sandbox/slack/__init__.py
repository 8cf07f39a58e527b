"""A Slack emulator that slack_sdk and Bolt run against unchanged: state (the workspace), simulation
(the Web API methods and Slack's rules) and server (HTTP, events, Socket Mode)."""

from __future__ import annotations

from sandbox.slack.server import SlackEmulator, serve_forever
from sandbox.slack.state import (
    METHOD_SCOPES,
    Channel,
    Ephemeral,
    Message,
    SlackError,
    SlackFile,
    SlackWorkspace,
    User,
    View,
    manifest_scopes,
)

__all__ = [
    "METHOD_SCOPES",
    "Channel",
    "Ephemeral",
    "Message",
    "SlackEmulator",
    "SlackError",
    "SlackFile",
    "SlackWorkspace",
    "User",
    "View",
    "manifest_scopes",
    "serve_forever",
]
