"""The emulator's answers against OpenAI's published API schema (../shared/reference/specs/openai-openapi.json):
every route the bot calls, over raw HTTP, each response validated with jsonschema against the schema the
spec documents for that path and method, errors and stream chunks included. What the SDK's types check
(tests/sandbox/test_openai_contract.py) is only what the SDK reads; this is what OpenAI says it sends."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from sandbox.openai import OpenAIEmulator, OpenAIState
from tests.examples import chat_lines

SPEC = Path(__file__).resolve().parents[3] / "shared" / "reference" / "specs" / "openai-openapi.json"
SPEC_URI = "urn:openai-openapi"


@functools.cache
def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = _nullable_as_json_schema(json.loads(SPEC.read_text()))
    return loaded


def _nullable_as_json_schema(node: Any) -> Any:
    """The spec is OpenAPI 3.1 but still marks some schemas with 3.0's ``nullable: true``, which JSON Schema
    ignores: such a schema also admits null, as OpenAPI means it."""
    if isinstance(node, list):
        return [_nullable_as_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _nullable_as_json_schema(value) for key, value in node.items()}
    if converted.pop("nullable", False) is True:
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


# Where OpenAI's schema and OpenAI's own stream differ, the SDK's types (openai.types) are the tie-breaker:
# every chunk but the last carries "finish_reason": null, which ChatCompletionChunk types as Optional.
STREAM_NULLS = ("finish_reason",)


@functools.cache
def validator(path: str, method: str, content_type: str = "application/json") -> Draft202012Validator:
    """The validator for what ``method path`` answers with 200, as the spec documents it."""
    document = spec()
    schema = document["paths"][path][method]["responses"]["200"]["content"][content_type]["schema"]
    return _validator(schema["$ref"])


@functools.cache
def _validator(reference: str) -> Draft202012Validator:
    document = Resource.from_contents(spec(), default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(SPEC_URI, document)
    return Draft202012Validator({"$ref": SPEC_URI + reference}, registry=registry)


def conforms(answer: Any, checker: Draft202012Validator, what: str, *, may_be_null: tuple[str, ...] = ()) -> None:
    problems = [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in checker.iter_errors(answer)
        if not (error.instance is None and error.absolute_path and error.absolute_path[-1] in may_be_null)
    ]
    assert not problems, f"{what} departs from OpenAI's schema: {problems[:5]}"


@pytest.fixture
async def emulator() -> AsyncIterator[OpenAIEmulator]:
    server = await OpenAIEmulator(OpenAIState()).start()
    yield server
    await server.stop()


class Api:
    """Raw HTTP to the emulator, each answer checked against the spec's schema for its route."""

    def __init__(self, session: aiohttp.ClientSession, emulator: OpenAIEmulator) -> None:
        self.session = session
        self.emulator = emulator

    async def call(self, method: str, route: str, path: str, **kwargs: Any) -> Any:
        async with self.session.request(
            method.upper(),
            self.emulator.base_url + path,
            headers={"Authorization": f"Bearer {self.emulator.state.api_key}"},
            **kwargs,
        ) as response:
            answer = await response.json()
            if response.status != 200:
                conforms(answer, _validator("#/components/schemas/ErrorResponse"), f"{method} {route} error")
                return answer
        conforms(answer, validator(route, method), f"{method} {route}")
        return answer


@pytest.fixture
async def api(emulator: OpenAIEmulator) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(session, emulator)


async def test_files_jobs_events_checkpoints_and_models_conform(emulator: OpenAIEmulator, api: Api) -> None:
    form = aiohttp.FormData()
    form.add_field("purpose", "fine-tune")
    form.add_field("file", chat_lines(12), filename="train.jsonl", content_type="application/jsonl")
    uploaded = await api.call("post", "/files", "/files", data=form)
    await api.call("get", "/files/{file_id}", f"/files/{uploaded['id']}")
    upload = {"bytes": 10, "filename": "big.jsonl", "mime_type": "application/jsonl", "purpose": "fine-tune"}
    await api.call("post", "/uploads", "/uploads", json=upload)

    body = {
        "model": "gpt-4o-mini-2024-07-18",
        "training_file": uploaded["id"],
        "suffix": "marv",
        "metadata": {"request_id": "r1"},
        "method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}},
    }
    job = await api.call("post", "/fine_tuning/jobs", "/fine_tuning/jobs", json=body)
    route = "/fine_tuning/jobs/{fine_tuning_job_id}"
    for _ in range(200):
        job = await api.call("get", route, f"/fine_tuning/jobs/{job['id']}")
        if job["status"] == "succeeded":
            break
        emulator.state.clock.advance(30)
    assert job["status"] == "succeeded"
    await api.call("get", "/fine_tuning/jobs", "/fine_tuning/jobs", params={"limit": "2", "metadata[request_id]": "r1"})
    await api.call("get", f"{route}/events", f"/fine_tuning/jobs/{job['id']}/events", params={"limit": "100"})
    checkpoints = await api.call("get", f"{route}/checkpoints", f"/fine_tuning/jobs/{job['id']}/checkpoints")
    assert checkpoints["data"], "checkpoints to check"

    listed = await api.call("get", "/models", "/models")
    assert any(model["id"] == job["fine_tuned_model"] for model in listed["data"])
    await api.call("get", "/models/{model}", f"/models/{job['fine_tuned_model']}")
    await api.call("delete", "/models/{model}", f"/models/{job['fine_tuned_model']}")

    other = await api.call("post", "/fine_tuning/jobs", "/fine_tuning/jobs", json={**body, "suffix": "two"})
    await api.call("post", f"{route}/cancel", f"/fine_tuning/jobs/{other['id']}/cancel")


async def test_chat_answers_and_stream_chunks_conform(emulator: OpenAIEmulator, api: Api) -> None:
    question = {"model": "gpt-4o-mini-2024-07-18", "messages": [{"role": "user", "content": "Hello there"}]}
    await api.call("post", "/chat/completions", "/chat/completions", json={**question, "max_completion_tokens": 4})
    chunk = validator("/chat/completions", "post", "text/event-stream")
    async with api.session.post(
        emulator.base_url + "/chat/completions",
        headers={"Authorization": f"Bearer {emulator.state.api_key}"},
        json={**question, "stream": True, "stream_options": {"include_usage": True}},
    ) as response:
        lines = (await response.text()).split("\n")
    chunks = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
    assert len(chunks) > 2 and chunks[-1]["usage"] is not None
    for number, piece in enumerate(chunks):
        conforms(piece, chunk, f"stream chunk {number}", may_be_null=STREAM_NULLS)


@pytest.mark.parametrize(
    ("method", "route", "path", "body"),
    [
        ("post", "/fine_tuning/jobs", "/fine_tuning/jobs", {"model": "gpt-4o-mini", "training_file": "file-missing"}),
        ("get", "/fine_tuning/jobs/{fine_tuning_job_id}", "/fine_tuning/jobs/ftjob-missing", None),
        ("get", "/models/{model}", "/models/ft:missing", None),
        ("post", "/chat/completions", "/chat/completions", {"model": "gpt-4o-mini", "messages": "not a list"}),
    ],
)
async def test_refusals_are_openais_error_body(api: Api, method: str, route: str, path: str, body: Any) -> None:
    answer = await api.call(method, route, path, json=body)
    assert "error" in answer and answer["error"]["message"]
