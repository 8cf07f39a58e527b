"""The Slack emulator's HTTP side: the Web API over real sockets (arguments read wherever slack_sdk puts
them, answers ``{"ok": ...}``), file hosting, response URLs, event delivery and Socket Mode."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import secrets
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import BasicAuth, WSMsgType, web

from sandbox.slack.simulation import SlackApi, check_text_and_blocks
from sandbox.slack.state import Ephemeral, Fault, Message, SlackError, SlackWorkspace

APP_TOKEN_METHODS = {"apps.connections.open"}


class SlackEmulator:
    """The aiohttp server around workspaces: Web API, files, response URLs, Socket Mode, OAuth.

    The first workspace is the one a single-workspace bot is configured for (and the one Socket
    Mode serves); more can be added for a multi-workspace bot, which gets their tokens by OAuth.
    """

    def __init__(self, workspace: SlackWorkspace | None = None) -> None:
        self.workspace = workspace or SlackWorkspace()
        self.workspaces = [self.workspace]
        self.apis = {self.workspace.team_id: SlackApi(self.workspace)}
        self.api = self.apis[self.workspace.team_id]
        # The app's credentials (Basic Information → App Credentials), for oauth.v2.access.
        self.client_id = "1234567890.0987654321"
        self.client_secret = secrets.token_hex(16)
        self._install_codes: dict[str, tuple[SlackWorkspace, str]] = {}
        self.runner: web.AppRunner | None = None
        self.port = 0
        self.sockets: list[web.WebSocketResponse] = []
        self._acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._connected = asyncio.Event()
        # Slack spreads an app's envelopes over its open connections (one per replica).
        self._turns = itertools.count()
        self.envelopes_per_socket: dict[int, int] = {}

    @property
    def api_url(self) -> str:
        return f"{self.workspace.base_url}/api/"

    def add_workspace(self, workspace: SlackWorkspace) -> SlackWorkspace:
        """Another workspace the app can be installed in (its bot token is only known through OAuth)."""
        workspace.base_url = self.workspace.base_url
        self.workspaces.append(workspace)
        self.apis[workspace.team_id] = SlackApi(workspace)
        return workspace

    def approve_install(self, workspace: SlackWorkspace, *, user: str) -> str:
        """Someone clicks Allow on Slack's install page: the code Slack sends back to the redirect URL."""
        code = f"{workspace.team_id}.{secrets.token_hex(12)}"
        self._install_codes[code] = (workspace, user)
        return code

    def revoke(self, workspace: SlackWorkspace) -> None:
        """The app is uninstalled: its bot token stops working (a reinstall issues a new one)."""
        workspace.bot_token = "xoxb-sandbox-" + secrets.token_hex(8)

    def _workspace_of(self, token: str | None, method: str) -> SlackWorkspace | None:
        for workspace in self.workspaces:
            expected = workspace.app_token if method in APP_TOKEN_METHODS else workspace.bot_token
            if token == expected:
                return workspace
        return None

    def _oauth_v2_access(self, request: web.Request, args: dict[str, Any]) -> web.Response:
        """Exchange an install code for the workspace's bot token; the app proves itself with its secret."""
        client_id, client_secret = args.get("client_id"), args.get("client_secret")
        if request.headers.get("Authorization", "").startswith("Basic "):
            credentials = BasicAuth.decode(request.headers["Authorization"])
            client_id, client_secret = credentials.login, credentials.password
        if client_id != self.client_id:
            return _slack_error("invalid_client_id")
        if client_secret != self.client_secret:
            return _slack_error("bad_client_secret")
        installed = self._install_codes.pop(str(args.get("code") or ""), None)
        if installed is None:
            return _slack_error("invalid_code")
        workspace, user = installed
        return web.json_response(
            {
                "ok": True,
                "app_id": workspace.app_id,
                "authed_user": {"id": user},
                "scope": ",".join(sorted(workspace.scopes)),
                "token_type": "bot",
                "access_token": workspace.bot_token,
                "bot_user_id": workspace.bot_user_id,
                "team": {"id": workspace.team_id, "name": workspace.team_name},
                "enterprise": None,
                "is_enterprise_install": False,
            }
        )

    def web_app(self) -> web.Application:
        app = web.Application(client_max_size=1024**3)
        app.add_routes(
            [
                web.route("*", "/api/{method}", self._api),
                web.get("/files-pri/{key}/download/{name}", self._download),
                web.get("/files-pri/{key}/{name}", self._download),
                web.post("/upload/v1/{team}/{file_id}", self._upload),
                web.post("/hooks/{team}/{hook_id}", self._hook),
                web.get("/link/", self._socket),
                web.get("/link", self._socket),
            ]
        )
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> SlackEmulator:
        self.runner = web.AppRunner(self.web_app(), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port)
        await site.start()
        self.port = self.runner.addresses[0][1]
        for workspace in self.workspaces:
            workspace.base_url = f"http://{host}:{self.port}"
        return self

    async def stop(self) -> None:
        for hold in self.workspace.holds.values():
            hold.released.set()
        for socket in list(self.sockets):
            await socket.close()
        if self.runner is not None:
            await self.runner.cleanup()

    # --- Web API ---

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args: dict[str, Any] = dict(request.query)
        body = await request.read()
        if body:
            content_type = request.content_type
            if content_type == "application/json":
                args.update(json.loads(body))
            elif content_type == "application/x-www-form-urlencoded":
                args.update(parse_qsl(body.decode(), keep_blank_values=True))
            elif content_type.startswith("multipart/"):
                return _slack_error("invalid_form_data")
        if method == "oauth.v2.access":
            return self._oauth_v2_access(request, args)
        token = _bearer(request) or args.pop("token", None)
        found = self._workspace_of(token, method)
        ws = found or self.workspace
        fault = ws.faults.get(method)
        if fault is not None and fault.times > 0 and not fault.after_processing:
            fault.times -= 1
            ws.calls.append((method, {**args, "_fault": fault.status}))
            return _fault_response(fault)
        if not token:
            return _slack_error("not_authed")
        if found is None:
            return _slack_error("invalid_auth")
        ws.calls.append((method, args))
        if method == "apps.connections.open":
            host = request.host
            return web.json_response({"ok": True, "url": f"ws://{host}/link/?ticket={secrets.token_hex(8)}"})
        handler = getattr(self.apis[ws.team_id], method.replace(".", "_"), None)
        if handler is None:
            return _slack_error("unknown_method")
        needed = self.apis[ws.team_id].needed_scopes(method, args)
        if needed and not ws.scopes.intersection(needed):
            return _slack_error("missing_scope", needed=",".join(needed), provided=",".join(sorted(ws.scopes)))
        wait = ws.take_rate(method)
        ws.call_times.append((method, ws.monotonic()))
        if wait is not None:
            return web.json_response(
                {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": str(max(1, math.ceil(wait)))}
            )
        try:
            result = await handler(args)
        except SlackError as error:
            return _slack_error(error.code, **error.extra)
        if fault is not None and fault.times > 0 and fault.after_processing:
            fault.times -= 1
            return _fault_response(fault)
        hold = ws.holds.get(method)
        if hold is not None:
            await hold.stop_here()
        headers = {"x-oauth-scopes": ",".join(sorted(ws.scopes))} if method == "auth.test" else {}
        return web.json_response({"ok": True, **result}, headers=headers)

    async def _download(self, request: web.Request) -> web.StreamResponse:
        ws = self._workspace_of(_bearer(request), "files.download") or self.workspace
        file_id = request.match_info["key"].removeprefix(f"{ws.team_id}-")
        slack_file = ws.files.get(file_id)
        if _bearer(request) != ws.bot_token or ws.refuse_downloads:
            # Slack answers an unauthenticated download with its sign-in page, status 200.
            return web.Response(
                text="<!DOCTYPE html><html><body>Sign in to Slack</body></html>", content_type="text/html"
            )
        if slack_file is None or not slack_file.complete:
            return web.Response(status=404, text="File not found")
        hold = ws.holds.get("files.download")
        if hold is None:
            return web.Response(body=slack_file.content, content_type="application/octet-stream")
        # Held mid-download: the first half is sent, the rest waits (the bot dies while receiving it).
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = len(slack_file.content)
        await response.prepare(request)
        half = len(slack_file.content) // 2
        await response.write(slack_file.content[:half])
        await hold.stop_here()
        await response.write(slack_file.content[half:])
        await response.write_eof()
        return response

    async def _upload(self, request: web.Request) -> web.Response:
        ws = next((w for w in self.workspaces if w.team_id == request.match_info["team"]), self.workspace)
        slack_file = ws.files.get(request.match_info["file_id"])
        if slack_file is None:
            return web.Response(status=404, text="not found")
        slack_file.content = await request.read()
        return web.Response(text=f"OK - {len(slack_file.content)}")

    async def _hook(self, request: web.Request) -> web.Response:
        hook_id = request.match_info["hook_id"]
        ws = next((w for w in self.workspaces if hook_id in w.hooks), self.workspace)
        hook = ws.hooks.get(hook_id)
        if hook is None:
            return web.Response(status=404, text="invalid_token")
        hook.uses += 1
        if hook.uses > 5:
            return web.Response(status=404, text="used_url")
        payload = await request.json()
        try:
            blocks = check_text_and_blocks(payload)
        except SlackError as error:
            return web.Response(status=400, text=error.code)
        if payload.get("delete_original") and hook.message_ts:
            original = ws.find(hook.channel, hook.message_ts)
            if original is not None:
                ws.messages.remove(original)
                await ws.notify("delete", {"message": original})
            return web.Response(text="ok")
        if payload.get("replace_original") and hook.message_ts:
            shown = next((e for e in ws.ephemerals if e.ts == hook.message_ts and e.user == hook.user), None)
            if shown is not None:  # an ephemeral message's own buttons replace it, for its one viewer
                shown.text, shown.blocks = payload.get("text") or "", blocks
                await ws.notify("ephemeral", {"ephemeral": shown})
                return web.Response(text="ok")
            original = ws.find(hook.channel, hook.message_ts)
            if original is not None:
                original.text, original.blocks = payload.get("text") or "", blocks
                original.edits += 1
                await ws.notify("update", {"message": original})
                return web.Response(text="ok")
        thread_ts = payload.get("thread_ts") or hook.thread_ts
        if payload.get("response_type") == "in_channel":
            message = Message(
                channel=hook.channel,
                ts=ws.next_ts(),
                user=ws.bot_user_id,
                bot_id=ws.bot_id,
                text=payload.get("text") or "",
                blocks=blocks,
                thread_ts=thread_ts,
            )
            ws.messages.append(message)
            await ws.notify("message", {"message": message})
        else:
            ephemeral = Ephemeral(hook.channel, hook.user, payload.get("text") or "", blocks, thread_ts, ws.next_ts())
            ws.ephemerals.append(ephemeral)
            await ws.notify("ephemeral", {"ephemeral": ephemeral})
        return web.Response(text="ok")

    # --- Socket Mode ---

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(heartbeat=None)
        await socket.prepare(request)
        self.sockets.append(socket)
        await socket.send_json(
            {
                "type": "hello",
                "num_connections": len(self.sockets),
                "debug_info": {"host": "sandbox", "approximate_connection_time": 18060},
                "connection_info": {"app_id": self.workspace.app_id},
            }
        )
        self._connected.set()
        try:
            async for frame in socket:
                if frame.type != WSMsgType.TEXT:
                    continue
                ack = json.loads(frame.data)
                waiter = self._acks.pop(ack.get("envelope_id", ""), None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(ack)
        finally:
            self.sockets.remove(socket)
            if not self.sockets:
                self._connected.clear()
        return socket

    async def wait_connected(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def send_envelope(
        self, kind: str, payload: dict[str, Any], *, retry_attempt: int = 0, timeout: float = 10.0
    ) -> dict[str, Any]:
        """Deliver a payload over Socket Mode and return the client's ack (Slack needs it within 3 s)."""
        await self.wait_connected(timeout)
        envelope_id = secrets.token_hex(12)
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "type": kind,
            "accepts_response_payload": kind != "events_api",
            "payload": payload,
        }
        if kind == "events_api":
            envelope["retry_attempt"] = retry_attempt
            envelope["retry_reason"] = "timeout" if retry_attempt else ""
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._acks[envelope_id] = waiter
        socket = self.sockets[next(self._turns) % len(self.sockets)]
        self.envelopes_per_socket[id(socket)] = self.envelopes_per_socket.get(id(socket), 0) + 1
        await socket.send_json(envelope)
        try:
            return await asyncio.wait_for(waiter, timeout)
        finally:
            self._acks.pop(envelope_id, None)


def _fault_response(fault: Fault) -> web.Response:
    if fault.status == 429:
        return web.json_response(
            {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": str(fault.retry_after)}
        )
    if fault.status >= 500:
        return web.Response(status=fault.status, text="upstream trouble")
    return _slack_error(fault.error)


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    return header[7:] if header.startswith("Bearer ") else None


def _slack_error(code: str, **extra: Any) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error": code}
    if code == "missing_scope":
        body.update(needed=extra["needed"], provided=extra["provided"])
    if extra.get("errors"):
        body["errors"] = extra["errors"]
        body["response_metadata"] = {"messages": [f"[ERROR] {e}" for e in extra["errors"]]}
    return web.json_response(body)


async def serve_forever(port: int, host: str = "127.0.0.1") -> None:
    """`finetune-bot sandbox slack`: run the emulator alone and print how to point a bot at it."""
    emulator = await SlackEmulator().start(host, port)
    ws = emulator.workspace
    ws.add_user("U0ALICE", "alice", "Alice Martin")
    ws.add_user("U0BOB", "bob", "Bob Chen")
    ws.add_channel("C0GENERAL", "general", members=["U0ALICE", "U0BOB"])
    print(f"Slack emulator on {emulator.api_url}")  # noqa: T201
    print(f"  SLACK_API_URL={emulator.api_url}")  # noqa: T201
    print(f"  SLACK_BOT_TOKEN={ws.bot_token}")  # noqa: T201
    print(f"  SLACK_APP_TOKEN={ws.app_token}")  # noqa: T201
    print(f"  SLACK_SIGNING_SECRET={ws.signing_secret}")  # noqa: T201
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.Event().wait()
    await emulator.stop()
