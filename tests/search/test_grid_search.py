"""GridSearch: exact cartesian product, order, truncation and the errors it raises."""

from __future__ import annotations

import itertools

import pytest

from runyard.errors import InvalidInput, SpecError
from runyard.search import Choice, Fixed, FloatRange, GridSearch, IntRange, RunRecord, RunState


def _record(number: int, params: dict) -> RunRecord:
    return RunRecord(number=number, params=params, state=RunState.COMPLETE, value=0.0)


def _drain(search: GridSearch, chunk: int) -> list[dict]:
    history: list[RunRecord] = []
    while not search.exhausted(history):
        proposals = search.propose(history, chunk)
        assert proposals, "a search that is not exhausted must propose"
        history += [_record(len(history) + i, p) for i, p in enumerate(proposals)]
    return [r.params for r in history]


SPACE = {
    "lr": Choice((0.1, 0.01, 0.001)),
    "act": Choice(("relu", "tanh")),
    "layers": IntRange(1, 5, step=2),
    "epochs": Fixed(10),
}
PRODUCT = [
    {"lr": lr, "act": act, "layers": layers, "epochs": 10}
    for lr, act, layers in itertools.product((0.1, 0.01, 0.001), ("relu", "tanh"), (1, 3, 5))
]


@pytest.mark.parametrize("chunk", [1, 4, 100])
def test_grid_proposes_exactly_the_product_in_order(chunk: int) -> None:
    search = GridSearch(SPACE)
    assert search.n_runs == search.n_combinations == 18
    assert _drain(search, chunk) == PRODUCT


def test_grid_is_exhausted_and_proposes_nothing_more() -> None:
    search = GridSearch(SPACE)
    history = [_record(i, p) for i, p in enumerate(PRODUCT)]
    assert search.exhausted(history)
    assert search.propose(history, 5) == []


def test_max_runs_truncates_the_grid_in_order() -> None:
    search = GridSearch(SPACE, max_runs=7)
    assert search.n_runs == 7
    assert _drain(search, 3) == PRODUCT[:7]


def test_max_runs_larger_than_the_grid_changes_nothing() -> None:
    assert _drain(GridSearch(SPACE, max_runs=1000), 5) == PRODUCT


def test_restart_continues_where_history_ends() -> None:
    first = GridSearch(SPACE).propose([], 5)
    history = [_record(i, p) for i, p in enumerate(first)]
    assert GridSearch(SPACE).propose(history, 5) == PRODUCT[5:10]


def test_duplicate_records_count_once() -> None:
    history = [_record(0, PRODUCT[0]), _record(0, PRODUCT[0]), _record(1, PRODUCT[1])]
    assert GridSearch(SPACE).propose(history, 1) == [PRODUCT[2]]


def test_empty_space_is_one_run() -> None:
    search = GridSearch({})
    assert search.propose([], 3) == [{}]
    assert search.exhausted([_record(0, {})])


def test_huge_grid_is_not_materialised() -> None:
    space = {f"p{i}": IntRange(0, 999) for i in range(8)}
    search = GridSearch(space)
    assert search.n_combinations == 1000**8
    assert search.propose([], 2) == [
        {f"p{i}": 0 for i in range(8)},
        {**{f"p{i}": 0 for i in range(7)}, "p7": 1},
    ]
    last = search.combination(1000**8 - 1)
    assert last == {f"p{i}": 999 for i in range(8)}


def test_choice_values_are_copied() -> None:
    search = GridSearch({"sizes": Choice(([64, 64], [128]))})
    proposal = search.propose([], 1)[0]
    proposal["sizes"].append(1)
    assert search.propose([], 1)[0] == {"sizes": [64, 64]}


def test_float_range_is_rejected_with_the_fix() -> None:
    with pytest.raises(SpecError, match=r"Param 'lr' is a float range") as info:
        GridSearch({"lr": FloatRange(1e-4, 1e-1, log=True)})
    assert info.value.code == "invalid_spec"
    assert "list of values" in info.value.hint
    assert "random, tpe or cmaes" in info.value.hint


def test_int_range_over_the_limit_is_rejected() -> None:
    assert GridSearch({"n": IntRange(1, 1000)}).n_combinations == 1000
    with pytest.raises(SpecError, match=r"Param 'n' is an integer range of 1001 values") as info:
        GridSearch({"n": IntRange(0, 1000)})
    assert "larger step" in info.value.hint


@pytest.mark.parametrize("max_runs", [-1, 1.5, True])
def test_bad_max_runs(max_runs: object) -> None:
    with pytest.raises(SpecError, match="max_runs"):
        GridSearch(SPACE, max_runs=max_runs)  # type: ignore[arg-type]


def test_negative_n_is_rejected_and_zero_is_empty() -> None:
    search = GridSearch(SPACE)
    assert search.propose([], 0) == []
    with pytest.raises(InvalidInput, match="n >= 0") as info:
        search.propose([], -1)
    assert info.value.code == "invalid_input"
