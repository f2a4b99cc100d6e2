"""The run state machine: every (current, new) pair, allowed or refused, with and without a restart."""

from __future__ import annotations

import itertools

import pytest

from runyard.errors import InvalidInput, InvalidState
from runyard.records.status import ACTIVE, TERMINAL, RunStatus, can_transition, check_transition, parse_status

S = RunStatus
ALL = list(RunStatus)

# Every move between two different statuses that a run may make (without a restart).
ALLOWED = {
    (S.QUEUED, S.STARTING), (S.QUEUED, S.RUNNING), (S.QUEUED, S.SUCCEEDED), (S.QUEUED, S.FAILED),
    (S.QUEUED, S.CANCELED), (S.QUEUED, S.PRUNED),
    (S.STARTING, S.QUEUED), (S.STARTING, S.RUNNING), (S.STARTING, S.SUCCEEDED), (S.STARTING, S.FAILED),
    (S.STARTING, S.CANCELED), (S.STARTING, S.PRUNED),
    (S.RUNNING, S.QUEUED), (S.RUNNING, S.SUCCEEDED), (S.RUNNING, S.FAILED), (S.RUNNING, S.CANCELED),
    (S.RUNNING, S.PRUNED),
}
RESTARTABLE = {S.FAILED, S.STARTING, S.RUNNING}
PAIRS = list(itertools.product(ALL, ALL))


def test_values_are_the_stored_strings() -> None:
    assert [s.value for s in RunStatus] == ["queued", "starting", "running", "succeeded", "failed", "canceled", "pruned"]
    assert RunStatus("failed") is S.FAILED and S.FAILED == "failed"
    assert str(S.CANCELED) == "canceled" and f"{S.PRUNED}" == "pruned"
    assert "lost" not in {s.value for s in RunStatus}  # a vanished process ends failed, with the reason as message


def test_terminal_and_active() -> None:
    assert {S.SUCCEEDED, S.FAILED, S.CANCELED, S.PRUNED} == TERMINAL
    assert {S.QUEUED, S.STARTING, S.RUNNING} == ACTIVE
    assert all(s.terminal != s.active for s in RunStatus)
    assert [s for s in RunStatus if s.terminal] == [S.SUCCEEDED, S.FAILED, S.CANCELED, S.PRUNED]


@pytest.mark.parametrize(("current", "new"), PAIRS, ids=[f"{a.value}->{b.value}" for a, b in PAIRS])
def test_every_pair(current: RunStatus, new: RunStatus) -> None:
    allowed = current == new or (current, new) in ALLOWED
    assert can_transition(current, new) is allowed
    assert can_transition(current.value, new.value) is allowed  # plain strings, as the database holds them
    if allowed:
        check_transition(current, new)
        return
    with pytest.raises(InvalidState) as info:
        check_transition(current.value, new, run_id=7)
    assert info.value.message == f"Run 7 is {current.value} and cannot become {new.value}."
    assert info.value.code == "invalid_state" and info.value.hint
    if current.terminal:
        assert "runyard rerun" in info.value.hint
    else:
        assert info.value.hint.startswith(f"A {current.value} run can become ")


@pytest.mark.parametrize(("current", "new"), PAIRS, ids=[f"{a.value}->{b.value}" for a, b in PAIRS])
def test_every_pair_as_a_restart(current: RunStatus, new: RunStatus) -> None:
    allowed = new is S.QUEUED and current in RESTARTABLE
    assert can_transition(current, new, restart=True) is allowed
    if allowed:
        check_transition(current, new, restart=True)
    elif new is not S.QUEUED:
        with pytest.raises(InvalidInput, match="new status is queued"):
            check_transition(current, new, restart=True)
    else:
        with pytest.raises(InvalidState) as info:
            check_transition(current, new, restart=True)
        assert info.value.message == f"The run is {current.value}; only a failed run is restarted."
        assert info.value.hint


def test_the_terminal_statuses_refuse_every_other_status() -> None:
    for current in TERMINAL:
        assert [new for new in RunStatus if can_transition(current, new)] == [current]


def test_unknown_statuses() -> None:
    assert not can_transition("finished", "running")
    assert not can_transition("running", "finished")
    assert not can_transition("lost", "lost")
    with pytest.raises(InvalidInput, match="Unknown run status 'finished'") as info:
        check_transition("running", "finished")
    assert "succeeded" in (info.value.hint or "")
    with pytest.raises(InvalidInput, match="Unknown run status 'lost'"):
        check_transition("lost", "queued", restart=True)
    assert parse_status("pruned") is S.PRUNED
    with pytest.raises(InvalidInput):
        parse_status("Running")
