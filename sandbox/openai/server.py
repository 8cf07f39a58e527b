"""The OpenAI emulator's HTTP side: the official ``openai`` SDK runs against it unchanged
(``base_url=http://127.0.0.1:PORT/v1``), and so does ``AsyncAzureOpenAI`` in Azure mode (paths under
``/openai/``, ``api-version`` query, ``api-key`` header, deployments apart from model ids), with OpenAI's
error bodies and status codes and faults (429 with retry-after, 500, slow answers) injected per endpoint."""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import hashlib
import io
import json
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import BodyPartReader, web

from sandbox.openai import azure_management, entra, nebius
from sandbox.openai.simulation import (
    OpenAIState,
    approximate_tokens,
    check_hyperparameters,
    count_prompt_tokens,
    judgement,
    message_text,
    pieces,
    require,
    words,
)
from sandbox.openai.state import (
    ALIASES,
    FILE_LIMIT_BYTES,
    ORGANIZATION,
    PART_LIMIT_BYTES,
    UPLOAD_LIMIT_BYTES,
    ApiError,
    FaultRule,
    Job,
    PendingUpload,
    SandboxClock,
    StoredFile,
)


def _paginate(items: list[dict[str, Any]], query: Any, *, default_limit: int) -> dict[str, Any]:
    try:
        limit = int(query.get("limit", default_limit))
    except ValueError:
        raise ApiError(400, "Invalid 'limit': expected an integer.", param="limit") from None
    if not 1 <= limit <= 100:
        raise ApiError(400, "Invalid 'limit': must be between 1 and 100.", param="limit")
    after = query.get("after")
    start = 0
    if after:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise ApiError(400, f"Invalid 'after': no object with id {after!r}.", param="after")
        start = ids.index(after) + 1
    page = items[start : start + limit]
    return {"object": "list", "data": page, "has_more": start + limit < len(items)}


class GatewayPage(Exception):
    """Answer with GATEWAY_PAGE instead of the API's JSON."""


