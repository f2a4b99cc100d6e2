"""What the scheduler keeps between passes: parsed specs, searches, pruners, params and each search's view of its runs."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

from runyard.errors import InvalidState
from runyard.scheduler._clock import Clock
from runyard.scheduler._dispatch import BackendPool, spec_of
from runyard.search.base import RunRecord, RunState
from runyard.store import ACTIVE_STATUSES, Store

__all__ = ["SchedulerState"]


class SchedulerState:
    """The store, the backends, the clock and the caches every step of a pass reads and updates."""

    def __init__(self, store: Store, backends: BackendPool, clock: Clock, *, server_url: str) -> None:
        self.store = store
        self.backends = backends
        self.clock = clock
        self.server_url = server_url
        self.specs: dict[int, Any] = {}
        self.searches: dict[int, Any] = {}
        self.pruners: dict[int, Any] = {}
        self.experiments_cache: list[dict[str, Any]] | None = None
        self.intermediate_cache: dict[tuple[int, str], tuple[int, dict[int, float]]] = {}
        self.params: dict[int, dict[int, dict[str, Any]]] = {}  # experiment id → run id → params (fixed once queued)
        self.light_history: dict[int, list[RunRecord]] = {}  # grid/random: the runs each experiment has
        # follow
        self.ended_seen: dict[str, float] = {}  # engine job id → when the engine first reported it ended
        self.reasons: dict[str, str] = {}  # engine job id -> the engine's reason last stored as the run's message
        self.followed_at = 0.0
        # prune (note_metrics runs in request threads: the dirty set is guarded)
        self.metrics_dirty: set[int] = set()
        self.dirty_lock = threading.Lock()
        self.prunable: dict[int, bool] = {}
        self.experiment_of: dict[int, int] = {}  # run id → experiment id, for runs the pruner looked at
        # missing metric (runyard.scheduler._missing_metric): ended runs counted at the last check, runs warned
        self.missing_metric_checked: dict[int, int] = {}
        self.missing_metric_runs: set[int] = set()

    def spec(self, experiment: Mapping[str, Any]) -> Any:
        """The experiment's validated spec, parsed once."""
        spec = self.specs.get(experiment["id"])
        if spec is None:
            config = experiment["config"]
            spec = spec_of(json.loads(config) if isinstance(config, str) else config)
            self.specs[experiment["id"]] = spec
        return spec

    def running_experiments(self, *, fresh: bool = False) -> list[dict[str, Any]]:
        """Running experiments (light rows), read once per round; ``fresh`` re-reads (for steps that use run counts)."""
        if fresh or self.experiments_cache is None:
            self.experiments_cache = self.store.scheduler_experiments()
        return self.experiments_cache

    def params_of(self, experiment_id: int, run_ids: list[int]) -> dict[int, dict[str, Any]]:
        """Params of runs of one experiment, cached: a queued run's params never change."""
        cache = self.params.setdefault(experiment_id, {})
        missing = [i for i in run_ids if i not in cache]
        if missing:
            cache.update(self.store.run_params(missing))
        return cache

    def history(self, experiment_id: int, spec: Any, *, n_runs: int | None = None) -> list[RunRecord]:
        """The search's view of every run of the experiment, from one light query (params cached).

        ``n_runs``: the experiment's number of runs, for a search that does not learn from
        results (grid, random: only which runs exist matters): the history kept from the last
        call is reused while it has that many runs, instead of reading every run again.
        """
        if n_runs is not None:
            kept = self.light_history.get(experiment_id)
            if kept is not None and len(kept) == n_runs:
                return kept
        metric = spec.search.metric
        rows = self.store.experiment_runs_brief(experiment_id, metric)
        params = self.params_of(experiment_id, [row[0] for row in rows])
        records = []
        for run_id, number, status, value, count in rows:
            if status in ACTIVE_STATUSES:
                state = RunState.ACTIVE
            elif status == "succeeded":
                state = RunState.COMPLETE
            elif status == "pruned":
                state = RunState.PRUNED
            else:
                state = RunState.FAILED
            if not metric:
                value = None
            if state is RunState.COMPLETE and metric and value is None:
                state = RunState.FAILED  # finished without reporting the metric: nothing to learn from
            intermediate: dict[int, float] = {}
            if state is RunState.PRUNED and metric and count:
                intermediate = self.intermediate(run_id, metric, count)
            records.append(RunRecord(number=number, params=dict(params[run_id]), state=state, value=value,
                                     intermediate=intermediate))
        if n_runs is not None:
            self.light_history[experiment_id] = records
        return records

    def intermediate(self, run_id: int, metric: str, count: int) -> dict[int, float]:
        """The run's values of ``metric`` by step, read again only when its count of points changed."""
        cached = self.intermediate_cache.get((run_id, metric))
        if cached is not None and cached[0] == count:
            return cached[1]
        hist = self.store.metric_history(run_id, metric)
        values = {s: v for s, v in zip(hist["steps"], hist["values"], strict=True) if v is not None}
        self.intermediate_cache[(run_id, metric)] = (count, values)
        return values

    def fail(self, run_id: int, message: str) -> None:
        """Mark the run failed, unless it already ended."""
        try:
            self.store.set_run_status(run_id, "failed", message=message, full=False)
        except InvalidState:
            pass

    def forget_experiment(self, experiment_id: int) -> None:
        """Drop what is kept of an experiment that ended (its params and history)."""
        self.params.pop(experiment_id, None)
        self.light_history.pop(experiment_id, None)
        self.missing_metric_checked.pop(experiment_id, None)
