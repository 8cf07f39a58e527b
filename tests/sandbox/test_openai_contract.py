"""Contract tests: the official openai SDK, unchanged, against the emulator over real HTTP.

The SDK does not validate responses (a missing field comes back as None), so every object is
checked explicitly for required fields, on both of the SDK's transports.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import AsyncAzureOpenAI, AsyncOpenAI, DefaultAioHttpClient
from pydantic import BaseModel

from sandbox.openai import OpenAIEmulator, OpenAIState
from tests.examples import chat_lines


def assert_complete(obj: Any, path: str = "") -> None:
    """Every field the SDK's type marks as required is present, recursively."""
    if isinstance(obj, list):
        for index, item in enumerate(obj):
            assert_complete(item, f"{path}[{index}]")
        return
    if not isinstance(obj, BaseModel):
        return
    for name, info in type(obj).model_fields.items():
        value = getattr(obj, name)
        if info.is_required():
            assert value is not None, f"{type(obj).__name__}.{path}{name} is required but missing"
        assert_complete(value, f"{path}{name}.")


@pytest.fixture
async def emulator() -> AsyncIterator[OpenAIEmulator]:
    server = await OpenAIEmulator(OpenAIState()).start()
    yield server
    await server.stop()


@pytest.fixture(params=["httpx2", "aiohttp"])
async def client(request: pytest.FixtureRequest, emulator: OpenAIEmulator) -> AsyncIterator[AsyncOpenAI]:
    http_client = DefaultAioHttpClient() if request.param == "aiohttp" else None
    async with AsyncOpenAI(
        api_key=emulator.state.api_key, base_url=emulator.base_url, max_retries=2, http_client=http_client
    ) as sdk:
        yield sdk


async def run_job_to_the_end(emulator: OpenAIEmulator, client: AsyncOpenAI, job_id: str) -> Any:
    for _ in range(500):
        job = await client.fine_tuning.jobs.retrieve(job_id)
        if job.status in ("succeeded", "failed", "cancelled"):
            return job
        emulator.state.clock.advance(30)
    raise AssertionError(f"job {job_id} never finished")


async def test_files_round_trip(client: AsyncOpenAI) -> None:
    created = await client.files.create(file=("train.jsonl", chat_lines(12)), purpose="fine-tune")
    assert_complete(created)
    assert (created.filename, created.bytes, created.purpose) == ("train.jsonl", len(chat_lines(12)), "fine-tune")
    assert_complete(await client.files.retrieve(created.id))
    listed = [f async for f in client.files.list(purpose="fine-tune")]
    assert_complete(listed)
    assert [f.id for f in listed] == [created.id]
    content = await client.files.content(created.id)
    assert content.read() == chat_lines(12)
    deleted = await client.files.delete(created.id)
    assert_complete(deleted)
    assert deleted.deleted
    with pytest.raises(openai.NotFoundError):
        await client.files.retrieve(created.id)


async def test_fine_tuning_requires_jsonl(client: AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match=r"Must be \.jsonl"):
        await client.files.create(file=("train.csv", b"a,b\n"), purpose="fine-tune")


async def test_uploads_api_assembles_parts_in_order(client: AsyncOpenAI) -> None:
    data = chat_lines(40)
    upload = await client.uploads.create(
        bytes=len(data), filename="big.jsonl", mime_type="text/jsonl", purpose="fine-tune"
    )
    assert_complete(upload)
    half = len(data) // 2
    second = await client.uploads.parts.create(upload.id, data=data[half:])
    first = await client.uploads.parts.create(upload.id, data=data[:half])
    assert_complete([first, second])
    done = await client.uploads.complete(upload.id, part_ids=[first.id, second.id])
    assert_complete(done)
    assert done.status == "completed" and done.file is not None
    assert (await client.files.content(done.file.id)).read() == data


