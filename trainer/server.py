"""The fine-tuning server's HTTP side: the part of OpenAI's API the bot uses, over real training.

Files (``/v1/files``), jobs (``/v1/fine_tuning/jobs``: create, list with ``after``/``limit``/``metadata``,
retrieve, cancel, pause, resume, events newest first with an id cursor, checkpoints), models (bases with
their context windows, fine-tunes, checkpoints; delete) and chat completions, plain and streamed with a
usage chunk; OpenAI's error bodies and status codes; a bearer API key. One job trains at a time, the
rest wait in order; state lives in ``data_dir`` and survives restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web

from trainer.bases import BaseModel
from trainer.runner import JobRunner, LocalRunner
from trainer.serving import Answer, Serving
from trainer.store import Store

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ACTIVE = ("validating_files", "queued", "running")
TERMINAL = ("succeeded", "failed", "cancelled")
FILE_LIMIT_BYTES = 512 * 1024 * 1024
SUPERVISE_SECONDS = 0.5


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        kind: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param, self.kind = status, message, code, param, kind

    def response(self) -> web.Response:
        body = {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}
        return web.json_response(body, status=self.status)


class Config:
    def __init__(self, raw: dict[str, Any], *, relative_to: Path) -> None:
        self.api_key = str(raw["api_key"])
        self.host = str(raw.get("host") or "127.0.0.1")
        self.port = int(raw.get("port") or 8090)
        self.data_dir = (relative_to / str(raw.get("data_dir") or "trainer-data")).resolve()
        self.organization = str(raw.get("organization") or "local")
        self.max_length = int(raw.get("max_length") or 512)
        self.python = raw.get("python")
        self.bases = {
            base.id: base
            for base in (
                BaseModel.from_json({**item, "path": str((relative_to / item["path"]).resolve())})
                for item in raw["base_models"]
            )
        }

    @classmethod
    def read(cls, path: Path) -> Config:
        return cls(json.loads(path.read_text()), relative_to=path.parent)


class FineTuningServer:
    def __init__(self, config: Config, *, runner: JobRunner | None = None, serving: Serving | None = None) -> None:
        self.config = config
        self.store = Store(config.data_dir / "server.sqlite3")
        self.runner = runner or LocalRunner(python=config.python)
        self.serving = serving or Serving()
        self._supervisor: asyncio.Task[None] | None = None
        # The job whose process trains now, if any: one at a time.
        self._current: str | None = None
        self._warming: list[asyncio.Task[None]] = []

    # --- the app ---

    def web_app(self) -> web.Application:
        app = web.Application(client_max_size=FILE_LIMIT_BYTES + 1024 * 1024, middlewares=[self._middleware])
        routes: list[tuple[str, str, Handler]] = [
            ("POST", "/v1/files", self.create_file),
            ("GET", "/v1/files", self.list_files),
            ("GET", "/v1/files/{id}", self.get_file),
            ("DELETE", "/v1/files/{id}", self.delete_file),
            ("GET", "/v1/files/{id}/content", self.file_content),
            ("POST", "/v1/fine_tuning/jobs", self.create_job),
            ("GET", "/v1/fine_tuning/jobs", self.list_jobs),
            ("GET", "/v1/fine_tuning/jobs/{id}", self.get_job),
            ("POST", "/v1/fine_tuning/jobs/{id}/cancel", self.cancel_job),
            ("POST", "/v1/fine_tuning/jobs/{id}/pause", self.pause_job),
            ("POST", "/v1/fine_tuning/jobs/{id}/resume", self.resume_job),
            ("GET", "/v1/fine_tuning/jobs/{id}/events", self.list_events),
            ("GET", "/v1/fine_tuning/jobs/{id}/checkpoints", self.list_checkpoints),
            ("GET", "/v1/models", self.list_models),
            ("GET", "/v1/models/{id}", self.get_model),
            ("DELETE", "/v1/models/{id}", self.delete_model),
            ("POST", "/v1/chat/completions", self.chat_completions),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, path, handler)
        app.on_startup.append(self._start_supervising)
        app.on_cleanup.append(self._stop_supervising)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            if request.headers.get("Authorization", "") != f"Bearer {self.config.api_key}":
                raise ApiError(401, "Incorrect API key provided.", code="invalid_api_key")
            return await handler(request)
        except ApiError as error:
            return error.response()
        except web.HTTPException as error:
            if error.status == 404:
                return ApiError(404, f"Invalid URL ({request.method} {request.path})", code="unknown_url").response()
            raise

    # --- files ---

    async def create_file(self, request: web.Request) -> web.Response:
        reader = await request.multipart()
        purpose, filename, content = None, "file.jsonl", b""
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "purpose":
                purpose = (await part.text()).strip()
            elif part.name == "file":
                filename = part.filename or filename
                content = await part.read()
        if purpose != "fine-tune":
            raise ApiError(400, "This server takes files with purpose 'fine-tune' only.", param="purpose")
        if not content:
            raise ApiError(400, "The file is empty.", param="file", code="invalid_file")
        file_id = "file-" + secrets.token_hex(12)
        path = self.config.data_dir / "files" / file_id
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        body = {
            "id": file_id,
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }
        return web.json_response(self.store.put("file", body))

    async def list_files(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": self.store.newest_first("file"), "has_more": False})

    async def get_file(self, request: web.Request) -> web.Response:
        return web.json_response(self._file(request.match_info["id"]))

    async def delete_file(self, request: web.Request) -> web.Response:
        found = self._file(request.match_info["id"])
        self.store.delete("file", found["id"])
        (self.config.data_dir / "files" / found["id"]).unlink(missing_ok=True)
        return web.json_response({"id": found["id"], "object": "file", "deleted": True})

    async def file_content(self, request: web.Request) -> web.Response:
        found = self._file(request.match_info["id"])
        return web.Response(body=(self.config.data_dir / "files" / found["id"]).read_bytes())

    def _file(self, file_id: str, *, param: str | None = None) -> dict[str, Any]:
        found = self.store.get("file", file_id)
        if found is None:
            raise ApiError(
                404 if param is None else 400,
                f"No such File object: {file_id}",
                param=param,
                code="file_not_found" if param else None,
            )
        return found

    # --- jobs ---

    async def create_job(self, request: web.Request) -> web.Response:
        body = await _json(request)
        base_id = str(body.get("model") or "")
        if base_id not in self.config.bases:
            raise ApiError(
                400,
                f"Model {base_id!r} is not available for fine-tuning here.",
                param="model",
                code="model_not_available",
            )
        training = self._file(str(body.get("training_file") or ""), param="training_file")
        validation = (
            self._file(str(body["validation_file"]), param="validation_file") if body.get("validation_file") else None
        )
        method = body.get("method") or {
            "type": "supervised",
            "supervised": {"hyperparameters": body.get("hyperparameters") or {}},
        }
        kind = method.get("type", "supervised")
        if kind not in ("supervised", "dpo"):
            raise ApiError(400, f"Method {kind!r} is not supported here (supervised, dpo).", param="method.type")
        hyper = dict((method.get(kind) or {}).get("hyperparameters") or {})
        problem = _rows_problem(self.config.data_dir / "files" / training["id"], kind)
        if problem:
            raise ApiError(
                400, f"Training file {training['id']} {problem}", param="training_file", code="invalid_training_file"
            )
        metadata = body.get("metadata") or None
        suffix = body.get("suffix")
        if suffix is not None and (len(str(suffix)) > 64 or not str(suffix)):
            raise ApiError(400, "suffix must be 1 to 64 characters.", param="suffix")
        job_id = "ftjob-" + secrets.token_hex(12)
        now = int(time.time())
        resolved = {
            "n_epochs": _auto(hyper.get("n_epochs"), 3, int),
            "batch_size": _auto(hyper.get("batch_size"), 1, int),
            "learning_rate_multiplier": _auto(hyper.get("learning_rate_multiplier"), 1.0, float),
        }
        if kind == "dpo":
            resolved["beta"] = _auto(hyper.get("beta"), 0.1, float)
        job = {
            "id": job_id,
            "object": "fine_tuning.job",
            "created_at": now,
            "model": base_id,
            "organization_id": self.config.organization,
            "training_file": training["id"],
            "validation_file": validation["id"] if validation else None,
            "status": "validating_files",
            "fine_tuned_model": None,
            "finished_at": None,
            "estimated_finish": None,
            "error": None,
            "hyperparameters": {key: value for key, value in resolved.items() if key != "beta"},
            "method": {"type": kind, kind: {"hyperparameters": resolved}},
            "result_files": [],
            "trained_tokens": None,
            "integrations": [],
            "seed": int(body["seed"])
            if body.get("seed") is not None
            else int.from_bytes(secrets.token_bytes(3), "big"),
            "suffix": suffix,
            "metadata": metadata,
            "user_provided_suffix": suffix,
        }
        # LoRA settings are not OpenAI's; taken where a caller gives them, kept beside the job.
        lora = {key: int(hyper[key]) for key in ("lora_rank", "lora_alpha") if hyper.get(key)}
        job_dir = self._job_dir(job_id)
        job_dir.mkdir(parents=True)
        learning_rate = (
            float(hyper["learning_rate"])
            if hyper.get("learning_rate")
            else 2e-4 * float(resolved["learning_rate_multiplier"])
        )
        spec = {
            "base": self.config.bases[base_id].to_json(),
            "method": kind,
            "training_file": str(self.config.data_dir / "files" / training["id"]),
            "validation_file": str(self.config.data_dir / "files" / validation["id"]) if validation else None,
            "hyperparameters": {**resolved, "learning_rate": learning_rate, **lora},
            "seed": job["seed"],
            "max_length": self.config.max_length,
        }
        (job_dir / "job.json").write_text(json.dumps(spec))
        self.store.put("job", job)
        self._event(job_id, "Validating training file: " + training["id"])
        job["status"] = "queued"
        self.store.put("job", job)
        self._event(job_id, "Fine-tuning job queued")
        return web.json_response(job)

    async def list_jobs(self, request: web.Request) -> web.Response:
        wanted = {
            key[9:-1]: value
            for key, value in request.query.items()
            if key.startswith("metadata[") and key.endswith("]")
        }
        jobs = [
            job
            for job in self.store.newest_first("job")
            if all((job.get("metadata") or {}).get(k) == v for k, v in wanted.items())
        ]
        return web.json_response(_page(jobs, request))

    async def get_job(self, request: web.Request) -> web.Response:
        return web.json_response(self._job(request.match_info["id"]))

    async def cancel_job(self, request: web.Request) -> web.Response:
        job = self._job(request.match_info["id"])
        if job["status"] in TERMINAL:
            raise ApiError(
                400, f"Job {job['id']} is already {job['status']} and cannot be cancelled.", code="invalid_state"
            )
        if job["status"] == "running":
            # The process stops at the end of its current step; no other job starts before it has.
            (self._job_dir(job["id"]) / "control").write_text("cancel")
        self._finish(job, "cancelled")
        self._event(job["id"], "Fine-tuning job cancelled")
        return web.json_response(job)

    async def pause_job(self, request: web.Request) -> web.Response:
        job = self._job_in(request, "running", "paused")
        (self._job_dir(job["id"]) / "control").write_text("pause")
        return web.json_response(job)

    async def resume_job(self, request: web.Request) -> web.Response:
        job = self._job_in(request, "paused", "resumed")
        (self._job_dir(job["id"]) / "control").unlink(missing_ok=True)
        job["status"] = "queued"
        self.store.put("job", job)
        self._event(job["id"], "Fine-tuning job resumed; queued")
        return web.json_response(job)

    def _job_in(self, request: web.Request, status: str, verb: str) -> dict[str, Any]:
        """The request's job, which must be ``status`` for it to be ``verb``."""
        job = self._job(request.match_info["id"])
        if job["status"] != status:
            raise ApiError(
                400, f"Only a {status} job can be {verb}; {job['id']} is {job['status']}.", code="invalid_state"
            )
        return job

    async def list_events(self, request: web.Request) -> web.Response:
        job = self._job(request.match_info["id"])
        self._ingest(job)
        return web.json_response(_page(self.store.newest_first("event", parent=job["id"]), request))

    async def list_checkpoints(self, request: web.Request) -> web.Response:
        job = self._job(request.match_info["id"])
        self._ingest(job)
        kept = [c for c in self.store.newest_first("checkpoint", parent=job["id"]) if self._checkpoint_dir(c).exists()]
        return web.json_response(_page(kept, request))

    def _job(self, job_id: str) -> dict[str, Any]:
        found = self.store.get("job", job_id)
        if found is None:
            raise ApiError(404, f"No fine-tuning job found with id {job_id}.", code="fine_tune_not_found")
        return found

    def _job_dir(self, job_id: str) -> Path:
        return self.config.data_dir / "jobs" / job_id

    def _checkpoint_dir(self, checkpoint: dict[str, Any]) -> Path:
        return self._job_dir(checkpoint["fine_tuning_job_id"]) / "hf" / f"checkpoint-{checkpoint['step_number']}"

    def _event(
        self,
        job_id: str,
        message: str,
        *,
        level: str = "info",
        kind: str = "message",
        data: Any = None,
        created_at: int | None = None,
    ) -> None:
        count = self.store.count("event", parent=job_id)
        event_id = f"ftevent-{hashlib.sha256(f'{job_id}:{count}'.encode()).hexdigest()[:24]}"
        body = {
            "id": event_id,
            "object": "fine_tuning.job.event",
            "created_at": created_at or int(time.time()),
            "level": level,
            "message": message,
            "data": data,
            "type": kind,
        }
        self.store.put("event", body, parent=job_id)

    def _finish(self, job: dict[str, Any], status: str, **fields: Any) -> None:
        job.update(status=status, finished_at=int(time.time()), **fields)
        self.store.put("job", job)

    # --- the supervisor: one job at a time, in order; what a job's process wrote becomes events ---

    async def _start_supervising(self, app: web.Application) -> None:
        for job in self.store.newest_first("job"):
            if job["status"] == "running":
                # The server stopped while it trained: the job starts again from its latest checkpoint.
                job["status"] = "queued"
                self.store.put("job", job)
                self._event(
                    job["id"], "The server restarted; the job will resume from its last checkpoint", level="warn"
                )
        self._supervisor = asyncio.create_task(self._supervise())
        self._warming = [
            asyncio.create_task(asyncio.to_thread(self.serving.warm, base)) for base in self.config.bases.values()
        ]

    async def _stop_supervising(self, app: web.Application) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        if isinstance(self.runner, LocalRunner):
            await asyncio.to_thread(self.runner.stop_all)

    async def _supervise(self) -> None:
        while True:
            self.supervise_once()
            await asyncio.sleep(SUPERVISE_SECONDS)

    def supervise_once(self) -> None:
        if self._current is not None:
            job = self._job(self._current)
            self._ingest(job)
            if self.runner.running(self._job_dir(job["id"])):
                return
            self._current = None
            self._settle(job)
        waiting = [job for job in reversed(self.store.newest_first("job")) if job["status"] == "queued"]
        if waiting:
            job = waiting[0]
            job["status"] = "running"
            self.store.put("job", job)
            (self._job_dir(job["id"]) / "result.json").unlink(missing_ok=True)
            self._current = job["id"]
            self.runner.start(self._job_dir(job["id"]))

    def _settle(self, job: dict[str, Any]) -> None:
        """The job's process has exited: its result.json says how."""
        self._ingest(job)
        result_file = self._job_dir(job["id"]) / "result.json"
        result = json.loads(result_file.read_text()) if result_file.exists() else {"status": "crashed"}
        status = result["status"]
        (self._job_dir(job["id"]) / "control").unlink(missing_ok=True)
        if job["status"] == "cancelled":
            return
        if status == "succeeded":
            model_id = self._fine_tuned_id(job)
            self.store.put(
                "model",
                {
                    "id": model_id,
                    "object": "model",
                    "created_at": int(time.time()),
                    "owned_by": self.config.organization,
                    "base": job["model"],
                    "path": str(self._job_dir(job["id"]) / "adapter"),
                },
            )
            self._finish(job, "succeeded", fine_tuned_model=model_id, trained_tokens=result.get("trained_tokens"))
        elif status == "paused":
            job["status"] = "paused"
            self.store.put("job", job)
        elif status == "cancelled":
            self._finish(job, "cancelled")
        elif status == "failed":
            self._finish(job, "failed", error=result.get("error"))
        else:
            message = "The training process stopped without a result; see train.log in the job's directory."
            self._event(job["id"], message, level="error")
            self._finish(job, "failed", error={"code": "training_crashed", "message": message, "param": None})

    def _fine_tuned_id(self, job: dict[str, Any]) -> str:
        return f"ft:{job['model']}:{self.config.organization}:{job.get('suffix') or ''}:{job['id'][6:14]}"

    def _ingest(self, job: dict[str, Any]) -> None:
        """New lines of the job's events.jsonl and checkpoints.jsonl into the store, each once."""
        job_dir = self._job_dir(job["id"])
        progress = self.store.get("progress", job["id"]) or {"events": 0, "checkpoints": 0}
        events_done, checkpoints_done = progress["events"], progress["checkpoints"]
        events = _lines(job_dir / "events.jsonl")
        for record in events[events_done:]:
            self._event(
                job["id"],
                record["message"],
                level=record["level"],
                kind=record["type"],
                data=record["data"],
                created_at=record["created_at"],
            )
        checkpoints = _lines(job_dir / "checkpoints.jsonl")
        for record in checkpoints[checkpoints_done:]:
            step = record["step_number"]
            self.store.put(
                "checkpoint",
                {
                    "id": f"ftckpt-{job['id'][6:]}-{step}",
                    "object": "fine_tuning.job.checkpoint",
                    "created_at": record["created_at"],
                    "fine_tuned_model_checkpoint": f"{self._fine_tuned_id(job)}:ckpt-step-{step}",
                    "fine_tuning_job_id": job["id"],
                    "metrics": record["metrics"],
                    "step_number": step,
                },
                parent=job["id"],
            )
        self.store.put("progress", {"id": job["id"], "events": len(events), "checkpoints": len(checkpoints)})

    # --- models and chat ---

    async def list_models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [self._model_object(m) for m in self._models()]})

    async def get_model(self, request: web.Request) -> web.Response:
        return web.json_response(self._model_object(self._resolve(request.match_info["id"])))

    async def delete_model(self, request: web.Request) -> web.Response:
        model_id = request.match_info["id"]
        found = self.store.get("model", model_id)
        if found is None:
            raise ApiError(
                404, f"The model '{model_id}' does not exist or you do not have access to it.", code="model_not_found"
            )
        self.store.delete("model", model_id)
        self.serving.forget(found["base"], model_id)
        return web.json_response({"id": model_id, "object": "model", "deleted": True})

    def _models(self) -> list[dict[str, Any]]:
        bases = [
            {"id": b.id, "object": "model", "created_at": 0, "owned_by": "system", "context_window": b.context_window}
            for b in self.config.bases.values()
        ]
        return bases + self.store.newest_first("model")

    def _model_object(self, model: dict[str, Any]) -> dict[str, Any]:
        shown = {"id": model["id"], "object": "model", "created": model["created_at"], "owned_by": model["owned_by"]}
        if "context_window" in model:
            shown["context_window"] = model["context_window"]
        return shown

    def _resolve(self, model_id: str) -> dict[str, Any]:
        """A base, a fine-tune, or one of a job's kept checkpoints, as something chat can load."""
        if model_id in self.config.bases:
            return next(m for m in self._models() if m["id"] == model_id)
        found = self.store.get("model", model_id)
        if found is not None:
            return found
        if ":ckpt-step-" in model_id:
            owner, step = model_id.rsplit(":ckpt-step-", 1)
            for job in self.store.newest_first("job"):
                if self._fine_tuned_id(job) == owner and step.isdigit():
                    path = self._job_dir(job["id"]) / "hf" / f"checkpoint-{step}"
                    if path.exists():
                        return {
                            "id": model_id,
                            "created_at": job["created_at"],
                            "owned_by": self.config.organization,
                            "base": job["model"],
                            "path": str(path),
                        }
        raise ApiError(
            404,
            f"The model '{model_id}' does not exist or you do not have access to it.",
            param="model",
            code="model_not_found",
        )

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        body = await _json(request)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ApiError(400, "messages must be a non-empty array.", param="messages")
        model = self._resolve(str(body.get("model") or ""))
        base = self.config.bases[model.get("base", model["id"])]
        adapter = (model["id"], Path(model["path"])) if "path" in model else None
        completion_id = "chatcmpl-" + secrets.token_hex(12)
        created = int(time.time())
        if not body.get("stream"):
            answer = await self.serving.complete(base, adapter, body)
            return web.json_response(
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model["id"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": answer.text, "refusal": None},
                            "finish_reason": answer.finish_reason,
                            "logprobs": None,
                        }
                    ],
                    "usage": _usage(answer),
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)

        async def send(choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> None:
            chunk = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model["id"],
                "choices": choices,
                "usage": usage,
            }
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())

        await send([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        async for piece in self.serving.stream(base, adapter, body):
            if isinstance(piece, Answer):
                await send([{"index": 0, "delta": {}, "finish_reason": piece.finish_reason}])
                if (body.get("stream_options") or {}).get("include_usage"):
                    await send([], _usage(piece))
            else:
                await send([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def _usage(answer: Answer) -> dict[str, int]:
    return {
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": answer.completion_tokens,
        "total_tokens": answer.prompt_tokens + answer.completion_tokens,
    }


def _lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    complete = path.read_text(encoding="utf-8").split("\n")[:-1]  # a line still being written is not read
    return [json.loads(line) for line in complete if line.strip()]


def _page(items: list[dict[str, Any]], request: web.Request) -> dict[str, Any]:
    after = request.query.get("after")
    try:
        limit = max(1, min(int(request.query.get("limit") or 20), 100))
    except ValueError:
        raise ApiError(400, "limit must be an integer.", param="limit") from None
    if after:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    return {"object": "list", "data": items[:limit], "has_more": len(items) > limit}


def _auto(value: Any, default: Any, kind: type) -> Any:
    return default if value in (None, "auto") else kind(value)


def _rows_problem(path: Path, method: str) -> str | None:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            return f"has invalid JSON on line {number}."
        wanted = "input" if method == "dpo" else "messages"
        if not isinstance(row, dict) or wanted not in row:
            return f"line {number} has no '{wanted}' field for {method} training."
    return None


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, "We could not parse the JSON body of your request.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "The body must be a JSON object.")
    return body


def main(config_path: Path) -> int:
    config = Config.read(config_path)
    server = FineTuningServer(config)
    print(f"Fine-tuning server on http://{config.host}:{config.port}/v1 with {', '.join(config.bases)}", flush=True)  # noqa: T201
    web.run_app(server.web_app(), host=config.host, port=config.port, print=None)
    return 0
