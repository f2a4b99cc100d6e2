"""The local agent: one long-lived process that hosts the task runners of the local backend.

Why an agent (a departure from DESIGN.md's "the backend starts ``runyard task
exec`` per task"): dispatch speed and crash safety. A fresh interpreter per task
pays Python's start-up and Runyard's imports for every run (~20 ms + imports on
one core, per PERF.md), and a runner that is a child of the server dies or is
orphaned with it. The agent pays the imports once, keeps one HTTP client (with
its keep-alive connections) for all tasks, and lives in its own session, so
SIGKILLing the server leaves every task running and reporting. The code path
inside is the same :class:`~runyard.runner._task.TaskExecution` that
``python -m runyard.runner exec`` runs in the foreground for the SSH and Slurm
backends, so logs, metrics and statuses behave identically.

Files, all under ``$RUNYARD_HOME/agent/``:

- ``agent.json``: ``{"pid", "socket", "started_at", "version"}`` of the running agent.
- ``agent.sock``: the Unix socket (a path under the temp dir when this one would
  exceed the 107-byte limit of ``sun_path``; ``agent.json`` names the one in use).
- ``agent.lock``: held (``flock``) by the running agent for its whole life; a lock
  that can be taken means no agent runs, whatever ``agent.json`` says, and
  recycled pids never fool it. ``start.lock`` serialises starting one.
- ``jobs/<job_id>.json``: each job's last state (status, pid and its start time,
  exit code, reason, resources, GPUs). A restarted agent answers from these: a
  terminal record gives the final state; a running record whose process still
  lives is an orphan (RUNNING, cancellable, holding its resources, but its output
  is no longer collected); one whose process is gone is LOST.
- ``work/<job_id>/<task>/``: the task's working directory (snapshot materialised here).
  Removed when an agent starts, once the job ended over 7 days ago (its record is gone).
- ``agent.log``: the agent's own log.

Protocol: JSON lines over the socket, one request and one answer per line, every
answer ``{"ok": true, ...}`` or ``{"ok": false, "code", "message", "hint"}``.

- ``{"op": "ping"}`` → ``pid``, ``version``, ``n_active``.
- ``{"op": "submit", "job_id", "launch", "gpu_inventory"}`` → ``gpus`` (the
  indices assigned, one task per GPU at a time), ``existing`` (the id was known:
  submitting is idempotent). With ``"queue": {"group", "at_most", "cpus",
  "memory_mb"}`` (single-task jobs without GPUs) the job waits in the agent,
  PENDING, until fewer than ``at_most`` jobs of its ``group`` (an experiment)
  run and its CPUs and memory fit in ``cpus``/``memory_mb`` (the machine's),
  and starts the moment they do, in submission order: the next run of a sweep
  starts when a slot frees, without a round trip to the server. Queued jobs
  hold their resources in ``usage`` from submission on. A queued job lives
  only in the agent's memory: a new agent reports it LOST with
  raw state ``no-record`` (``NO_RECORD``), and the scheduler queues its run again.
- ``{"op": "poll", "job_ids", "wait_s"}`` → ``states`` ``{id: {status, exit_code,
  reason, raw}}``; with ``wait_s`` > 0 it answers as soon as one listed job is
  terminal, or after ``wait_s`` (a scheduler can block on it instead of sleeping).
- ``{"op": "cancel", "job_id"}``: SIGTERM the task's group, SIGKILL after its
  grace period; idempotent.
- ``{"op": "usage"}`` → ``cpus``, ``memory_mb``, ``gpus``: what active jobs hold.
- ``{"op": "shutdown"}``: stop like SIGTERM does. With ``"if_idle": true`` only when
  no job is active (the server's stop asks this way) → ``stopping``.

A job's state turns terminal once its task's final reports reached the server,
so a scheduler that sees a terminal state also finds the run's final status
stored; when the server cannot be reached, it turns terminal 10 s after the exit
anyway (the runner keeps retrying the reports for 15 minutes). Its resources are
free as soon as its processes ended.

SIGTERM stops the agent: no new jobs, every running task is stopped like a
cancel (its run fails with "the local agent stopped"), then it exits. An agent
without jobs and connections exits by itself after ``idle_exit_s``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runyard.backends.base import EngineStatus, Resources
from runyard.errors import BackendError, InvalidInput, RunyardError, SubmitError
from runyard.records.raw_states import NO_RECORD

__all__ = ["Agent", "AgentClient", "agent_dir", "stop_agent"]

log = logging.getLogger("runyard.runner")

PROTOCOL = 1
START_TIMEOUT_S = 30.0
RECORD_MAX_AGE_S = 7 * 24 * 3600
EVICT_AFTER_S = 600.0  # terminal jobs leave memory after this; poll then reads their record
REPORT_WAIT_S = 10.0  # a job whose final reports are not through this long after its exit is terminal anyway
TICK_S = 0.5
_JOB_ID = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,127}$")
_SUN_PATH_MAX = 107

try:
    import orjson

    def _dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)

    _loads = orjson.loads
except ImportError:  # pragma: no cover
    import json

    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj).encode()

    _loads = json.loads


def _version() -> str:
    from runyard import __version__

    return __version__


def code_fingerprint() -> str:
    """Runyard's version plus the size and mtime of the code an agent runs.

    An agent started before an upgrade (or, in development, an edit) would keep
    running old code; the backend compares this with the agent's and replaces an
    idle agent whose code differs.
    """
    import runyard

    root = Path(runyard.__file__).parent
    h = hashlib.sha1(_version().encode())
    for rel in ("client.py", "errors.py", "backends/base.py", "runner/_agent.py", "runner/_reporter.py",
                "runner/_sysmetrics.py", "runner/_task.py", "runner/_wire.py", "runner/_group.py",
                "launch/_plan.py", "launch/_frameworks.py"):
        try:
            st = (root / rel).stat()
        except OSError:
            continue
        h.update(f"{rel}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------- paths
def agent_dir(home: Path | None = None) -> Path:
    """``$RUNYARD_HOME/agent`` (created)."""
    if home is None:
        from runyard import config

        home = config.home()
    path = Path(home) / "agent"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _socket_path(directory: Path) -> str:
    path = str(directory / "agent.sock")
    if len(path.encode()) <= _SUN_PATH_MAX:
        return path
    digest = hashlib.sha1(str(directory.resolve()).encode()).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), f"runyard-agent-{os.getuid()}-{digest}.sock")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = _loads(path.read_bytes())
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(_dumps(data))
    os.replace(tmp, path)  # atomic: a reader sees the old record or the new one


def _agent_alive(directory: Path) -> bool:
    """Whether an agent holds ``agent.lock`` (the only liveness test that survives pid reuse)."""
    try:
        fd = os.open(directory / "agent.lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases a lock we took
    return False


# ---------------------------------------------------------------------- process identity
_BOOT_TIME: list[float] = []


def _proc_start_time(pid: int) -> float | None:
    """When ``pid`` started, as ``psutil.Process(pid).create_time()`` gives it (``_same_process``
    compares the two), from one read of ``/proc/<pid>/stat`` (the boot time is read once)."""
    import psutil

    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rpartition(b")")[2].split()
        ticks = int(fields[19])  # field 22, starttime, in clock ticks since boot
    except (OSError, IndexError, ValueError):
        try:
            return psutil.Process(pid).create_time()
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            return None
    if not _BOOT_TIME:
        _BOOT_TIME.append(psutil.boot_time())
    return ticks / os.sysconf("SC_CLK_TCK") + _BOOT_TIME[0]


def _same_process(pid: int | None, started: float | None) -> bool:
    """``pid`` still names the process that started at ``started`` (and is not a zombie)."""
    if not pid:
        return False
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return started is None or abs(proc.create_time() - started) < 0.05
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


# ======================================================================= agent
class _Job:
    """One job in the agent's memory. Fields are guarded by the agent's condition."""

    def __init__(self, job_id: str, run_id: int, attempt: int, resources: Resources, gpus: list[int],
                 grace_period_s: float) -> None:
        self.job_id = job_id
        self.run_id = run_id
        self.attempt = attempt
        self.resources = resources
        self.gpus = gpus
        self.grace_period_s = grace_period_s
        self.status = EngineStatus.PENDING
        self.exit_code: int | None = None
        self.reason = ""
        self.holding = True  # holds its resources until its processes ended
        self.pid: int | None = None
        self.pid_started: float | None = None
        # Every task's current process of a distributed job (label -> (pid, start time)): an orphaned
        # group is alive while any of them is, and a cancel stops them all.
        self.group_pids: dict[str, tuple[int, float | None]] = {}
        self.execution: Any = None
        self.thread: threading.Thread | None = None
        self.orphan = False  # started by an earlier agent
        self.cancel_requested = False
        self.cancel_args: dict[str, Any] = {}
        self.kill_at: float | None = None
        self.ended_at: float | None = None  # monotonic; terminal jobs leave memory after EVICT_AFTER_S
        self.exited: tuple[float, dict[str, Any]] | None = None  # (monotonic, state) once its processes ended
        self.group = ""  # a queued job's group (its experiment) and how many of the group run at once
        self.at_most = 0
        self.launch: Any = None  # a queued job's launch, until it starts

    def record(self, status: EngineStatus | None = None) -> dict[str, Any]:
        r = self.resources
        return {"job_id": self.job_id, "run_id": self.run_id, "attempt": self.attempt,
                "status": (status or self.status).value, "exit_code": self.exit_code, "reason": self.reason,
                "pid": self.pid, "pid_started": self.pid_started,
                "group_pids": {k: list(v) for k, v in self.group_pids.items()},
                "resources": {"cpus": r.cpus, "memory_mb": r.memory_mb, "gpus": r.gpus}, "gpus": self.gpus,
                "grace_period_s": self.grace_period_s, "updated_at": time.time()}

    def state(self) -> dict[str, Any]:
        if self.exited is not None and not self.status.terminal and time.monotonic() - self.exited[0] > REPORT_WAIT_S:
            return self.exited[1]  # the server has not taken the final reports yet; the runner keeps trying
        return {"status": self.status.value, "exit_code": self.exit_code, "reason": self.reason, "raw": self.status.value}

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> _Job:
        res = rec.get("resources") or {}
        job = cls(str(rec["job_id"]), int(rec.get("run_id") or 0), int(rec.get("attempt") or 0),
                  Resources(float(res.get("cpus", 1.0)), int(res.get("memory_mb", 0)), int(res.get("gpus", 0))),
                  [int(g) for g in rec.get("gpus") or []], float(rec.get("grace_period_s") or 10.0))
        job.status = EngineStatus(rec.get("status", "lost"))
        job.exit_code = rec.get("exit_code")
        job.reason = str(rec.get("reason") or "")
        job.pid = rec.get("pid")
        job.pid_started = rec.get("pid_started")
        job.group_pids = {str(k): (int(v[0]), v[1]) for k, v in (rec.get("group_pids") or {}).items()}
        job.orphan = True
        job.holding = not job.status.terminal
        return job


class Agent:
    """The agent process's server. ``serve()`` blocks until stopped.

    Args:
        directory: the agent directory (``$RUNYARD_HOME/agent``).
        idle_exit_s: exit after this long without jobs or connections (0: never).
    """

    def __init__(self, directory: Path, *, idle_exit_s: float = 600.0) -> None:
        self.dir = Path(directory)
        self.jobs_dir = self.dir / "jobs"
        self.work_dir = self.dir / "work"
        self.idle_exit_s = idle_exit_s
        self._cond = threading.Condition()
        self._jobs: dict[str, _Job] = {}
        self._queue: list[_Job] = []  # queued jobs not started yet, in submission order
        self._started: dict[str, _Job] = {}  # jobs whose thread this agent started, while they (may) hold resources
        self._machine: tuple[float, int] = (0.0, 0)  # (cpus, memory_mb) queued jobs must fit in, from their submits
        self._clients: dict[str, Any] = {}  # server URL → client; runs report through with_token() views
        self._stopping = threading.Event()
        self._n_connections = 0
        self._last_activity = time.monotonic()
        self._lock_fd = -1
        self._fingerprint = code_fingerprint()

    # ------------------------------------------------------------------ serve
    def serve(self) -> int:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.jobs_dir.mkdir(exist_ok=True)
        self.work_dir.mkdir(exist_ok=True)
        self._lock_fd = os.open(self.dir / "agent.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info = _read_json(self.dir / "agent.json") or {}
            print(f"Another Runyard agent (pid {info.get('pid', '?')}) already serves {self.dir}.", file=sys.stderr)
            return 3
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self._stopping.set())
        self._load_records()
        sock_path = _socket_path(self.dir)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(sock_path)  # stale: we hold the lock, so no agent owns it
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(sock_path)
        os.chmod(sock_path, 0o600)
        server.listen(64)
        server.settimeout(TICK_S)
        _write_json(self.dir / "agent.json", {"pid": os.getpid(), "socket": sock_path, "started_at": time.time(),
                                              "version": _version(), "protocol": PROTOCOL})
        log.info("agent %d serving %s on %s", os.getpid(), self.dir, sock_path)
        # Warm the imports every task needs while the first requests come in (answering them
        # needs none of these), so the first run pays less for them.
        threading.Thread(target=_warm_imports, name="runyard-agent-warm", daemon=True).start()
        threading.Thread(target=self.clean_work, name="runyard-agent-clean", daemon=True).start()
        try:
            while not self._stopping.is_set():
                try:
                    conn, _ = server.accept()
                except TimeoutError:
                    self._tick()
                    continue
                except OSError:
                    if self._stopping.is_set():
                        break
                    raise
                conn.settimeout(None)
                with self._cond:
                    self._n_connections += 1
                threading.Thread(target=self._serve_connection, args=(conn,), daemon=True, name="runyard-agent-conn").start()
                self._tick()
        finally:
            server.close()
            self._shutdown()
            info = _read_json(self.dir / "agent.json")
            if info is not None and info.get("pid") == os.getpid():
                (self.dir / "agent.json").unlink(missing_ok=True)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(sock_path)
            for client in self._clients.values():
                client.close()
            log.info("agent %d stopped", os.getpid())
        return 0

    def _tick(self) -> None:
        now = time.monotonic()
        with self._cond:
            for job in list(self._jobs.values()):
                if job.orphan and not job.status.terminal:
                    self._refresh_orphan(job, now)
                if job.status.terminal:
                    if job.ended_at is None:
                        job.ended_at = now
                    elif now - job.ended_at > EVICT_AFTER_S and (job.thread is None or not job.thread.is_alive()):
                        del self._jobs[job.job_id]
            active = any(not j.status.terminal for j in self._jobs.values())
            idle = not active and self._n_connections == 0
            if not idle:
                self._last_activity = now
        if idle and self.idle_exit_s and now - self._last_activity > self.idle_exit_s:
            log.info("agent idle for %.0f s: exiting", self.idle_exit_s)
            self._stopping.set()

    def _shutdown(self) -> None:
        with self._cond:
            running = [j for j in self._jobs.values() if j.thread is not None and not j.status.terminal]
            for job in running:  # a job whose execution is not built yet cancels itself when it is
                job.cancel_requested = True
                job.cancel_args = {"message": "the local agent stopped", "run_status": "failed"}
            executions = [j.execution for j in running if j.execution is not None]
            threads = [j.thread for j in running]
        for execution in executions:
            execution.cancel(message="the local agent stopped", run_status="failed")
        deadline = time.monotonic() + max([j.grace_period_s for j in running] or [0.0]) + 15.0
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def _serve_connection(self, conn: socket.socket) -> None:
        try:
            with conn, conn.makefile("rb") as reader:
                for line in reader:
                    try:
                        req = _loads(line)
                        resp = self._handle(req)
                    except RunyardError as e:
                        resp = {"ok": False, **e.to_payload()}
                    except Exception as e:
                        log.exception("agent request failed")
                        resp = {"ok": False, "code": "backend_error", "message": f"agent error: {type(e).__name__}: {e}",
                                "hint": f"See {self.dir / 'agent.log'}."}
                    conn.sendall(_dumps(resp) + b"\n")
        except OSError:
            pass
        finally:
            with self._cond:
                self._n_connections -= 1
                self._last_activity = time.monotonic()

    # ------------------------------------------------------------------ ops
    def _handle(self, req: dict[str, Any]) -> dict[str, Any]:
        op = req.get("op")
        if op == "poll":
            return {"ok": True, "states": self.poll([str(j) for j in req.get("job_ids") or []], float(req.get("wait_s") or 0))}
        if op == "submit":
            return {"ok": True, **self.submit(str(req.get("job_id")), req.get("launch") or {}, req.get("gpu_inventory") or [],
                                              req.get("queue"))}
        if op == "cancel":
            return {"ok": True, "found": self.cancel(str(req.get("job_id")))}
        if op == "usage":
            return {"ok": True, **self.usage()}
        if op == "ping":
            with self._cond:
                n_active = sum(not j.status.terminal for j in self._jobs.values())
            return {"ok": True, "pid": os.getpid(), "version": _version(), "protocol": PROTOCOL, "n_active": n_active,
                    "fingerprint": self._fingerprint}
        if op == "shutdown":
            if req.get("if_idle"):
                with self._cond:
                    if any(not j.status.terminal for j in self._jobs.values()) or self._queue:
                        return {"ok": True, "stopping": False}
                    self._stopping.set()  # under the lock: no submit slips in between
                return {"ok": True, "stopping": True}
            self._stopping.set()
            return {"ok": True, "stopping": True}
        raise InvalidInput(f"Unknown agent operation {op!r}.", "Use one of: ping, submit, poll, cancel, usage, shutdown.")

    def submit(self, job_id: str, launch_data: dict[str, Any], gpu_inventory: list[int],
               queue: dict[str, Any] | None = None) -> dict[str, Any]:
        from runyard.runner._wire import launch_from_dict

        _check_job_id(job_id)
        launch = launch_from_dict(launch_data)
        need = launch.resources
        multi = len(launch.tasks) > 1 or launch.distributed is not None
        if multi:
            from runyard.launch import total_resources

            need = total_resources(launch)
        if queue is not None and (multi or need.gpus):
            raise InvalidInput("Only single-task jobs without GPUs can be queued in the agent.",
                               "Submit this job without `queue` once capacity() shows room for it.")
        with self._cond:
            if self._stopping.is_set():
                raise SubmitError("The local agent is stopping and takes no new jobs.", "Submit again: a new agent starts.")
            job = self._find(job_id)
            if job is not None:
                return {"job_id": job_id, "gpus": job.gpus, "existing": True}
            if queue is not None:
                job = _Job(job_id, launch.run_id, launch.attempt, need, [], launch.grace_period_s)
                job.group, job.at_most, job.launch = str(queue.get("group") or job_id), int(queue.get("at_most") or 1), launch
                self._machine = (float(queue.get("cpus") or 0.0), int(queue.get("memory_mb") or 0))
                self._jobs[job_id] = job
                self._queue.append(job)
                self._start_queued()
                self._cond.notify_all()
                return {"job_id": job_id, "gpus": [], "existing": False}
            n_gpus = need.gpus
            gpus: list[int] = []
            if n_gpus:
                held = {g for j in self._jobs.values() if j.holding for g in j.gpus}
                free = [int(g) for g in gpu_inventory if int(g) not in held]
                if n_gpus > len(free):
                    raise SubmitError(
                        f"Run {launch.run_id} needs {n_gpus} GPU(s), but only {len(free)} of this machine's "
                        f"{len(gpu_inventory)} are free (in use: {sorted(held) or 'none'}).",
                        "Wait for capacity() to show free GPUs before submitting.")
                gpus = free[:n_gpus]
            job = _Job(job_id, launch.run_id, launch.attempt, need, gpus, launch.grace_period_s)
            self._jobs[job_id] = job
            self._start(job, launch)
            self._cond.notify_all()
        return {"job_id": job_id, "gpus": gpus, "existing": False}

    def _start(self, job: _Job, launch: Any) -> None:
        """Start the job's thread (lock held)."""
        job.launch = None
        job.thread = threading.Thread(target=self._run_job, args=(job, launch), daemon=True, name=f"runyard-job-{job.job_id}")
        self._started[job.job_id] = job
        job.thread.start()

    def _start_queued(self) -> None:
        """Start the queued jobs that may run now, in submission order (lock held).

        A job waits while ``at_most`` jobs of its group run (later jobs of other groups
        may pass it), or while its CPUs or memory do not fit beside the started jobs
        (then nothing after it starts either: submission order).
        """
        if not self._queue or self._stopping.is_set():
            return
        # The jobs this agent started that still hold their resources (kept apart from _jobs, which
        # also holds every job that ended in the last EVICT_AFTER_S: scanning it made this O(jobs)).
        self._started = {k: j for k, j in self._started.items() if j.holding}
        started = list(self._started.values())
        cpus = sum(j.resources.cpus for j in started)
        memory = sum(j.resources.memory_mb for j in started)
        running: dict[str, int] = {}
        for j in started:
            if j.group:
                running[j.group] = running.get(j.group, 0) + 1
        total_cpus, total_memory = self._machine
        for job in list(self._queue):
            if job.cancel_requested:
                self._queue.remove(job)
                job.status, job.reason, job.holding, job.launch = EngineStatus.CANCELED, "canceled before it started", False, None
                continue
            if running.get(job.group, 0) >= job.at_most:
                job.reason = f"pending: waiting for a free slot (its experiment runs {job.at_most} at a time)"
                continue
            need = job.resources
            if (cpus + need.cpus > total_cpus + 1e-9 and started) or (need.memory_mb and total_memory
                                                                      and memory + need.memory_mb > total_memory and started):
                job.reason = "pending: waiting for CPUs or memory on this machine"
                break
            self._queue.remove(job)
            job.reason = ""
            running[job.group] = running.get(job.group, 0) + 1
            cpus += need.cpus
            memory += need.memory_mb
            started.append(job)
            self._start(job, job.launch)

    def poll(self, job_ids: list[str], wait_s: float = 0.0) -> dict[str, dict[str, Any]]:
        deadline = time.monotonic() + min(max(wait_s, 0.0), 300.0)
        with self._cond:
            while True:
                states = {jid: self._state(jid) for jid in job_ids}
                remaining = deadline - time.monotonic()
                if (remaining <= 0 or self._stopping.is_set()
                        or any(EngineStatus(s["status"]).terminal for s in states.values())):
                    return states
                self._cond.wait(min(remaining, TICK_S))

    def cancel(self, job_id: str) -> bool:
        _check_job_id(job_id)
        with self._cond:
            job = self._find(job_id)
            if job is None:
                return False
            if job.status.terminal or job.cancel_requested:
                return True
            job.cancel_requested = True
            if job in self._queue:  # never started: it just leaves the queue
                self._start_queued()
                self._cond.notify_all()
                return True
            execution = job.execution
            alive = _alive_pids(job) if job.orphan else []
            for pid in alive:
                _killpg(pid, signal.SIGTERM)
            if alive:
                job.kill_at = time.monotonic() + job.grace_period_s
        if execution is not None:
            execution.cancel()
        return True

    def usage(self) -> dict[str, Any]:
        with self._cond:
            holding = [j for j in self._jobs.values() if j.holding]
            return {"cpus": sum(j.resources.cpus for j in holding), "memory_mb": sum(j.resources.memory_mb for j in holding),
                    "gpus": sorted(g for j in holding for g in j.gpus), "n_jobs": len(holding)}

    # ------------------------------------------------------------------ jobs
    def _run_job(self, job: _Job, launch: Any) -> None:
        from runyard.runner._task import TaskExecution

        status, exit_code, reason = EngineStatus.FAILED, None, ""
        if len(launch.tasks) > 1 or launch.distributed is not None:
            self._run_group(job, launch)
            return
        try:
            slot = launch.tasks[0]
            extra_env = {"CUDA_VISIBLE_DEVICES": ",".join(str(g) for g in job.gpus)}
            execution = TaskExecution(launch, slot, self._client(launch.server_url, launch.token),
                                      self.work_dir / job.job_id / slot.label, extra_env,
                                      on_spawn=lambda pid: self._spawned(job, pid),
                                      on_exit=lambda result: self._exited(job, result.status, result.exit_code, result.reason))
            with self._cond:
                job.execution = execution
                cancel = job.cancel_args if job.cancel_requested else None
            if cancel is not None:
                execution.cancel(**cancel)
            result = execution.run()
            status, exit_code, reason = result.status, result.exit_code, result.reason
        except BaseException as e:
            log.exception("job %s: agent error", job.job_id)
            reason = f"agent error: {type(e).__name__}: {e}"
            self._exited(job, status, exit_code, reason)
        with self._cond:
            job.status, job.exit_code, job.reason = status, exit_code, reason
            job.holding = False
            job.execution = None
            self._start_queued()
            self._cond.notify_all()

    def _run_group(self, job: _Job, launch: Any) -> None:
        """A distributed run: every task here, on 127.0.0.1, fail-fast (``runyard/runner/_group.py``)."""
        from runyard.launch import local_endpoints, task_resources
        from runyard.runner._group import TaskGroup

        status, exit_code, reason = EngineStatus.FAILED, None, ""
        try:
            extra_env: dict[str, dict[str, str]] = {}
            next_gpu = 0
            for slot in launch.tasks:  # each task gets its own GPUs out of the job's
                n = task_resources(launch, slot).gpus
                extra_env[slot.label] = {"CUDA_VISIBLE_DEVICES": ",".join(str(g) for g in job.gpus[next_gpu:next_gpu + n])}
                next_gpu += n
            group = TaskGroup(launch, self._client(launch.server_url, launch.token), self.work_dir / job.job_id,
                              local_endpoints(launch), extra_env=extra_env,
                              on_spawn=lambda pid, label: self._spawned(job, pid, label),
                              on_exit=lambda result: self._exited(job, result.status, result.exit_code, result.reason),
                              single_host=True)
            with self._cond:
                job.execution = group
                cancel = job.cancel_args if job.cancel_requested else None
            if cancel is not None:
                group.cancel(**cancel)
            result = group.run()
            status, exit_code, reason = result.status, result.exit_code, result.reason
        except BaseException as e:
            log.exception("job %s: agent error", job.job_id)
            reason = f"agent error: {type(e).__name__}: {e}"
            self._exited(job, status, exit_code, reason)
        with self._cond:
            job.status, job.exit_code, job.reason = status, exit_code, reason
            job.holding = False
            job.execution = None
            self._start_queued()
            self._cond.notify_all()

    def _spawned(self, job: _Job, pid: int, label: str | None = None) -> None:
        started = _proc_start_time(pid)
        with self._cond:
            if label is not None:
                job.group_pids[label] = (pid, started)
            if label is None or job.pid is None:  # a distributed job is known by its first task's process
                job.pid, job.pid_started = pid, started
            job.status = EngineStatus.RUNNING
            record = job.record()
            self._cond.notify_all()
        _write_json(self.jobs_dir / f"{job.job_id}.json", record)

    def _exited(self, job: _Job, status: EngineStatus, exit_code: int | None, reason: str) -> None:
        """The task's processes ended: free its resources and write its terminal record."""
        with self._cond:
            job.holding = False
            self._start_queued()  # the next run of the sweep starts now, before this one's final report
            record = job.record(status)
            record["exit_code"], record["reason"] = exit_code, reason  # in memory once reported (see _run_job)
            job.exited = (time.monotonic(), {"status": status.value, "exit_code": exit_code,
                                             "reason": reason + " (final report to the server pending)", "raw": status.value})
            self._cond.notify_all()
        _write_json(self.jobs_dir / f"{job.job_id}.json", record)

    def _client(self, url: str, token: str | None) -> Any:
        from runyard.client import Client

        with self._cond:
            # One connection pool per server; each run's token travels per request (a client per
            # token would build a TLS context and open a connection for every run).
            client = self._clients.get(url)
            if client is None:
                client = self._clients[url] = Client(url, timeout_s=10.0)
            return client.with_token(token)

    def _find(self, job_id: str) -> _Job | None:
        """The job from memory, or loaded from its record (lock held)."""
        job = self._jobs.get(job_id)
        if job is None:
            rec = _read_json(self.jobs_dir / f"{job_id}.json")
            if rec is not None:
                try:
                    job = _Job.from_record(rec)
                except (KeyError, ValueError, TypeError):
                    log.warning("job record %s is unreadable; treating the job as lost", job_id)
                    return None
                self._jobs[job_id] = job
                self._refresh_orphan(job, time.monotonic())
        return job

    def _state(self, job_id: str) -> dict[str, Any]:
        if not _JOB_ID.match(job_id):
            return {"status": "lost", "exit_code": None, "reason": f"not a job id of this backend: {job_id!r}", "raw": ""}
        job = self._find(job_id)
        if job is None:
            return {"status": "lost", "exit_code": None, "reason": "the local agent has no record of this job", "raw": NO_RECORD}
        if job.orphan and not job.status.terminal:
            self._refresh_orphan(job, time.monotonic())
        return job.state()

    def _refresh_orphan(self, job: _Job, now: float) -> None:
        """An orphan's state from its processes (lock held)."""
        if job.status.terminal:
            return
        alive = _alive_pids(job)
        if alive:
            job.status = EngineStatus.RUNNING
            job.reason = "started by an earlier agent; its output is no longer collected"
            if job.kill_at is not None and now >= job.kill_at:
                for pid in alive:
                    _killpg(pid, signal.SIGKILL)
            return
        if job.cancel_requested:
            job.status, job.reason = EngineStatus.CANCELED, "canceled (started by an earlier agent)"
        else:
            job.status = EngineStatus.LOST
            job.reason = ("the agent that ran it stopped before it started the task" if not job.pid else
                          "the task's process ended while no agent watched it; its exit code is unknown")
        job.holding = False
        with contextlib.suppress(OSError):
            _write_json(self.jobs_dir / f"{job.job_id}.json", job.record())
        self._start_queued()
        self._cond.notify_all()

    def clean_work(self, max_age_s: float = RECORD_MAX_AGE_S) -> list[str]:
        """Remove the working directories of jobs that ended over ``max_age_s`` ago.

        A directory goes once no record names its job any more (``_load_records`` drops
        terminal records of that age) and nothing in it changed for that long; a job that
        runs or ended recently keeps its record, so its directory stays. Returns the names removed.
        """
        import shutil

        cutoff = time.time() - max_age_s
        removed = []
        try:
            entries = list(os.scandir(self.work_dir))
        except FileNotFoundError:
            return removed
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False) or (self.jobs_dir / f"{entry.name}.json").exists():
                continue
            with self._cond:
                if entry.name in self._jobs:
                    continue
            try:
                if entry.stat(follow_symlinks=False).st_mtime >= cutoff:
                    continue
            except FileNotFoundError:
                continue
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.name)
        if removed:
            log.info("removed %d working directories of jobs that ended over %.0f days ago", len(removed), max_age_s / 86400)
        return removed

    def _load_records(self) -> None:
        """Adopt the records of earlier agents: orphans still hold resources; old terminal records go."""
        cutoff = time.time() - RECORD_MAX_AGE_S
        now = time.monotonic()
        for path in self.jobs_dir.glob("*.json"):
            rec = _read_json(path)
            if rec is None or "job_id" not in rec:
                continue
            try:
                job = _Job.from_record(rec)
            except (KeyError, ValueError, TypeError):
                continue
            if job.status.terminal:
                if float(rec.get("updated_at") or 0) < cutoff:
                    path.unlink(missing_ok=True)
                continue
            with self._cond:
                self._jobs[job.job_id] = job
                self._refresh_orphan(job, now)


