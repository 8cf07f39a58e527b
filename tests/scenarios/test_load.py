"""The load benchmark keeps working: a small run through the real bot acknowledges and answers every command.

Its timings are the benchmark's business (bench/load.py, figures in README), not this test's.
"""

from __future__ import annotations

from bench import load


async def test_concurrent_commands_are_all_acknowledged_and_answered() -> None:
    figures = await load.run(concurrent=20)
    assert figures["commands"] == 20 and figures["all_status_200"] is True
