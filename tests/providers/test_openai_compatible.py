"""The provider seam, adapter by adapter, against the OpenAI emulator over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.providers import JobRequest, ProviderError, ProviderErrorKind, ProviderJob
from bot.providers.openai_compatible import OpenAICompatibleProvider, build_provider
from bot.providers.types import ChatEnd
from bot.training.status import ACTIVE, JobStatus
from sandbox.openai import OpenAIEmulator, OpenAIState
from tests.conftest import make_settings
from tests.examples import chat_lines


@pytest.fixture(params=["sandbox", "compatible", "azure"])
async def provider(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[OpenAICompatibleProvider, OpenAIEmulator]]:
    state = OpenAIState(azure_ids=request.param == "azure")
    emulator = await OpenAIEmulator(state).start()
    variant: dict[str, Any] = {"finetune_provider": request.param}
    if request.param == "azure":
        variant |= {
            "azure_openai_endpoint": emulator.azure_endpoint,
            "azure_openai_api_key": state.api_key,
            "azure_openai_deployments": {},
        }
    else:
        variant |= {"openai_base_url": emulator.base_url, "openai_api_key": state.api_key}
    settings = make_settings(tmp_path, **variant)
    [(name, config)] = settings.provider_configs().items()
    adapter = build_provider(name, config, settings)
    yield adapter, emulator
    await adapter.aclose()
    await emulator.stop()


@pytest.mark.slow
async def test_a_job_through_the_seam(
    provider: tuple[OpenAICompatibleProvider, OpenAIEmulator], tmp_path: Path
) -> None:
    adapter, emulator = provider
    data = tmp_path / "train.jsonl"
    data.write_bytes(chat_lines(20))
    models = await adapter.list_base_models()
    mini = next(m for m in models if m.id == "gpt-4o-mini-2024-07-18")
    assert str(mini.inference_retires) == "2027-01-14"
    file_id = await adapter.upload_dataset(data, filename="train.jsonl", size=data.stat().st_size)
    job = await adapter.create_job(
        JobRequest(
            model=mini.id,
            training_file=file_id,
            method="supervised",
            hyperparameters={"n_epochs": 2},
            metadata={"request_id": "r-seam"},
            suffix="seam",
        )
    )
    assert job.status == JobStatus.VALIDATING and job.raw_status == "validating_files"
    assert [found.id for found in await adapter.find_jobs(metadata={"request_id": "r-seam"})] == [job.id]
    emulator.state.clock.advance(90)
    paused = await adapter.pause_job(job.id)
    assert paused.status == JobStatus.PAUSED
    assert (await adapter.resume_job(job.id)).status == JobStatus.QUEUED
    seen: str | None = None
    events = []
    for _ in range(100):
        emulator.state.clock.advance(30)
        batch = await adapter.events_since(job.id, last_seen=seen)
        events += batch
        seen = batch[-1].id if batch else seen
        current = await adapter.get_job(job.id)
        if current.status == JobStatus.SUCCEEDED:
            break
    assert current.fine_tuned_model is not None
    assert len({event.id for event in events}) == len(events), "each event once, oldest first"
    assert events[-1].message == "The job has successfully completed"
    assert any(event.type == "metrics" and "train_loss" in event.data for event in events)
    checkpoints = await adapter.checkpoints(job.id)
    assert checkpoints and checkpoints[0].metrics["train_loss"] is not None
    assert (await adapter.file_content(current.result_files[0])).startswith(b"step,train_loss")
    assert str(await adapter.model_shutdown(current.fine_tuned_model)) == "2027-01-14"
    if adapter.name == "azure":
        emulator.state.deploy(current.fine_tuned_model, "seam-deployment")
        adapter.config.deployments[current.fine_tuned_model] = "seam-deployment"
        assert adapter.chat_target(current.fine_tuned_model) == "seam-deployment"
    pieces = [
        piece
        async for piece in adapter.stream_chat(
            model=current.fine_tuned_model, messages=[{"role": "user", "content": "hello"}], max_tokens=50
        )
    ]
    end = pieces[-1]
    assert isinstance(end, ChatEnd) and end.usage and not end.cut_off
    assert "".join(p for p in pieces if isinstance(p, str))
    answer, usage = await adapter.complete_chat(
        model=current.fine_tuned_model, messages=[{"role": "user", "content": "hello"}], max_tokens=50
    )
    assert answer and usage.completion_tokens > 0 and usage.prompt_tokens > 0
    await adapter.delete_model(current.fine_tuned_model)
    with pytest.raises(ProviderError) as raised:
        await adapter.model_shutdown(current.fine_tuned_model)
    assert raised.value.kind == ProviderErrorKind.NOT_FOUND


async def a_small_job(adapter: OpenAICompatibleProvider, folder: Path) -> tuple[Path, ProviderJob]:
    """A 12-example file uploaded and a job created on it with the defaults: (the file, the job)."""
    data = folder / "train.jsonl"
    data.write_bytes(chat_lines(12))
    file_id = await adapter.upload_dataset(data, filename="train.jsonl", size=data.stat().st_size)
    job = await adapter.create_job(
        JobRequest(
            model="gpt-4o-mini-2024-07-18", training_file=file_id, method="supervised", hyperparameters={}, metadata={}
        )
    )
    return data, job


async def test_unknown_raw_statuses_keep_polling(
    provider: tuple[OpenAICompatibleProvider, OpenAIEmulator], tmp_path: Path
) -> None:
    adapter, emulator = provider
    _, job = await a_small_job(adapter, tmp_path)
    emulator.state.jobs[job.id].status = "compressing"  # a status this bot has never heard of
    remote = await adapter.get_job(job.id)
    assert remote.status == JobStatus.UNKNOWN and remote.raw_status == "compressing"
    assert remote.status in ACTIVE


@pytest.mark.parametrize(
    "endpoint", ["GET /fine_tuning/jobs/{id}", "GET /fine_tuning/jobs/{id}/events", "GET /models", "GET /files/{id}"]
)
async def test_an_answer_that_is_not_json_is_a_provider_error(
    provider: tuple[OpenAICompatibleProvider, OpenAIEmulator], tmp_path: Path, endpoint: str
) -> None:
    """A gateway's HTML page with a 200: the SDK hands back a string, and reading it must not crash the caller."""
    adapter, emulator = provider
    data, job = await a_small_job(adapter, tmp_path)
    emulator.state.inject(endpoint, html_page=True, times=1)
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "GET /fine_tuning/jobs/{id}": lambda: adapter.get_job(job.id),
        "GET /fine_tuning/jobs/{id}/events": lambda: adapter.events_since(job.id, last_seen=None),
        "GET /models": adapter.list_base_models,
        "GET /files/{id}": lambda: adapter.upload_dataset(data, filename="train.jsonl", size=data.stat().st_size),
    }
    with pytest.raises(ProviderError) as raised:
        await calls[endpoint]()
    assert raised.value.kind == ProviderErrorKind.OUTAGE and raised.value.ambiguous
    assert "could not be read" in raised.value.sentence and "Error" not in raised.value.sentence
    assert (await adapter.get_job(job.id)).id == job.id, "the next call is answered as usual"
