"""The scheduler loop: one leader per database proposes, dispatches, follows and prunes runs.

Each pass (woken by events — a new experiment, a run's status change, new metrics
— and at least every ``tick_s``) renews the leader lease (``_lease``; a follower
does nothing else), then runs the steps, each in its own module, over one read
of the store:

1. ``_finish.restart_failed``: failed runs restart per ``max_restarts`` (same id, attempt + 1);
2. ``_propose``: each running experiment's search fills its free ``parallel`` slots;
3. ``_admit``: queued runs are claimed (queued → starting, a compare-and-set) and
   submitted while ``parallel`` and the backend's free resources allow;
4. ``_follow``: the engines are polled for every followed job; outcomes runners could
   not report are recorded, jobs of runs canceled meanwhile are stopped;
5. ``_prune``: runs with new values of the search metric are judged by the pruner;
6. ``_finish.finish_experiments``: experiments whose search is exhausted and whose runs all ended.

Besides, at most every 5 s, ad-hoc runs (started by ``runyard.init()``, outside any
experiment) whose process sent no heartbeat for ``RUNYARD_LOST_RUN_TIMEOUT_S`` (default
120 s) end ``failed`` with a message starting "lost". A new leader waits one timeout
before judging any, so runs get to heartbeat again after the server was down.

On becoming leader nothing special is needed to reconcile: runs left starting/running
by a previous server are in the store with their job ids, and ``_follow`` polls them.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid

from runyard import config
from runyard.errors import RunyardError
from runyard.scheduler import _hooks
from runyard.scheduler._admit import admit
from runyard.scheduler._clock import Clock, SystemClock
from runyard.scheduler._dispatch import BackendPool
from runyard.scheduler._finish import finish_experiments, restart_failed
from runyard.scheduler._follow import follow
from runyard.scheduler._lease import Lease
from runyard.scheduler._missing_metric import warn_missing_metrics
from runyard.scheduler._propose import propose
from runyard.scheduler._prune import is_prunable, prune
from runyard.scheduler._state import SchedulerState
from runyard.store import Store

__all__ = ["Scheduler"]

log = logging.getLogger("runyard.scheduler")

_COALESCE_S = 0.05  # after a wake-up, wait this long for more events before the pass
_ROUNDS = 3  # rounds per pass at most, so a finished run's successor starts in the same wake-up
_LOST_EVERY_S = 5.0  # ad-hoc runs are checked for lost heartbeats at most this often


class Scheduler:
    """Runs in a thread inside the server. ``wake()`` is cheap and thread-safe.

    Args:
        backends: the backends by name (default: the server's ``backends.yml``).
        clock: where time is read and waited on (default the machine's; tests pass a fake
            one and call ``tick()`` themselves).
    """

    def __init__(self, store: Store, *, server_url: str, backends: BackendPool | None = None, tick_s: float = 1.0,
                 lease_ttl_s: float = 10.0, warm_backends: bool = False, clock: Clock | None = None) -> None:
        self.clock = clock or SystemClock()
        self.store = store
        self.warm_backends = warm_backends
        self.server_url = server_url
        self.backends = backends or BackendPool(clock=self.clock.monotonic)
        self.tick_s = tick_s
        self.holder = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease = Lease(store, self.holder, lease_ttl_s, self.clock)
        self.state = SchedulerState(store, self.backends, self.clock, server_url=server_url)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reconciled = False
        self._leader_since = 0.0
        self._lost_checked_at = 0.0

    @property
    def is_leader(self) -> bool:
        return self.lease.held

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="runyard-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        if self.lease.held:
            self.lease.release()
            self._stop_idle_backends()
        self.backends.close()

    def wake(self) -> None:
        self._wake.set()

    def note_metrics(self, run_id: int) -> None:
        """New points for ``run_id``: wake the pruner, if the run's experiment stops runs early.

        Called on every metric batch (a request thread); runs started by hand and runs of
        experiments without early stopping cost one cached dictionary lookup.
        """
        state = self.state
        prunable = state.prunable.get(run_id)
        if prunable is None:
            prunable = is_prunable(state, run_id)
            state.prunable[run_id] = prunable
        if not prunable:
            return
        with state.dirty_lock:
            state.metrics_dirty.add(run_id)
        self._wake.set()

    def _run(self) -> None:
        clock = self.clock
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.tick()
            except Exception:
                log.exception("scheduler pass failed")
            passed_at = clock.monotonic()
            if clock.wait(self._wake, self.tick_s) and not self._stop.is_set():
                # Events come in bursts (runs of a sweep ending together, a run's reports): passes are
                # at least _COALESCE_S apart, so one pass handles a burst, where a pass each would read
                # the state again; the first event after a quiet spell is handled at once.
                clock.wait(self._stop, max(0.0, _COALESCE_S - (clock.monotonic() - passed_at)))

    # ----------------------------------------------------------------- pass
    def tick(self) -> None:
        """One pass: renew the lease, then (as leader) run the steps for up to ``_ROUNDS`` rounds."""
        if not self.lease.renew():
            self._reconciled = False
            return
        if not self._reconciled:
            self._reconciled = True
            self._leader_since = self.clock.time()
            log.info("scheduler leader %s: following runs left by earlier servers", self.holder)
            if self.warm_backends:
                threading.Thread(target=self._warm, name="runyard-warm-backends", daemon=True).start()
        state = self.state
        for _ in range(_ROUNDS):
            # One read per round; each step then keeps `rows` and the experiments' counts up
            # to date with what it did itself (a run that another process ended meanwhile
            # still looks active: the next round sees it, which only ever delays).
            state.experiments_cache, rows = self.store.scheduler_state(ended_after=self.clock.time() - 600)
            restart_failed(state, rows)  # restarted runs are queued in `rows`: dispatched below
            propose(state, rows)  # so are new proposals
            admit(state, rows)
            ended = follow(state, rows)
            ended |= prune(state)
            warn_missing_metrics(state)
            finish_experiments(state, rows)
            if not ended:  # only runs that ended here free slots for another round
                break
        self._fail_lost_runs()

    def _fail_lost_runs(self) -> None:
        """End ``failed`` the ad-hoc runs whose process stopped heartbeating (see the module's docs)."""
        now = self.clock.time()
        timeout_s = config.lost_run_timeout_s()
        if now - self._lost_checked_at < min(_LOST_EVERY_S, timeout_s / 4) or now - self._leader_since < timeout_s:
            return
        self._lost_checked_at = now
        message = (f"lost: its process sent no heartbeat for {timeout_s:g} s (RUNYARD_LOST_RUN_TIMEOUT_S); "
                   "it was killed or its machine went away")
        for run_id in self.store.fail_lost_runs(now - timeout_s, message):
            log.warning("run %s: %s", run_id, message)

    def _stop_idle_backends(self) -> None:
        """An idle local agent stops with the server (one with jobs keeps running them)."""
        for name, backend in self.backends.built().items():
            try:
                if _hooks.stop_if_idle(backend):
                    log.info("backend %s: its idle agent stopped with the server", name)
            except Exception as e:  # noqa: BLE001 - stopping the server goes on; an idle agent exits by itself later
                log.warning("backend %s: could not stop its idle agent: %s", name, e)

    def _warm(self) -> None:
        """Start what the backends run on (the local agent) now, so the first run does not wait for it."""
        for name, entry in self.backends.entries().items():
            try:
                _hooks.warm(self.backends.get(name))
            except RunyardError as e:
                log.warning("backend %s (%s): warming up failed: %s", name, entry.type, e.message)
            except Exception:
                log.exception("backend %s (%s): warming up failed", name, entry.type)
