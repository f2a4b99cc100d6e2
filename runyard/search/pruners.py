"""Pruners: stop runs whose intermediate values are poor, judged from stored runs only.

Each decision builds a fresh in-memory Optuna study from the stored runs (see
:func:`runyard.search.optuna.prune_replayed`) and asks an Optuna pruner, so a
pruner holds no state: a restarted scheduler or a new leader decides exactly as
the old one would have.

Successive halving (``asha`` and each bracket of ``hyperband``) is the one
pruner Optuna makes stateful: when a run reaches a rung, Optuna writes the run's
value into a system attribute ``completed_rung_<k>``, and later decisions compare
against those attributes. We rebuild them from the intermediate values: a run's
value at rung ``k`` is its first reported value at a step >= the rung's
promotion step ``min_resource * reduction_factor ** (min_early_stopping_rate + k)``.
That is exactly what Optuna records when the pruner is asked at every reported
step, as the scheduler does. For the run being decided, only the rungs it passed
before its latest step are rebuilt, and Optuna evaluates the latest step itself.
"""

from __future__ import annotations

import abc
import binascii
import inspect
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import optuna

from runyard.errors import SpecError
from runyard.search.base import Decision, RunRecord, RunState
from runyard.search.optuna import clean_history, direction_of, prune_replayed

__all__ = [
    "PRUNERS",
    "AshaPruner",
    "BasePruner",
    "HyperbandPruner",
    "MedianPruner",
    "make_pruner",
]

logger = logging.getLogger(__name__)


class BasePruner(abc.ABC):
    """Shared part of every pruner: input cleaning and the CONTINUE/STOP mapping.

    Subclasses implement ``_stops(run, peers)`` over cleaned records.
    """

    name: ClassVar[str] = ""

    def __init__(self, mode: Literal["min", "max"]) -> None:
        direction_of(mode)  # validates
        self.mode = mode

    def decide(self, run: RunRecord, peers: Sequence[RunRecord]) -> Decision:
        """Decide whether an active run should stop, from its and its peers' values.

        Called by the scheduler each time the run reports a new intermediate
        value of the search metric. Pure and thread-safe: the result depends only
        on the arguments, which are not modified.

        Args:
            run: the run to decide on; only an active run with intermediate
                values can be stopped, any other gets ``CONTINUE``.
            peers: the other runs of the experiment, in any state. A record with
                the run's own number is skipped, so passing every run is fine.
                Non-finite values are dropped with a logged warning.

        Returns:
            ``Decision.STOP`` or ``Decision.CONTINUE``.
        """
        if run.state is not RunState.ACTIVE:
            logger.debug("Run #%d is %s, nothing to stop.", run.number, run.state.value)
            return Decision.CONTINUE
        (run,) = clean_history([run], context=f"{self.name} pruner's run")
        if not run.intermediate:
            return Decision.CONTINUE
        others = [p for p in peers if p.number != run.number]
        others = clean_history(others, context=f"{self.name} pruner's peers")
        return Decision.STOP if self._stops(run, others) else Decision.CONTINUE

    @abc.abstractmethod
    def _stops(self, run: RunRecord, peers: list[RunRecord]) -> bool:
        """True when ``run`` should stop given its cleaned ``peers``."""


class MedianPruner(BasePruner):
    """Stop a run whose best value so far is worse than the median of succeeded runs at that step.

    Args:
        n_startup_runs: decide nothing until this many runs succeeded.
        n_warmup_steps: decide nothing before this step.
        interval_steps: decide only every this many steps after the warm-up.
        mode: ``"min"`` or ``"max"``, the direction of the search metric.

    Raises:
        SpecError: for a setting out of range.

    Note:
        As in Optuna, only succeeded runs with a value at the exact same step
        count as peers; give every run the same step numbering (epochs).
    """

    name: ClassVar[str] = "median"

    def __init__(
        self,
        n_startup_runs: int = 5,
        n_warmup_steps: int = 0,
        interval_steps: int = 1,
        mode: Literal["min", "max"] = "min",
    ) -> None:
        super().__init__(mode)
        self.n_startup_runs = _check_int(self.name, "n_startup_runs", n_startup_runs, 0)
        self.n_warmup_steps = _check_int(self.name, "n_warmup_steps", n_warmup_steps, 0)
        self.interval_steps = _check_int(self.name, "interval_steps", interval_steps, 1)

    def _stops(self, run: RunRecord, peers: list[RunRecord]) -> bool:
        # Optuna's median reads only succeeded peers: replay nothing else.
        succeeded = [p for p in peers if p.state is RunState.COMPLETE]
        # Positional: Optuna names its first argument after its own word for runs.
        pruner = optuna.pruners.MedianPruner(
            self.n_startup_runs, self.n_warmup_steps, self.interval_steps
        )
        return prune_replayed(pruner, run, succeeded, self.mode)


