"""The shop window must keep working: the demo plays its whole script and exits 0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# Subprocesses, real restarts and timed faults: CI runs these; the everyday `./dev test` does not.
pytestmark = pytest.mark.slow


def test_demo_prints_the_team_session_and_exits_0(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "demo"], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    transcript = result.stdout
    assert "alice: /finetune help" in transcript
    assert "✅ marv.jsonl is ready to train" in transcript
    assert "❌ marv-draft.jsonl needs fixing" in transcript
    assert "🚀 *Training started*" in transcript
    assert "fine-tuning on `marv.jsonl` succeeded" in transcript and "loss-curve-job-1.png" in transcript
    assert "💬 Chat with `ft:gpt-4o-mini-2024-07-18:sandbox:marv:" in transcript
    assert "Paris. As if everyone didn't already know that." in transcript
    # The sandbox follows no provider's calendar, so the demo trains and chats on any date.
    assert "no retirement date known" in transcript and "Home tab" in transcript
    assert "can no longer be trained" not in transcript and "was retired on" not in transcript
    assert "📼 @alice, golden set #1" in transcript
    assert "⚖️ Compare" in transcript and "[gpt-4o-mini-2024-07-18] Thanks for your question" in transcript
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists(), "the demo keeps its database and files in a temporary folder"
