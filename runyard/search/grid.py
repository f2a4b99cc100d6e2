"""Grid search: every combination of the listed values, in one fixed order.

The grid is the cartesian product of the dimensions in the order the space lists
them, the last param varying fastest (the order of :func:`itertools.product`).
Combination ``i`` is computed directly from ``i`` (mixed-radix digits), so a grid
of millions of combinations costs nothing until it is proposed, and proposal
``i`` is the same in every process.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, ClassVar

from runyard.errors import SpecError
from runyard.search.base import (
    Choice,
    Dimension,
    Fixed,
    FloatRange,
    IntRange,
    Params,
    RunRecord,
    Space,
    check_space,
)
from runyard.search.random import check_n, n_proposed

__all__ = ["MAX_INT_RANGE_VALUES", "GridSearch", "axis_size"]

MAX_INT_RANGE_VALUES = 1000
"""An integer range in a grid is expanded to its values only up to this many."""


class _Axis:
    """One grid dimension: ``size`` values, the k-th computed on demand."""

    def __init__(self, name: str, size: int, values: Sequence[Any] | IntRange) -> None:
        self.name = name
        self.size = size
        self._values = values

    def value(self, k: int) -> Any:
        if isinstance(self._values, IntRange):
            return self._values.low + k * self._values.step
        return copy.deepcopy(self._values[k])


class GridSearch:
    """Cartesian product of Fixed, Choice and IntRange dimensions.

    Args:
        space: param name -> dimension; validated with :func:`check_space`.
        max_runs: stop after this many combinations (``None``: all of them).

    Attributes:
        n_combinations: the size of the full product.
        n_runs: how many runs the grid proposes in total (the product, cut to ``max_runs``).

    Raises:
        SpecError: for a FloatRange (a grid cannot enumerate it), an IntRange of
            more than :data:`MAX_INT_RANGE_VALUES` values, an invalid space or
            a negative ``max_runs``.

    Note:
        The position of the next combination is the number of distinct run
        numbers in the history: the scheduler stores proposals in order and must
        pass every run of the experiment, in any state.
    """

    name: ClassVar[str] = "grid"
    learns: ClassVar[bool] = False  # proposals never depend on results: the scheduler may queue them ahead

    def __init__(self, space: Space, max_runs: int | None = None) -> None:
        check_space(space)
        if max_runs is not None and (
            not isinstance(max_runs, int) or isinstance(max_runs, bool) or max_runs < 0
        ):
            raise SpecError(
                f"Grid search needs max_runs >= 0 or no max_runs, but got max_runs={max_runs!r}.",
                "Remove max_runs to run the whole grid, or set it to a count, e.g. max_runs: 20.",
            )
        self._axes = [_axis(name, dim) for name, dim in space.items()]
        self.n_combinations = 1
        for axis in self._axes:
            self.n_combinations *= axis.size
        self.max_runs = max_runs
        self.n_runs = (
            self.n_combinations if max_runs is None else min(max_runs, self.n_combinations)
        )

    def propose(self, history: Sequence[RunRecord], n: int) -> list[Params]:
        """Return the next ``n`` combinations not proposed yet (fewer at the end).

        Args:
            history: every run of the experiment so far.
            n: how many proposals the scheduler can queue now (>= 0).

        Returns:
            Up to ``n`` param dicts, in grid order.

        Raises:
            InvalidInput: if ``n`` is negative.
        """
        start = n_proposed(history)
        stop = min(start + check_n(n), self.n_runs)
        return [self.combination(i) for i in range(start, stop)]

    def exhausted(self, history: Sequence[RunRecord]) -> bool:
        """True once every combination (up to ``max_runs``) was proposed."""
        return n_proposed(history) >= self.n_runs

    def combination(self, index: int) -> Params:
        """The params of combination ``index`` (0-based) in grid order."""
        if not 0 <= index < self.n_combinations:
            raise IndexError(f"grid has {self.n_combinations} combinations, no index {index}")
        digits: list[int] = []
        for axis in reversed(self._axes):
            index, k = divmod(index, axis.size)
            digits.append(k)
        return {
            axis.name: axis.value(k) for axis, k in zip(self._axes, reversed(digits), strict=True)
        }


def axis_size(dim: Dimension) -> int | None:
    """How many values a grid enumerates for ``dim``: None for a FloatRange, which it cannot enumerate.

    An IntRange of more than :data:`MAX_INT_RANGE_VALUES` values is refused by the grid
    (its size is returned as it is, for the caller to compare).
    """
    if isinstance(dim, Fixed):
        return 1
    if isinstance(dim, Choice):
        return len(dim.values)
    if isinstance(dim, IntRange):
        return (dim.high - dim.low) // dim.step + 1
    return None


def _axis(name: str, dim: Any) -> _Axis:
    if isinstance(dim, Fixed):
        return _Axis(name, 1, (dim.value,))
    if isinstance(dim, Choice):
        return _Axis(name, len(dim.values), tuple(dim.values))
    if isinstance(dim, IntRange):
        size = (dim.high - dim.low) // dim.step + 1
        if size > MAX_INT_RANGE_VALUES:
            raise SpecError(
                f"Param '{name}' is an integer range of {size} values "
                f"({dim.low}..{dim.high} step {dim.step}); a grid expands at most "
                f"{MAX_INT_RANGE_VALUES}.",
                "Use a larger step or a list of values, or use algorithm random, tpe or cmaes.",
            )
        return _Axis(name, size, dim)
    if isinstance(dim, FloatRange):
        raise SpecError(
            f"Param '{name}' is a float range [{dim.low}, {dim.high}]; a grid search takes "
            "float params only as a list of values.",
            f"Give '{name}' a list of values to try (e.g. [0.001, 0.01, 0.1]), "
            "or use algorithm random, tpe or cmaes.",
        )
    raise SpecError(  # unreachable after check_space; kept so no type slips through
        f"Param '{name}' has an unknown dimension type {type(dim).__name__}.",
        "Use Fixed, Choice, FloatRange or IntRange.",
    )