def _warm_imports() -> None:
    import psutil  # noqa: F401

    import runyard.client
    import runyard.runner._reporter
    import runyard.runner._sysmetrics
    import runyard.runner._task
    import runyard.runner._wire  # noqa: F401


def _alive_pids(job: _Job) -> list[int]:
    """The job's processes still running: every task's of a distributed job, else its one."""
    candidates = list(job.group_pids.values()) or [(job.pid, job.pid_started)]
    return [pid for pid, started in candidates if pid and _same_process(pid, started)]


def _check_job_id(job_id: str) -> None:
    if not _JOB_ID.match(job_id):
        raise InvalidInput(f"Job ids are letters, digits, '.', '-' and '_' (at most 128), but got {job_id!r}.",
                           "Use the id submit() returned.")


# ====================================================================== client
_children: dict[int, subprocess.Popen[bytes]] = {}  # agents this process started, kept to reap them


class AgentClient:
    """The backend's connection to the agent: starts it on demand, restarts it if it died.

    Thread-safe: calls are serialised on one connection.

    Args:
        directory: the agent directory (default ``$RUNYARD_HOME/agent``).
        start_timeout_s: how long to wait for a new agent to answer.
    """

    def __init__(self, directory: Path | None = None, *, start_timeout_s: float = START_TIMEOUT_S) -> None:
        self.dir = Path(directory) if directory is not None else agent_dir()
        self.start_timeout_s = start_timeout_s
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._reader: Any = None

    def call(self, op: str, *, timeout_s: float = 30.0, **args: Any) -> dict[str, Any]:
        """One request; reconnects (and restarts the agent) once if the connection broke.

        Raises:
            BackendError: the agent cannot be started or reached, or failed the request.
            SubmitError / InvalidInput: the agent refused the request.
        """
        payload = _dumps({"op": op, **args}) + b"\n"
        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._sock is None:
                        self._connect()
                    assert self._sock is not None
                    self._sock.settimeout(timeout_s)
                    self._sock.sendall(payload)
                    line = self._reader.readline()
                    if not line:
                        raise ConnectionResetError("the agent closed the connection")
                    resp = _loads(line)
                    break
                except TimeoutError as e:
                    self._drop()
                    raise BackendError(f"The local agent did not answer {op!r} within {timeout_s:g} s.",
                                       f"See {self.dir / 'agent.log'}; stop it with `kill {self.pid or 'PID'}` and retry.") from e
                except (OSError, ValueError) as e:
                    self._drop()
                    if attempt == 2:
                        raise BackendError(f"Lost the connection to the local agent during {op!r}: {e}.",
                                           f"See {self.dir / 'agent.log'}.") from e
                    log.info("agent connection lost (%s); reconnecting", e)
        if not resp.get("ok"):
            code = resp.get("code")
            cls = {"submit_error": SubmitError, "invalid_input": InvalidInput}.get(code, BackendError)
            raise cls(str(resp.get("message")), resp.get("hint"))
        return resp

    @property
    def pid(self) -> int | None:
        info = _read_json(self.dir / "agent.json")
        return int(info["pid"]) if info and "pid" in info else None

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(OSError):
                self._reader.close()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        self._sock = self._reader = None

    def _exchange(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self._sock is not None
        self._sock.settimeout(10.0)
        self._sock.sendall(_dumps(request) + b"\n")
        line = self._reader.readline()
        if not line:
            raise ConnectionResetError("the agent closed the connection")
        return _loads(line)

    def _current(self) -> bool:
        """Whether the connected agent runs this code; ``False`` leaves the connection open
        only when the agent is idle and should be replaced."""
        try:
            info = self._exchange({"op": "ping"})
        except (OSError, ValueError):
            self._drop()
            return False
        if info.get("fingerprint") == code_fingerprint():
            return True
        if info.get("n_active"):
            log.warning("the local agent (pid %s) runs other Runyard code (%s) but has active jobs; keeping it",
                        info.get("pid"), info.get("version"))
            return True
        log.info("replacing the idle local agent (pid %s): it runs other Runyard code", info.get("pid"))
        return False

    def _try_connect(self, info: dict[str, Any] | None) -> bool:
        if not info or not info.get("socket"):
            return False
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(info["socket"]))
        except OSError:
            sock.close()
            return False
        self._sock, self._reader = sock, sock.makefile("rb")
        return True

    def _connect(self) -> None:
        _reap()
        self.dir.mkdir(parents=True, exist_ok=True)
        if self._try_connect(_read_json(self.dir / "agent.json")) and self._current():
            return
        with _locked(self.dir / "start.lock"):
            if self._sock is None and self._try_connect(_read_json(self.dir / "agent.json")) and self._current():
                return
            if self._sock is not None:  # an idle agent running other code: replace it
                self._exchange({"op": "shutdown"})
                self._drop()
                deadline = time.monotonic() + self.start_timeout_s
                while _agent_alive(self.dir) and time.monotonic() < deadline:
                    time.sleep(0.02)
            proc = None if _agent_alive(self.dir) else self._spawn()
            deadline = time.monotonic() + self.start_timeout_s
            while time.monotonic() < deadline:
                info = _read_json(self.dir / "agent.json")
                if (proc is None or (info or {}).get("pid") == proc.pid) and self._try_connect(info):
                    return
                if proc is not None and proc.poll() is not None:
                    raise BackendError(f"The local agent exited with code {proc.returncode} while starting. "
                                       f"Last lines of {self.dir / 'agent.log'}:\n{_tail(self.dir / 'agent.log')}",
                                       f"Run it in the foreground to see why: `{sys.executable} -m runyard.runner agent "
                                       f"--dir {self.dir}`.")
                time.sleep(0.01)  # only while an agent starts, once per agent
        raise BackendError(f"The local agent did not answer within {self.start_timeout_s:g} s. "
                           f"Last lines of {self.dir / 'agent.log'}:\n{_tail(self.dir / 'agent.log')}",
                           f"Stop it (`kill {self.pid or 'PID'}`) and retry.")

    def _spawn(self) -> subprocess.Popen[bytes]:
        with open(self.dir / "agent.log", "ab") as logf:
            proc = subprocess.Popen(
                [sys.executable, "-m", "runyard.runner", "agent", "--dir", str(self.dir)],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, cwd=self.dir,
                start_new_session=True,  # survives the server, its process group and its Ctrl-C
            )
        _children[proc.pid] = proc
        return proc


def stop_agent(directory: Path | None = None, timeout_s: float = 30.0) -> bool:
    """Stop the agent serving ``directory`` by its pid: SIGTERM, SIGKILL after ``timeout_s``.

    Its tasks are stopped like cancels first. Returns whether an agent was running.
    """
    directory = Path(directory) if directory is not None else agent_dir()
    info = _read_json(directory / "agent.json")
    if not _agent_alive(directory) or not info or not info.get("pid"):
        _reap()
        return False
    pid = int(info["pid"])
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while _agent_alive(directory) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _agent_alive(directory):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while _agent_alive(directory) and time.monotonic() < deadline + 5:
            time.sleep(0.05)
    _reap(wait_pid=pid)
    return True


def _reap(wait_pid: int | None = None) -> None:
    for pid, proc in list(_children.items()):
        if pid == wait_pid:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        if proc.poll() is not None:
            del _children[pid]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _tail(path: Path, n_lines: int = 20) -> str:
    try:
        text = path.read_bytes()[-8000:].decode(errors="replace")
    except OSError as e:
        return f"  (cannot read the log: {e})"
    return "\n".join("  " + ln for ln in text.strip().splitlines()[-n_lines:]) or "  (the log is empty)"