class AshaPruner(BasePruner):
    """Asynchronous successive halving: at each rung keep the top 1/reduction_factor.

    Rung ``k`` is at step ``min_resource * reduction_factor ** (min_early_stopping_rate + k)``.
    A run reaching a rung continues only if its value there is in the best
    ``1 / reduction_factor`` of the values all runs had at that rung.

    Args:
        min_resource: the step of the first rung (with ``min_early_stopping_rate=0``).
        reduction_factor: how much smaller each rung's surviving share is (>= 2).
        min_early_stopping_rate: shifts the first rung to later steps.
        mode: ``"min"`` or ``"max"``, the direction of the search metric.

    Raises:
        SpecError: for a setting out of range.
    """

    name: ClassVar[str] = "asha"

    def __init__(
        self,
        min_resource: int = 1,
        reduction_factor: int = 3,
        min_early_stopping_rate: int = 0,
        mode: Literal["min", "max"] = "min",
    ) -> None:
        super().__init__(mode)
        self.min_resource = _check_int(self.name, "min_resource", min_resource, 1)
        self.reduction_factor = _check_int(self.name, "reduction_factor", reduction_factor, 2)
        self.min_early_stopping_rate = _check_int(
            self.name, "min_early_stopping_rate", min_early_stopping_rate, 0
        )

    def _stops(self, run: RunRecord, peers: list[RunRecord]) -> bool:
        return _successive_halving(
            run,
            peers,
            self.mode,
            self.min_resource,
            self.reduction_factor,
            self.min_early_stopping_rate,
        )


class HyperbandPruner(BasePruner):
    """Hyperband: successive halving in several brackets of different aggressiveness.

    Bracket ``b`` is successive halving with ``min_early_stopping_rate=b``: bracket
    0 judges runs from ``min_resource`` on, the last bracket lets runs reach
    ``max_resource``. A run's bracket is a pure function of its number (the same
    CRC-32 hash Optuna applies to its own run numbers, for a study named
    ``runyard``), and bracket sizes follow the Hyperband paper as in Optuna, so
    decisions are deterministic. A run is compared only with peers of its bracket.

    Args:
        min_resource: the step of the first rung of bracket 0.
        max_resource: the last step a full run reports (e.g. the number of epochs).
        reduction_factor: how much smaller each rung's surviving share is (>= 2).
        mode: ``"min"`` or ``"max"``, the direction of the search metric.

    Raises:
        SpecError: for a setting out of range.
    """

    name: ClassVar[str] = "hyperband"

    def __init__(
        self,
        min_resource: int = 1,
        max_resource: int | None = None,
        reduction_factor: int = 3,
        mode: Literal["min", "max"] = "min",
    ) -> None:
        super().__init__(mode)
        self.min_resource = _check_int(self.name, "min_resource", min_resource, 1)
        if max_resource is None:
            raise SpecError(
                "Pruner 'hyperband' needs max_resource: the last step a full run reports.",
                "Set max_resource to the number of steps (e.g. epochs) of a full run.",
            )
        self.max_resource = _check_int(self.name, "max_resource", max_resource, self.min_resource)
        self.reduction_factor = _check_int(self.name, "reduction_factor", reduction_factor, 2)
        # n_brackets = floor(log_rf(max / min)) + 1, in integers (float log misses exact powers).
        n_brackets, resource = 1, self.min_resource * self.reduction_factor
        while resource <= self.max_resource:
            n_brackets, resource = n_brackets + 1, resource * self.reduction_factor
        self.n_brackets = n_brackets
        # Budget of bracket b (s = n_brackets - 1 - b): ceil(n_brackets * rf**s / (s + 1)),
        # Algorithm 1 of https://www.jmlr.org/papers/volume18/16-558/16-558.pdf as in Optuna.
        self._budgets = [
            math.ceil(n_brackets * self.reduction_factor**s / (s + 1))
            for s in reversed(range(n_brackets))
        ]

    def bracket_of(self, number: int) -> int:
        """The bracket of run ``number`` (0 is the most aggressive)."""
        n = binascii.crc32(f"runyard_{number}".encode()) % sum(self._budgets)
        for bracket, budget in enumerate(self._budgets):
            n -= budget
            if n < 0:
                return bracket
        raise AssertionError("unreachable: n < sum of budgets")

    def _stops(self, run: RunRecord, peers: list[RunRecord]) -> bool:
        bracket = self.bracket_of(run.number)
        same = [p for p in peers if self.bracket_of(p.number) == bracket]
        return _successive_halving(
            run, same, self.mode, self.min_resource, self.reduction_factor, bracket
        )


