"""No file makes the validator raise or hang: every line gets at most error codes with its number.

Structure-aware generators put hostile values where a training example has fields (roles, contents,
tools, tool calls, weights); others mutate real lines, or are random bytes. The same generators run
for much longer with FUZZ_EXAMPLES set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.datasets.report import CODE_TITLES
from bot.datasets.validate import ValidationOptions, validate_path
from tests.unit.datasets.hostile import (
    CRASHERS,
    hostile_examples,
    mutated_lines,
    raw_line,
)

# The everyday run tries a few hundred inputs; a long fuzz run sets FUZZ_EXAMPLES (README, "Fuzzing").
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))


def stray_issues(tmp_path: Path, lines: list[bytes]) -> list[Any]:
    """Validate ``lines`` (raising would fail the test); the issues that are not a known code at a line."""
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    report = validate_path(path, ValidationOptions(model="gpt-4o-mini"))
    return [
        issue
        for issue in report.errors + report.warnings
        if issue.code not in CODE_TITLES or not (issue.line is None or 1 <= issue.line <= len(lines))
    ]


@pytest.mark.parametrize("name", sorted(CRASHERS))
def test_each_input_that_once_crashed_gets_an_answer(tmp_path: Path, name: str) -> None:
    assert stray_issues(tmp_path, [CRASHERS[name]] * 11) == []


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
@pytest.mark.slow
@given(example=hostile_examples())
def test_no_hostile_structure_makes_the_validator_raise(tmp_path: Path, example: Any) -> None:
    assert stray_issues(tmp_path, [raw_line(example)] * 3) == []


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(lines=st.lists(mutated_lines(), min_size=1, max_size=5))
def test_no_mutation_of_a_real_line_makes_the_validator_raise(tmp_path: Path, lines: list[bytes]) -> None:
    assert stray_issues(tmp_path, lines) == []


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.binary(max_size=300), min_size=1, max_size=5))
def test_no_random_bytes_make_the_validator_raise(tmp_path: Path, lines: list[bytes]) -> None:
    assert stray_issues(tmp_path, [line.replace(b"\n", b" ") for line in lines]) == []


@pytest.mark.parametrize("name", ["role_object", "surrogate_key", "surrogate_tools"])
def test_the_command_line_prints_every_report(tmp_path: Path, name: str) -> None:
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(b"\n".join([CRASHERS[name]] * 11) + b"\n")
    for extra in ([], ["--json"]):
        result = subprocess.run(
            [sys.executable, "-m", "bot", "validate", str(path), *extra],
            capture_output=True,
            timeout=60,
            check=False,
            env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        )
        assert result.returncode == 1 and b"Traceback" not in result.stderr, result.stderr
    json.loads(result.stdout)


@pytest.mark.parametrize("target", ["/dev/zero", "/dev/urandom", "fifo"])
def test_the_command_line_refuses_what_is_not_a_file_at_once(tmp_path: Path, target: str) -> None:
    if target == "fifo":
        target = str(tmp_path / "pipe.jsonl")
        os.mkfifo(target)
    result = subprocess.run(
        [sys.executable, "-m", "bot", "validate", target], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "not a regular file" in result.stderr
