"""Pruning: a pruner's stop decision marks the run pruned; its runner stops the task after the grace period."""

from __future__ import annotations

import time

from sched_helpers import runs_of, step

from runyard.search.base import Decision


class _Pruner:
    """Stops the runs whose numbers it is given; records what it was asked."""

    def __init__(self, stop: set[int]) -> None:
        self.stop = stop
        self.asked: list[tuple[int, dict[int, float], int]] = []

    def decide(self, record, peers):
        self.asked.append((record.number, dict(record.intermediate), len(peers)))
        return Decision.STOP if record.number in self.stop else Decision.CONTINUE


def _log(store, run_id: int, values: list[float]) -> None:
    n = len(values)
    store.ingest_metrics(run_id, ["loss"] * n, list(range(n)), values, [time.time()] * n)


def _pruned_sweep(store, clock, fake, make_scheduler, submit):
    exp = submit([1, 2], search={"metric": "loss"}, early_stopping={"algorithm": "median"})
    sched = make_scheduler()
    step(sched, clock)
    runs = runs_of(store, exp)
    for run in runs:
        fake.start(run.id)
        store.set_run_status(run.id, "running")  # the runner's report
    pruner = _Pruner({runs[0].number})
    sched.state.pruners[exp] = pruner
    return exp, sched, runs, pruner


def test_a_stop_decision_prunes_the_run(store, clock, fake, make_scheduler, submit) -> None:
    exp, sched, (bad, good), pruner = _pruned_sweep(store, clock, fake, make_scheduler, submit)
    _log(store, bad.id, [9.0, 8.0])
    _log(store, good.id, [1.0])
    sched.note_metrics(bad.id)
    sched.note_metrics(good.id)
    step(sched, clock)
    assert sorted(pruner.asked) == [(bad.number, {0: 9.0, 1: 8.0}, 1), (good.number, {0: 1.0}, 1)]
    pruned = store.get_run(bad.id)
    assert pruned.status == "pruned"
    assert pruned.status_message == "stopped early by the median rule at step 1"
    assert store.get_run(good.id).status == "running"
    # The runner sees the pruned status at its next heartbeat and stops the task after the
    # grace period; the scheduler leaves the job to it (no cancel of a pruned run's job).
    step(sched, clock, 30.0)
    assert fake.canceled == []
    fake.finish(bad.id, 0)
    store.set_run_status(good.id, "succeeded")
    fake.finish(good.id, 0)
    step(sched, clock)
    assert store.get_experiment(exp).status == "succeeded"
    assert store.get_run(bad.id).status == "pruned"


def test_runs_without_new_metrics_are_not_judged(store, clock, fake, make_scheduler, submit) -> None:
    _, sched, (bad, _), pruner = _pruned_sweep(store, clock, fake, make_scheduler, submit)
    _log(store, bad.id, [9.0])
    step(sched, clock)  # no note_metrics: nothing to judge
    assert pruner.asked == [] and store.get_run(bad.id).status == "running"


def test_runs_of_experiments_without_early_stopping_are_not_noted(store, clock, fake, make_scheduler, submit) -> None:
    exp = submit([1], search={"metric": "loss"})
    sched = make_scheduler()
    step(sched, clock)
    (run,) = runs_of(store, exp)
    sched.note_metrics(run.id)
    assert sched.state.metrics_dirty == set()
