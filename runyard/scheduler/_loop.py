"""The scheduler loop: one leader per database proposes, dispatches, follows and prunes runs.

Each pass (woken by events — a new experiment, a run's status change, new metrics
— and at least every ``tick_s``):

1. renews the leader lease (a row in ``locks``); a follower does nothing else;
2. proposes: each running experiment's search fills its free ``parallel`` slots
   with queued runs (proposals are a function of the stored history); a search
   that does not learn from results (grid, random) is queued a batch ahead;
3. dispatches queued runs in submission order when the experiment's ``parallel``
   and the backend's free resources allow: compare-and-set queued → starting,
   then ``backend.submit`` (so two servers never dispatch one run);
4. polls the engines for every followed job (one call per backend) and records
   the outcome of jobs whose runner could not report it; stops the jobs of runs
   canceled or pruned meanwhile;
5. prunes: runs with new values of the search metric are judged by the pruner;
   a stop decision marks the run ``pruned`` (the SDK's should_stop() turns true,
   and the runner stops the task after the grace period);
6. restarts failed runs per ``max_restarts`` (same id, attempt + 1);
7. marks experiments whose search is exhausted and whose runs all ended.

On start it reconciles: runs left starting/running by a previous server are
followed again (their job ids are in the store), or failed/restarted when gone.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

from runyard.backends.base import EngineStatus, Resources
from runyard.errors import InvalidState, RunyardError
from runyard.records.raw_states import NO_RECORD
from runyard.scheduler._dispatch import BackendPool, build_launch, engine_outcome, run_resources, spec_of
from runyard.search.base import RunRecord, RunState
from runyard.store import ACTIVE_STATUSES, Store

__all__ = ["Scheduler"]

log = logging.getLogger("runyard.scheduler")

LEASE = "scheduler"
_LOST_GRACE_S = 10.0  # a job the engine reports ended gets this long for its runner's own report
_COALESCE_S = 0.05  # after a wake-up, wait this long for more events before the pass
_FOLLOW_EVERY_S = 0.25  # engines are polled at most this often (runners report their runs' ends themselves)
_AHEAD_MIN, _AHEAD_FACTOR = 8, 2  # grid/random: queue max(8, 2 × parallel) proposals beyond parallel
# A backend that queues runs itself (the local agent: LocalBackend.can_queue) holds up to this many
# of an experiment's runs beyond its `parallel` (or `parallel` more, if larger); it starts at most
# `parallel` at once, and the next one the moment a slot frees, without a round trip through the
# server. Deep enough that short runs do not drain it between two passes (~60 ms apart when busy).
_QUEUE_AHEAD_MIN = 14


def _queue_cap(parallel: int) -> int:
    """How many runs of an experiment a backend that queues may hold (running and waiting)."""
    return parallel + max(_QUEUE_AHEAD_MIN, parallel)


class Scheduler:
    """Runs in a thread inside the server. ``wake()`` is cheap and thread-safe."""

    def __init__(self, store: Store, *, server_url: str, backends: BackendPool | None = None, tick_s: float = 1.0,
                 lease_ttl_s: float = 10.0, warm_backends: bool = False) -> None:
        self.store = store
        self.warm_backends = warm_backends
        self.server_url = server_url
        self.backends = backends or BackendPool()
        self.tick_s = tick_s
        self.lease_ttl_s = lease_ttl_s
        self.holder = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.is_leader = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._metrics_dirty: set[int] = set()
        self._prunable: dict[int, bool] = {}
        self._dirty_lock = threading.Lock()
        self._specs: dict[int, Any] = {}
        self._searches: dict[int, Any] = {}
        self._pruners: dict[int, Any] = {}
        self._ended_seen: dict[str, float] = {}
        self._reasons: dict[str, str] = {}  # engine job id -> the engine's reason last stored as the run's message
        self._reconciled = False
        self._renewed_at = 0.0
        self._followed_at = 0.0
        self._experiments_cache: list[dict[str, Any]] | None = None
        self._intermediate_cache: dict[tuple[int, str], tuple[int, dict[int, float]]] = {}
        self._params: dict[int, dict[int, dict[str, Any]]] = {}  # experiment id → run id → params (fixed once queued)
        self._light_history: dict[int, list[RunRecord]] = {}  # grid/random: the runs each experiment has
        self._experiment_of: dict[int, int] = {}  # run id → experiment id, for runs the pruner looked at

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="runyard-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        if self.is_leader:
            try:
                self.store.release_lease(LEASE, self.holder)
            except RunyardError:
                log.warning("could not release the scheduler lease")
            self._stop_idle_backends()
        self.backends.close()

    def wake(self) -> None:
        self._wake.set()

    def note_metrics(self, run_id: int) -> None:
        """New points for ``run_id``: wake the pruner, if the run's experiment stops runs early.

        Called on every metric batch (a request thread); runs started by hand and runs of
        experiments without early stopping cost one cached dictionary lookup.
        """
        prunable = self._prunable.get(run_id)
        if prunable is None:
            prunable = self._is_prunable(run_id)
            self._prunable[run_id] = prunable
        if not prunable:
            return
        with self._dirty_lock:
            self._metrics_dirty.add(run_id)
        self._wake.set()

    def _is_prunable(self, run_id: int) -> bool:
        run = self.store.find_run(run_id)
        if run is None or run.experiment_id is None:
            return False
        try:
            exp = self.store.get_experiment(run.experiment_id)
            return self._spec({"id": exp.id, "config": exp.config}).early_stopping is not None
        except RunyardError:
            return False

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - the loop must survive one bad pass; the error is logged
                log.exception("scheduler pass failed")
            passed_at = time.monotonic()
            if self._wake.wait(self.tick_s) and not self._stop.is_set():
                # Events come in bursts (runs of a sweep ending together, a run's reports): passes are
                # at least _COALESCE_S apart, so one pass handles a burst, where a pass each would read
                # the state again; the first event after a quiet spell is handled at once.
                self._stop.wait(max(0.0, _COALESCE_S - (time.monotonic() - passed_at)))

    # ----------------------------------------------------------------- pass
    def tick(self) -> None:
        # Renew the lease when a third of its life has passed, not on every pass (a write
        # transaction each time); it then stays ours for at least two thirds of lease_ttl_s.
        now = time.monotonic()
        if not self.is_leader or now - self._renewed_at > self.lease_ttl_s / 3:
            self.is_leader = self.store.acquire_lease(LEASE, self.holder, self.lease_ttl_s)
            if self.is_leader:
                self._renewed_at = now
        if not self.is_leader:
            self._reconciled = False
            return
        if not self._reconciled:
            self._reconciled = True
            log.info("scheduler leader %s: following runs left by earlier servers", self.holder)
            if self.warm_backends:
                threading.Thread(target=self._warm, name="runyard-warm-backends", daemon=True).start()
        for _ in range(3):  # a few rounds so a finished run's successor starts in the same wake-up
            # One read per round; each step then keeps `rows` and the experiments' counts up
            # to date with what it did itself (a run that another process ended meanwhile
            # still looks active: the next round sees it, which only ever delays).
            self._experiments_cache, rows = self.store.scheduler_state(ended_after=time.time() - 600)
            self._restart_failed(rows)  # restarted runs are queued in `rows`: dispatched below
            self._propose(rows)  # so are new proposals
            self._dispatch(rows)
            ended = self._follow(rows)
            ended |= self._prune()
            self._finish_experiments(rows)
            if not ended:  # only runs that ended here free slots for another round
                break

    def _stop_idle_backends(self) -> None:
        """An idle local agent stops with the server (one with jobs keeps running them)."""
        for name, backend in self.backends.built().items():
            try:
                stop = getattr(backend, "stop_if_idle", None)
                if stop is not None and stop():
                    log.info("backend %s: its idle agent stopped with the server", name)
            except Exception as e:  # noqa: BLE001 - stopping the server goes on; an idle agent exits by itself later
                log.warning("backend %s: could not stop its idle agent: %s", name, e)

    def _warm(self) -> None:
        """Start what the backends run on (the local agent) now, so the first run does not wait for it."""
        for name, entry in self.backends.entries().items():
            try:
                backend = self.backends.get(name)
                warm = getattr(backend, "warm", None)
                if warm is not None:
                    warm()
            except RunyardError as e:
                log.warning("backend %s (%s): warming up failed: %s", name, entry.type, e.message)
            except Exception:  # noqa: BLE001 - a warm-up is an optimisation: the first run starts it anyway
                log.exception("backend %s (%s): warming up failed", name, entry.type)

    # -------------------------------------------------------------- helpers
    def _spec(self, experiment: Mapping[str, Any]) -> Any:
        spec = self._specs.get(experiment["id"])
        if spec is None:
            config = experiment["config"]
            spec = spec_of(json.loads(config) if isinstance(config, str) else config)
            self._specs[experiment["id"]] = spec
        return spec

    def _running_experiments(self, *, fresh: bool = False) -> list[dict[str, Any]]:
        """Running experiments (light rows), read once per round; ``fresh`` re-reads (for steps that use run counts)."""
        if fresh or self._experiments_cache is None:
            self._experiments_cache = self.store.scheduler_experiments()
        return self._experiments_cache

    def _params_of(self, experiment_id: int, run_ids: list[int]) -> dict[int, dict[str, Any]]:
        """Params of runs of one experiment, cached: a queued run's params never change."""
        cache = self._params.setdefault(experiment_id, {})
        missing = [i for i in run_ids if i not in cache]
        if missing:
            cache.update(self.store.run_params(missing))
        return cache

    def _history(self, experiment_id: int, spec: Any, *, n_runs: int | None = None) -> list[RunRecord]:
        """The search's view of every run of the experiment, from one light query (params cached).

        ``n_runs``: the experiment's number of runs, for a search that does not learn from
        results (grid, random: only which runs exist matters): the history kept from the last
        call is reused while it has that many runs, instead of reading every run again.
        """
        if n_runs is not None:
            kept = self._light_history.get(experiment_id)
            if kept is not None and len(kept) == n_runs:
                return kept
        metric = spec.search.metric
        rows = self.store.experiment_runs_brief(experiment_id, metric)
        params = self._params_of(experiment_id, [row[0] for row in rows])
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
                intermediate = self._intermediate(run_id, metric, count)
            records.append(RunRecord(number=number, params=dict(params[run_id]), state=state, value=value,
                                     intermediate=intermediate))
        if n_runs is not None:
            self._light_history[experiment_id] = records
        return records

    def _intermediate(self, run_id: int, metric: str, count: int) -> dict[int, float]:
        cached = self._intermediate_cache.get((run_id, metric))
        if cached is not None and cached[0] == count:
            return cached[1]
        hist = self.store.metric_history(run_id, metric)
        values = {s: v for s, v in zip(hist["steps"], hist["values"]) if v is not None}
        self._intermediate_cache[(run_id, metric)] = (count, values)
        return values

    # -------------------------------------------------------------- propose
    def _propose(self, rows: list[dict[str, Any]]) -> bool:
        changed = False
        for exp in self._running_experiments():
            try:
                spec = self._spec(exp)
            except RunyardError as e:
                self.store.set_experiment_status(exp["id"], "failed", f"invalid config: {e.message}")
                continue
            counts = exp["counts"]
            active = sum(counts.get(s, 0) for s in ACTIVE_STATUSES)
            parallel = spec.search.parallel
            search = self._searches.get(exp["id"])
            if search is None:
                from runyard.search import make_search

                search = make_search(spec.search.algorithm, spec.space(), spec.search.max_runs,
                                     spec.search.seed if spec.search.seed is not None else 0, spec.search.mode)
                self._searches[exp["id"]] = search
            if getattr(search, "learns", True):
                free = parallel - active  # a proposal waits for every result it can learn from
            else:
                # Proposals that learn nothing from results are made ahead, a batch at a time: enough for
                # what a backend that queues may hold (_queue_cap) plus a batch, so a pass hands over
                # the next runs without a proposal (and its write) first.
                ahead = max(_AHEAD_MIN, _AHEAD_FACTOR * parallel)
                free = _queue_cap(parallel) + ahead - active - counts.get("queued", 0)
                if free < ahead // 2:
                    free = 0  # not yet: proposals go in batches
            if free <= 0:
                continue
            learns = getattr(search, "learns", True)
            history = self._history(exp["id"], spec, n_runs=None if learns else sum(counts.values()))
            if search.exhausted(history):
                continue
            proposals = search.propose(history, free)
            if not proposals:
                continue
            runs = [(len(history) + i, f"{exp['name']}-{len(history) + i}", params) for i, params in enumerate(proposals)]
            ids = self.store.create_queued_runs(exp["id"], exp["project_id"], runs, snapshot_id=exp.get("snapshot_id"),
                                                backend=spec.backend)
            cache = self._params.setdefault(exp["id"], {})
            for run_id, (_, _, params) in zip(ids, runs, strict=True):
                cache[run_id] = dict(params)
            if not learns:  # what the next proposal of this search needs: the runs that exist
                self._light_history[exp["id"]] = history + [
                    RunRecord(number=number, params=dict(params), state=RunState.ACTIVE)
                    for _, (number, _, params) in zip(ids, runs, strict=False)]
            exp["counts"]["queued"] = exp["counts"].get("queued", 0) + len(ids)
            for run_id, (number, _, _) in zip(ids, runs, strict=False):
                rows.append({"id": run_id, "experiment_id": exp["id"], "status": "queued", "attempt": 1,
                             "engine_job_id": None, "backend": spec.backend, "number": number, "created_at": time.time(),
                             "heartbeat_at": None, "ended_at": None})
            changed = True
        return changed

    # ------------------------------------------------------------- dispatch
    def _dispatch(self, rows: list[dict[str, Any]]) -> bool:
        queued = sorted((r for r in rows if r["status"] == "queued"), key=lambda r: r["id"])
        if not queued:
            return False
        changed = False
        # A run proposed for an experiment canceled after this round's read is never queued
        # (create_queued_runs checks the experiment in its transaction), and a queued run the
        # cancel reached fails the compare-and-set below.
        experiments = {e["id"]: e for e in self._running_experiments()}
        active_by_exp: dict[int, int] = {}
        for row in rows:
            if row["status"] in ("starting", "running"):
                active_by_exp[row["experiment_id"]] = active_by_exp.get(row["experiment_id"], 0) + 1
        free_by_backend: dict[str, Resources | None] = {}  # one capacity() per backend and pass
        blocked_backends: set[str] = set()
        picked: list[tuple[dict[str, Any], dict[str, Any], Any, Any, str, int | None]] = []
        for row in queued:
            exp = experiments.get(row["experiment_id"])
            if exp is None:
                changed |= self._cancel_left_behind(row)
                continue
            spec = self._spec(exp)
            parallel = spec.search.parallel
            active = active_by_exp.get(exp["id"], 0)
            if active >= _queue_cap(parallel):
                continue
            name = spec.backend
            if name in blocked_backends:
                continue
            try:
                backend = self.backends.get(name)
            except RunyardError as e:
                self._fail(row["id"], f"backend {name!r} unavailable: {e.message}")
                continue
            at_most = parallel if _queues(backend, spec) else None
            if at_most is None:
                if active >= parallel:
                    continue
                if name not in free_by_backend:
                    free_by_backend[name] = backend.capacity()
                free = free_by_backend[name]
                if free is not None:
                    need = run_resources(spec)
                    if not need.fits_in(free):
                        blocked_backends.add(name)  # keep submission order: nothing later jumps the queue
                        continue
                    free_by_backend[name] = free - need
            active_by_exp[exp["id"]] = active + 1
            picked.append((row, exp, spec, backend, name, at_most))
        if not picked:
            return changed
        # One transaction claims them all: queued → starting (a compare-and-set, so two servers
        # never start one run) and each attempt's run token (RUNYARD_TOKEN in its environment; it
        # reaches only that run, and is minted in local mode too, so runs keep reporting when the
        # server later gets users). The backends get them, and one more transaction records their
        # job ids; a crash in between leaves runs starting without a job id, which _follow queues
        # again under the same attempt.
        tokens = self.store.claim_runs([(row["id"], row["attempt"]) for row, *_ in picked])
        jobs: list[tuple[int, str, str]] = []
        for row, exp, spec, backend, name, at_most in picked:
            run_id = row["id"]
            token = tokens.get(run_id)
            if token is None:
                row["status"] = "unknown"  # canceled meanwhile, or another scheduler took it: next round's read tells
                continue
            row["status"] = "starting"
            counts = exp["counts"]
            counts["queued"] = counts.get("queued", 0) - 1
            counts["starting"] = counts.get("starting", 0) + 1
            params = self._params_of(exp["id"], [run_id])[run_id]
            launch = build_launch(spec, {"id": run_id, "attempt": row["attempt"], "params": params}, exp,
                                  server_url=self.server_url, token=token)
            try:
                job_id = backend.submit(launch) if at_most is None else backend.submit(launch, at_most=at_most)
            except RunyardError as e:
                self._fail(run_id, f"submit to backend {name!r} failed: {e.message}")
                continue
            jobs.append((run_id, job_id, name))
            row["engine_job_id"], row["backend"] = job_id, name
        self.store.set_engine_jobs(jobs)
        return True

    def _cancel_left_behind(self, row: Mapping[str, Any]) -> bool:
        """Cancel a queued run of an experiment that ended.

        A cancel of the experiment cancels the runs it finds, but a proposal made from the
        experiment as it was a moment before can still add queued runs after it; nothing
        would ever dispatch or end those.
        """
        exp = self.store.get_experiment(row["experiment_id"])
        if exp.status == "running":
            return False  # created after this pass listed the running experiments
        try:
            self.store.set_run_status(row["id"], "canceled", expect=["queued"],
                                      message=f"canceled: its experiment is {exp.status}", full=False)
        except InvalidState:
            return False
        return True

    def _fail(self, run_id: int, message: str) -> None:
        try:
            self.store.set_run_status(run_id, "failed", message=message, full=False)
        except InvalidState:
            pass

    # --------------------------------------------------------------- follow
    def _follow(self, all_rows: list[dict[str, Any]]) -> bool:
        """Poll engines for active runs (and runs canceled/failed in the last minutes).

        At most every ``_FOLLOW_EVERY_S``: runners report their own ends (and wake the
        scheduler), so polling on every wake-up (one per run that ends) would only cost.
        """
        now = time.time()
        if now - self._followed_at < _FOLLOW_EVERY_S:
            return False
        self._followed_at = now
        changed = False
        # Ended runs whose job may still run and must be stopped (a succeeded or pruned run's
        # job ends by itself: polling those, every pass for 10 minutes, would cost O(runs)).
        rows = [r for r in all_rows if r["status"] in ("starting", "running")
                or (r["status"] in ("canceled", "failed") and (r["ended_at"] or 0) > now - 600)]
        by_backend: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            if row["engine_job_id"] and row["backend"]:
                by_backend.setdefault(row["backend"], []).append(row)
            elif row["status"] == "starting" and not row["engine_job_id"] and now - row["created_at"] > 5:
                # Left between compare-and-set and storing the job id by a crashed server: the
                # submit may or may not have reached the engine. Queue it again under the same
                # attempt: the next submit reuses the attempt's job id (the local backend's submit
                # is idempotent per attempt), where a new attempt would start a second copy.
                try:
                    self.store.set_run_status(row["id"], "queued", expect=["starting"],
                                              message="requeued: the server stopped while submitting it", full=False)
                    changed = True
                except InvalidState:
                    pass
        for name, group in by_backend.items():
            try:
                backend = self.backends.get(name)
                states = backend.poll([r["engine_job_id"] for r in group])
            except RunyardError as e:
                log.warning("poll of backend %s failed: %s", name, e.message)
                continue
            for row in group:
                job = row["engine_job_id"]
                state = states.get(job)
                if state is None:
                    continue
                if row["status"] in ("canceled", "pruned", "failed", "succeeded"):
                    self._reasons.pop(job, None)
                    if not state.status.terminal and row["status"] in ("canceled", "failed"):
                        backend.cancel(job)  # the runner also stops it at its next heartbeat
                    continue
                outcome = engine_outcome(state)
                if outcome is None:
                    self._ended_seen.pop(job, None)
                    self._note_reason(row["id"], job, state.reason)
                    continue
                self._reasons.pop(job, None)
                if state.status is EngineStatus.LOST and state.raw == NO_RECORD and row["status"] == "starting":
                    # It waited in a local agent that died: it never started (a started job has a
                    # record, whose process a new agent adopts). Queue it again, same attempt.
                    try:
                        self.store.set_run_status(row["id"], "queued", expect=["starting"],
                                                  message="requeued: the local agent stopped before it started", full=False)
                        changed = True
                    except InvalidState:
                        pass
                    continue
                first = self._ended_seen.setdefault(job, now)
                if state.status is not EngineStatus.LOST and now - first < _LOST_GRACE_S:
                    continue  # give the runner time to report the status itself
                status, message = outcome
                try:
                    self.store.set_run_status(row["id"], status, message=message, exit_code=state.exit_code, full=False)
                    changed = True
                except InvalidState:
                    pass
                self._ended_seen.pop(job, None)
        return changed

    def _note_reason(self, run_id: int, job: str, reason: str) -> None:
        """Store the engine's reason ("pending: Resources") as the run's message when it changes.

        An empty reason (the job started) is not stored: the runner's running report clears
        the message (one write per run fewer).
        """
        if reason == self._reasons.get(job, ""):
            return
        if not reason:
            self._reasons.pop(job, None)
            return
        self._reasons[job] = reason
        try:
            self.store.set_run_message(run_id, reason, statuses=["starting", "running"])
        except RunyardError as e:
            log.warning("run %s: storing the engine's reason failed: %s", run_id, e.message)

    # ---------------------------------------------------------------- prune
    def _prune(self) -> bool:
        with self._dirty_lock:
            dirty, self._metrics_dirty = self._metrics_dirty, set()
        if not dirty:
            return False
        changed = False
        experiments = {e["id"]: e for e in self._running_experiments()}
        by_experiment: dict[int, list[tuple[int, int, str, float | None, int]]] = {}
        for run_id in dirty:
            experiment_id = self._experiment_of.get(run_id)
            if experiment_id is None:
                run = self.store.find_run(run_id)
                if run is None or run.experiment_id is None:
                    continue
                experiment_id = self._experiment_of[run_id] = run.experiment_id
            exp = experiments.get(experiment_id)
            if exp is None:
                continue
            spec = self._spec(exp)
            metric = spec.search.metric
            if spec.early_stopping is None or not metric:
                continue
            rows = by_experiment.get(exp["id"])
            if rows is None:  # one light read per experiment per pass, however many of its runs logged
                rows = by_experiment[exp["id"]] = self.store.experiment_runs_brief(exp["id"], metric)
            mine = next((r for r in rows if r[0] == run_id), None)
            if mine is None or mine[2] != "running" or not mine[4]:
                continue
            pruner = self._pruners.get(exp["id"])
            if pruner is None:
                from runyard.search.pruners import make_pruner

                settings = spec.early_stopping.model_dump(exclude={"algorithm", "grace_period_s"})
                pruner = make_pruner(spec.early_stopping.algorithm, settings, spec.search.mode)
                self._pruners[exp["id"]] = pruner
            params = self._params_of(exp["id"], [r[0] for r in rows])
            record = RunRecord(number=mine[1], params=dict(params[run_id]), state=RunState.ACTIVE,
                               intermediate=self._intermediate(run_id, metric, mine[4]))
            peers = []
            for peer_id, number, status, value, count in rows:
                if peer_id == run_id or not count:
                    continue
                state = {"succeeded": RunState.COMPLETE, "pruned": RunState.PRUNED}.get(
                    status, RunState.ACTIVE if status in ACTIVE_STATUSES else RunState.FAILED)
                peers.append(RunRecord(number=number, params=dict(params[peer_id]), state=state, value=value,
                                       intermediate=self._intermediate(peer_id, metric, count)))
            from runyard.search.base import Decision

            if pruner.decide(record, peers) is Decision.STOP:
                step = max(record.intermediate) if record.intermediate else 0
                try:
                    self.store.set_run_status(run_id, "pruned", expect=["running"],
                                              message=f"stopped early by the {spec.early_stopping.algorithm} rule at step {step}", full=False)
                    changed = True
                except InvalidState:
                    pass
        return changed

    # ------------------------------------------------------------- restarts
    def _restart_failed(self, rows: list[dict[str, Any]]) -> bool:
        # Every failed run of a running experiment, however long ago it failed: after a long
        # outage a due restart must still happen, or the experiment would never finish.
        experiments = {e["id"]: e for e in self._running_experiments()}
        failed = [r for r in rows if r["status"] == "failed" and r["experiment_id"] in experiments]
        if not failed:
            return False
        changed = False
        for row in failed:
            exp = experiments.get(row["experiment_id"])
            if exp is None:
                continue
            spec = self._spec(exp)
            if row["attempt"] > spec.max_restarts:
                continue
            if row["engine_job_id"]:
                # Wait until the engine confirms the old attempt is gone.
                try:
                    state = self.backends.get(row["backend"]).poll([row["engine_job_id"]]).get(row["engine_job_id"])
                except RunyardError:
                    continue
                if state is not None and not state.status.terminal:
                    continue
            try:
                self.store.restart_run(row["id"], f"restarted after a failure (attempt {row['attempt'] + 1} of "
                                                  f"{spec.max_restarts + 1})")
                changed = True
            except InvalidState:
                continue
            row.update(status="queued", attempt=row["attempt"] + 1, engine_job_id=None, ended_at=None)
            counts = exp["counts"]
            counts["failed"] = counts.get("failed", 0) - 1
            counts["queued"] = counts.get("queued", 0) + 1
        return changed

    # ---------------------------------------------------------- experiments
    def _finish_experiments(self, rows: list[dict[str, Any]]) -> None:
        for exp in self._running_experiments():
            counts = exp["counts"]
            if any(counts.get(s, 0) for s in ACTIVE_STATUSES):
                continue
            spec = self._specs.get(exp["id"])
            search = self._searches.get(exp["id"])
            if spec is None or search is None:
                continue
            if not search.exhausted(self._history(exp["id"], spec)):
                continue
            n_ok = counts.get("succeeded", 0)
            total = sum(counts.values())
            if spec.max_restarts and any(
                r["attempt"] <= spec.max_restarts for r in rows if r["status"] == "failed" and r["experiment_id"] == exp["id"]
            ):
                continue  # a restart is still due
            status = "succeeded" if n_ok or counts.get("pruned", 0) else "failed"
            self.store.set_experiment_status(exp["id"], status, f"{n_ok} of {total} runs succeeded")
            self._params.pop(exp["id"], None)
            self._light_history.pop(exp["id"], None)


def _queues(backend: Any, spec: Any) -> bool:
    """Whether ``backend`` holds ``spec``'s runs in a queue of its own until they can start
    (``submit(launch, at_most=parallel)``): the local backend, for single-task runs without GPUs."""
    return (getattr(backend, "can_queue", None) is not None and spec.distributed is None
            and not spec.resources.gpus)
