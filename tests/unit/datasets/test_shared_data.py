"""Every public file in tests/data (copied from ../shared/data), with the facts its README records."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot.datasets.report import Report
from bot.datasets.validate import ValidationOptions, validate_path


def check(path: Path, model: str = "gpt-4o-mini-2024-07-18", method: str | None = None) -> Report:
    return validate_path(path, ValidationOptions(model=model, method=method))


def test_toy_file_matches_the_notebooks_printed_numbers(shared_data: Path) -> None:
    """cl100k_base and the notebook's counting rules reproduce its printed statistics exactly."""
    report = check(shared_data / "toy_chat_fine_tuning.jsonl", model="gpt-3.5-turbo-0125")
    assert report.format == "chat"
    assert report.examples == 5
    assert report.error_counts == {"too_few_examples": 1}
    assert not report.valid
    assert (report.tokens.min, report.tokens.max, report.tokens.mean, report.tokens.p50) == (26, 8032, 1648.4, 45)
    assert report.tokens.total == 8242
    assert (report.billing.epochs, report.billing.billed_tokens) == (20, 164_840)
    assert report.warning_counts == {"inconsistent_system_message": 1}
    [warning] = report.warnings
    assert warning.line is None and "4 of 5 examples have a system message" in warning.message
    assert report.billing.token_limit == 16_385, "the 8,032-token example is under gpt-3.5's limit"


def test_toy_files_long_example_is_over_a_small_limit(shared_data: Path) -> None:
    report = check(shared_data / "toy_chat_fine_tuning.jsonl", model="gpt-3.5-turbo-0613")
    assert report.warning_counts["example_too_long"] == 1
    [long] = [w for w in report.warnings if w.code == "example_too_long"]
    assert long.line == 5 and "8,032 tokens" in long.message


@pytest.mark.parametrize(
    ("name", "billing", "epochs", "charged", "minimum", "maximum"),
    [
        ("uploaded_output.jsonl", 4283, 9, 38547, 389, 393),
        ("gsm8k_chat_validation.jsonl", 9145, 3, 27435, 110, 314),
    ],
)
def test_other_chat_files_match_the_notebooks_logic(
    shared_data: Path, name: str, billing: int, epochs: int, charged: int, minimum: int, maximum: int
) -> None:
    report = check(shared_data / name, model="gpt-3.5-turbo-0125")
    assert report.valid
    assert report.tokens.total == billing
    assert (report.billing.epochs, report.billing.billed_tokens) == (epochs, charged)
    assert (report.tokens.min, report.tokens.max) == (minimum, maximum)


def test_pretty_printed_json_is_not_jsonl(shared_data: Path) -> None:
    report = check(shared_data / "01-testing-example.jsonl")
    assert not report.valid
    assert report.examples == 202
    assert report.error_counts == {"invalid_json": 202}
    assert report.format == "unknown"
    assert any("pretty-printed" in note for note in report.notes)


def test_tool_calling_files_are_valid_despite_the_notebooks_false_positives(shared_data: Path) -> None:
    for name, examples in (
        ("drone_training.jsonl", 103),
        ("stock_toolcall_training.jsonl", 86),
        ("stock_toolcall_validation.jsonl", 10),
    ):
        report = check(shared_data / name)
        assert report.valid, (name, report.error_counts)
        assert report.examples == examples
        assert "tool_arguments_not_object" not in report.warning_counts


def test_double_encoded_tool_arguments_are_flagged(shared_data: Path) -> None:
    report = check(shared_data / "drone_training.2024-06-13.jsonl")
    assert report.valid, "a warning, not an error: OpenAI accepts the file"
    assert report.warning_counts["tool_arguments_not_object"] == 6
    flagged = [w.line for w in report.warnings if w.code == "tool_arguments_not_object"]
    assert flagged == [3, 4, 5, 6, 7]
    assert "double-encoded" in report.warnings[0].message


def test_dpo_file_is_valid_preference_data(shared_data: Path) -> None:
    report = check(shared_data / "orca_dpo_pairs_validation.jsonl")
    assert report.format == "preference"
    assert report.method == "dpo"
    assert report.valid, report.error_counts
    assert report.examples == 284
    supervised = check(shared_data / "orca_dpo_pairs_validation.jsonl", method="supervised")
    assert supervised.error_counts == {"unsupported_format": 1}


def test_chat_data_cannot_train_with_dpo(shared_data: Path) -> None:
    report = check(shared_data / "gsm8k_chat_validation.jsonl", method="dpo")
    assert report.error_counts == {"unsupported_format": 1}


