"""The public surface of runyard.search: exports, factory, naming rule, import cost."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import runyard.search
from runyard.errors import SpecError
from runyard.search import (
    SEARCH_ALGORITHMS,
    FloatRange,
    GridSearch,
    OptunaSearch,
    RandomSearch,
    make_search,
)

SEARCH_DIR = Path(runyard.search.__file__).parent
MODULES = ["base", "grid", "random", "optuna", "pruners"]


def test_every_exported_name_exists() -> None:
    for name in runyard.search.__all__:
        assert getattr(runyard.search, name) is not None, name
    for module in MODULES:
        mod = importlib.import_module(f"runyard.search.{module}")
        for name in mod.__all__:
            assert hasattr(mod, name), f"runyard.search.{module}.{name}"


def test_public_classes_and_functions_are_exported() -> None:
    expected = {
        "GridSearch",
        "RandomSearch",
        "OptunaSearch",
        "MedianPruner",
        "AshaPruner",
        "HyperbandPruner",
        "make_search",
        "make_pruner",
        "RunRecord",
        "RunState",
        "Decision",
        "Fixed",
        "Choice",
        "FloatRange",
        "IntRange",
        "Space",
        "Search",
        "Pruner",
    }
    assert expected <= set(runyard.search.__all__)


def test_unknown_attribute_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        runyard.search.Nope  # noqa: B018


def test_only_optuna_module_says_trial() -> None:
    """STYLE: search/optuna.py is the only file that says "trial"; the rest say "run"."""
    offenders = [
        path.name
        for path in SEARCH_DIR.glob("*.py")
        if path.name != "optuna.py" and "trial" in path.read_text().lower()
    ]
    assert offenders == []


def test_names_match_the_runyard_yml_words() -> None:
    assert GridSearch.name == "grid"
    assert RandomSearch.name == "random"
    assert OptunaSearch.name == "optuna"
    assert [
        runyard.search.MedianPruner.name,
        runyard.search.AshaPruner.name,
        runyard.search.HyperbandPruner.name,
    ] == ["median", "asha", "hyperband"]


def test_make_search_builds_each_algorithm() -> None:
    space = {"x": FloatRange(0.0, 1.0)}
    assert isinstance(make_search("grid", {}, None, 0), GridSearch)
    assert isinstance(make_search("random", space, 5, 0), RandomSearch)
    tpe = make_search("tpe", space, 5, 0, "max")
    assert isinstance(tpe, OptunaSearch) and tpe.algorithm == "tpe" and tpe.direction == "maximize"
    assert make_search("cmaes", space, 5, 0).algorithm == "cmaes"  # type: ignore[attr-defined]
    assert SEARCH_ALGORITHMS == ("grid", "random", "tpe", "cmaes")


@pytest.mark.parametrize(
    ("algorithm", "max_runs", "mode", "match"),
    [
        (
            "bayes",
            5,
            "min",
            r"Unknown search algorithm 'bayes'. Known algorithms: grid, random, tpe, cmaes",
        ),
        (
            "random",
            None,
            "min",
            r"Search algorithm 'random' needs max_runs >= 0, but got max_runs=None",
        ),
        ("tpe", None, "min", r"Search algorithm 'tpe' needs max_runs"),
        ("grid", 5, "best", r"must be 'min' or 'max', but got 'best'"),
    ],
)
def test_make_search_rejects_bad_input(algorithm, max_runs, mode, match) -> None:
    with pytest.raises(SpecError, match=match) as info:
        make_search(algorithm, {"x": FloatRange(0.0, 1.0)}, max_runs, 0, mode)
    assert info.value.code == "invalid_spec"
    assert info.value.hint


def test_importing_search_does_not_import_optuna() -> None:
    code = (
        "import sys, runyard.search as s\n"
        "s.make_search('random', {}, 1, 0)\n"
        "assert 'optuna' not in sys.modules, 'optuna imported eagerly'\n"
        "s.OptunaSearch\n"
        "assert 'optuna' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
