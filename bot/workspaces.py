"""Which Slack workspace the bot is serving, and with which bot token.

In the default single-workspace mode the token is SLACK_BOT_TOKEN and nothing here matters. With
SLACK_MULTI_WORKSPACE, each workspace that installs the app (OAuth v2, /slack/install) has its own
bot token in the database, kept by slack_sdk's AsyncSQLAlchemyInstallationStore, and each Slack
call names its workspace: ``Services.slack_for(team_id)`` gives a client that uses that team's token.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.clock import Clock

# manifest.yml's bot scopes: what /slack/install asks each workspace for.
BOT_SCOPES = (
    "app_mentions:read",
    "channels:history",
    "groups:history",
    "im:history",
    "im:write",
    "mpim:history",
    "chat:write",
    "commands",
    "files:read",
    "files:write",
    "reactions:read",
    "reactions:write",
    "usergroups:read",
)
# A revoked token is refused by Slack anyway; the cache only spares a query per Slack call.
TOKEN_TTL = timedelta(minutes=5)


class WorkspaceNotInstalled(Exception):
    """The workspace has no installation (never installed, or uninstalled): nothing can be posted there."""

    def __init__(self, team_id: str) -> None:
        super().__init__(f"the app is not installed in workspace {team_id or '(none given)'}")
        self.team_id = team_id


class Installations:
    """The installed workspaces' bot tokens, read through the installation store and cached briefly."""

    def __init__(self, store: AsyncInstallationStore, clock: Clock) -> None:
        self.store = store
        self._clock = clock
        self._tokens: dict[str, tuple[datetime, str]] = {}

    async def bot_token(self, team_id: str) -> str:
        now = self._clock.now()
        cached = self._tokens.get(team_id)
        if cached is not None and now - cached[0] < TOKEN_TTL:
            return cached[1]
        bot = await self.store.async_find_bot(enterprise_id=None, team_id=team_id) if team_id else None
        if bot is None or not bot.bot_token:
            self._tokens.pop(team_id, None)
            raise WorkspaceNotInstalled(team_id)
        self._tokens[team_id] = (now, bot.bot_token)
        return bot.bot_token

    async def forget(self, team_id: str) -> None:
        """The app was uninstalled, or its bot token revoked: drop the workspace's installation and bot."""
        self._tokens.pop(team_id, None)
        await self.store.async_delete_all(enterprise_id=None, team_id=team_id)


class WorkspaceClient(AsyncWebClient):
    """An AsyncWebClient that calls Slack with one workspace's bot token, read when a call is made (so a
    reinstall's new token is used without a restart)."""

    def __init__(self, installations: Installations, team_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.installations = installations
        self.team_id = team_id

    async def api_call(
        self,
        api_method: str,
        *,
        http_verb: str = "POST",
        files: dict[str, Any] | None = None,
        data: dict[str, Any] | Any = None,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        auth: dict[str, Any] | None = None,
    ) -> AsyncSlackResponse:
        # A call that brings its own credentials (oauth.v2.access, auth.test of a new token) keeps them.
        brings_token = auth is not None or bool((params or {}).get("token") or (json or {}).get("token"))
        if not brings_token:
            token = await self.installations.bot_token(self.team_id)
            headers = {**(headers or {}), "Authorization": f"Bearer {token}"}
        return await super().api_call(
            api_method,
            http_verb=http_verb,
            files=files,
            data=data,
            params=params,
            json=json,
            headers=headers,
            auth=auth,
        )
