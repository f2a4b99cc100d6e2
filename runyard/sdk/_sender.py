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
- once ``should_stop()`` was asked, refreshes the run's status every 2 s; it also
  heartbeats every ``RUNYARD_SDK_HEARTBEAT_S`` (default 15 s) anyway, so the server can
  tell an ad-hoc run whose process vanished (it ends ``failed``, "lost");
- a run started while the server was away has no id yet: the sender creates it on the
  first contact (:class:`PendingRun`), then sends what was buffered or spooled;
- a run of the embedded local server (``local_home``) that finds its server gone reads
  the server's current address from ``server.json`` there before buffering.

Thread safety: ``queue``, :meth:`wake`, :meth:`flush`, :meth:`close` and the ``status``
attributes may be used from any thread; everything else belongs to the sender thread.
"""

from __future__ import annotations

import json
import os
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from runyard.client import _dumps
from runyard.errors import NotFound, RunyardError, ServerUnreachable, http_status
from runyard.sdk._report import Reporter
from runyard.spool import MetricSpool

if TYPE_CHECKING:
    from runyard.client import Client
    from runyard.spool import SpoolClient

__all__ = ["CREATE_FILE", "MAX_BATCH_POINTS", "REQUEST_TIMEOUT_S", "STATUS_FILE", "WAKE_POINTS", "PendingRun", "Sender",
           "heartbeat_every_s", "write_meta"]

INTERVAL_S = 1.0
WAKE_POINTS = 1_000
MAX_BATCH_POINTS = 20_000
BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 10.0
STATUS_EVERY_S = 2.0
REQUEST_TIMEOUT_S = 15.0
DEFAULT_HEARTBEAT_S = 15.0
# Beside the metric batches of a spool directory (MetricSpool only reads *.json files):
CREATE_FILE = "create.meta"  # a run started while the server was away: how to create it, then its id
STATUS_FILE = "status.meta"  # an ad-hoc run's final status the server did not take

_JSON = {"Content-Type": "application/json"}
_SENT, _DROPPED, _RETRY = "sent", "dropped", "retry"


class _Batch(NamedTuple):
    batch_id: str
    n_points: int
    body: bytes


def heartbeat_every_s() -> float:
    """``RUNYARD_SDK_HEARTBEAT_S`` (default 15 s): how often an ad-hoc run tells the server it is alive."""
    try:
        value = float(os.environ.get("RUNYARD_SDK_HEARTBEAT_S") or DEFAULT_HEARTBEAT_S)
    except ValueError:
        return DEFAULT_HEARTBEAT_S
    return value if value > 0 else DEFAULT_HEARTBEAT_S


def write_meta(path: Path, data: dict[str, Any]) -> None:
    """Write a spool directory's small JSON file atomically (readers see the old or the new content)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


class PendingRun:
    """An ad-hoc run that does not exist on the server yet: what creating it takes, kept in ``create.meta``.

    Args:
        spool_dir: ``$RUNYARD_HOME/spool/<local_id>``.
        local_id: ``local-<hex>``, the run's name until the server gives it an id.
        project, name, params, tags: as given to ``runyard.init()`` (params and tags logged
            meanwhile are added).
        on_created: called (on the sender thread) with the server's record once it exists.
    """

    def __init__(self, spool_dir: Path, local_id: str, project: str, name: str, params: dict[str, Any],
                 tags: dict[str, str], on_created: Callable[[dict[str, Any]], None]) -> None:
        self.path = spool_dir / CREATE_FILE
        self.local_id = local_id
        self.data: dict[str, Any] = {"local_id": local_id, "project": project, "name": name, "params": dict(params),
                                     "tags": dict(tags), "pid": os.getpid(), "created_at": time.time(), "run_id": None}
        self.on_created = on_created
        self._lock = threading.Lock()
        self.save()

    def save(self) -> None:
        with self._lock:
            write_meta(self.path, self.data)

    def add(self, *, params: dict[str, Any] | None = None, tags: dict[str, str] | None = None) -> None:
        """Params or tags logged before the run exists: created with it."""
        with self._lock:
            self.data["params"].update(params or {})
            self.data["tags"].update(tags or {})
        self.save()