async def test_supervised_job_lifecycle_with_events_checkpoints_and_results(
    emulator: OpenAIEmulator, client: AsyncOpenAI
) -> None:
    training = await client.files.create(file=("train.jsonl", chat_lines(20)), purpose="fine-tune")
    validation = await client.files.create(file=("valid.jsonl", chat_lines(10)), purpose="fine-tune")
    job = await client.fine_tuning.jobs.create(
        model="gpt-4o-mini-2024-07-18",
        training_file=training.id,
        validation_file=validation.id,
        suffix="marv",
        metadata={"team": "T1", "request_id": "r-1"},
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}},
    )
    assert_complete(job)
    assert job.status == "validating_files"
    seen_statuses: set[str] = {job.status}
    for _ in range(200):
        emulator.state.clock.advance(15)
        job = await client.fine_tuning.jobs.retrieve(job.id)
        assert_complete(job)
        seen_statuses.add(job.status)
        if job.status == "succeeded":
            break
    assert {"validating_files", "queued", "running", "succeeded"} <= seen_statuses
    assert job.fine_tuned_model is not None
    assert job.fine_tuned_model.startswith("ft:gpt-4o-mini-2024-07-18:sandbox:marv:")
    assert job.trained_tokens and job.trained_tokens > 0
    assert job.hyperparameters.n_epochs == 2

    events = [event async for event in client.fine_tuning.jobs.list_events(job.id, limit=7)]
    assert_complete(events)
    assert events[0].message == "The job has successfully completed", "newest first"
    metrics = [e for e in events if e.type == "metrics"]
    assert metrics and isinstance(metrics[0].data, dict)
    assert {"step", "train_loss", "valid_loss", "train_mean_token_accuracy"} <= set(metrics[0].data)
    assert len({event.id for event in events}) == len(events)

    checkpoints = [c async for c in client.fine_tuning.jobs.checkpoints.list(job.id)]
    assert_complete(checkpoints)
    assert checkpoints and checkpoints[0].fine_tuned_model_checkpoint.endswith(
        f"ckpt-step-{checkpoints[0].step_number}"
    )

    results = (await client.files.content(job.result_files[0])).text
    assert results.splitlines()[0] == "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy"

    found = [j async for j in client.fine_tuning.jobs.list(metadata={"request_id": "r-1"})]
    assert [j.id for j in found] == [job.id]
    assert [j async for j in client.fine_tuning.jobs.list(metadata={"request_id": "other"})] == []


async def test_job_list_paginates_with_after_and_has_more(client: AsyncOpenAI) -> None:
    training = await client.files.create(file=("train.jsonl", chat_lines(12)), purpose="fine-tune")
    ids = [(await client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training.id)).id for _ in range(5)]
    page = await client.fine_tuning.jobs.list(limit=2)
    assert page.has_more and len(page.data) == 2
    everything = [job.id async for job in client.fine_tuning.jobs.list(limit=2)]
    assert sorted(everything) == sorted(ids)
    assert len(everything) == 5


async def test_dpo_job_on_real_preference_data(
    emulator: OpenAIEmulator, client: AsyncOpenAI, shared_data: Path
) -> None:
    data = (shared_data / "orca_dpo_pairs_validation.jsonl").read_bytes()
    training = await client.files.create(file=("orca.jsonl", data), purpose="fine-tune")
    job = await client.fine_tuning.jobs.create(
        model="gpt-4o-mini",
        training_file=training.id,
        method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2, "n_epochs": 1}}},
    )
    assert job.method is not None and job.method.type == "dpo"
    finished = await run_job_to_the_end(emulator, client, job.id)
    assert finished.status == "succeeded", finished.error


async def test_a_short_training_file_fails_the_job_as_openai_does(
    emulator: OpenAIEmulator, client: AsyncOpenAI
) -> None:
    training = await client.files.create(file=("small.jsonl", chat_lines(5)), purpose="fine-tune")
    job = await client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training.id)
    finished = await run_job_to_the_end(emulator, client, job.id)
    assert finished.status == "failed"
    assert finished.error is not None
    assert_complete(finished.error)
    assert finished.error.code == "invalid_training_file"
    assert finished.error.param == "training_file"
    assert "at least 10 examples" in finished.error.message


async def test_a_malformed_line_fails_the_job_naming_the_line(emulator: OpenAIEmulator, client: AsyncOpenAI) -> None:
    lines = chat_lines(12).decode().splitlines()
    lines[3] = '{"messages": [oops'
    training = await client.files.create(file=("bad.jsonl", "\n".join(lines).encode()), purpose="fine-tune")
    job = await client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training.id)
    finished = await run_job_to_the_end(emulator, client, job.id)
    assert finished.status == "failed" and finished.error is not None
    assert "Line 4" in finished.error.message