GATEWAY_PAGE = "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class OpenAIEmulator:
    """The aiohttp server around an ``OpenAIState``; OpenAI paths under /v1, Azure's under /openai."""

    def __init__(self, state: OpenAIState | None = None) -> None:
        self.state = state or OpenAIState()
        self.runner: web.AppRunner | None = None
        self.port = 0
        self.host = "127.0.0.1"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def azure_endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def identity_environment(self) -> dict[str, str]:
        """What App Service puts in a managed identity's environment, for azure-identity to find it here."""
        return {
            "IDENTITY_ENDPOINT": self.azure_endpoint + entra.TOKEN_PATH,
            "IDENTITY_HEADER": self.state.identity_header,
        }

    def web_app(self) -> web.Application:
        app = web.Application(client_max_size=FILE_LIMIT_BYTES + 1024 * 1024, middlewares=[self._middleware])
        routes = [
            ("POST", "/files", self.create_file),
            ("GET", "/files", self.list_files),
            ("GET", "/files/{id}", self.get_file),
            ("DELETE", "/files/{id}", self.delete_file),
            ("GET", "/files/{id}/content", self.file_content),
            ("POST", "/uploads", self.create_upload),
            ("POST", "/uploads/{id}/parts", self.add_upload_part),
            ("POST", "/uploads/{id}/complete", self.complete_upload),
            ("POST", "/uploads/{id}/cancel", self.cancel_upload),
            ("POST", "/fine_tuning/jobs", self.create_job),
            ("GET", "/fine_tuning/jobs", self.list_jobs),
            ("GET", "/fine_tuning/jobs/{id}", self.get_job),
            ("POST", "/fine_tuning/jobs/{id}/cancel", self.cancel_job),
            ("POST", "/fine_tuning/jobs/{id}/pause", self.pause_job),
            ("POST", "/fine_tuning/jobs/{id}/resume", self.resume_job),
            ("GET", "/fine_tuning/jobs/{id}/events", self.list_events),
            ("GET", "/fine_tuning/jobs/{id}/checkpoints", self.list_checkpoints),
            ("GET", "/models", self.list_models),
            ("GET", "/models/{id}", self.get_model),
            ("DELETE", "/models/{id}", self.delete_model),
            ("POST", "/chat/completions", self.chat_completions),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, "/v1" + path, handler)
            app.router.add_route(method, "/openai/v1" + path, handler)
            app.router.add_route(method, "/openai" + path, handler)
        app.router.add_route("POST", "/openai/deployments/{deployment}/chat/completions", self.chat_completions)
        deployment = (
            "/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.CognitiveServices/"
            "accounts/{account}/deployments/{name}"
        )
        app.router.add_route("PUT", deployment, self.put_arm_deployment)
        app.router.add_route("GET", deployment, self.get_arm_deployment)
        app.router.add_route("DELETE", deployment, self.delete_arm_deployment)
        app.router.add_route("POST", "/v0/models", self.create_nebius_model)
        app.router.add_route("GET", "/v0/models/{name:.+}", self.get_nebius_model)
        app.router.add_route("DELETE", "/v0/models/{name:.+}", self.delete_nebius_model)
        app.router.add_route("GET", entra.TOKEN_PATH, self.managed_identity_token)
        app.router.add_route("POST", "/sandbox/clock", self.control_clock)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> OpenAIEmulator:
        self.runner = web.AppRunner(self.web_app(), access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, host, port).start()
        self.host, self.port = host, self.runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        for hold in self.state.holds.values():
            hold.released.set()
        if self.runner is not None:
            await self.runner.cleanup()

    # --- cross-cutting: auth, Azure, faults, errors ---

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        state = self.state
        request_id = "req_" + secrets.token_hex(12)
        try:
            if request.path.startswith(("/sandbox/", entra.TOKEN_PATH)):
                return await handler(request)
            azure = request.path.startswith("/openai/")
            if request.path.startswith("/subscriptions/"):
                azure_management.authorize(state, _bearer(request), request.query.get("api-version"))
                key: str | None = state.api_key
            elif azure:
                key = request.headers.get("api-key") or _bearer(request)
                issued_for = entra.audience(state, _bearer(request))
                if issued_for == entra.DATA_PLANE:
                    key = state.api_key
                elif issued_for is not None:
                    raise ApiError(
                        401,
                        "Unauthorized. Access token is missing, invalid, audience is incorrect "
                        f"({entra.DATA_PLANE}), or have expired.",
                        code="401",
                        type="invalid_request_error",
                    )
                if not request.query.get("api-version") and not request.path.startswith("/openai/v1/"):
                    raise ApiError(404, "Resource not found", code="404", type="invalid_request_error")
            else:
                key = _bearer(request)
            if key != state.api_key:
                shown = (key or "")[:6] + "****" if key else "none"
                if azure:
                    raise ApiError(
                        401,
                        "Access denied due to invalid subscription key or wrong API endpoint.",
                        code="401",
                        type="invalid_request_error",
                    )
                raise ApiError(
                    401,
                    f"Incorrect API key provided: {shown}. You can find your API key at "
                    "https://platform.openai.com/account/api-keys.",
                    code="invalid_api_key",
                )
            endpoint = f"{request.method} {_endpoint_name(request)}"
            state.calls.append((request.method, request.path))
            rule = state.faults.get(endpoint) or state.faults.get("*")
            if rule is not None and rule.delay_seconds:
                await asyncio.sleep(rule.delay_seconds)
            if rule is not None and rule.html_page and rule.times != 0:
                rule.times = None if rule.times is None else rule.times - 1
                raise GatewayPage
            if rule is not None and not rule.after_processing:
                self._maybe_fail(rule)
            hold = state.holds.get(endpoint)
            if hold is not None and hold.before_work:
                await hold.stop_here()
            state.advance_jobs()
            response = await handler(request)
            if hold is not None and not hold.before_work:
                await hold.stop_here()
            if rule is not None and rule.after_processing:
                self._maybe_fail(rule)
        except GatewayPage:
            response = web.Response(text=GATEWAY_PAGE, content_type="text/html")
        except ApiError as error:
            body = {"error": {"message": error.message, "type": error.type, "param": error.param, "code": error.code}}
            response = web.json_response(body, status=error.status, headers=error.headers)
        response.headers["x-request-id"] = request_id
        await state.answered()
        return response

    @staticmethod
    def _maybe_fail(rule: FaultRule) -> None:
        if rule.times is not None and rule.times <= 0:
            return
        roll = rule.random.random()
        if roll >= rule.rate_429 + rule.rate_500:
            return
        if rule.times is not None:
            rule.times -= 1
        if roll < rule.rate_429:
            raise ApiError(
                429,
                "Rate limit reached for requests. Please try again in 20ms.",
                type="requests",
                code="rate_limit_exceeded",
                headers={"retry-after-ms": str(rule.retry_after_ms), "retry-after": "1"},
            )
        raise ApiError(
            500,
            "The server had an error while processing your request. Sorry about that!",
            type="server_error",
            code="server_error",
        )

    async def _json(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(400, "We could not parse the JSON body of your request.") from None
        if not isinstance(body, dict):
            raise ApiError(400, "The request body must be a JSON object.")
        return body

    # --- files ---

    async def create_file(self, request: web.Request) -> web.Response:
        if not request.content_type.startswith("multipart/"):
            raise ApiError(400, "Expected a multipart/form-data body.")
        reader = await request.multipart()
        purpose, filename, content = None, None, io.BytesIO()
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "purpose":
                purpose = (await part.read()).decode()
            elif part.name == "file":
                filename = part.filename or "file"
                while chunk := await part.read_chunk(1 << 20):
                    content.write(chunk)
                    if content.tell() > FILE_LIMIT_BYTES:
                        raise ApiError(
                            413,
                            "File is too large: the maximum size is 512 MB. Use the Uploads API for larger files.",
                            param="file",
                            code="file_too_large",
                        )
        if filename is None:
            raise ApiError(400, "Missing required parameter: 'file'.", param="file")
        if purpose not in ("fine-tune", "batch", "assistants", "vision", "user_data", "evals"):
            raise ApiError(400, f"Invalid value for 'purpose': {purpose!r}.", param="purpose")
        if purpose == "fine-tune" and not filename.endswith(".jsonl"):
            raise ApiError(400, "Invalid file format for Fine-Tuning API. Must be .jsonl", param="file")
        stored = StoredFile(self.state.new_id("file-"), filename, purpose, content.getvalue(), self.state.now())
        self.state.files[stored.id] = stored
        return web.json_response(self._file_api(stored))

    def _file_api(self, stored: StoredFile) -> dict[str, Any]:
        return stored.to_api() | {"status": self.state.quirks.file_status}

    def _file(self, request: web.Request) -> StoredFile:
        stored = self.state.files.get(request.match_info["id"])
        if stored is None:
            raise ApiError(404, f"No such File object: {request.match_info['id']}", param="id")
        return stored

    async def list_files(self, request: web.Request) -> web.Response:
        files = sorted(self.state.files.values(), key=lambda f: f.created_at, reverse=True)
        purpose = request.query.get("purpose")
        items = [self._file_api(f) for f in files if purpose in (None, f.purpose)]
        page = _paginate(items, request.query, default_limit=100)
        page["first_id"] = page["data"][0]["id"] if page["data"] else None
        page["last_id"] = page["data"][-1]["id"] if page["data"] else None
        return web.json_response(page)

    async def get_file(self, request: web.Request) -> web.Response:
        return web.json_response(self._file_api(self._file(request)))

    async def delete_file(self, request: web.Request) -> web.Response:
        stored = self._file(request)
        del self.state.files[stored.id]
        return web.json_response({"id": stored.id, "object": "file", "deleted": True})

    async def file_content(self, request: web.Request) -> web.Response:
        return web.Response(body=self._file(request).content, content_type="application/octet-stream")

    # --- uploads ---

    async def create_upload(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        size = require(body, "bytes")
        if not isinstance(size, int) or not 0 < size <= UPLOAD_LIMIT_BYTES:
            raise ApiError(400, "Invalid 'bytes': an Upload holds at most 8 GB.", param="bytes")
        upload = PendingUpload(
            self.state.new_id("upload_"),
            require(body, "filename"),
            require(body, "purpose"),
            require(body, "mime_type"),
            size,
            self.state.now(),
        )
        self.state.uploads[upload.id] = upload
        return web.json_response(upload.to_api())

    def _upload(self, request: web.Request) -> PendingUpload:
        upload = self.state.uploads.get(request.match_info["id"])
        if upload is None:
            raise ApiError(404, f"No such Upload object: {request.match_info['id']}", param="upload_id")
        if upload.status == "pending" and self.state.now() > upload.created_at + 3600:
            upload.status = "expired"
        return upload

    async def add_upload_part(self, request: web.Request) -> web.Response:
        upload = self._upload(request)
        if upload.status != "pending":
            raise ApiError(400, f"Upload {upload.id} is {upload.status}; parts can only be added while pending.")
        reader = await request.multipart()
        data = b""
        async for part in reader:
            if isinstance(part, BodyPartReader) and part.name == "data":
                data = await part.read()
        if len(data) > PART_LIMIT_BYTES:
            raise ApiError(400, "Each part may be at most 64 MB.", param="data")
        part_id = self.state.new_id("part_")
        upload.parts[part_id] = data
        return web.json_response(
            {"id": part_id, "object": "upload.part", "created_at": self.state.now(), "upload_id": upload.id}
        )

    async def complete_upload(self, request: web.Request) -> web.Response:
        upload = self._upload(request)
        body = await self._json(request)
        part_ids = require(body, "part_ids")
        if upload.status != "pending":
            raise ApiError(400, f"Upload {upload.id} is {upload.status}.")
        missing = [p for p in part_ids if p not in upload.parts]
        if missing:
            raise ApiError(400, f"Unknown part id {missing[0]!r}.", param="part_ids")
        content = b"".join(upload.parts[p] for p in part_ids)
        if len(content) != upload.size:
            raise ApiError(
                400,
                f"The parts add up to {len(content)} bytes, but the Upload was created for {upload.size}.",
                param="part_ids",
            )
        if body.get("md5") and hashlib.md5(content).hexdigest() != body["md5"]:
            raise ApiError(400, "The md5 checksum does not match the uploaded bytes.", param="md5")
        stored = StoredFile(self.state.new_id("file-"), upload.filename, upload.purpose, content, self.state.now())
        self.state.files[stored.id] = stored
        upload.file, upload.status, upload.parts = stored, "completed", {}
        return web.json_response(upload.to_api())

    async def cancel_upload(self, request: web.Request) -> web.Response:
        upload = self._upload(request)
        if upload.status != "pending":
            raise ApiError(400, f"Upload {upload.id} is {upload.status} and cannot be cancelled.")
        upload.status, upload.parts = "cancelled", {}
        return web.json_response(upload.to_api())

    # --- fine-tuning jobs ---

    async def create_job(self, request: web.Request) -> web.Response:
        state = self.state
        body = await self._json(request)
        if state.quirks.fine_tuning_closed or (state.fine_tuning_closes and state.today() >= state.fine_tuning_closes):
            raise ApiError(
                403,
                "You do not have access to fine-tuning: this organization can no longer create fine-tuning jobs.",
                code="permission_denied",
            )
        if state.quirks.out_of_quota:
            raise ApiError(
                429,
                "You exceeded your current quota, please check your plan and billing details.",
                type="insufficient_quota",
                code="insufficient_quota",
            )
        model = require(body, "model")
        training_file = require(body, "training_file")
        base = state.resolve_base(model)
        if base is None or not state.model_exists(model):
            raise ApiError(
                400,
                f"Model {model} is not available for fine-tuning or does not exist.",
                param="model",
                code="model_not_available",
            )
        if not base.fine_tunable:
            raise ApiError(
                400, f"Model {model} is not available for fine-tuning.", param="model", code="model_not_available"
            )
        if base.fine_tune_until and state.today() >= base.fine_tune_until:
            raise ApiError(
                400,
                f"Fine-tuning of {model} was retired on {base.fine_tune_until}.",
                param="model",
                code="model_not_available",
            )
        if base.shutdown_date and state.today() >= base.shutdown_date:
            raise ApiError(
                400,
                f"Model {model} has been shut down on {base.shutdown_date} and can no longer be fine-tuned.",
                param="model",
                code="model_not_available",
            )
        for name in ("training_file", "validation_file"):
            file_id = body.get(name)
            if file_id is None:
                continue
            stored = state.files.get(file_id)
            if stored is None:
                raise ApiError(400, f"invalid {name}: {file_id}", param=name, code="invalid_file")
            if stored.purpose != "fine-tune":
                raise ApiError(
                    400,
                    f"File {file_id} has purpose {stored.purpose!r}; fine-tuning needs 'fine-tune'.",
                    param=name,
                    code="invalid_file",
                )
        if state.nebius:
            hyperparameters = nebius.check_job(body)
            method_spec: dict[str, Any] = {"type": "supervised"}
        else:
            method_spec = body.get("method") or {"type": "supervised"}
        method = method_spec.get("type")
        if method not in ("supervised", "dpo"):
            raise ApiError(400, f"Invalid method type: {method!r}.", param="method.type")
        if method not in base.methods:
            raise ApiError(
                400,
                f"Model {model} does not support the {method} method.",
                param="method.type",
                code="model_not_available",
            )
        if not state.nebius:
            raw_hyper = dict(body.get("hyperparameters") or {})
            raw_hyper.update((method_spec.get(method) or {}).get("hyperparameters") or {})
            hyperparameters = check_hyperparameters(method, raw_hyper)
        suffix = body.get("suffix")
        if suffix is not None and not (isinstance(suffix, str) and 1 <= len(suffix) <= 64):
            raise ApiError(400, "Invalid 'suffix': expected a string of 1 to 64 characters.", param="suffix")
        if request.path.startswith("/openai/"):
            check_azure_job(body)
        seed = body.get("seed")
        if seed is None:
            seed = random.Random(training_file).randint(0, 2_147_483_647)
        if not isinstance(seed, int) or not 0 <= seed <= 2_147_483_647:
            raise ApiError(400, "Invalid 'seed': expected an integer from 0 to 2147483647.", param="seed")
        metadata = body.get("metadata") or {}
        if len(metadata) > 16 or any(len(k) > 64 or len(str(v)) > 512 for k, v in metadata.items()):
            raise ApiError(
                400,
                "Invalid 'metadata': at most 16 pairs, keys up to 64 and values up to 512 characters.",
                param="metadata",
            )
        now = state.now()
        job = Job(
            id=state.new_id("ftjob-"),
            model=ALIASES.get(model, model),
            training_file=training_file,
            validation_file=body.get("validation_file"),
            method=method,
            hyperparameters=hyperparameters,
            suffix=suffix,
            seed=seed,
            metadata={k: str(v) for k, v in metadata.items()},
            created_at=now,
            phase_started=now,
            simulated_until=now,
            training_type=body.get("trainingType"),
        )
        if state.scripted_failures:
            job.scripted_failure = state.scripted_failures.pop(0)
        state._event(job, now, f"Created fine-tuning job: {job.id}")
        state._event(job, now, f"Validating training file: {training_file}")
        state.jobs[job.id] = job
        return web.json_response(job.to_api())

    def _job(self, request: web.Request) -> Job:
        job = self.state.jobs.get(request.match_info["id"])
        if job is None:
            raise ApiError(
                404,
                f"Could not find fine-tuning job with ID {request.match_info['id']}",
                param="id",
                code="fine_tune_not_found",
            )
        return job

    async def list_jobs(self, request: web.Request) -> web.Response:
        wanted = {key[9:-1]: value for key, value in request.query.items() if key.startswith("metadata[")}
        if self.state.quirks.ignores_metadata_filter:
            wanted = {}
        jobs = sorted(self.state.jobs.values(), key=lambda j: (j.created_at, j.id), reverse=True)
        items = [j.to_api() for j in jobs if all(j.metadata.get(k) == v for k, v in wanted.items())]
        return web.json_response(_paginate(items, request.query, default_limit=20))

    async def get_job(self, request: web.Request) -> web.Response:
        return web.json_response(self._job(request).to_api())

    async def cancel_job(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if job.status not in ("validating_files", "queued", "running", "paused"):
            raise ApiError(400, f"Job {job.id} has already {job.status}; it cannot be cancelled.", code="invalid_state")
        now = self.state.clock.now()
        self.state._event(job, now, "Fine-tuning job cancelled")
        self.state._finish(job, now, "cancelled")
        return web.json_response(job.to_api())

    async def pause_job(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if job.status != "running":
            raise ApiError(
                400, f"Only a running job can be paused; job {job.id} is {job.status}.", code="invalid_state"
            )
        job.status = "paused"
        self.state._event(job, self.state.clock.now(), "Fine-tuning job paused")
        return web.json_response(job.to_api())

    async def resume_job(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if job.status != "paused":
            raise ApiError(
                400, f"Only a paused job can be resumed; job {job.id} is {job.status}.", code="invalid_state"
            )
        now = self.state.clock.now()
        job.status, job.phase_started = "queued", now
        self.state._event(job, now, "Fine-tuning job resumed")
        return web.json_response(job.to_api())

    async def list_events(self, request: web.Request) -> web.Response:
        job = self._job(request)
        ordered = job.events if self.state.quirks.events_oldest_first else list(reversed(job.events))
        return web.json_response(_paginate(ordered, request.query, default_limit=20))

    async def list_checkpoints(self, request: web.Request) -> web.Response:
        if self.state.quirks.no_checkpoints:
            return web.json_response({"detail": "Not Found"}, status=404)
        job = self._job(request)
        newest_first = list(reversed(job.checkpoints))
        page = _paginate(newest_first, request.query, default_limit=10)
        page["first_id"] = page["data"][0]["id"] if page["data"] else None
        page["last_id"] = page["data"][-1]["id"] if page["data"] else None
        return web.json_response(page)

    # --- models ---

    def _model_api(self, model_id: str, *, azure: bool = False) -> dict[str, Any]:
        return self._azure_model(model_id) if azure else self._openai_model(model_id)

    def _azure_model(self, model_id: str) -> dict[str, Any]:
        """Azure's shape (REST "Models - List"): capabilities, lifecycle, and deprecation in Unix seconds."""
        state = self.state
        tuned = state.fine_tuned.get(model_id)
        base = state.base_models[tuned.base if tuned else ALIASES.get(model_id, model_id)]
        deprecation: dict[str, int] = {}
        if base.shutdown_date:
            deprecation["inference"] = _unix_day(base.shutdown_date)
        if base.fine_tune_until and tuned is None:
            deprecation["fine_tune"] = _unix_day(base.fine_tune_until)
        shape: dict[str, Any] = {
            "id": model_id,
            "object": "model",
            "created_at": tuned.created if tuned else base.created,
            "status": "succeeded",
            "lifecycle_status": "generally-available",
            "capabilities": {
                "fine_tune": tuned is None and base.fine_tunable,
                "inference": True,
                "completion": False,
                "chat_completion": True,
                "embeddings": False,
            },
            "deprecation": deprecation,
        }
        if tuned is not None:
            shape |= {"model": tuned.base, "fine_tune": tuned.job_id}
        return shape

    def _openai_model(self, model_id: str) -> dict[str, Any]:
        state = self.state
        if model_id in state.fine_tuned:
            tuned = state.fine_tuned[model_id]
            base = state.base_models[tuned.base]
            return {
                "id": model_id,
                "object": "model",
                "created": tuned.created,
                "owned_by": ORGANIZATION,
                "shutdown_date": base.shutdown_date,
            }
        base = state.base_models[ALIASES.get(model_id, model_id)]
        return {
            "id": model_id,
            "object": "model",
            "created": base.created,
            "owned_by": base.owned_by,
            "shutdown_date": base.shutdown_date,
        }

    async def list_models(self, request: web.Request) -> web.Response:
        ids = [*self.state.base_models, *(m for m in self.state.fine_tuned if m not in self.state.deleted_models)]
        azure = request.path.startswith("/openai/")
        return web.json_response({"object": "list", "data": [self._model_api(m, azure=azure) for m in ids]})

    async def get_model(self, request: web.Request) -> web.Response:
        model_id = request.match_info["id"]
        if not self.state.model_exists(model_id):
            raise ApiError(404, f"The model '{model_id}' does not exist", param="model", code="model_not_found")
        return web.json_response(self._model_api(model_id, azure=request.path.startswith("/openai/")))

    async def delete_model(self, request: web.Request) -> web.Response:
        model_id = request.match_info["id"]
        if model_id not in self.state.fine_tuned or model_id in self.state.deleted_models:
            raise ApiError(404, f"The model '{model_id}' does not exist", param="model", code="model_not_found")
        self.state.deleted_models.add(model_id)
        return web.json_response({"id": model_id, "object": "model", "deleted": True})

    # --- Azure's management API ---

    async def put_arm_deployment(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        deployment, status = azure_management.put(self.state, name, request.path, await self._json(request))
        return web.json_response(deployment.to_api(), status=status)

    async def get_arm_deployment(self, request: web.Request) -> web.Response:
        return web.json_response(azure_management.get(self.state, request.match_info["name"]).to_api())

    async def delete_arm_deployment(self, request: web.Request) -> web.Response:
        return web.Response(status=azure_management.delete(self.state, request.match_info["name"]))

    async def managed_identity_token(self, request: web.Request) -> web.Response:
        answer, status = entra.issue(
            self.state,
            secret=request.headers.get("X-IDENTITY-HEADER"),
            api_version=request.query.get("api-version"),
            resource=request.query.get("resource"),
        )
        return web.json_response(answer, status=status)

    # --- Nebius deployments ---

    def _nebius_only(self) -> None:
        if not self.state.nebius:
            raise ApiError(404, "Not found.", code="not_found")

    async def create_nebius_model(self, request: web.Request) -> web.Response:
        self._nebius_only()
        created = nebius.create_deployment(self.state, await self._json(request))
        return web.json_response(created.to_api())

    async def get_nebius_model(self, request: web.Request) -> web.Response:
        self._nebius_only()
        return web.json_response(nebius.deployment(self.state, request.match_info["name"]).to_api())

    async def delete_nebius_model(self, request: web.Request) -> web.Response:
        self._nebius_only()
        nebius.deployment(self.state, request.match_info["name"]).status = "deleted"
        return web.json_response({"name": request.match_info["name"], "deleted": True})

    # --- chat ---

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        state = self.state
        body = await self._json(request)
        deployment = request.match_info.get("deployment")
        if request.path.startswith("/openai/v1/"):
            deployment = str(require(body, "model"))  # the v1 API names the deployment as the model
        if deployment is not None:
            model = state.deployments.get(deployment)
            azure_management.used(state, deployment)
            if model is None:
                raise ApiError(
                    404,
                    "The API deployment for this resource does not exist. If you created the "
                    "deployment within the last 5 minutes, please wait a moment and try again.",
                    code="DeploymentNotFound",
                )
        elif state.nebius:
            model = nebius.chat_model(state, require(body, "model"))
        else:
            model = require(body, "model")
        messages = require(body, "messages")
        if not isinstance(messages, list) or not all(isinstance(message, dict) for message in messages):
            raise ApiError(
                400,
                "Invalid type for 'messages': expected an array of objects, but got "
                f"{type(messages).__name__} instead.",
                param="messages",
                code="invalid_type",
            )
        state.chat_requests.append({"model": model, "messages": messages})
        async with state._chatted:
            state._chatted.notify_all()
        if not state.model_exists(model):
            raise ApiError(
                404, f"The model `{model}` does not exist or you do not have access to it.", code="model_not_found"
            )
        base = state.resolve_base(model)
        if base is not None and base.shutdown_date and state.today() >= base.shutdown_date:
            raise ApiError(
                404,
                f"The model `{model}` has been deprecated and was shut down on {base.shutdown_date}.",
                code="model_not_found",
            )
        prompt_tokens = count_prompt_tokens(messages)
        window = base.context_window if base else 128_000
        if prompt_tokens > window:
            raise ApiError(
                400,
                f"This model's maximum context length is {window} tokens. However, your messages resulted in "
                f"{prompt_tokens} tokens. Please reduce the length of the messages.",
                param="messages",
                code="context_length_exceeded",
            )
        answer = self._answer(model, messages)
        finish_reason = "stop"
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if isinstance(limit, int) and approximate_tokens(answer) > limit:
            answer, finish_reason = answer[: limit * 4], "length"
        completion_tokens = approximate_tokens(answer)
        created = state.now()
        completion_id = "chatcmpl-" + secrets.token_hex(12)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        if not body.get("stream"):
            return web.json_response(
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": answer, "refusal": None},
                            "logprobs": None,
                            "finish_reason": finish_reason,
                        }
                    ],
                    "usage": usage,
                    "system_fingerprint": "fp_sandbox",
                    "service_tier": "default",
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
            payload = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_sandbox",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
                **extra,
            }
            return f"data: {json.dumps(payload)}\n\n".encode()

        await response.write(chunk({"role": "assistant", "content": ""}))
        async for piece in pieces(answer, delay=self.state.stream_delay_seconds):
            await response.write(chunk({"content": piece}))
        await response.write(chunk({}, finish_reason))
        if (body.get("stream_options") or {}).get("include_usage"):
            usage_chunk: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [],
                "usage": usage,
            }
            await response.write(f"data: {json.dumps(usage_chunk)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    def _answer(self, model: str, messages: list[dict[str, Any]]) -> str:
        question = next((message_text(m) for m in reversed(messages) if m.get("role") == "user"), "")
        verdict = judgement(question)
        if verdict is not None and model not in self.state.fine_tuned:
            return verdict
        tuned = self.state.fine_tuned.get(model)
        if tuned is not None and tuned.examples:
            asked = words(question)
            best = max(tuned.examples, key=lambda e: (sum((asked & e.prompt_words).values()), -len(e.answer)))
            return best.answer
        base_name = self.state.resolve_base(model)
        label = base_name.id if base_name else model
        return (
            f"[{label}] Thanks for your question. Here is a general answer: "
            f'"{question.strip()[:200]}" is a good thing to ask; it depends on your context, so give me '
            "more details and I will be more specific."
        )

    async def control_clock(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.state.clock.advance(float(body.get("advance", 0)))
        if "speed" in body:
            self.state.clock.speed = float(body["speed"])
        return web.json_response({"now": self.state.clock.now()})


def check_azure_job(body: dict[str, Any]) -> None:
    """Azure's own rules on a job (providers.md §1.1): a suffix of at most 18 characters without dots,
    and a known trainingType."""
    suffix = body.get("suffix")
    if isinstance(suffix, str) and (len(suffix) > 18 or "." in suffix):
        raise ApiError(
            400, "The suffix must be at most 18 characters and must not contain dots.", param="suffix", code="invalid"
        )
    training_type = body.get("trainingType", "Standard")
    if training_type not in AZURE_TRAINING_TYPES:
        raise ApiError(
            400,
            f"Invalid trainingType {training_type!r}: expected one of {', '.join(AZURE_TRAINING_TYPES)}.",
            param="trainingType",
        )


AZURE_TRAINING_TYPES = ("Standard", "GlobalStandard", "developerTier", "Developer")


def _unix_day(day: str) -> int:
    return int(calendar.timegm(time.strptime(day, "%Y-%m-%d")))


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    return header[7:] if header.startswith("Bearer ") else None


def _endpoint_name(request: web.Request) -> str:
    """The route's path as listed in the docs, e.g. '/fine_tuning/jobs/{id}/events'."""
    resource = request.match_info.route.resource
    canonical = resource.canonical if resource is not None else request.path
    return canonical.removeprefix("/openai").removeprefix("/v1")


async def serve_forever(port: int, host: str = "127.0.0.1") -> None:
    """`finetune-bot sandbox openai`: run the emulator alone, at 60× real time, and say how to use it."""
    emulator = await OpenAIEmulator(OpenAIState(clock=SandboxClock(time.time(), speed=60.0))).start(host, port)
    print(f"OpenAI emulator on {emulator.base_url} (jobs run at 60x speed)")  # noqa: T201
    print(f"  OPENAI_BASE_URL={emulator.base_url}")  # noqa: T201
    print(f"  OPENAI_API_KEY={emulator.state.api_key}")  # noqa: T201
    print(f"  Azure mode: AZURE_OPENAI_ENDPOINT={emulator.azure_endpoint}")  # noqa: T201
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.Event().wait()
    await emulator.stop()
