"""Search interface: stateless strategies that propose params from stored history.

A search never keeps state between calls: proposals are a function of
(space, seed, history), so a restarted server or a new scheduler leader gets the
same proposals from the same stored runs. This module imports nothing from
``store``, ``server`` or ``scheduler``; the scheduler converts its rows into the
records below.

Implementer's contract:

- ``Search.propose(history, n)`` returns at most ``n`` new param dicts, ``[]`` to
  wait for results. Called by the scheduler loop whenever an experiment has free
  parallel slots; must be deterministic for the same inputs.
- ``Search.exhausted(history)`` is true once no more runs will be proposed.
- ``Pruner.decide(run, peers)`` returns ``Decision.STOP`` for a run whose
  intermediate values are poor. Called on every new intermediate value.

:func:`check_space` is the one validation of a :data:`Space` that every search
runs in its constructor, so the same bad space fails the same way whatever the
algorithm.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

from runyard.errors import SpecError

__all__ = [
    "Choice",
    "Decision",
    "Dimension",
    "Fixed",
    "FloatRange",
    "IntRange",
    "Params",
    "Pruner",
    "RunRecord",
    "RunState",
    "Search",
    "Space",
    "SpaceRule",
    "check_space",
    "range_problems",
]

Params = dict[str, Any]


@dataclass(frozen=True)
class Fixed:
    """A param with one value in every run."""

    value: Any


@dataclass(frozen=True)
class Choice:
    """A categorical param: one of ``values``."""

    values: tuple[Any, ...]


@dataclass(frozen=True)
class FloatRange:
    """A continuous param in [low, high]; ``log`` samples on a log scale; ``step`` discretises."""

    low: float
    high: float
    log: bool = False
    step: float | None = None


@dataclass(frozen=True)
class IntRange:
    """An integer param in [low, high] inclusive, every ``step``; ``log`` samples on a log scale."""

    low: int
    high: int
    step: int = 1
    log: bool = False


Dimension = Fixed | Choice | FloatRange | IntRange
Space = Mapping[str, Dimension]


class RunState(enum.Enum):
    """What a search needs to know of a run's status."""

    ACTIVE = "active"  # queued, starting or running
    COMPLETE = "complete"  # succeeded
    PRUNED = "pruned"
    FAILED = "failed"  # failed or canceled


@dataclass(frozen=True)
class RunRecord:
    """One run as a search or pruner sees it.

    ``intermediate`` maps step -> value of the search metric as reported so far;
    ``value`` is the final objective (the metric's last value for a finished run).
    ``number`` is the run's position in the experiment (0, 1, 2, ... in submission order).
    """

    number: int
    params: Params
    state: RunState
    value: float | None = None
    intermediate: Mapping[int, float] = field(default_factory=dict)


class Decision(enum.Enum):
    CONTINUE = "continue"
    STOP = "stop"


class Search(Protocol):
    name: ClassVar[str]
    # True when proposals depend on the results of earlier runs (TPE, CMA-ES). A search
    # that does not learn (grid, random) gets its proposals queued ahead of free slots.
    learns: ClassVar[bool]

    def propose(self, history: Sequence[RunRecord], n: int) -> list[Params]: ...

    def exhausted(self, history: Sequence[RunRecord]) -> bool: ...


class Pruner(Protocol):
    name: ClassVar[str]

    def decide(self, run: RunRecord, peers: Sequence[RunRecord]) -> Decision: ...