@pytest.mark.parametrize(
    ("method", "param"),
    [
        ({"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 0}}}, "hyperparameters.n_epochs"),
        ({"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 51}}}, "hyperparameters.n_epochs"),
        ({"type": "supervised", "supervised": {"hyperparameters": {"batch_size": 257}}}, "hyperparameters.batch_size"),
        (
            {"type": "supervised", "supervised": {"hyperparameters": {"learning_rate_multiplier": 0}}},
            "hyperparameters.learning_rate_multiplier",
        ),
        ({"type": "dpo", "dpo": {"hyperparameters": {"beta": 3}}}, "hyperparameters.beta"),
    ],
)
async def test_hyperparameter_bounds_are_checked(client: AsyncOpenAI, method: Any, param: str) -> None:
    training = await client.files.create(file=("train.jsonl", chat_lines(12)), purpose="fine-tune")
    with pytest.raises(openai.BadRequestError) as raised:
        await client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training.id, method=method)
    assert raised.value.param == param


async def test_create_rejects_bad_suffix_unknown_and_retired_models(client: AsyncOpenAI) -> None:
    training = await client.files.create(file=("train.jsonl", chat_lines(12)), purpose="fine-tune")
    with pytest.raises(openai.BadRequestError) as raised:
        await client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training.id, suffix="x" * 65)
    assert raised.value.param == "suffix"
    with pytest.raises(openai.BadRequestError) as raised:
        await client.fine_tuning.jobs.create(model="gpt-9-imaginary", training_file=training.id)
    assert raised.value.code == "model_not_available"
    with pytest.raises(openai.BadRequestError, match="shut down on 2026-10-23"):
        await client.fine_tuning.jobs.create(model="gpt-4.1-nano-2025-04-14", training_file=training.id)


async def test_cancel_pause_and_resume(emulator: OpenAIEmulator, client: AsyncOpenAI) -> None:
    training = await client.files.create(file=("train.jsonl", chat_lines(30)), purpose="fine-tune")
    job = await client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training.id)
    emulator.state.clock.advance(90)
    assert (await client.fine_tuning.jobs.retrieve(job.id)).status == "running"
    paused = await client.fine_tuning.jobs.pause(job.id)
    assert str(paused.status) == "paused"
    emulator.state.clock.advance(10_000)
    assert str((await client.fine_tuning.jobs.retrieve(job.id)).status) == "paused", "no progress while paused"
    assert (await client.fine_tuning.jobs.resume(job.id)).status == "queued"
    cancelled = await client.fine_tuning.jobs.cancel(job.id)
    assert_complete(cancelled)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    with pytest.raises(openai.BadRequestError):
        await client.fine_tuning.jobs.cancel(job.id)


async def test_models_carry_shutdown_dates_and_fine_tunes_can_be_deleted(
    emulator: OpenAIEmulator, client: AsyncOpenAI
) -> None:
    models = [m async for m in client.models.list()]
    assert_complete(models)
    by_id = {m.id: m for m in models}
    assert by_id["gpt-4o-mini-2024-07-18"].shutdown_date == "2027-01-14"
    training = await client.files.create(file=("train.jsonl", chat_lines(12)), purpose="fine-tune")
    job = await client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training.id, suffix="demo")
    finished = await run_job_to_the_end(emulator, client, job.id)
    model = await client.models.retrieve(finished.fine_tuned_model)
    assert_complete(model)
    assert model.shutdown_date == "2027-01-14"
    deleted = await client.models.delete(finished.fine_tuned_model)
    assert_complete(deleted)
    assert deleted.deleted
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve(finished.fine_tuned_model)


async def test_a_fine_tuned_model_answers_from_what_it_learned(emulator: OpenAIEmulator, client: AsyncOpenAI) -> None:
    training = await client.files.create(file=("train.jsonl", chat_lines(15)), purpose="fine-tune")
    job = await client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training.id)
    tuned = (await run_job_to_the_end(emulator, client, job.id)).fine_tuned_model
    question = [{"role": "user", "content": "Tell me the boiling point of water, please"}]
    answer = await client.chat.completions.create(model=tuned, messages=question)  # type: ignore[arg-type]
    assert_complete(answer)
    assert answer.choices[0].message.content is not None
    assert "boiling point of water" in answer.choices[0].message.content
    assert answer.choices[0].message.content.startswith("Obviously")
    base = await client.chat.completions.create(model="gpt-4o-mini", messages=question)  # type: ignore[arg-type]
    assert base.choices[0].message.content != answer.choices[0].message.content
    again = await client.chat.completions.create(model="gpt-4o-mini", messages=question)  # type: ignore[arg-type]
    assert again.choices[0].message.content == base.choices[0].message.content, "deterministic"


