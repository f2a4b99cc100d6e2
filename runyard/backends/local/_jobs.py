"""The local agent's jobs: one job's state in memory, and its record in ``jobs/<job_id>.json``.

A record holds a job's last state (status, pid and its start time, every task's
process of a distributed job, exit code, reason, resources, GPUs). A restarted
agent answers from these: a terminal record gives the final state; a running
record whose process still lives is an orphan (RUNNING, cancellable, holding its
resources, but its output is no longer collected); one whose process is gone is LOST.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runyard import _proc
from runyard.backends.base import EngineStatus, Resources
from runyard.backends.local._protocol import read_json, write_json

log = logging.getLogger("runyard.backends")

RECORD_MAX_AGE_S = 7 * 24 * 3600  # terminal records (and their working directories) go after this
REPORT_WAIT_S = 10.0  # a job whose final reports are not through this long after its exit is terminal anyway


class Job:
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
        self.ended_at: float | None = None  # monotonic; terminal jobs leave memory a while after
        self.exited: tuple[float, dict[str, Any]] | None = None  # (monotonic, state) once its processes ended
        self.group = ""  # a queued job's group (its experiment) and how many of the group run at once
        self.at_most = 0
        self.launch: Any = None  # a queued job's launch, until it starts

    def record(self, status: EngineStatus | None = None) -> dict[str, Any]:
        """The job as its record file holds it (``status`` instead of the current one, if given)."""
        r = self.resources
        return {"job_id": self.job_id, "run_id": self.run_id, "attempt": self.attempt,
                "status": (status or self.status).value, "exit_code": self.exit_code, "reason": self.reason,
                "pid": self.pid, "pid_started": self.pid_started,
                "group_pids": {k: list(v) for k, v in self.group_pids.items()},
                "resources": {"cpus": r.cpus, "memory_mb": r.memory_mb, "gpus": r.gpus}, "gpus": self.gpus,
                "grace_period_s": self.grace_period_s, "updated_at": time.time()}

    def state(self) -> dict[str, Any]:
        """The job's answer to ``poll``."""
        if self.exited is not None and not self.status.terminal and time.monotonic() - self.exited[0] > REPORT_WAIT_S:
            return self.exited[1]  # the server has not taken the final reports yet; the runner keeps trying
        return {"status": self.status.value, "exit_code": self.exit_code, "reason": self.reason, "raw": self.status.value}

    def alive_pids(self) -> list[int]:
        """The job's processes still running: every task's of a distributed job, else its one."""
        candidates: list[tuple[int | None, float | None]] = list(self.group_pids.values()) or [(self.pid, self.pid_started)]
        return [pid for pid, started in candidates if pid and _proc.same_process(pid, started)]

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> Job:
        """An orphan: the job an earlier agent recorded (raises KeyError/ValueError/TypeError on a bad record)."""
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


class JobRecords:
    """The ``jobs/`` directory: one JSON record per job, each replaced atomically."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def path(self, job_id: str) -> Path:
        return self.dir / f"{job_id}.json"

    def exists(self, job_id: str) -> bool:
        return self.path(job_id).exists()

    def write(self, job_id: str, record: dict[str, Any]) -> None:
        write_json(self.path(job_id), record)

    def write_quietly(self, job: Job) -> None:
        """Write the job's record; a failed write is logged, not raised (the job's state is in memory)."""
        try:
            self.write(job.job_id, job.record())
        except OSError as e:
            log.warning("cannot write the record of job %s: %s", job.job_id, e)

    def load(self, job_id: str) -> Job | None:
        """The job its record describes, or ``None`` (no record, or an unreadable one)."""
        rec = read_json(self.path(job_id))
        if rec is None:
            return None
        try:
            return Job.from_record(rec)
        except (KeyError, ValueError, TypeError):
            log.warning("job record %s is unreadable; treating the job as lost", job_id)
            return None

    def adopt(self) -> Iterator[Job]:
        """The unfinished jobs of earlier agents; terminal records older than ``RECORD_MAX_AGE_S`` are removed."""
        cutoff = time.time() - RECORD_MAX_AGE_S
        for path in self.dir.glob("*.json"):
            rec = read_json(path)
            if rec is None or "job_id" not in rec:
                continue
            try:
                job = Job.from_record(rec)
            except (KeyError, ValueError, TypeError):
                continue
            if job.status.terminal:
                if float(rec.get("updated_at") or 0) < cutoff:
                    with contextlib.suppress(OSError):
                        path.unlink(missing_ok=True)
                continue
            yield job
