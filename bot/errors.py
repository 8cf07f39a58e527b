"""Domain errors that carry the sentence a person reads in Slack.

Handlers let these propagate; one error hook turns them into an ephemeral reply (or a thread
message) with exactly this text. Anything else is a bug: logged with a reference, and the person is
told something went wrong on our side, never shown a traceback or a secret.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the validate command imports this module and must not load the Slack SDK
    from slack_sdk.errors import SlackApiError


class ConfigError(Exception):
    """A setting is missing or contradicts another; the message is the one line a person reads."""


class UserFacingError(Exception):
    """An error whose message is written for the person who asked. Raise one of its kinds below, so
    that a reader (and a log line) can tell a refusal from a typo from a missing row."""

    def __init__(self, sentence: str) -> None:
        super().__init__(sentence)
        self._sentence = sentence

    @property
    def sentence(self) -> str:
        return self._sentence


class InvalidInput(UserFacingError):
    """What was asked cannot be done as asked: a bad value, or a row in a state that does not allow it."""


class UsageError(InvalidInput):
    """The command was not understood; the sentence says how to write it."""


class NotFound(UserFacingError):
    """The team has nothing by that name (or no longer): the sentence says what was asked and where to look."""


class NotAllowed(UserFacingError):
    """The person may not do this: the sentence says who may."""


class ProviderRefused(UserFacingError):
    """The fine-tuning host said no, or could not be reached: the sentence names it and says what to do."""


class MalformedRequest(Exception):
    """A request no real Slack sends (a button value that is not an id, metadata that is not ours):
    acknowledged and ignored with one warning line, never a traceback."""


def refusal_of(error: BaseException) -> str | None:
    """The one mapping from an error to what the person who asked reads: the sentence of an expected
    refusal, or None for a bug (which is logged with a reference, never shown)."""
    return error.sentence if isinstance(error, UserFacingError) else None


def slack_error_data(error: SlackApiError) -> dict[str, Any]:
    """Slack's JSON answer to a failed call; empty when the body was not JSON (a 5xx's plain text)."""
    return error.response.data if isinstance(error.response.data, dict) else {}


def slack_error_code(error: SlackApiError) -> str:
    """Slack's error code (``ratelimited``, ``missing_scope``…), or ``HTTP <status>`` when it gave none."""
    return str(slack_error_data(error).get("error") or f"HTTP {error.response.status_code}")
