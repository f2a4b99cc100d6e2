"""Helpers of the scheduler unit tests: let time pass and run a pass, read an experiment's runs."""

from __future__ import annotations

from typing import Any

from runyard.scheduler import Scheduler
from runyard.store import Store
from runyard.testing import FakeClock

__all__ = ["runs_of", "step"]


def step(sched: Scheduler, clock: FakeClock, seconds: float = 1.0) -> None:
    """Let ``seconds`` pass, then one pass of ``sched``."""
    clock.advance(seconds)
    sched.tick()


def runs_of(store: Store, experiment_id: int) -> list[Any]:
    """The experiment's runs, by number."""
    return sorted((r for r in store.list_runs(experiment_id=experiment_id, limit=1000).items), key=lambda r: r.number)
