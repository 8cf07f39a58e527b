"""Where a job's training runs. The server hands a prepared job directory to a JobRunner and asks after it;
``LocalRunner`` starts ``python -m trainer train DIR`` as a child process on this machine, one at a time.
Another runner (a Kubernetes Job, a Ray job) would run the same command elsewhere against the same
directory on shared storage; README's "Beyond one machine" says how."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Protocol


class JobRunner(Protocol):
    def start(self, job_dir: Path) -> None: ...

    def running(self, job_dir: Path) -> bool:
        """Whether the job's process is still at work (False once it exited, or if it never started)."""
        ...

    def kill(self, job_dir: Path) -> None: ...


class LocalRunner:
    def __init__(self, *, python: str | None = None) -> None:
        self.python = python or sys.executable
        self._processes: dict[Path, subprocess.Popen[bytes]] = {}

    def start(self, job_dir: Path) -> None:
        root = Path(__file__).resolve().parent.parent
        environment = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
        }
        with (job_dir / "train.log").open("ab") as log:
            self._processes[job_dir] = subprocess.Popen(
                [self.python, "-m", "trainer", "train", str(job_dir)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
                start_new_session=True,
            )

    def running(self, job_dir: Path) -> bool:
        process = self._processes.get(job_dir)
        if process is None:
            return False
        if process.poll() is None:
            return True
        del self._processes[job_dir]
        return False

    def kill(self, job_dir: Path) -> None:
        process = self._processes.get(job_dir)
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)

    def stop_all(self) -> None:
        for job_dir in list(self._processes):
            self.kill(job_dir)
        for process in self._processes.values():
            process.wait(timeout=30)
