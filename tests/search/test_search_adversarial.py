"""Adversarial table for every search and pruner: NaN and inf, duplicates, odd histories.

Nothing here may raise: bad values in stored runs are dropped or treated as
failed, with a logged warning, and the answer is the one for the cleaned input.
"""

from __future__ import annotations

import dataclasses
import logging
import math

import pytest

from runyard.search import (
    AshaPruner,
    Choice,
    Decision,
    Fixed,
    FloatRange,
    HyperbandPruner,
    IntRange,
    MedianPruner,
    RunRecord,
    RunState,
    make_search,
)

SPACE = {
    "x": FloatRange(-5.0, 5.0),
    "n": IntRange(1, 8),
    "act": Choice(("relu", "tanh")),
    "tag": Fixed("t"),
}
ALGORITHMS = ["grid", "random", "tpe", "cmaes"]
GRID_SPACE = {"n": IntRange(1, 8), "act": Choice(("relu", "tanh")), "tag": Fixed("t")}


def _base(n: int = 12) -> list[RunRecord]:
    params = make_search("random", SPACE, n, 0).propose([], n)
    return [
        RunRecord(i, p, RunState.COMPLETE, (p["x"] - 1.0) ** 2, {1: 5.0, 2: (p["x"] - 1.0) ** 2})
        for i, p in enumerate(params)
    ]


def _with(records: list[RunRecord], number: int, **changes) -> list[RunRecord]:
    return [dataclasses.replace(r, **changes) if r.number == number else r for r in records]


HISTORIES = {
    "empty": [],
    "nan value": _with(_base(), 3, value=math.nan),
    "inf value": _with(_base(), 3, value=math.inf),
    "-inf value": _with(_base(), 3, value=-math.inf),
    "missing value": _with(_base(), 3, value=None),
    "bool value": _with(_base(), 3, value=True),
    "nan intermediate": _with(
        _base(), 4, state=RunState.PRUNED, value=None, intermediate={1: math.nan, 2: math.inf}
    ),
    "bad steps": _with(_base(), 4, intermediate={-1: 1.0, True: 2.0, 3: 1.0}),
    "duplicate completion": [*_base(), dataclasses.replace(_base()[2], value=-100.0)],
    "active then complete": [
        dataclasses.replace(_base()[0], state=RunState.ACTIVE, value=None),
        *_base(),
    ],
    "complete then active": [
        *_base(),
        dataclasses.replace(_base()[0], state=RunState.ACTIVE, value=None),
    ],
    "params outside space": _with(
        _base(), 5, params={"x": 99.0, "n": 1, "act": "relu", "tag": "t"}
    ),
    "missing param": _with(_base(), 5, params={"n": 1}),
    "unknown choice": _with(_base(), 5, params={"x": 0.0, "n": 1, "act": "selu", "tag": "t"}),
    "all failed": [dataclasses.replace(r, state=RunState.FAILED, value=None) for r in _base()],
    "all active": [
        dataclasses.replace(r, state=RunState.ACTIVE, value=None, intermediate={}) for r in _base()
    ],
    "unsorted numbers": list(reversed(_base())),
}


def _fits(params: dict, space: dict) -> bool:
    if list(params) != list(space):
        return False
    for name, dim in space.items():
        value = params[name]
        if isinstance(dim, Fixed) and value != dim.value:
            return False
        if isinstance(dim, Choice) and value not in dim.values:
            return False
        if isinstance(dim, (FloatRange, IntRange)) and not dim.low <= value <= dim.high:
            return False
    return True


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("case", list(HISTORIES))
def test_search_survives_history(algorithm: str, case: str) -> None:
    space = GRID_SPACE if algorithm == "grid" else SPACE
    search = make_search(algorithm, space, 40, 3, "min")
    history = HISTORIES[case]
    proposals = search.propose(history, 3)
    assert len(proposals) == 3
    assert all(_fits(p, space) for p in proposals)
    assert not search.exhausted(history)
    assert proposals == make_search(algorithm, space, 40, 3, "min").propose(history, 3)


