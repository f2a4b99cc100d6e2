"""Random search: every proposal is a pure function of (space, seed, run number).

Proposal ``i`` draws each param ``p`` from its own generator seeded with the
string ``"{seed}:{i}:{p}"``, so a restarted scheduler, a new leader or a second
process proposes exactly the same sequence, and adding a param to the space does
not change the values drawn for the others. String seeds go through SHA-512 in
:class:`random.Random`, so they do not depend on ``PYTHONHASHSEED``.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, ClassVar

from runyard.errors import InvalidInput, SpecError
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

__all__ = ["RandomSearch"]


class RandomSearch:
    """Independent uniform draws (log-uniform for log scales) from the space.

    Args:
        space: param name -> dimension; validated with :func:`check_space`.
        max_runs: how many runs the experiment gets in total.
        seed: the experiment's seed; the same seed gives the same proposals.

    Raises:
        SpecError: for an invalid space, ``max_runs`` or ``seed``.

    Note:
        The position of the next proposal is the number of distinct run numbers in
        the history, so the scheduler must pass every run of the experiment (any
        state), not only the finished ones.
    """

    name: ClassVar[str] = "random"
    learns: ClassVar[bool] = False  # proposals never depend on results: the scheduler may queue them ahead

    def __init__(self, space: Space, max_runs: int, seed: int) -> None:
        check_space(space)
        self.space = dict(space)
        self.max_runs = check_max_runs(max_runs, self.name)
        self.seed = check_seed(seed)

    def propose(self, history: Sequence[RunRecord], n: int) -> list[Params]:
        """Return the next ``n`` proposals (fewer once ``max_runs`` is reached).

        Called by the scheduler loop when the experiment has free slots. Pure:
        the same history length and ``n`` always give the same params.

        Args:
            history: every run of the experiment so far.
            n: how many proposals the scheduler can queue now (>= 0).

        Returns:
            Up to ``n`` param dicts.

        Raises:
            InvalidInput: if ``n`` is negative.
        """
        start = n_proposed(history)
        stop = min(start + check_n(n), self.max_runs)
        return [self.params_at(i) for i in range(start, stop)]

    def exhausted(self, history: Sequence[RunRecord]) -> bool:
        """True once ``max_runs`` runs were proposed."""
        return n_proposed(history) >= self.max_runs

    def params_at(self, index: int) -> Params:
        """The params of proposal ``index`` (0-based), independent of any history."""
        return {
            name: sample_dimension(dim, random.Random(f"{self.seed}:{index}:{name}"))
            for name, dim in self.space.items()
        }


def sample_dimension(dim: Dimension, rng: random.Random) -> Any:
    """Draw one value of ``dim`` with ``rng`` (the space must have passed check_space)."""
    if isinstance(dim, Fixed):
        return copy.deepcopy(dim.value)
    if isinstance(dim, Choice):
        return copy.deepcopy(dim.values[rng.randrange(len(dim.values))])
    if isinstance(dim, FloatRange):
        if dim.step is not None:
            return float_step_value(
                dim.low, dim.step, rng.randint(0, n_float_steps(dim.low, dim.high, dim.step))
            )
        if dim.log:
            value = math.exp(rng.uniform(math.log(dim.low), math.log(dim.high)))
        else:
            value = rng.uniform(dim.low, dim.high)
        # exp/log and uniform() can round a hair outside the bounds.
        return float(min(max(value, dim.low), dim.high))
    if isinstance(dim, IntRange):
        if dim.log:
            # Each integer owns the log-interval [v - 0.5, v + 0.5), as in Optuna.
            x = math.exp(rng.uniform(math.log(dim.low - 0.5), math.log(dim.high + 0.5)))
            return int(min(max(round(x), dim.low), dim.high))
        return dim.low + dim.step * rng.randint(0, (dim.high - dim.low) // dim.step)
    raise SpecError(
        f"Unknown dimension type {type(dim).__name__}.",
        "Use Fixed, Choice, FloatRange or IntRange.",
    )


def n_float_steps(low: float, high: float, step: float) -> int:
    """How many steps fit in [low, high]: the values are ``low + k * step`` for k in 0..result.

    Decimal arithmetic on the shortest repr of each number, as Optuna does, so
    that e.g. [0, 1] with step 0.1 has 10 steps and not 9.
    """
    return int((Decimal(str(high)) - Decimal(str(low))) // Decimal(str(step)))


def float_step_value(low: float, step: float, k: int) -> float:
    """``low + k * step`` exactly: 0.1 * 3 gives 0.3, not 0.30000000000000004."""
    return float(Decimal(str(low)) + k * Decimal(str(step)))


def n_proposed(history: Sequence[RunRecord]) -> int:
    """How many runs were proposed: the distinct run numbers (a duplicate record counts once)."""
    return len({record.number for record in history})


def check_n(n: int) -> int:
    """Validate the ``n`` argument of ``propose``."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise InvalidInput(
            f"propose() needs n >= 0 (how many runs to propose), but got n={n!r}.",
            "Pass the number of free slots of the experiment.",
        )
    return n


def check_max_runs(max_runs: object, algorithm: str) -> int:
    """Validate a required ``max_runs`` budget."""
    if not isinstance(max_runs, int) or isinstance(max_runs, bool) or max_runs < 0:
        raise SpecError(
            f"Search algorithm '{algorithm}' needs max_runs >= 0, but got max_runs={max_runs!r}.",
            "Set max_runs to the number of runs the experiment may start, e.g. max_runs: 20.",
        )
    return max_runs


def check_seed(seed: object) -> int:
    """Validate a search seed (an integer, so proposals are reproducible)."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise SpecError(
            f"A search seed must be an integer, but got seed={seed!r}.",
            "Set seed to an integer, e.g. seed: 0.",
        )
    return seed
