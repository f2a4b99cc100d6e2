"""The background sender of one run: batches queued metric points and posts them, surviving outages.

Training code only appends ``(key, step, value, time)`` tuples to :attr:`Sender.queue`,
a deque whose ``append`` and ``popleft`` are atomic under the GIL, so the hot path takes
no lock. One daemon thread per run then:

- wakes every second, or at once when the queue crosses 1,000 points (``Run.log`` sets
  an Event only at the crossing, never on every call);
- cuts the queue into batches of at most 20,000 points, each with a uuid4 ``batch_id``
  that it keeps across retries, serialised once to the request body (JSON bytes are
  also ~4x smaller than the tuples they replace);
- posts the batches in order; on ServerUnreachable (refused, timed out) or a 5xx it
  keeps them and retries with exponential backoff, 0.5 s doubling to 10 s. A flush
  request (``finish()``, ``log_artifact()``) makes one attempt at once regardless;
- while the server is away, keeps at most ``cap_points`` points in memory (checked each
  second) and spills its oldest batches to the :class:`~runyard.spool.MetricSpool`
  beyond that; on reconnect the spool is replayed first, then memory;
- drops a batch the server rejects with a 4xx, reporting once per error code;
- once ``should_stop()`` was asked, refreshes the run's status every 2 s.

Thread safety: ``queue``, :meth:`wake`, :meth:`flush`, :meth:`close` and the ``status``
attributes may be used from any thread; everything else belongs to the sender thread.
"""

from __future__ import annotations

import threading
import time
import traceback
import uuid
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from runyard.errors import NotFound, RunyardError, ServerUnreachable, http_status
from runyard.sdk._report import Reporter
from runyard.spool import MetricSpool

if TYPE_CHECKING:
    from runyard.client import Client
    from runyard.spool import SpoolClient

__all__ = ["MAX_BATCH_POINTS", "REQUEST_TIMEOUT_S", "WAKE_POINTS", "Sender"]

INTERVAL_S = 1.0
WAKE_POINTS = 1_000
MAX_BATCH_POINTS = 20_000
BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 10.0
STATUS_EVERY_S = 2.0
REQUEST_TIMEOUT_S = 15.0

_JSON = {"Content-Type": "application/json"}
_SENT, _DROPPED, _RETRY = "sent", "dropped", "retry"


class _Batch(NamedTuple):
    batch_id: str
    n_points: int
    body: bytes


