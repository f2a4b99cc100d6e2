"""Searches (which params to run next) and pruners (which runs to stop early).

Every search and pruner is stateless over the stored history: the scheduler
converts stored runs into :class:`RunRecord` and calls ``propose`` / ``decide``;
the same inputs give the same answer in any process.

Use :func:`make_search` and :func:`make_pruner` to build them from the words of
``runyard.yml``. The Optuna-backed names (``OptunaSearch``, the pruners) are
imported on first use, so ``import runyard.search`` does not pay Optuna's
import time (about 0.3 s).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Literal

from runyard.errors import SpecError
from runyard.search.base import (
    Choice,
    Decision,
    Dimension,
    Fixed,
    FloatRange,
    IntRange,
    Params,
    Pruner,
    RunRecord,
    RunState,
    Search,
    Space,
    SpaceRule,
    check_space,
    range_problems,
)
from runyard.search.grid import MAX_INT_RANGE_VALUES, GridSearch, axis_size
from runyard.search.random import RandomSearch

if TYPE_CHECKING:
    from runyard.search.optuna import OptunaSearch
    from runyard.search.pruners import (
        AshaPruner,
        BasePruner,
        HyperbandPruner,
        MedianPruner,
        make_pruner,
    )

__all__ = [
    "MAX_INT_RANGE_VALUES",
    "SEARCH_ALGORITHMS",
    "AshaPruner",
    "BasePruner",
    "Choice",
    "Decision",
    "Dimension",
    "Fixed",
    "FloatRange",
    "GridSearch",
    "HyperbandPruner",
    "IntRange",
    "MedianPruner",
    "OptunaSearch",
    "Params",
    "Pruner",
    "RandomSearch",
    "RunRecord",
    "RunState",
    "Search",
    "Space",
    "SpaceRule",
    "axis_size",
    "check_space",
    "make_pruner",
    "make_search",
    "range_problems",
]

SEARCH_ALGORITHMS = ("grid", "random", "tpe", "cmaes")
"""Search algorithm names accepted by :func:`make_search` (the words of runyard.yml)."""

_LAZY = {
    "OptunaSearch": "runyard.search.optuna",
    "AshaPruner": "runyard.search.pruners",
    "BasePruner": "runyard.search.pruners",
    "HyperbandPruner": "runyard.search.pruners",
    "MedianPruner": "runyard.search.pruners",
    "make_pruner": "runyard.search.pruners",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'runyard.search' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def make_search(
    algorithm: str,
    space: Space,
    max_runs: int | None,
    seed: int,
    mode: Literal["min", "max"] = "min",
) -> Search:
    """Build the search named ``algorithm``.

    Args:
        algorithm: one of :data:`SEARCH_ALGORITHMS`.
        space: param name -> dimension.
        max_runs: the run budget; optional for ``grid`` (default: the whole grid),
            required otherwise.
        seed: the experiment's seed (unused by ``grid``, which has one order).
        mode: ``"min"`` or ``"max"``, the direction of the search metric (used by
            ``tpe`` and ``cmaes``).

    Returns:
        The search.

    Raises:
        SpecError: for an unknown algorithm (listing the known ones) or invalid
            arguments.
    """
    if mode not in ("min", "max"):
        raise SpecError(
            f"The metric mode must be 'min' or 'max', but got {mode!r}.",
            "Set mode: min for a loss or error, mode: max for accuracy or reward.",
        )
    if algorithm == "grid":
        return GridSearch(space, max_runs)
    if algorithm == "random":
        return RandomSearch(space, max_runs, seed)  # type: ignore[arg-type]  # checked inside
    if algorithm in ("tpe", "cmaes"):
        from runyard.search.optuna import OptunaSearch

        return OptunaSearch(space, max_runs, seed, mode, algorithm)  # type: ignore[arg-type]
    raise SpecError(
        f"Unknown search algorithm {algorithm!r}. Known algorithms: "
        f"{', '.join(SEARCH_ALGORITHMS)}.",
        "Set the search's algorithm to one of those.",
    )