def _successive_halving(
    run: RunRecord,
    peers: list[RunRecord],
    mode: str,
    min_resource: int,
    reduction_factor: int,
    min_early_stopping_rate: int,
) -> bool:
    def rungs(record: RunRecord, is_run: bool) -> dict[str, Any]:
        values = record.intermediate
        steps = sorted(values)
        if is_run:
            steps = steps[:-1]  # Optuna judges the latest step itself
        attrs: dict[str, Any] = {}
        rung = 0
        for step in steps:
            while step >= min_resource * reduction_factor ** (min_early_stopping_rate + rung):
                # Key written by optuna/pruners/_successive_halving.py (_completed_rung_key).
                attrs[f"completed_rung_{rung}"] = values[step]
                rung += 1
        return attrs

    pruner = optuna.pruners.SuccessiveHalvingPruner(
        min_resource=min_resource,
        reduction_factor=reduction_factor,
        min_early_stopping_rate=min_early_stopping_rate,
    )
    reporting = [p for p in peers if p.intermediate]  # a peer without values has no rungs
    return prune_replayed(pruner, run, reporting, mode, rungs)


def _check_int(pruner: str, setting: str, value: object, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise SpecError(
            f"Pruner '{pruner}' needs {setting} to be an integer >= {minimum}, "
            f"but got {setting}={value!r}.",
            f"Set {setting} to an integer of at least {minimum}.",
        )
    return value


PRUNERS: dict[str, type[BasePruner]] = {
    MedianPruner.name: MedianPruner,
    AshaPruner.name: AshaPruner,
    HyperbandPruner.name: HyperbandPruner,
}
"""Pruner name (the word used in runyard.yml) -> class."""


def make_pruner(
    algorithm: str,
    settings: Mapping[str, Any] | None = None,
    mode: Literal["min", "max"] = "min",
) -> BasePruner:
    """Build the pruner named ``algorithm`` with ``settings``.

    Args:
        algorithm: ``median``, ``asha`` or ``hyperband``.
        settings: keyword settings of that pruner (see each class); ``None`` for defaults.
        mode: ``"min"`` or ``"max"``, the direction of the search metric.

    Returns:
        The pruner.

    Raises:
        SpecError: for an unknown algorithm, an unknown or missing setting, or a
            value out of range; the message lists the valid names.
    """
    cls = PRUNERS.get(algorithm)
    if cls is None:
        raise SpecError(
            f"Unknown pruner {algorithm!r}. Known pruners: {', '.join(PRUNERS)}.",
            "Set the pruner's algorithm to one of those.",
        )
    settings = dict(settings or {})
    accepted = {
        name: param.default
        for name, param in inspect.signature(cls).parameters.items()
        if name != "mode"
    }
    unknown = sorted(set(settings) - set(accepted))
    if unknown:
        listing = ", ".join(
            f"{name} (" + ("required" if default is None else f"default {default}") + ")"
            for name, default in accepted.items()
        )
        raise SpecError(
            f"Unknown setting(s) {', '.join(map(repr, unknown))} for pruner '{algorithm}'. "
            f"Valid settings: {listing}.",
            "Remove or rename the setting.",
        )
    return cls(**settings, mode=mode)