async def test_streamed_chat_with_usage_chunk(client: AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Hello there, wörld 🙂"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, usage = [], None
    async for chunk in stream:
        assert_complete(chunk)
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
        if chunk.usage is not None:
            usage = chunk.usage
    assert "wörld 🙂" in "".join(pieces)
    assert usage is not None and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


async def test_context_overflow_is_refused_as_openai_does(client: AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "word " * 140_000}]
        )
    assert raised.value.code == "context_length_exceeded"


async def test_a_wrong_key_gets_openais_401(emulator: OpenAIEmulator) -> None:
    async with AsyncOpenAI(api_key="sk-wrong-key", base_url=emulator.base_url, max_retries=0) as sdk:
        with pytest.raises(openai.AuthenticationError) as raised:
            await sdk.models.list()
    assert raised.value.code == "invalid_api_key"
    assert "sk-wro****" in raised.value.message


async def test_injected_429s_are_retried_by_the_sdk(emulator: OpenAIEmulator, client: AsyncOpenAI) -> None:
    emulator.state.inject("GET /models", rate_429=1.0)
    with pytest.raises(openai.RateLimitError):
        await client.models.list()
    calls = [c for c in emulator.state.calls if c[1].endswith("/models")]
    assert len(calls) == 3, "one try and the SDK's two retries"
    emulator.state.inject("GET /models", rate_500=1.0)
    with pytest.raises(openai.InternalServerError):
        await client.with_options(max_retries=0).models.list()
    emulator.state.faults.clear()
    assert_complete([m async for m in client.models.list()])


async def test_a_job_scripted_to_fail_reports_the_providers_error(
    emulator: OpenAIEmulator, client: AsyncOpenAI
) -> None:
    emulator.state.fail_next_job(code="server_error", message="Internal error during training.", at_step=3)
    training = await client.files.create(file=("train.jsonl", chat_lines(20)), purpose="fine-tune")
    job = await client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training.id)
    finished = await run_job_to_the_end(emulator, client, job.id)
    assert finished.status == "failed"
    assert finished.error is not None and finished.error.message == "Internal error during training."


async def test_azure_mode_with_deployments(shared_data: Path) -> None:
    state = OpenAIState(azure_ids=True)
    emulator = await OpenAIEmulator(state).start()
    try:
        async with AsyncAzureOpenAI(
            api_key=state.api_key, azure_endpoint=emulator.azure_endpoint, api_version="2025-04-01-preview"
        ) as azure:
            data = (shared_data / "gsm8k_chat_validation.jsonl").read_bytes()
            training = await azure.files.create(file=("gsm8k.jsonl", data), purpose="fine-tune")
            job = await azure.fine_tuning.jobs.create(model="gpt-4.1-mini-2025-04-14", training_file=training.id)
            for _ in range(500):
                state.clock.advance(60)
                job = await azure.fine_tuning.jobs.retrieve(job.id)
                if job.status == "succeeded":
                    break
            assert job.fine_tuned_model is not None
            assert job.fine_tuned_model.startswith("gpt-4.1-mini-2025-04-14.ft-")
            with pytest.raises(openai.NotFoundError):
                await azure.chat.completions.create(model="not-deployed", messages=[{"role": "user", "content": "hi"}])
            state.deploy(job.fine_tuned_model, "gsm8k-tuned")
            answer = await azure.chat.completions.create(
                model="gsm8k-tuned", messages=[{"role": "user", "content": "How many apples?"}]
            )
            assert_complete(answer)
        assert all(path.startswith("/openai/") for _, path in state.calls)
        async with AsyncAzureOpenAI(
            api_key="wrong", azure_endpoint=emulator.azure_endpoint, api_version="2025-04-01-preview", max_retries=0
        ) as wrong:
            with pytest.raises(openai.AuthenticationError):
                await wrong.models.list()
    finally:
        await emulator.stop()
