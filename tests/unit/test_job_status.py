"""Job states: the sets are a partition of every status, a repeat is no change, and a finished job stays finished."""

from __future__ import annotations

import pytest

from bot.training.status import ACTIVE, STATUS_ICONS, TERMINAL, JobStatus, transition

BEFORE_THE_PROVIDER = {JobStatus.AWAITING_APPROVAL, JobStatus.STARTING}


def test_every_status_is_before_the_provider_active_or_terminal_and_only_one() -> None:
    assert not ACTIVE & TERMINAL and not BEFORE_THE_PROVIDER & (ACTIVE | TERMINAL)
    assert set(JobStatus) == BEFORE_THE_PROVIDER | ACTIVE | TERMINAL
    assert set(STATUS_ICONS) == set(JobStatus), "every status has its icon"


@pytest.mark.parametrize("finished", sorted(TERMINAL))
@pytest.mark.parametrize("late", sorted(JobStatus))
def test_a_finished_job_is_never_revived(finished: JobStatus, late: JobStatus) -> None:
    assert transition(finished, late) is None


@pytest.mark.parametrize("current", sorted(BEFORE_THE_PROVIDER | ACTIVE))
def test_an_unfinished_job_moves_on_and_a_repeat_changes_nothing(current: JobStatus) -> None:
    assert transition(current, current) is None
    for new in set(JobStatus) - {current}:
        assert transition(current, new) == new


def test_an_unknown_raw_status_is_refused_loudly() -> None:
    with pytest.raises(ValueError):
        transition("exploded", JobStatus.RUNNING)