@pytest.mark.slow
def test_command_line_contract(shared_data: Path, tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bot", "validate", *args], capture_output=True, text=True, check=False, cwd=tmp_path
        )

    valid = run(str(shared_data / "gsm8k_chat_validation.jsonl"), "--json")
    assert valid.returncode == 0, valid.stderr
    body = json.loads(valid.stdout)
    assert set(body) == {"format", "examples", "valid", "errors", "error_counts", "warnings", "tokens", "billing"}
    assert set(body["tokens"]) == {"total", "min", "max", "mean", "p50", "p95"}
    assert set(body["billing"]) == {"model", "epochs", "billed_tokens", "estimated_cost_usd"}
    assert body["billing"]["model"] == "gpt-4o-mini-2024-07-18"

    invalid = run(str(shared_data / "toy_chat_fine_tuning.jsonl"), "--json", "--model", "gpt-3.5-turbo-0125")
    assert invalid.returncode == 1
    assert json.loads(invalid.stdout)["error_counts"] == {"too_few_examples": 1}

    text = run(str(shared_data / "toy_chat_fine_tuning.jsonl"))
    assert text.returncode == 1 and "too_few_examples" in text.stdout

    assert run(str(tmp_path / "missing.jsonl")).returncode == 2
    assert run(str(tmp_path)).returncode == 2
    usage = run(str(shared_data / "gsm8k_chat_validation.jsonl"), "--method", "rlhf")
    assert usage.returncode == 2

    binary = tmp_path / "picture.jsonl"
    binary.write_bytes(bytes(range(256)) * 10)
    judged = run(str(binary), "--json")
    assert judged.returncode == 1 and "Traceback" not in judged.stderr
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    assert json.loads(run(str(empty), "--json").stdout)["error_counts"] == {"empty_file": 1}


def validate_with_only(cwd: Path, environment: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`finetune-bot validate` with nothing in its environment but ``environment``."""
    return subprocess.run(
        [sys.executable, "-m", "bot", "validate", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        env={**environment, "PATH": ""},
    )


def test_the_size_cap_applies_to_the_command_line(shared_data: Path, tmp_path: Path) -> None:
    big = tmp_path / "big.jsonl"
    big.write_bytes((shared_data / "gsm8k_chat_validation.jsonl").read_bytes() * 40)  # about 1.4 MB
    result = validate_with_only(tmp_path, {"FINETUNE_MAX_FILE_MB": "1"}, str(big), "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout)["error_counts"] == {"file_too_large": 1}


def test_the_command_line_validates_without_loading_the_bot(shared_data: Path, tmp_path: Path) -> None:
    """`finetune-bot validate` imports only what validation needs: no pydantic, no Slack or OpenAI SDK."""
    probe = (
        "import sys\n"
        "from bot.__main__ import main\n"
        f"status = main(['validate', {str(shared_data / 'gsm8k_chat_validation.jsonl')!r}, '--json'])\n"
        "loaded = {name.split('.')[0] for name in sys.modules}\n"
        "heavy = sorted(loaded & {'pydantic', 'slack_sdk', 'openai', 'sqlalchemy'})\n"
        "print(status, heavy, file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False, cwd=tmp_path)
    assert result.stderr.strip() == "0 []", result.stderr


def test_bad_validation_settings_are_one_line_and_exit_2(shared_data: Path, tmp_path: Path) -> None:
    result = validate_with_only(
        tmp_path, {"FINETUNE_TRAINING_PRICES": "{not json"}, str(shared_data / "gsm8k_chat_validation.jsonl")
    )
    assert result.returncode == 2
    assert (
        result.stderr
        == "finetune-bot: FINETUNE_TRAINING_PRICES is not valid JSON; fix it in the environment or .env.\n"
    )


def test_the_vendored_files_are_the_published_ones(shared_data: Path) -> None:
    """Each file's git blob id is the one its README records (the upstream id), and, where the shared
    original sits beside the checkout, the copy is byte for byte the same."""
    readme = (shared_data / "README.md").read_text()
    recorded = dict(re.findall(r"^\| `([^`]+\.jsonl)` \|.*\bblob ([0-9a-f]{40})", readme, flags=re.M))
    assert len(recorded) >= 8, "the README's table lost its blob ids"
    original = shared_data.parents[2] / "shared" / "data"
    for name, blob in recorded.items():
        content = (shared_data / name).read_bytes()
        assert hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest() == blob, name
        if original.is_dir():
            assert (original / name).read_bytes() == content, f"{name} differs from {original / name}"
    assert sorted(p.name for p in (shared_data / "licenses").iterdir()), "the licences travel with the files"
