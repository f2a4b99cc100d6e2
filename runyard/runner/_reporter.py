"""Everything a task tells the server, delivered in order, surviving server outages.

One ``Reporter`` thread per task owns all HTTP traffic of that task, so the
thread that reads the task's pipes never waits on the network:

- Log lines are batched: a batch is sent 0.2 s after its first line or at 500
  lines, whichever comes first. After an outage, queued batches are merged into
  requests of up to 5,000 lines.
- A task's start report can be held back briefly (``hold``): a task that ends
  meanwhile sends its start and end in one request (one transaction).
- Status changes (task and run) and metric batches go through the same FIFO as
  the log batches, so the final status always lands after the last line (a
  follower that stops at the terminal status has seen every line).
- A heartbeat every second tells the task whether its run was canceled or
  pruned (``on_run_status``).
- ``ServerUnreachable`` keeps everything queued and retries with a backoff of
  0.2 s doubling to 2 s; a heartbeat that gets through ends the backoff at once.
  A run of the embedded local server (``RUNYARD_LOCAL_HOME`` set) first checks
  whether that server came back at another address, and reports there if so.
  A server killed and restarted therefore loses nothing, and stores nothing twice:
  log and metric batches carry idempotency keys (a log batch, once sent, keeps
  its lines and its id).
- ``InvalidState`` (the run already ended) drops that one update: it is expected
  when a canceled or pruned run's task reports. ``NotFound`` means the run was
  deleted: the update is dropped and ``on_run_status("deleted")`` stops the task.

Memory is bounded: beyond ``max_buffered_lines`` queued lines, new lines are
counted and dropped, and one ``system`` line says how many.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runyard.errors import Conflict, NotFound, RunyardError, ServerUnreachable

__all__ = ["Reporter"]

log = logging.getLogger("runyard.runner")

BATCH_MAX_AGE_S = 0.2
BATCH_MAX_LINES = 500
MERGED_MAX_LINES = 5000
BACKOFF_FIRST_S = 0.2
BACKOFF_MAX_S = 2.0  # a refused connection costs little; a restarted server hears from us soon
N_SERVER_ERROR_TRIES = 5


@dataclass
class _Op:
    kind: str  # logs | task | run | report (a task and a run op sent as one) | metrics
    payload: Any
    n_tries: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class Reporter:
    """Delivers one task's logs, statuses, metrics and heartbeats. Thread-safe producers.

    Args:
        client: the ``runyard.client.Client`` (thread-safe; may be shared by tasks).
        run_id: the run.
        task_label: the label log lines carry (``TaskSlot.label``).
        on_run_status: called from the reporter thread with the run status a
            heartbeat returned, or ``"deleted"`` when the run no longer exists.
        heartbeat_s / sample_s: periods; ``sampler`` (set later) is called every
            ``sample_s`` and returns ``{metric: value}``.
    """

    def __init__(self, client: Any, run_id: int, task_label: str, *, on_run_status: Callable[[str], None],
                 heartbeat_s: float = 1.0, sample_s: float = 5.0, max_buffered_lines: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._run_id = run_id
        self._label = task_label
        self._on_run_status = on_run_status
        self._heartbeat_s = heartbeat_s
        self._sample_s = sample_s
        self._max_lines = max_buffered_lines
        self._clock = clock
        self._cond = threading.Condition()
        self._lines: list[dict[str, Any]] = []
        self._metric_points: dict[str, list[Any]] = {"keys": [], "steps": [], "values": [], "timestamps": []}
        self._n_queued_points = 0  # output metric points queued, not yet delivered
        self._n_dropped_points = 0
        self._first_line_at = 0.0
        self._n_queued_lines = 0
        self._n_dropped = 0
        self._ops: collections.deque[_Op] = collections.deque()
        self._backoff_s = 0.0
        self._retry_at = 0.0
        self._hold_until = 0.0
        self._next_heartbeat = clock() + heartbeat_s
        self._heartbeats = True
        self._sampler: Callable[[], dict[str, float]] | None = None
        self._next_sample = 0.0
        self._sample_t0 = 0.0
        self._closing = False
        self._give_up = False
        self._thread = threading.Thread(target=self._loop, name=f"runyard-report-{run_id}-{task_label}", daemon=True)
        self.delivered = threading.Event()  # set when everything queued before finish() went out
        self.server_seen = False  # any request got an answer

    # ---------------------------------------------------------------- producers
    def start(self) -> None:
        self._thread.start()

    def line(self, stream: str, text: str, ts: float) -> None:
        """Queue one output line (called by the pipe reader; cheap)."""
        with self._cond:
            if self._n_queued_lines >= self._max_lines:
                self._n_dropped += 1
                return
            self._lines.append({"stream": stream, "text": text, "ts": ts})
            self._n_queued_lines += 1
            n = len(self._lines)
            if n == 1 and not self._metric_points["keys"]:
                self._first_line_at = self._clock()
                self._cond.notify()
            elif n >= BATCH_MAX_LINES:
                self._cond.notify()

    def log_metrics(self, keys: list[str], steps: list[int], values: list[float | None], timestamps: list[float]) -> None:
        """Queue metric points (one list entry per point), in order with the log lines before them."""
        if not keys:
            return
        with self._cond:
            self._seal_lines()
            self._ops.append(_Op("metrics", {"keys": keys, "steps": steps, "values": values, "timestamps": timestamps,
                                             "batch_id": uuid.uuid4().hex}))
            self._cond.notify()

    def task_status(self, **fields: Any) -> None:
        """Queue ``update_task(run, role, rank, **fields)``; ``fields`` holds role and rank."""
        self._push(_Op("task", fields))

    def run_status(self, status: str, message: str | None = None, exit_code: int | None = None, *,
                   heartbeat_if_refused: bool = False) -> None:
        """Queue ``update_run``. ``heartbeat_if_refused``: ask for the run's status at once if it is refused."""
        self._push(_Op("run", {"status": status, "message": message, "exit_code": exit_code},
                       extra={"heartbeat_if_refused": heartbeat_if_refused}))

    def metrics(self, values: dict[str, float | None], step: int, ts: float) -> None:
        """Queue one step of metrics read from the task's output (cheap): they go out with the log
        batch they were read with, right after its lines."""
        with self._cond:
            pending = self._metric_points
            if self._n_queued_points >= self._max_lines:  # the server is away: bounded like the lines
                self._n_dropped_points += len(values)
                return
            self._n_queued_points += len(values)
            if not pending["keys"] and not self._lines:
                self._first_line_at = self._clock()
                self._cond.notify()
            for key, value in values.items():
                pending["keys"].append(key)
                pending["steps"].append(step)
                pending["values"].append(value)
                pending["timestamps"].append(ts)
            if len(pending["keys"]) >= BATCH_MAX_LINES:
                self._cond.notify()

    def tags(self, tags: dict[str, str]) -> None:
        """Queue ``set_tags`` (the image a task ran in, say)."""
        self._push(_Op("tags", dict(tags)))

    def hold(self, seconds: float) -> None:
        """Send nothing for ``seconds`` (unless ``finish`` comes first): the start report of a
        task that ends meanwhile then goes out with its end report, as one request."""
        with self._cond:
            self._hold_until = self._clock() + seconds

    def set_sampler(self, sampler: Callable[[], dict[str, float]] | None) -> None:
        with self._cond:
            if sampler is not None and self._sampler is None:
                self._sample_t0 = self._clock()
                # The first call primes the sampler (CPU use is a difference between two calls).
                self._next_sample = self._sample_t0 + min(1.0, self._sample_s)
            self._sampler = sampler

    def stop_heartbeats(self) -> None:
        with self._cond:
            self._heartbeats = False

    def heartbeat_now(self) -> None:
        with self._cond:
            self._next_heartbeat = self._clock()
            self._cond.notify()

    def finish(self, timeout_s: float) -> bool:
        """Stop producing; deliver what is queued, retrying for up to ``timeout_s``.

        Returns:
            ``True`` when everything was delivered (or dropped as refused by the server),
            ``False`` when the server stayed unreachable for ``timeout_s``.
        """
        with self._cond:
            self._closing = True
            self._heartbeats = False
            self._sampler = None
            self._cond.notify()
        if self.delivered.wait(timeout_s):
            return True
        with self._cond:
            self._give_up = True
            n_lines = self._n_queued_lines
            n_ops = len(self._ops)
            self._cond.notify()
        self._thread.join(5.0)
        log.warning("run %s task %s: the server stayed unreachable for %.0f s after the task ended; "
                    "%d queued updates and %d log lines are lost", self._run_id, self._label, timeout_s, n_ops, n_lines)
        return False

    # ------------------------------------------------------------------ thread
    def _push(self, op: _Op) -> None:
        with self._cond:
            self._seal_lines()
            self._ops.append(op)
            self._cond.notify()

    def _seal_lines(self) -> None:
        """Turn pending lines into a log op (call with the lock held)."""
        if self._n_dropped:
            self._lines.append({"stream": "system", "text": f"[runyard] {self._n_dropped} output lines were dropped "
                                f"while the server was unreachable (more than {self._max_lines} lines queued)",
                                "ts": time.time()})
            self._n_queued_lines += 1
            self._n_dropped = 0
        # In batches the server takes (it refuses more than 10,000 lines in one request): a task that
        # prints faster than the reporter thread wakes must not lose a whole batch.
        for i in range(0, len(self._lines), MERGED_MAX_LINES):
            self._ops.append(_Op("logs", self._lines[i:i + MERGED_MAX_LINES]))
        self._lines = []
        if self._n_dropped_points:
            self._lines.append({"stream": "system", "text": f"[runyard] {self._n_dropped_points} metric points read "
                                f"from the output were dropped while the server was unreachable (more than "
                                f"{self._max_lines} queued)", "ts": time.time()})
            self._n_queued_lines += 1
            self._n_dropped_points = 0
            self._ops.append(_Op("logs", self._lines))
            self._lines = []
        points = self._metric_points
        if points["keys"]:
            for i in range(0, len(points["keys"]), MERGED_MAX_LINES):
                part = {k: v[i:i + MERGED_MAX_LINES] for k, v in points.items()}
                self._ops.append(_Op("metrics", {**part, "batch_id": uuid.uuid4().hex},
                                     extra={"points": len(part["keys"])}))
            self._metric_points = {"keys": [], "steps": [], "values": [], "timestamps": []}

    def _loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._give_up:
                        return
                    now = self._clock()
                    n_pending = len(self._lines) + len(self._metric_points["keys"])
                    if n_pending and (self._closing or n_pending >= BATCH_MAX_LINES
                                      or now - self._first_line_at >= BATCH_MAX_AGE_S):
                        self._seal_lines()
                    deliver = bool(self._ops) and now >= self._retry_at and (self._closing or now >= self._hold_until)
                    beat = self._heartbeats and now >= self._next_heartbeat
                    sample = self._sampler is not None and now >= self._next_sample
                    if deliver or beat or sample:
                        break
                    if self._closing and not self._ops and not n_pending:
                        self.delivered.set()
                        return
                    wake = [now + 3600.0]
                    if n_pending:
                        wake.append(self._first_line_at + BATCH_MAX_AGE_S)
                    if self._ops:
                        wake.append(max(self._retry_at, self._hold_until))
                    if self._heartbeats:
                        wake.append(self._next_heartbeat)
                    if self._sampler is not None:
                        wake.append(self._next_sample)
                    self._cond.wait(max(0.0, min(wake) - now))
                sampler = self._sampler if sample else None
                if sample:
                    self._next_sample = now + self._sample_s
                if beat:
                    self._next_heartbeat = now + self._heartbeat_s
            if sampler is not None:
                self._sample(sampler, now)
            if beat:
                self._heartbeat()
            if deliver or sampler is not None:
                self._deliver()

    def _sample(self, sampler: Callable[[], dict[str, float]], now: float) -> None:
        try:
            values = sampler()
        except Exception:
            log.exception("run %s: sampling system metrics failed", self._run_id)
            return
        if not values:
            return
        step = round(now - self._sample_t0)
        ts = time.time()
        keys = list(values)
        with self._cond:
            self._seal_lines()
            self._ops.append(_Op("metrics", {"keys": keys, "steps": [step] * len(keys), "values": [values[k] for k in keys],
                                             "timestamps": [ts] * len(keys), "batch_id": uuid.uuid4().hex}))

    def _heartbeat(self) -> None:
        try:
            status = self._client.heartbeat(self._run_id)
        except ServerUnreachable:
            self._follow_local_server()
            return
        except NotFound:
            self._on_run_status("deleted")
            return
        except RunyardError as e:
            log.warning("run %s: heartbeat failed: %s", self._run_id, e)
            return
        self.server_seen = True
        with self._cond:
            if self._retry_at > self._clock():  # the server is back: stop waiting
                self._retry_at = 0.0
                self._backoff_s = 0.0
        self._on_run_status(status)

    def _follow_local_server(self) -> None:
        """A run of the embedded local server: if it came back at another address, report there from now on."""
        from runyard._local import follow_local_server

        old = getattr(self._client, "base_url", None)
        url = follow_local_server(self._client)
        if url is not None:
            log.warning("run %s: the local server moved from %s to %s; reporting there", self._run_id, old, url)

    def _next_op(self) -> _Op | None:
        """The head of the queue, with consecutive log batches merged (lock held)."""
        if not self._ops:
            return None
        head = self._ops[0]
        if head.kind in ("task", "run") and self._pair_at(0):
            # The start (run running + task running) and the end (task + run status) each go
            # out as one request and one transaction: half the round trips per run. A start
            # still queued when the end arrives (see hold) goes out with it: one request.
            head.payload = self._merge_pair(0)
            head.kind = "report"
            if self._pair_at(1):
                then = self._merge_pair(1)
                head.payload["then"] = {"task": then["task"], "run": then["run"]}
            return head
        # A batch once sent keeps its lines and its id (the server may have stored it): only a batch
        # never sent takes in the ones queued behind it.
        if head.kind == "logs" and len(self._ops) > 1 and self._ops[1].kind == "logs" and "batch_id" not in head.extra:
            merged = list(head.payload)
            while len(self._ops) > 1 and self._ops[1].kind == "logs" and len(merged) + len(self._ops[1].payload) <= MERGED_MAX_LINES:
                merged += self._ops[1].payload
                del self._ops[1]
            head.payload = merged
        return head

    def _pair_at(self, i: int) -> bool:
        """Whether ops ``i`` and ``i + 1`` are a task and a run update never tried (lock held)."""
        if len(self._ops) < i + 2:
            return False
        a, b = self._ops[i], self._ops[i + 1]
        return {a.kind, b.kind} == {"task", "run"} and a.n_tries == 0 and b.n_tries == 0

    def _merge_pair(self, i: int) -> dict[str, Any]:
        """Ops ``i`` and ``i + 1`` as one report payload; op ``i`` keeps both extras, op ``i + 1`` goes (lock held)."""
        a, b = self._ops[i], self._ops[i + 1]
        del self._ops[i + 1]
        by_kind = {a.kind: a.payload, b.kind: b.payload}
        if i:
            del self._ops[i]
            self._ops[0].extra = {**b.extra, **a.extra, **self._ops[0].extra}
        else:
            a.extra = {**b.extra, **a.extra}
        return {"task": by_kind["task"], "run": by_kind["run"]}

    def _deliver(self) -> None:
        while True:
            with self._cond:
                if self._give_up:
                    return
                op = self._next_op()
                if op is None or self._clock() < self._retry_at:
                    return
            outcome = self._send(op)
            with self._cond:
                if outcome == "retry":
                    self._backoff_s = min(BACKOFF_MAX_S, max(BACKOFF_FIRST_S, self._backoff_s * 2))
                    self._retry_at = self._clock() + self._backoff_s
                    return
                self._backoff_s = 0.0
                if self._ops and self._ops[0] is op:
                    self._ops.popleft()
                if op.kind == "logs":
                    self._n_queued_lines -= len(op.payload)
                self._n_queued_points -= op.extra.get("points", 0)

    def _send(self, op: _Op) -> str:
        """``done`` (sent, or refused for good) or ``retry``."""
        client, run_id = self._client, self._run_id
        try:
            if op.kind == "logs":
                with self._cond:  # its id is fixed before the first try: a retry is stored once
                    batch_id = op.extra.setdefault("batch_id", uuid.uuid4().hex)
                client.append_logs(run_id, self._label, op.payload, batch_id=batch_id)
            elif op.kind == "task":
                fields = dict(op.payload)
                client.update_task(run_id, fields.pop("role"), fields.pop("rank"), **fields)
            elif op.kind == "run":
                client.update_run(run_id, **op.payload)
            elif op.kind == "report":
                answer = client.report(run_id, task=op.payload["task"], run=op.payload["run"], then=op.payload.get("then"))
                if not answer.get("applied", True) and op.extra.get("heartbeat_if_refused"):
                    self.heartbeat_now()  # the run ended meanwhile (canceled, pruned): learn it at once
            elif op.kind == "metrics":
                client.log_metrics(run_id, **op.payload)
            elif op.kind == "tags":
                client.set_tags(run_id, op.payload)
            else:  # pragma: no cover - ops are built in this module
                raise AssertionError(op.kind)
        except ServerUnreachable:
            self._follow_local_server()
            return "retry"
        except Conflict as e:  # InvalidState included: the run already ended; expected after cancel or prune
            self.server_seen = True
            log.debug("run %s: %s refused: %s", run_id, op.kind, e)
            if op.extra.get("heartbeat_if_refused"):
                self.heartbeat_now()
            return "done"
        except NotFound:
            self.server_seen = True
            self._on_run_status("deleted")
            return "done"
        except RunyardError as e:
            self.server_seen = True
            op.n_tries += 1
            if e.code == "internal" and op.n_tries < N_SERVER_ERROR_TRIES:
                log.warning("run %s: %s update failed (try %d of %d), retrying: %s", run_id, op.kind, op.n_tries,
                            N_SERVER_ERROR_TRIES, e)
                return "retry"
            log.error("run %s: %s update refused, dropped: %s", run_id, op.kind, e)
            return "done"
        except Exception:
            log.exception("run %s: %s update failed, dropped", run_id, op.kind)
            return "done"
        self.server_seen = True
        return "done"