class Sender:
    """Moves one run's queued points to the server.

    Args:
        client: shared with the run's synchronous calls (the client is thread-safe).
        run_id: the run the points belong to.
        spool_dir: ``$RUNYARD_HOME/spool/<run_id>``.
        cap_points: most points held in memory before spilling to ``spool_dir``.
        owner: true for ad-hoc runs; their status is refreshed with a heartbeat (which
            also marks them alive), a launched run's with a read (its runner heartbeats).
        reporter: where problems are told, once each.
    """

    def __init__(self, client: Client | SpoolClient, run_id: int, *, spool_dir: Path, cap_points: int, owner: bool,
                 reporter: Reporter) -> None:
        self.queue: deque[tuple[str, int, float, float]] = deque()
        self.status: str | None = None
        self.status_wanted = False
        self._client = client
        self._run_id = run_id
        self._path = f"/runs/{run_id}/metrics"
        self._owner = owner
        self._reporter = reporter
        self._cap = cap_points
        self._spool = MetricSpool(spool_dir)
        self._pending: deque[_Batch] = deque()
        self._pending_points = 0
        self._wake = threading.Event()
        self._cond = threading.Condition()
        self._flush_req = 0
        self._flush_done = 0
        self._flush_tried = 0
        self._stopping = False
        self._healthy = True
        self._backoff_s = 0.0
        self._retry_at = 0.0
        self._next_tick = 0.0
        self._status_at = 0.0
        self._spill_broken = False
        self._thread = threading.Thread(target=self._main, name=f"runyard-sender-{run_id}", daemon=True)

    # ------------------------------------------------------------ any thread
    def start(self) -> None:
        self._thread.start()

    @property
    def healthy(self) -> bool:
        """False while the server is unreachable (between the first failure and the next success)."""
        return self._healthy

    def n_buffered(self) -> int:
        """Points not yet acknowledged by the server: queued, in memory and spooled (a snapshot)."""
        return len(self.queue) + self._pending_points + self._spool.n_points

    def wake(self) -> None:
        """Make the sender look at the queue now (called when it crosses WAKE_POINTS)."""
        self._wake.set()

    def flush(self, timeout_s: float) -> bool:
        """Wait until every point queued before this call reached the server; false on timeout."""
        if not self._thread.is_alive():
            return self.n_buffered() == 0
        with self._cond:
            self._flush_req += 1
            req = self._flush_req
        self._wake.set()
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._flush_done < req:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(min(left, 1.0))
        return True

    def close(self, timeout_s: float) -> bool:
        """Flush for up to ``timeout_s``, then stop the thread, spooling what could not be sent.

        Returns:
            True when every point reached the server.
        """
        ok = self.flush(timeout_s)
        self._stopping = True
        self._wake.set()
        self._thread.join(REQUEST_TIMEOUT_S + 5.0)
        if self._thread.is_alive():
            self._reporter.once("stuck", f"the metric sender of run {self._run_id} did not stop within "
                                         f"{REQUEST_TIMEOUT_S + 5.0:.0f} s; {self.n_buffered()} buffered points may be lost.")
        return ok

    # --------------------------------------------------------- sender thread
    def _main(self) -> None:
        try:
            adopted = self._spool.adopt()
        except OSError as e:
            adopted = 0
            self._reporter.once("adopt", f"cannot read the metric spool {self._spool.dir}: {e}.")
        if adopted:
            self._reporter.once("adopted", f"replaying {adopted} metric points of run {self._run_id} left in "
                                           f"{self._spool.dir} by an earlier process.")
        self._next_tick = time.monotonic() + INTERVAL_S
        while True:
            try:
                if self._turn():
                    return
            except Exception:  # noqa: BLE001  (a bug here must not kill the thread and strand the buffer)
                self._reporter.once("bug", "the metric sender hit an unexpected error and keeps going; "
                                           "please report it:\n" + traceback.format_exc())
                self._wake.wait(INTERVAL_S)
                self._wake.clear()

    def _turn(self) -> bool:
        """One pass of the loop; true when the thread should end."""
        if self._stopping:
            self._stop()
            return True
        now = time.monotonic()
        flush_req = self._flush_req
        if self._healthy:
            due = flush_req > self._flush_done or len(self.queue) >= WAKE_POINTS or now >= self._next_tick
            wait_s = self._next_tick - now
        else:
            # Away: compact the queue into full batches and bound memory every second, but
            # only post on the backoff schedule (or once per flush request).
            self._cut(full_only=True)
            self._limit_memory()
            due = now >= self._retry_at or flush_req > self._flush_tried
            wait_s = min(self._retry_at - now, INTERVAL_S)
        if not due:
            self._wake.wait(wait_s)
            self._wake.clear()
            return False
        self._flush_tried = flush_req
        self._next_tick = now + INTERVAL_S
        self._cut(full_only=False)
        if self._send_all():
            if flush_req > self._flush_done:
                with self._cond:
                    self._flush_done = flush_req
                    self._cond.notify_all()
            self._refresh_status(now)
        return False

    def _cut(self, *, full_only: bool) -> None:
        """Move queued points into serialised batches of at most MAX_BATCH_POINTS."""
        q = self.queue
        pop = q.popleft
        while True:
            n = len(q)
            if n == 0 or (full_only and n < MAX_BATCH_POINTS):
                return
            n = min(n, MAX_BATCH_POINTS)
            keys, steps, values, stamps = zip(*[pop() for _ in range(n)], strict=True)
            batch_id = uuid.uuid4().hex
            # orjson writes NaN and ±inf as null, which the API reads as NaN.
            body = orjson.dumps({"batch_id": batch_id, "keys": keys, "steps": steps, "values": values, "timestamps": stamps})
            self._pending.append(_Batch(batch_id, n, body))
            self._pending_points += n

    def _send_all(self) -> bool:
        """Post the spool, then the in-memory batches, oldest first; false at the first retryable failure."""
        while True:
            if self._stopping:
                return False  # close() gave up waiting: the last pass spools the rest
            self._limit_memory()  # a server slower than the training loop must not grow memory without bound
            if self._spool:
                try:
                    head = self._spool.head()
                except OSError as e:
                    self._reporter.once(("spool-read", type(e)), f"cannot read a spooled metric batch in {self._spool.dir} "
                                                                  f"({e}); it is skipped.")
                    self._spool.pop()
                    continue
                if head is None:
                    continue
                body, n = head
                from_spool = True
            elif self._pending:
                _, n, body = self._pending[0]
                from_spool = False
            else:
                return True
            outcome = self._post(body, n)
            if outcome is _RETRY:
                return False
            if from_spool:
                self._spool.pop()
            else:
                self._pending.popleft()
                self._pending_points -= n

    def _post(self, body: bytes, n: int) -> str:
        try:
            self._client.request("POST", self._path, content=body, headers=_JSON, timeout_s=REQUEST_TIMEOUT_S)
        except ServerUnreachable:
            self._failed(None)
            return _RETRY
        except RunyardError as e:
            if http_status(e) >= 500:
                self._failed(e)
                return _RETRY
            self._reporter.once(("rejected", e.code), f"the server rejected {n} metric points of run {self._run_id}, "
                                                      f"which were dropped: {e}")
            self._recovered()
            return _DROPPED
        self._recovered()
        return _SENT

    def _failed(self, error: RunyardError | None) -> None:
        if self._healthy:
            self._healthy = False
            self._backoff_s = BACKOFF_MIN_S
            self._reporter.forget("recovered")
            url = self._client.base_url
            if error is None:
                self._reporter.once("outage", f"server unreachable at {url}, buffering metrics (will retry)")
            else:
                self._reporter.once("outage", f"server at {url} failed ({error.message}), buffering metrics (will retry)")
        else:
            self._backoff_s = min(self._backoff_s * 2, BACKOFF_MAX_S)
        self._retry_at = time.monotonic() + self._backoff_s

    def _recovered(self) -> None:
        if not self._healthy:
            self._healthy = True
            self._reporter.forget("outage")
            self._reporter.once("recovered", f"server at {self._client.base_url} is reachable again; sending "
                                             f"{self.n_buffered()} buffered metric points.")

    def _limit_memory(self) -> None:
        if self._spill_broken or len(self.queue) + self._pending_points <= self._cap:
            return
        self._cut(full_only=False)
        if self._pending_points > self._cap:
            self._reporter.once("spill", f"more than {self._cap} metric points are waiting for the server "
                                         f"(RUNYARD_SDK_BUFFER_POINTS); spilling the oldest to {self._spool.dir}.")
        while self._pending_points > self._cap and self._spill_oldest():
            pass

    def _spill_oldest(self) -> bool:
        batch = self._pending[0]
        try:
            self._spool.write(batch.body, batch.n_points)
        except OSError as e:
            self._spill_broken = True
            self._reporter.once("spill-broken", f"cannot write the metric spool in {self._spool.dir} ({e}); "
                                                f"keeping {self.n_buffered()} points in memory.")
            return False
        self._pending.popleft()
        self._pending_points -= batch.n_points
        return True

    def _stop(self) -> None:
        """Last pass: whatever is still unsent goes to the spool for a later process of this run."""
        self._cut(full_only=False)
        while self._pending and self._spill_oldest():
            pass
        url = self._client.base_url
        if self._spool.n_points:
            self._reporter.once("left", (
                f"could not send {self._spool.n_points} metric points of run {self._run_id} to {url}; they are saved in "
                f"{self._spool.dir} and sent the next time a process attaches to the run, e.g. "
                f"`RUNYARD_SERVER={url} RUNYARD_RUN_ID={self._run_id} python -c 'import runyard; runyard.init(); runyard.finish()'`."))
        if self._pending_points:
            self._reporter.once("lost", f"{self._pending_points} metric points of run {self._run_id} could not be sent "
                                        f"to {url} nor saved, and are lost.")

    def _refresh_status(self, now: float) -> None:
        if not self.status_wanted or now - self._status_at < STATUS_EVERY_S:
            return
        self._status_at = now
        try:
            if self._owner:
                self.status = self._client.heartbeat(self._run_id)
            else:
                self.status = _status(self._client.get_run(self._run_id))
        except NotFound:
            self.status = "deleted"
            self._reporter.once("deleted", f"run {self._run_id} no longer exists on the server; should_stop() is now true.")
        except RunyardError:
            pass  # keep the last known status; outages are told by the metrics path


def _status(run: dict[str, Any]) -> str:
    return str(run.get("status"))
