"""A report survives the Dataset row: what to_storage writes, from_storage reads back unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.datasets.report import Report
from bot.datasets.validate import ValidationOptions, validate_path

DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.glob("*.jsonl")))
def test_a_stored_report_reads_back_as_the_same_report(name: str) -> None:
    report = validate_path(DATA / name, ValidationOptions(model="gpt-4.1-mini-2025-04-14", workers=1))
    assert Report.from_storage(report.to_storage()) == report


def test_a_report_with_problems_and_notes_reads_back_with_them(tmp_path: Path) -> None:
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"messages": [{"role": "user", "content": "hi"}]}\nnot json\n' * 6)
    report = validate_path(broken, ValidationOptions(model="gpt-4.1-mini-2025-04-14", workers=1))
    assert report.errors and not report.valid
    back = Report.from_storage(report.to_storage())
    assert back == report and back.errors[0].line is not None


def test_a_row_written_before_the_later_keys_gets_their_defaults() -> None:
    report = validate_path(DATA / "toy_chat_fine_tuning.jsonl", ValidationOptions(model="gpt-4.1-mini-2025-04-14"))
    older = report.to_json()  # the first stored reports kept the command line's keys only
    back = Report.from_storage({**older, "diff": {"added": 3}})
    assert back.method == "supervised" and back.notes == [] and back.warning_counts == {}
    assert back.billing.token_limit == 0 and back.billing.price_per_million is None
    assert back.tokens == report.tokens and back.errors == report.errors
