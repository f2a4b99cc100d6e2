"""RandomSearch: reproducible per (seed, index), and faithful to bounds, log scale and steps."""

from __future__ import annotations

import math
import statistics

import pytest

from runyard.errors import SpecError
from runyard.search import (
    Choice,
    Fixed,
    FloatRange,
    IntRange,
    RandomSearch,
    RunRecord,
    RunState,
)

SPACE = {
    "lr": FloatRange(1e-5, 1e-1, log=True),
    "dropout": FloatRange(0.0, 0.5),
    "momentum": FloatRange(0.0, 1.0, step=0.1),
    "batch": IntRange(16, 256, step=16),
    "width": IntRange(1, 1024, log=True),
    "act": Choice(("relu", "tanh", "gelu")),
    "epochs": Fixed(3),
}


def _history(proposals: list[dict], state: RunState = RunState.ACTIVE) -> list[RunRecord]:
    return [RunRecord(number=i, params=p, state=state) for i, p in enumerate(proposals)]


def test_same_seed_same_sequence_and_restart_continues_it() -> None:
    first = RandomSearch(SPACE, max_runs=20, seed=7).propose([], 20)
    again = RandomSearch(SPACE, max_runs=20, seed=7).propose([], 20)
    assert first == again
    restarted = RandomSearch(SPACE, max_runs=20, seed=7)
    assert restarted.propose(_history(first[:8]), 5) == first[8:13]


def test_proposals_do_not_depend_on_history_contents_or_chunking() -> None:
    search = RandomSearch(SPACE, max_runs=10, seed=1)
    whole = search.propose([], 10)
    history: list[RunRecord] = []
    while not search.exhausted(history):
        for params in search.propose(history, 3):
            history.append(RunRecord(len(history), params, RunState.COMPLETE, value=1.0))
    assert [r.params for r in history] == whole


def test_different_seeds_differ() -> None:
    a = RandomSearch(SPACE, max_runs=10, seed=1).propose([], 10)
    b = RandomSearch(SPACE, max_runs=10, seed=2).propose([], 10)
    assert [p["dropout"] for p in a] != [p["dropout"] for p in b]
    assert len({p["dropout"] for p in a + b}) == 20


def test_adding_a_param_keeps_the_other_values() -> None:
    small = RandomSearch({"dropout": FloatRange(0.0, 0.5)}, max_runs=5, seed=3).propose([], 5)
    big = RandomSearch(SPACE, max_runs=5, seed=3).propose([], 5)
    assert [p["dropout"] for p in small] == [p["dropout"] for p in big]


def test_respects_bounds_log_scale_and_steps() -> None:
    samples = RandomSearch(SPACE, max_runs=2000, seed=0).propose([], 2000)

    lrs = [p["lr"] for p in samples]
    assert all(1e-5 <= x <= 1e-1 for x in lrs)
    # Log-uniform: half the mass lies below the geometric mean 1e-3.
    assert 0.45 < sum(x < 1e-3 for x in lrs) / len(lrs) < 0.55

    dropouts = [p["dropout"] for p in samples]
    assert all(0.0 <= x <= 0.5 for x in dropouts)
    assert 0.2 < statistics.mean(dropouts) < 0.3

    allowed_momentum = {round(k / 10, 1) for k in range(11)}
    assert {p["momentum"] for p in samples} == allowed_momentum  # exact floats, both ends

    assert {p["batch"] for p in samples} == set(range(16, 257, 16))

    widths = [p["width"] for p in samples]
    assert all(isinstance(w, int) and 1 <= w <= 1024 for w in widths)
    assert min(widths) == 1 and max(widths) > 512
    assert 0.4 < sum(w <= 32 for w in widths) / len(widths) < 0.6  # sqrt(1024) = 32

    assert {p["act"] for p in samples} == {"relu", "tanh", "gelu"}
    assert all(p["epochs"] == 3 for p in samples)
    assert all(list(p) == list(SPACE) for p in samples)


def test_float_step_that_does_not_divide_the_range() -> None:
    values = {
        p["x"]
        for p in RandomSearch({"x": FloatRange(0.0, 1.0, step=0.3)}, 300, seed=0).propose([], 300)
    }
    assert values == {0.0, 0.3, 0.6, 0.9}


def test_degenerate_ranges() -> None:
    space = {"a": FloatRange(2.0, 2.0), "b": IntRange(5, 5), "c": Choice((None,))}
    assert RandomSearch(space, 3, seed=0).propose([], 3) == [{"a": 2.0, "b": 5, "c": None}] * 3


def test_max_runs_and_exhausted() -> None:
    search = RandomSearch(SPACE, max_runs=3, seed=0)
    proposals = search.propose([], 10)
    assert len(proposals) == 3
    history = _history(proposals)
    assert search.exhausted(history)
    assert search.propose(history, 10) == []


@pytest.mark.parametrize(
    ("space", "match"),
    [
        (
            {"lr": FloatRange(0.0, 1.0, log=True)},
            r"Param 'lr' uses a log scale, which needs low > 0",
        ),
        ({"lr": FloatRange(1.0, 0.0)}, r"Param 'lr' must have low <= high"),
        ({"lr": FloatRange(0.0, math.inf)}, r"Param 'lr' needs finite numeric bounds"),
        ({"lr": FloatRange(0.0, 1.0, step=-0.1)}, r"Param 'lr' must have a step > 0"),
        ({"lr": FloatRange(0.1, 1.0, log=True, step=0.1)}, r"cannot have both log=true and a step"),
        ({"n": IntRange(0, 10, log=True)}, r"Param 'n' uses a log scale, which needs low >= 1"),
        ({"n": IntRange(0, 10, step=0)}, r"Param 'n' must have a step >= 1"),
        ({"n": IntRange(0, 1.5)}, r"Param 'n' is an integer range"),  # type: ignore[arg-type]
        ({"c": Choice(())}, r"Param 'c' is a choice with no values"),
        ({"x": (1, 2)}, r"Param 'x' has an unknown dimension type tuple"),
    ],
)
def test_invalid_spaces_are_rejected(space: dict, match: str) -> None:
    with pytest.raises(SpecError, match=match) as info:
        RandomSearch(space, max_runs=1, seed=0)
    assert info.value.code == "invalid_spec"
    assert info.value.hint


@pytest.mark.parametrize(("max_runs", "seed"), [(None, 0), (-1, 0), (5, None), (5, "7")])
def test_bad_budget_or_seed(max_runs: object, seed: object) -> None:
    with pytest.raises(SpecError, match=r"max_runs|seed"):
        RandomSearch(SPACE, max_runs=max_runs, seed=seed)  # type: ignore[arg-type]
