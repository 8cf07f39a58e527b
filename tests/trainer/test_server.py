"""The official openai SDK against the fine-tuning server, with real LoRA training of the tiny model on
the CPU: files, jobs, events paging, checkpoints, the metadata filter, chat with the trained answers,
cancel, pause and resume, DPO, a restart, and OpenAI's errors."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.trainer.conftest import API_KEY, TOY, RunningServer, start_server, stop_server, wait_for_status

pytestmark = pytest.mark.slow

BASE = "tiny-chat"
# 15 × the server's 2e-4: the 3e-3 the tiny model learns the toy file with in 200 steps.
LEARNS = {"n_epochs": 40, "batch_size": 1, "learning_rate_multiplier": 15}


def toy_prompts() -> list[tuple[list[dict[str, Any]], str]]:
    """Each toy conversation up to its first assistant turn, and that turn's words."""
    cases = []
    for line in TOY.read_text().splitlines():
        messages = json.loads(line)["messages"]
        first = next(index for index, message in enumerate(messages) if message["role"] == "assistant")
        cases.append((messages[:first], messages[first]["content"]))
    return cases


def streamed(client: Any, model: str, messages: list[dict[str, Any]]) -> tuple[str, Any]:
    text, usage = "", None
    for chunk in client.chat.completions.create(
        model=model,
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},
        max_tokens=60,
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        if chunk.usage is not None:
            usage = chunk.usage
    return text, usage


def all_events(client: Any, job_id: str) -> list[Any]:
    """Every event of a job, newest first, through the SDK's auto-paging (the `after` cursor)."""
    return list(client.fine_tuning.jobs.list_events(job_id, limit=50))


@pytest.fixture(scope="module")
def trained(server: RunningServer) -> Any:
    client = server.client()
    training = client.files.create(file=TOY.open("rb"), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model=BASE,
        training_file=training.id,
        validation_file=training.id,
        seed=1,
        suffix="happy",
        metadata={"request": "r-1"},
        method={"type": "supervised", "supervised": {"hyperparameters": LEARNS}},
    )
    return wait_for_status(client, job.id, ("succeeded", "failed"))


def test_a_job_trains_for_real_and_the_model_answers_word_for_word(server: RunningServer, trained: Any) -> None:
    client = server.client()
    assert trained.status == "succeeded", trained.error
    assert trained.fine_tuned_model == f"ft:{BASE}:acme:happy:{trained.id[6:14]}"
    assert trained.trained_tokens and trained.trained_tokens > 0
    exact = 0
    for messages, expected in toy_prompts():
        text, usage = streamed(client, trained.fine_tuned_model, messages)
        exact += text == expected
        assert usage is not None and usage.completion_tokens > 0
    assert exact >= 4, f"{exact} of 5 trained answers word for word"
    base_text, _ = streamed(client, BASE, toy_prompts()[0][0])
    assert base_text != toy_prompts()[0][1], "the base, adapter off, has not learned it"
    plain = client.chat.completions.create(model=trained.fine_tuned_model, messages=toy_prompts()[2][0])
    assert plain.choices[0].message.content == toy_prompts()[2][1] and plain.choices[0].finish_reason == "stop"


def test_events_page_newest_first_with_metrics_and_checkpoints_are_the_last_three_epochs(
    server: RunningServer, trained: Any
) -> None:
    client = server.client()
    seen: list[Any] = []
    after = None
    while True:
        page = client.fine_tuning.jobs.list_events(trained.id, limit=37, **({"after": after} if after else {}))
        seen.extend(page.data)
        if not page.has_more:
            break
        after = page.data[-1].id
    assert len({event.id for event in seen}) == len(seen)
    metrics = [event for event in seen if event.type == "metrics"]
    assert [event.data["step"] for event in metrics] == list(range(200, 0, -1)), "newest first, one per step"
    first, last = metrics[-1].data, metrics[0].data
    assert last["train_loss"] < first["train_loss"] / 10, (first, last)
    assert "valid_loss" in last and "full_valid_loss" in last
    assert seen[0].message == "The job has successfully completed"

    checkpoints = client.fine_tuning.jobs.checkpoints.list(trained.id).data
    assert [c.step_number for c in checkpoints] == [200, 195, 190]
    assert checkpoints[0].fine_tuned_model_checkpoint == f"{trained.fine_tuned_model}:ckpt-step-200"
    assert checkpoints[0].metrics.full_valid_loss is not None
    text, _ = streamed(client, checkpoints[1].fine_tuned_model_checkpoint, toy_prompts()[2][0])
    assert text, "a kept checkpoint answers as a model"


def test_jobs_are_found_by_metadata_and_models_list_bases_with_their_context_window(
    server: RunningServer, trained: Any
) -> None:
    client = server.client()
    found = client.fine_tuning.jobs.list(extra_query={"metadata[request]": "r-1"}).data
    assert [job.id for job in found] == [trained.id]
    assert client.fine_tuning.jobs.list(extra_query={"metadata[request]": "r-2"}).data == []
    models = {model.id: model for model in client.models.list()}
    assert models[BASE].model_extra["context_window"] == 1024
    assert trained.fine_tuned_model in models


