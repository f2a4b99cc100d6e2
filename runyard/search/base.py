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
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

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

    def propose(self, history: Sequence[RunRecord], n: int) -> list[Params]: ...

    def exhausted(self, history: Sequence[RunRecord]) -> bool: ...


class Pruner(Protocol):
    name: ClassVar[str]

    def decide(self, run: RunRecord, peers: Sequence[RunRecord]) -> Decision: ...
