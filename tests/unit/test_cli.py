"""The command line as a newcomer meets it: real subprocesses, real exit codes, no tracebacks."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot import __version__
from tests.conftest import POSTGRES_SKIP_REASON, reset_postgres

# Subprocesses, real restarts and timed faults: CI runs these; the everyday `./dev test` does not.
pytestmark = pytest.mark.slow


def finetune_bot(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPENAI_", "FINETUNE_"))}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_version_and_help(tmp_path: Path) -> None:
    assert finetune_bot("--version", cwd=tmp_path).stdout.strip() == f"finetune-bot {__version__}"
    help_text = finetune_bot("--help", cwd=tmp_path).stdout
    for command in ("start", "run", "demo", "sandbox", "migrate"):
        assert command in help_text


def test_run_without_credentials_says_what_is_missing(tmp_path: Path) -> None:
    result = finetune_bot("run", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("finetune-bot: SLACK_BOT_TOKEN is not set")
    assert "manifest.yml" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1


def test_run_with_slack_but_no_openai_key_names_the_key(tmp_path: Path) -> None:
    env = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"}
    result = finetune_bot("run", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert "OPENAI_API_KEY is not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_contradictory_setting_exits_2_in_one_line(tmp_path: Path) -> None:
    result = finetune_bot("migrate", cwd=tmp_path, env={"PORT": "none"})
    assert result.returncode == 2
    assert result.stderr.strip().startswith("finetune-bot: PORT:")
    assert "Traceback" not in result.stderr


def test_migrate_twice_is_harmless(tmp_path: Path) -> None:
    first = finetune_bot("migrate", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "migrated from empty" in first.stdout
    second = finetune_bot("migrate", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "nothing to do" in second.stdout
    assert (tmp_path / "data" / "finetune-bot.db").exists()


def test_migrate_on_postgresql(tmp_path: Path) -> None:
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        pytest.skip(POSTGRES_SKIP_REASON)
    asyncio.run(reset_postgres(url.replace("postgresql://", "postgresql+asyncpg://", 1)))
    first = finetune_bot("migrate", cwd=tmp_path, env={"DATABASE_URL": url})
    assert first.returncode == 0, first.stderr
    assert "migrated from empty" in first.stdout
    assert "postgres@" not in first.stdout
    second = finetune_bot("migrate", cwd=tmp_path, env={"DATABASE_URL": url})
    assert "nothing to do" in second.stdout


def the_one_line(tmp_path: Path, command: str, settings: dict[str, str]) -> tuple[str, str]:
    """Run ``command`` (migrate or run, JSON logs) that must give up at start: its one plain line, and stderr."""
    env = {"FINETUNE_PROVIDER": "sandbox", "LOG_FORMAT": "json", **settings}
    if command == "run":
        env |= {"SLACK_BOT_TOKEN": "xoxb-1-unused", "SLACK_SIGNING_SECRET": "unused"}
    result = finetune_bot(command, cwd=tmp_path, env=env)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0], result.stderr


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://nobody@127.0.0.1:1/x",
        "postgresql://postgres:secret@no-such-host.invalid:5432/x",
        "mysql://someone@somewhere/db",
        "not a url",
    ],
)
@pytest.mark.parametrize("command", ["migrate", "run"])
def test_a_database_that_cannot_be_used_is_one_line_and_exit_2(tmp_path: Path, url: str, command: str) -> None:
    line, stderr = the_one_line(tmp_path, command, {"DATABASE_URL": url})
    assert line.startswith("finetune-bot: cannot use the database") and "secret" not in stderr


@pytest.fixture(params=["under-a-file", "read-only"])
def unwritable_data_folder(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """A data folder the default SQLite database cannot live in: below a regular file, or read-only."""
    if request.param == "under-a-file":
        (tmp_path / "plain-file").write_text("")
        yield tmp_path / "plain-file" / "data"
        return
    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    # root writes through permissions: a read-only file system is the only way to refuse it
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot make a read-only folder as root here: {mounted.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.parametrize("command", ["migrate", "run"])
def test_a_data_folder_sqlite_cannot_use_is_one_line_and_exit_2(
    tmp_path: Path, unwritable_data_folder: Path, command: str
) -> None:
    line, _ = the_one_line(tmp_path, command, {"FINETUNE_DATA_DIR": str(unwritable_data_folder)})
    assert line.startswith("finetune-bot: cannot use the database") and "data folder" in line