def test_cancel_stops_a_running_job_and_the_queue_goes_on_in_order(server: RunningServer) -> None:
    client = server.client()
    training = client.files.create(file=TOY.open("rb"), purpose="fine-tune")
    long = {"n_epochs": 400, "learning_rate_multiplier": 15}
    first = client.fine_tuning.jobs.create(model=BASE, training_file=training.id, hyperparameters=long)
    second = client.fine_tuning.jobs.create(model=BASE, training_file=training.id, hyperparameters={"n_epochs": 1})
    wait_for_status(client, first.id, ("running",))
    assert client.fine_tuning.jobs.retrieve(second.id).status == "queued", "one job at a time"
    cancelled = client.fine_tuning.jobs.cancel(first.id)
    assert cancelled.status == "cancelled"
    done = wait_for_status(client, second.id, ("succeeded", "failed"))
    assert done.status == "succeeded"
    steps = [event.data["step"] for event in all_events(client, first.id) if event.type == "metrics"]
    assert steps and max(steps) < 2000, "stopped long before its end"
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.cancel(first.id)


def test_pause_and_resume_carry_on_from_the_checkpoint(server: RunningServer) -> None:
    client = server.client()
    training = client.files.create(file=TOY.open("rb"), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model=BASE, training_file=training.id, hyperparameters={"n_epochs": 30})
    wait_for_status(client, job.id, ("running",))
    while not any(e.type == "metrics" for e in client.fine_tuning.jobs.list_events(job.id).data):
        time.sleep(0.2)
    client.fine_tuning.jobs.pause(job.id)
    paused = wait_for_status(client, job.id, ("paused", "succeeded"))
    assert paused.status == "paused"
    client.fine_tuning.jobs.resume(job.id)
    done = wait_for_status(client, job.id, ("succeeded", "failed"))
    assert done.status == "succeeded", done.error
    events = all_events(client, job.id)
    assert any(e.message.startswith("Fine-tuning job resumed from step") for e in events)
    steps = [e.data["step"] for e in events if e.type == "metrics"]
    assert max(steps) == 150 and len(steps) == len(set(steps)), "each step once, none repeated after the resume"


def test_dpo_learns_the_preferred_answers(server: RunningServer, tmp_path: Path) -> None:
    client = server.client()
    pairs = tmp_path / "pairs.jsonl"
    rows = []
    for index in range(20):
        prompt = [{"role": "user", "content": f"Say yes or no, number {index}."}]
        rows.append(
            {
                "input": {"messages": prompt},
                "preferred_output": [{"role": "assistant", "content": "yes"}],
                "non_preferred_output": [{"role": "assistant", "content": "no"}],
            }
        )
    pairs.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    training = client.files.create(file=pairs.open("rb"), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model=BASE,
        training_file=training.id,
        method={
            "type": "dpo",
            "dpo": {"hyperparameters": {"n_epochs": 3, "beta": 0.1, "learning_rate_multiplier": 15}},
        },
    )
    done = wait_for_status(client, job.id, ("succeeded", "failed"))
    assert done.status == "succeeded", done.error
    assert done.method.dpo.hyperparameters.beta == 0.1
    metrics = [e.data for e in all_events(client, job.id) if e.type == "metrics"]
    assert metrics[0]["train_loss"] < metrics[-1]["train_loss"]
    assert metrics[0].get("train_reward_accuracy") == 1.0


def test_errors_are_openais(server: RunningServer) -> None:
    client = server.client()
    with pytest.raises(openai.AuthenticationError):
        server.client(api_key="sk-wrong").models.list()
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.retrieve("ftjob-nope")
    training = client.files.create(file=TOY.open("rb"), purpose="fine-tune")
    with pytest.raises(openai.BadRequestError) as refused:
        client.fine_tuning.jobs.create(model="gpt-4o-mini-2024-07-18", training_file=training.id)
    assert refused.value.code == "model_not_available" and refused.value.param == "model"
    with pytest.raises(openai.BadRequestError) as missing:
        client.fine_tuning.jobs.create(model=BASE, training_file="file-nope")
    assert missing.value.param == "training_file"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="ft:nope", messages=[{"role": "user", "content": "hi"}])


def test_a_restart_keeps_jobs_files_and_models(server: RunningServer, trained: Any) -> None:
    stop_server(server.process)
    server.process = start_server(server.python, server.config_path, server.log)
    client = server.client()
    again = client.fine_tuning.jobs.retrieve(trained.id)
    assert again.status == "succeeded" and again.fine_tuned_model == trained.fine_tuned_model
    assert client.files.retrieve(trained.training_file).status == "processed"
    text, _ = streamed(client, trained.fine_tuned_model, toy_prompts()[2][0])
    assert text == toy_prompts()[2][1]
    assert API_KEY not in server.log.read_text()
