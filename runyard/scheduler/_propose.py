"""Proposing: each running experiment's search fills its free ``parallel`` slots with queued runs."""

from __future__ import annotations

from typing import Any

from runyard.errors import RunyardError
from runyard.scheduler._admit import queue_cap
from runyard.scheduler._dispatch import backend_names
from runyard.scheduler._state import SchedulerState
from runyard.search.base import RunRecord, RunState
from runyard.store import ACTIVE_STATUSES

__all__ = ["propose"]

_AHEAD_MIN, _AHEAD_FACTOR = 8, 2  # grid/random: queue max(8, 2 × parallel) proposals beyond parallel


def propose(state: SchedulerState, rows: list[dict[str, Any]]) -> bool:
    """Queue the searches' next proposals; new runs are appended to ``rows`` (dispatched in the same round).

    Proposals are a function of the stored history; a search that does not learn from
    results (grid, random) is queued a batch ahead.
    """
    store = state.store
    changed = False
    for exp in state.running_experiments():
        try:
            spec = state.spec(exp)
        except RunyardError as e:
            store.set_experiment_status(exp["id"], "failed", f"invalid config: {e.message}")
            continue
        counts = exp["counts"]
        active = sum(counts.get(s, 0) for s in ACTIVE_STATUSES)
        parallel = spec.search.parallel
        search = state.searches.get(exp["id"])
        if search is None:
            from runyard.search import make_search

            search = make_search(spec.search.algorithm, spec.space(), spec.search.max_runs,
                                 spec.search.seed if spec.search.seed is not None else 0, spec.search.mode)
            state.searches[exp["id"]] = search
        if getattr(search, "learns", True):
            free = parallel - active  # a proposal waits for every result it can learn from
        else:
            # Proposals that learn nothing from results are made ahead, a batch at a time: enough for
            # what a backend that queues may hold (queue_cap) plus a batch, so a pass hands over
            # the next runs without a proposal (and its write) first.
            ahead = max(_AHEAD_MIN, _AHEAD_FACTOR * parallel)
            free = queue_cap(parallel) + ahead - active - counts.get("queued", 0)
            if free < ahead // 2:
                free = 0  # not yet: proposals go in batches
        if free <= 0:
            continue
        learns = getattr(search, "learns", True)
        history = state.history(exp["id"], spec, n_runs=None if learns else sum(counts.values()))
        if search.exhausted(history):
            continue
        proposals = search.propose(history, free)
        if not proposals:
            continue
        runs = [(len(history) + i, f"{exp['name']}-{len(history) + i}", params) for i, params in enumerate(proposals)]
        # One backend: the runs are queued for it. Several: a run's backend is recorded when it is dispatched.
        names = backend_names(spec)
        backend = names[0] if len(names) == 1 else None
        try:
            ids = store.create_queued_runs(exp["id"], exp["project_id"], runs, snapshot_id=exp.get("snapshot_id"),
                                           backend=backend, datasets=spec.datasets or None)
        except RunyardError as e:  # a dataset version it reads was deleted since submission: no run can read it
            if not spec.datasets:
                raise
            store.set_experiment_status(exp["id"], "failed", f"datasets: {e.message}")
            continue
        if not ids:
            continue  # the experiment ended since this round's read: nothing was queued
        cache = state.params.setdefault(exp["id"], {})
        for run_id, (_, _, params) in zip(ids, runs, strict=True):
            cache[run_id] = dict(params)
        if not learns:  # what the next proposal of this search needs: the runs that exist
            state.light_history[exp["id"]] = history + [
                RunRecord(number=number, params=dict(params), state=RunState.ACTIVE)
                for _, (number, _, params) in zip(ids, runs, strict=False)]
        exp["counts"]["queued"] = exp["counts"].get("queued", 0) + len(ids)
        now = state.clock.time()
        for run_id, (number, _, _) in zip(ids, runs, strict=False):
            rows.append({"id": run_id, "experiment_id": exp["id"], "status": "queued", "attempt": 1,
                         "engine_job_id": None, "backend": backend, "number": number, "created_at": now,
                         "heartbeat_at": None, "ended_at": None})
        changed = True
    return changed