class Sender:
    """Moves one run's queued points to the server.

    Args:
        client: shared with the run's synchronous calls (the client is thread-safe).
        run_id: the run the points belong to.
        spool_dir: ``$RUNYARD_HOME/spool/<run_id>``.
        cap_points: most points held in memory before spilling to ``spool_dir``.
        owner: true for ad-hoc runs; their status is refreshed with a heartbeat (which
            also marks them alive), a launched run's with a read between its heartbeats.
        reporter: where problems are told, once each.
        pending: the run to create first (``run_id`` is None until then).
        local_home: the embedded server's home, whose ``server.json`` says where it is now.
    """

    def __init__(self, client: Client | SpoolClient, run_id: int | None, *, spool_dir: Path, cap_points: int, owner: bool,
                 reporter: Reporter, pending: PendingRun | None = None, local_home: str | None = None) -> None:
        self.queue: deque[tuple[str, int, float, float]] = deque()
        self.status: str | None = None
        self.status_wanted = False
        self._client = client
        self._run_id = run_id
        self._pending_run = pending
        self._local_home = local_home
        self._heartbeat_s = heartbeat_every_s()
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
        self._beat_at = -1e9  # the first pass heartbeats
        self._spill_broken = False
        name = run_id if pending is None else pending.local_id
        self._thread = threading.Thread(target=self._main, name=f"runyard-sender-{name}", daemon=True)

    # ------------------------------------------------------------ any thread
    def start(self) -> None:
        self._thread.start()

    @property
    def run_id(self) -> int | None:
        """The run's id on the server; None while a run started with the server away was not created yet."""
        return self._run_id

    @property
    def spool_dir(self) -> Path:
        return self._spool.dir

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
            body = _dumps({"batch_id": batch_id, "keys": keys, "steps": steps, "values": values, "timestamps": stamps})
            self._pending.append(_Batch(batch_id, n, body))
            self._pending_points += n

    def _send_all(self) -> bool:
        """Post the spool, then the in-memory batches, oldest first; false at the first retryable failure."""
        if self._run_id is None and not self._create():
            return False
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

    def _create(self) -> bool:
        """Create the pending run on the server; false (retry later) while it cannot be."""
        pending = self._pending_run
        assert pending is not None
        data = pending.data
        try:
            record = self._client.create_run(data["project"], name=data["name"], params=data["params"],  # type: ignore[union-attr]
                                             tags=data["tags"])
        except ServerUnreachable:
            if self._relocated():
                return self._create()
            self._failed(None)
            return False
        except RunyardError as e:
            self._failed(e)
            if http_status(e) < 500:
                self._reporter.once(("create", e.code), f"the server refused to create run {pending.local_id}: {e}. Its "
                                                        f"metrics stay in {self._spool.dir}.")
            return False
        self._run_id = int(record["id"])
        data["run_id"] = self._run_id
        try:
            pending.save()
        except OSError as e:
            self._reporter.once("create-save", f"cannot record the id of run {pending.local_id} in {pending.path}: {e}.")
        pending.on_created(record)
        self._recovered()
        return True

    def _post(self, body: bytes, n: int) -> str:
        try:
            self._client.request("POST", f"/runs/{self._run_id}/metrics", content=body, headers=_JSON,
                                 timeout_s=REQUEST_TIMEOUT_S)
        except ServerUnreachable:
            if self._relocated():
                return self._post(body, n)
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

    def _relocated(self) -> bool:
        """Point the client at the embedded server's current address if it moved; true when it did."""
        if self._local_home is None:
            return False
        from runyard._local import follow_local_server

        old = self._client.base_url
        url = follow_local_server(self._client, self._local_home)
        if url is None:
            return False
        self._reporter.once(("moved", url), f"the local server moved from {old} to {url}; sending there.")
        return True

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
        name = self._run_id if self._run_id is not None else self._pending_run.local_id  # type: ignore[union-attr]
        if self._spool.n_points:
            self._reporter.once("left", (
                f"could not send {self._spool.n_points} metric points of run {name} to {url}; they are saved in "
                f"{self._spool.dir}: send them with `runyard sync` once the server is back (a later process of "
                f"the run sends them too)."))
        if self._pending_points:
            self._reporter.once("lost", f"{self._pending_points} metric points of run {name} could not be sent "
                                        f"to {url} nor saved, and are lost.")

    def _refresh_status(self, now: float) -> None:
        """Heartbeat every ``heartbeat_every_s()``, and read the status every 2 s once should_stop() was asked.

        Every process heartbeats, launched or not: a run attached by hand (``RUNYARD_RUN_ID``
        of a run made through the API) has no runner to heartbeat for it.
        """
        if self._run_id is None:
            return
        beat = now - self._beat_at >= self._heartbeat_s
        read = self.status_wanted and now - self._status_at >= STATUS_EVERY_S
        if not (beat or read):
            return
        self._status_at = now
        try:
            if beat or self._owner:
                self._beat_at = now
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
