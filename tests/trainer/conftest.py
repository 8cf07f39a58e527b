"""The fine-tuning server (trainer/) as a real process in its own environment (.trainer/, which
`./dev test-all` makes), driven by the official openai SDK over a real socket. Without that environment
these tests are skipped, except in CI, where TRAINER_PYTHON is set and a missing one fails."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
TOY = DATA / "toy_chat_fine_tuning.jsonl"
API_KEY = "sk-selfhost-test-key"


def trainer_python() -> str:
    configured = os.environ.get("TRAINER_PYTHON")
    if configured:
        path = Path(configured) if Path(configured).is_absolute() else ROOT / configured
        assert path.exists(), f"TRAINER_PYTHON={configured} does not exist: run ./dev test-all"
        return str(path)
    default = ROOT / ".trainer" / "bin" / "python"
    if not default.exists():
        pytest.skip("the fine-tuning server's environment .trainer/ is missing: ./dev test-all makes it")
    return str(default)


@dataclass
class RunningServer:
    base_url: str
    python: str
    config_path: Path
    data_dir: Path
    process: subprocess.Popen[bytes]
    log: Path

    def client(self, api_key: str = API_KEY) -> Any:
        """The SDK's client, typed loosely: the server takes base models the SDK's literals do not name."""
        return openai.OpenAI(base_url=self.base_url, api_key=api_key, max_retries=0, timeout=120)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(python: str, config_path: Path, log: Path) -> subprocess.Popen[bytes]:
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log.open("ab") as output:
        process = subprocess.Popen(
            [python, "-m", "trainer", "serve", "--config", str(config_path)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=environment,
            cwd=ROOT,
        )
    port = json.loads(config_path.read_text())["port"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited: {log.read_text()[-2000:]}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return process
        time.sleep(0.1)
    process.kill()
    raise AssertionError(f"the server did not listen within 60 s: {log.read_text()[-2000:]}")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Llama with a tokenizer learned from the toy file, built here in a fraction of a second."""
    directory = tmp_path_factory.mktemp("tiny-model")
    subprocess.run(
        [
            trainer_python(),
            "-m",
            "trainer",
            "tiny-model",
            str(directory),
            "--texts",
            str(TOY),
            "--texts",
            str(DATA / "gsm8k_chat_validation.jsonl"),
        ],
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
    )
    return directory


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Iterator[RunningServer]:
    python = trainer_python()
    home = tmp_path_factory.mktemp("trainer-server")
    port = free_port()
    config = {
        "api_key": API_KEY,
        "port": port,
        "data_dir": str(home / "data"),
        "organization": "acme",
        "max_length": 256,
        "base_models": [{"id": "tiny-chat", "path": str(tiny_model), "context_window": 1024}],
    }
    config_path = home / "server.json"
    config_path.write_text(json.dumps(config))
    log = home / "server.log"
    process = start_server(python, config_path, log)
    running = RunningServer(f"http://127.0.0.1:{port}/v1", python, config_path, home / "data", process, log)
    yield running
    stop_server(running.process)


def wait_for_status(client: Any, job_id: str, statuses: tuple[str, ...], timeout: float = 240) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in statuses:
            return job
        time.sleep(0.3)
    raise AssertionError(f"{job_id} stayed {job.status}, not {statuses}")
