"""OptunaSearch (TPE, CMA-ES): reproducible from (seed, history) in any process, and useful."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from runyard.errors import SpecError
from runyard.search import (
    Choice,
    Fixed,
    FloatRange,
    IntRange,
    OptunaSearch,
    RunRecord,
    RunState,
    make_search,
)

REPO = Path(__file__).resolve().parents[2]

# Shared with the fresh interpreter below: the space and a history with every state.
SETUP = """
from runyard.search import Choice, Fixed, FloatRange, IntRange, RunRecord, RunState, make_search

SPACE = {
    "x": FloatRange(-5.0, 5.0),
    "lr": FloatRange(1e-4, 1e-1, log=True),
    "m": FloatRange(0.0, 1.0, step=0.25),
    "n": IntRange(1, 9, step=2),
    "act": Choice(("relu", "tanh", [1, 2])),
    "epochs": Fixed(4),
}


def history():
    search = make_search("random", SPACE, 30, 11)
    records = []
    for i, p in enumerate(search.propose([], 14)):
        value = (p["x"] - 1.0) ** 2 + p["n"] / 10
        curve = {s: value + 1.0 / (s + 1) for s in range(3)}
        state = [RunState.COMPLETE, RunState.COMPLETE, RunState.PRUNED, RunState.FAILED,
                 RunState.ACTIVE][i % 5]
        records.append(RunRecord(i, p, state, value if state is RunState.COMPLETE else None,
                                 curve if state is not RunState.ACTIVE else {}))
    return records


def proposals(algorithm):
    return make_search(algorithm, SPACE, 30, 5, "min").propose(history(), 3)
"""


def _in_process(algorithm: str) -> list[dict]:
    namespace: dict = {}
    exec(SETUP, namespace)  # our own constant source, shared with the subprocess
    return namespace["proposals"](algorithm)


@pytest.mark.parametrize("algorithm", ["random", "tpe", "cmaes"])
def test_same_seed_and_history_give_same_proposals(algorithm: str) -> None:
    first = _in_process(algorithm)
    assert first == _in_process(algorithm)
    assert len(first) == 3
    assert len({json.dumps(p, sort_keys=True) for p in first}) == 3


@pytest.mark.parametrize("algorithm", ["tpe", "cmaes"])
def test_same_proposals_in_a_fresh_process(algorithm: str) -> None:
    script = SETUP + f"\nimport json\nprint(json.dumps(proposals({algorithm!r})))\n"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}  # a different string-hash salt than ours
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == json.loads(json.dumps(_in_process(algorithm)))


def test_different_seeds_give_different_proposals() -> None:
    space = {"x": FloatRange(-5.0, 5.0)}
    a = OptunaSearch(space, 10, seed=1).propose([], 3)
    b = OptunaSearch(space, 10, seed=2).propose([], 3)
    assert a != b


def _quadratic(params: dict) -> float:
    return (params["x"] - 2.0) ** 2 + (params["y"] + 1.0) ** 2


def _optimise(algorithm: str, steps: int, mode: str = "min") -> list[float]:
    space = {"x": FloatRange(-10.0, 10.0), "y": FloatRange(-10.0, 10.0), "tag": Fixed("q")}
    search = make_search(algorithm, space, steps, 3, mode)
    history: list[RunRecord] = []
    while not search.exhausted(history):
        (params,) = search.propose(history, 1)
        assert params["tag"] == "q"
        value = _quadratic(params) if mode == "min" else -_quadratic(params)
        history.append(RunRecord(len(history), params, RunState.COMPLETE, value))
    return [abs(r.value) for r in history if r.value is not None]


@pytest.mark.parametrize(("algorithm", "mode"), [("tpe", "min"), ("tpe", "max"), ("cmaes", "min")])
def test_search_improves_on_a_quadratic(algorithm: str, mode: str) -> None:
    losses = _optimise(algorithm, 30 if algorithm == "tpe" else 40, mode)
    first, last = losses[:10], losses[-10:]
    # Loose on purpose: TPE's first 10 runs are random and it keeps exploring after;
    # CMA-ES starts wide around the centre and contracts on the optimum.
    assert statistics.median(last) < statistics.median(first)
    if algorithm == "tpe":
        assert min(last) < min(first)
    else:
        assert statistics.median(last) < 5.0  # contracted: a random point scores ~70


def test_active_runs_are_seen_by_tpe() -> None:
    """An active run is replayed as RUNNING, which TPE (constant liar) counts.

    A failed run in the same place is ignored, so the two histories must differ.
    """
    space = {"x": FloatRange(-10.0, 10.0)}
    base = [
        RunRecord(i, p, RunState.COMPLETE, (p["x"] - 2.0) ** 2)
        for i, p in enumerate(make_search("random", space, 15, 0).propose([], 15))
    ]
    probe = {"x": 2.0}
    with_active = OptunaSearch(space, 30, seed=0).propose(
        [*base, RunRecord(15, probe, RunState.ACTIVE)], 1
    )
    with_failed = OptunaSearch(space, 30, seed=0).propose(
        [*base, RunRecord(15, probe, RunState.FAILED)], 1
    )
    assert with_active != with_failed


def test_proposals_fit_the_space() -> None:
    space = {
        "lr": FloatRange(1e-4, 1e-1, log=True),
        "m": FloatRange(0.0, 1.0, step=0.3),
        "n": IntRange(2, 11, step=3),
        "c": Choice((1, True, "1", None, [1])),
        "f": Fixed({"a": 1}),
    }
    for algorithm in ("tpe", "cmaes"):
        history: list[RunRecord] = []
        search = make_search(algorithm, space, 25, 0)
        while not search.exhausted(history):
            for p in search.propose(history, 5):
                history.append(RunRecord(len(history), p, RunState.COMPLETE, p["m"] + p["n"]))
        for r in history:
            p = r.params
            assert list(p) == list(space)
            assert 1e-4 <= p["lr"] <= 1e-1
            assert p["m"] in (0.0, 0.3, 0.6, 0.9)
            assert p["n"] in (2, 5, 8, 11)
            assert any(type(p["c"]) is type(c) and p["c"] == c for c in space["c"].values)
            assert p["f"] == {"a": 1}


def test_budget_limits_proposals() -> None:
    search = OptunaSearch({"x": FloatRange(0.0, 1.0)}, max_runs=4, seed=0)
    history = [RunRecord(i, {"x": 0.5}, RunState.COMPLETE, 1.0) for i in range(3)]
    assert len(search.propose(history, 5)) == 1
    history.append(RunRecord(3, {"x": 0.5}, RunState.ACTIVE))
    assert search.exhausted(history)
    assert search.propose(history, 5) == []


def test_space_of_fixed_params_only() -> None:
    search = OptunaSearch({"a": Fixed(1)}, max_runs=2, seed=0, algorithm="cmaes")
    assert search.propose([], 2) == [{"a": 1}, {"a": 1}]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"algorithm": "nsga"}, r"Unknown Optuna algorithm 'nsga'. Known: tpe, cmaes"),
        ({"metric_mode": "minimize"}, r"must be 'min' or 'max', but got 'minimize'"),
        ({"max_runs": None}, r"needs max_runs >= 0"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    args = {"space": {"x": FloatRange(0.0, 1.0)}, "max_runs": 5, "seed": 0, **kwargs}
    with pytest.raises(SpecError, match=match):
        OptunaSearch(**args)