def _is_real(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


SpaceRule = Literal[
    "finite_bounds",
    "low_le_high",
    "positive_step",
    "log_without_step",
    "log_low_positive",
    "int_values",
    "int_step_ge_1",
    "int_log_low_ge_1",
    "int_log_step_1",
]
"""A rule a range dimension can break (see :func:`range_problems`)."""


def range_problems(dim: FloatRange | IntRange) -> list[SpaceRule]:
    """The rules ``dim`` breaks, in the order :func:`check_space` reports them; ``[]`` when it is usable.

    FloatRange: finite bounds (when broken, nothing else is checked), low <= high, a step
    > 0, no step with a log scale, low > 0 with a log scale. IntRange: integer bounds and
    step (when broken, nothing else is checked), low <= high, step >= 1, low >= 1 and
    step 1 with a log scale. Callers that word their own messages (``runyard.yml``'s
    params) read the rules here rather than repeating them.
    """
    out: list[SpaceRule] = []
    if isinstance(dim, FloatRange):
        if not (_is_real(dim.low) and _is_real(dim.high)):
            return ["finite_bounds"]
        if dim.low > dim.high:
            out.append("low_le_high")
        if dim.step is not None and not (_is_real(dim.step) and dim.step > 0):
            out.append("positive_step")
        if dim.log and dim.step is not None:
            out.append("log_without_step")
        if dim.log and dim.low <= 0:
            out.append("log_low_positive")
        return out
    if not (_is_int(dim.low) and _is_int(dim.high) and _is_int(dim.step)):
        return ["int_values"]
    if dim.low > dim.high:
        out.append("low_le_high")
    if dim.step < 1:
        out.append("int_step_ge_1")
    if dim.log and dim.low < 1:
        out.append("int_log_low_ge_1")
    if dim.log and dim.step != 1:
        out.append("int_log_step_1")
    return out


def check_space(space: Space) -> None:
    """Reject a search space that no search can sample.

    The rules are the strictest common ones, so a space accepted here works with
    every algorithm (the grid search adds its own rule for continuous params):
    a choice has at least one value; bounds are finite numbers with low <= high;
    ``step`` is positive; a log scale needs low > 0 and no ``step`` (integer
    ranges: low >= 1 and step 1), as Optuna's distributions require
    (:func:`range_problems`).

    Args:
        space: param name -> dimension.

    Raises:
        SpecError: naming the param, the rule, the value and the fix.
    """
    if not isinstance(space, Mapping):
        raise SpecError(
            f"A search space must map param names to dimensions, but got {type(space).__name__}.",
            "Give the params as a mapping, e.g. {'lr': FloatRange(1e-4, 1e-1, log=True)}.",
        )
    for name, dim in space.items():
        if not isinstance(name, str) or not name:
            raise SpecError(
                f"Param names must be non-empty strings, but got {name!r}.",
                "Rename the param.",
            )
        if isinstance(dim, Fixed):
            continue
        if isinstance(dim, Choice):
            if len(dim.values) == 0:
                raise SpecError(
                    f"Param '{name}' is a choice with no values.",
                    "List at least one value.",
                )
        elif isinstance(dim, (FloatRange, IntRange)):
            problems = range_problems(dim)
            if problems:
                raise _range_error(name, dim, problems[0])
        else:
            raise SpecError(
                f"Param '{name}' has an unknown dimension type {type(dim).__name__}.",
                "Use Fixed, Choice, FloatRange or IntRange.",
            )


def _range_error(name: str, dim: FloatRange | IntRange, rule: SpaceRule) -> SpecError:
    p = f"Param '{name}'"
    if rule == "finite_bounds":
        return SpecError(
            f"{p} needs finite numeric bounds, but got low={dim.low!r}, high={dim.high!r}.",
            "Set low and high to finite numbers.",
        )
    if rule == "low_le_high":
        return SpecError(f"{p} must have low <= high, but got low={dim.low}, high={dim.high}.", "Swap the bounds.")
    if rule == "positive_step":
        return SpecError(
            f"{p} must have a step > 0, but got step={dim.step!r}.",
            "Set a positive step or remove it for a continuous param.",
        )
    if rule == "log_without_step":
        return SpecError(
            f"{p} cannot have both log=true and a step (step={dim.step}).",
            "Remove the step, or set log to false.",
        )
    if rule == "log_low_positive":
        return SpecError(
            f"{p} uses a log scale, which needs low > 0, but got low={dim.low}.",
            "Set low to a positive value, or set log to false.",
        )
    if rule == "int_values":
        return SpecError(
            f"{p} is an integer range, but got low={dim.low!r}, high={dim.high!r}, step={dim.step!r}.",
            "Use integers, or a FloatRange for a continuous param.",
        )
    if rule == "int_step_ge_1":
        return SpecError(f"{p} must have a step >= 1, but got step={dim.step}.", "Set step to 1 or more.")
    return SpecError(  # int_log_low_ge_1, int_log_step_1
        f"{p} uses a log scale, which needs low >= 1 and step 1, but got low={dim.low}, step={dim.step}.",
        "Raise low to 1 or more and drop the step, or set log to false.",
    )