@pytest.mark.parametrize("algorithm", ["tpe", "cmaes"])
@pytest.mark.parametrize(
    ("case", "same_as", "logged"),
    [
        ("nan value", _with(_base(), 3, state=RunState.FAILED, value=None), "treated as failed"),
        ("inf value", _with(_base(), 3, state=RunState.FAILED, value=None), "treated as failed"),
        (
            "missing value",
            _with(_base(), 3, state=RunState.FAILED, value=None),
            "treated as failed",
        ),
        (
            "nan intermediate",
            _with(_base(), 4, state=RunState.PRUNED, value=None, intermediate={}),
            "Dropped 2",
        ),
        ("duplicate completion", _base(), "a duplicate completion is a no-op"),
        ("complete then active", _base(), "a duplicate completion is a no-op"),
        ("active then complete", _base(), None),
        ("unsorted numbers", _base(), None),
        (
            "params outside space",
            [r for r in _base() if r.number != 5],
            "left out of the search history",
        ),
        ("unknown choice", [r for r in _base() if r.number != 5], "outside the space"),
        ("missing param", [r for r in _base() if r.number != 5], "has no value"),
    ],
)
def test_bad_records_are_cleaned_and_logged(
    algorithm: str, case: str, same_as: list[RunRecord], logged: str | None, caplog
) -> None:
    """The answer equals the one for the cleaned history (same number of runs, so same seed)."""
    cleaned = make_search(algorithm, SPACE, 40, 3, "min").propose(same_as, 2)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="runyard.search"):
        got = make_search(algorithm, SPACE, 40, 3, "min").propose(HISTORIES[case], 2)
    if case in ("params outside space", "unknown choice", "missing param"):
        # Leaving a run out changes nothing else, but the run still counts as proposed.
        assert len(got) == 2
    else:
        assert got == cleaned
    messages = " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    if logged is None:
        assert messages == ""
    else:
        assert logged in messages


def _peers() -> list[RunRecord]:
    return [
        RunRecord(i, {}, RunState.COMPLETE, q, {s: q + 1.0 / s for s in range(1, 10)})
        for i, q in enumerate([0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    ]


PRUNERS = {
    "median": lambda: MedianPruner(n_startup_runs=3),
    "asha": lambda: AshaPruner(min_resource=1, reduction_factor=2),
    "hyperband": lambda: HyperbandPruner(min_resource=1, max_resource=9, reduction_factor=3),
}
BAD_RUN = RunRecord(50, {}, RunState.ACTIVE, None, {s: 3.0 + 1.0 / s for s in range(1, 5)})


@pytest.mark.parametrize("name", list(PRUNERS))
@pytest.mark.parametrize(
    ("case", "run", "peers", "expected"),
    [
        ("empty peers", BAD_RUN, [], Decision.CONTINUE),
        (
            "no values yet",
            dataclasses.replace(BAD_RUN, intermediate={}),
            _peers(),
            Decision.CONTINUE,
        ),
        (
            "only nan values",
            dataclasses.replace(BAD_RUN, intermediate={1: math.nan, 2: math.inf}),
            _peers(),
            Decision.CONTINUE,
        ),
    ],
)
def test_pruner_edge_cases(
    name: str, case: str, run: RunRecord, peers: list, expected: Decision
) -> None:
    assert PRUNERS[name]().decide(run, peers) is expected


@pytest.mark.parametrize("name", list(PRUNERS))
@pytest.mark.parametrize(
    ("case", "run", "peers", "same_run", "same_peers", "logged"),
    [
        (
            "nan latest value of the run",
            dataclasses.replace(BAD_RUN, intermediate={**BAD_RUN.intermediate, 5: math.nan}),
            _peers(),
            BAD_RUN,
            _peers(),
            "Dropped 1 intermediate value(s) of run #50",
        ),
        (
            "inf values in peers",
            BAD_RUN,
            [
                dataclasses.replace(p, intermediate={**p.intermediate, 4: -math.inf})
                for p in _peers()
            ],
            BAD_RUN,
            [
                dataclasses.replace(
                    p, intermediate={k: v for k, v in p.intermediate.items() if k != 4}
                )
                for p in _peers()
            ],
            "Dropped 1 intermediate value(s) of run #0",
        ),
        (
            "nan final value of a peer",
            BAD_RUN,
            _with(_peers(), 2, value=math.nan),
            BAD_RUN,
            _with(_peers(), 2, state=RunState.FAILED, value=None),
            "treated as failed",
        ),
        (
            "duplicate peer numbers",
            BAD_RUN,
            [*_peers(), dataclasses.replace(_peers()[1], value=0.0, intermediate={1: -9.0})],
            BAD_RUN,
            _peers(),
            "a duplicate completion is a no-op",
        ),
        ("the run among its peers", BAD_RUN, [*_peers(), BAD_RUN], BAD_RUN, _peers(), None),
    ],
)
def test_pruner_cleans_bad_input(
    name: str, case: str, run, peers, same_run, same_peers, logged: str | None, caplog
) -> None:
    expected = PRUNERS[name]().decide(same_run, same_peers)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="runyard.search"):
        got = PRUNERS[name]().decide(run, peers)
    assert got is expected
    messages = " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    if logged is None:
        assert messages == ""
    else:
        assert logged in messages


def test_median_stops_the_bad_run_of_this_table() -> None:
    """Guards the table above: the cases compare against a decision that can be STOP."""
    assert MedianPruner(n_startup_runs=3).decide(BAD_RUN, _peers()) is Decision.STOP
