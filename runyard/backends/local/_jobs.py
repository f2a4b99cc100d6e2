"""The local agent's jobs: one job's state in memory, and its records in the journal ``jobs/journal.jsonl``.

A record holds a job's last state (status, pid and its start time, every task's
process of a distributed job, exit code, reason, resources, GPUs). A restarted
agent answers from these: a terminal record gives the final state; a running
record whose process still lives is an orphan (RUNNING, cancellable, holding its
resources and its slot of its experiment's ``at_most``); one whose processes ended is
SUCCEEDED or FAILED after the exit code its wrapper wrote to ``<out_dir>/<task>/exit-code``,
or LOST when there is none (killed with its wrapper, or ended before its command ran).
Records are appended to one journal, ``jobs/journal.jsonl`` (:class:`JobRecords`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from runyard import _proc
from runyard.backends.base import EngineStatus, Resources
from runyard.backends.local._protocol import dumps, loads, read_json

log = logging.getLogger("runyard.backends")

RECORD_MAX_AGE_S = 7 * 24 * 3600  # terminal records (and their working directories) go after this
JOURNAL = "journal.jsonl"
EXIT_CODE_FILE = "exit-code"  # runyard.runner's name for it
REPORT_WAIT_S = 10.0  # a job whose final reports are not through this long after its exit is terminal anyway


_TERMINAL = {s.value for s in EngineStatus if s.terminal}


class Job:
    """One job in the agent's memory. Fields are guarded by the agent's condition."""

    def __init__(self, job_id: str, run_id: int, attempt: int, resources: Resources, gpus: list[int],
                 grace_period_s: float) -> None:
        self.job_id = job_id
        self.run_id = run_id
        self.attempt = attempt
        self.resources = resources
        self.gpus = gpus
        self.cores: list[int] = []  # the CPU cores its processes are pinned to ([]: not pinned)
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
        self.project = ""
        self.pool: list[str] = []  # run_as pool: the accounts it may run as ([]: the agent's own)
        self.jobs_dir = ""  # run_as pool: where its home and working directory go
        self.account = ""  # run_as pool: the account it runs as, once given one
        self.out_dir = ""  # where its tasks' stdout, stderr and exit-code files are (<out_dir>/<task>/)
        self.labels: list[str] = []  # its tasks' labels
        self.reporting = False  # an adopted job that ended: its exit is being reported to the server

    def record(self, status: EngineStatus | None = None) -> dict[str, Any]:
        """The job as its record file holds it (``status`` instead of the current one, if given)."""
        r = self.resources
        return {"job_id": self.job_id, "run_id": self.run_id, "attempt": self.attempt,
                "status": (status or self.status).value, "exit_code": self.exit_code, "reason": self.reason,
                "pid": self.pid, "pid_started": self.pid_started,
                "group_pids": {k: list(v) for k, v in self.group_pids.items()},
                "resources": {"cpus": r.cpus, "memory_mb": r.memory_mb, "gpus": r.gpus}, "gpus": self.gpus,
                "grace_period_s": self.grace_period_s, "group": self.group, "at_most": self.at_most,
                "project": self.project, "account": self.account, "out_dir": self.out_dir, "labels": self.labels,
                "updated_at": time.time()}

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
        job.group, job.at_most = str(rec.get("group") or ""), int(rec.get("at_most") or 0)
        job.project, job.account = str(rec.get("project") or ""), str(rec.get("account") or "")
        job.out_dir, job.labels = str(rec.get("out_dir") or ""), [str(x) for x in rec.get("labels") or []]
        job.orphan = True
        job.holding = not job.status.terminal
        return job

    def exit_codes(self) -> list[int] | None:
        """Every task's exit code as its wrapper wrote it, or ``None`` when one is missing (or unreadable)."""
        if not self.out_dir or not self.labels:
            return None
        codes = []
        for label in self.labels:
            try:
                text = (Path(self.out_dir) / label / EXIT_CODE_FILE).read_text()
            except OSError:
                return None
            if not text.endswith("\n") or not text.strip().lstrip("-").isdigit():
                return None
            codes.append(int(text))
        return codes


class JobRecords:
    """The ``jobs/`` directory: every record appended to ``journal.jsonl``; a job's last line is its state.

    One append per state change (a write to an open file) instead of a file written and
    renamed per change. The index maps each job to its last line. Thread-safe.
    ``<job_id>.json`` files (one record each, as agents before the journal wrote them) are
    read as records too, and folded into the journal by :meth:`adopt`. The journal is
    rewritten with only the live records (:meth:`adopt`, and whenever it grew past
    ``COMPACT_MIN_BYTES`` and three times their size).
    """

    COMPACT_MIN_BYTES = 16 * 1024 * 1024

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.path = directory / JOURNAL
        self._lock = threading.Lock()
        self._index: dict[str, tuple[int, int] | Path] = {}  # job id -> (offset, length) of its last line, or its file
        self._fd: int | None = None
        self._size = 0  # the journal's length
        self._live = 0  # the length of the lines the index points at
        self._loaded = False

    def exists(self, job_id: str) -> bool:
        with self._lock:
            self._ensure()
            return job_id in self._index

    def write(self, job_id: str, record: dict[str, Any]) -> None:
        """Append the job's record (its new state)."""
        line = dumps(record) + b"\n"
        with self._lock:
            self._ensure()
            if self._fd is None:
                self.dir.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            os.write(self._fd, line)
            self._note(job_id, (self._size, len(line)))
            self._size += len(line)
            if self._size > self.COMPACT_MIN_BYTES and self._size > 3 * self._live:
                self._compact(time.time() - RECORD_MAX_AGE_S)

    def write_quietly(self, job: Job) -> None:
        """Write the job's record; a failed write is logged, not raised (the job's state is in memory)."""
        try:
            self.write(job.job_id, job.record())
        except OSError as e:
            log.warning("cannot write the record of job %s: %s", job.job_id, e)

    def load(self, job_id: str) -> Job | None:
        """The job its record describes, or ``None`` (no record, or an unreadable one)."""
        with self._lock:
            self._ensure()
            rec = self._read(job_id)
        if rec is None:
            return None
        try:
            return Job.from_record(rec)
        except (KeyError, ValueError, TypeError):
            log.warning("job record %s is unreadable; treating the job as lost", job_id)
            return None

    def adopt(self) -> list[Job]:
        """The unfinished jobs of earlier agents. Rewrites the journal without the terminal records
        older than ``RECORD_MAX_AGE_S``, with the records of ``<job_id>.json`` files (then removed)."""
        with self._lock:
            self._ensure()
            records = self._compact(time.time() - RECORD_MAX_AGE_S)
        jobs = []
        for rec in records:
            try:
                job = Job.from_record(rec)
            except (KeyError, ValueError, TypeError):
                continue
            if not job.status.terminal:
                jobs.append(job)
        return jobs

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    # ------------------------------------------------------------ lock held
    def _note(self, job_id: str, where: tuple[int, int] | Path) -> None:
        old = self._index.get(job_id)
        if isinstance(old, tuple):
            self._live -= old[1]
        if isinstance(where, tuple):
            self._live += where[1]
        self._index[job_id] = where

    def _ensure(self) -> None:
        """Index the journal and the record files, once."""
        if self._loaded:
            return
        self._loaded = True
        for path in self.dir.glob("*.json"):
            self._index[path.stem] = path
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return
        offset = 0
        for line in data.splitlines(keepends=True):
            if line.endswith(b"\n"):  # a line cut short by a crash is skipped
                job_id = _job_id_of(line)
                if job_id is not None:
                    self._note(job_id, (offset, len(line)))
            offset += len(line)
        self._size = offset

    def _read(self, job_id: str) -> dict[str, Any] | None:
        where = self._index.get(job_id)
        if where is None:
            return None
        if isinstance(where, Path):
            return read_json(where)
        with open(self.path, "rb") as f:
            f.seek(where[0])
            try:
                rec = loads(f.read(where[1]))
            except ValueError:
                return None
        return rec if isinstance(rec, dict) else None

    def _compact(self, prune_before: float) -> list[dict[str, Any]]:
        """Rewrite the journal with each job's last record, dropping terminal ones last updated
        before ``prune_before``; returns the records kept."""
        kept: list[dict[str, Any]] = []
        files = [where for where in self._index.values() if isinstance(where, Path)]
        try:
            data = self.path.read_bytes()  # once: a read per record would open the journal per job
        except FileNotFoundError:
            data = b""
        for job_id, where in list(self._index.items()):
            try:
                rec = read_json(where) if isinstance(where, Path) else loads(data[where[0]:where[0] + where[1]])
                if not isinstance(rec, dict) or str(rec.get("job_id")) != job_id:
                    continue
                if rec.get("status") in _TERMINAL and float(rec.get("updated_at") or 0) < prune_before:
                    continue
            except (ValueError, TypeError):
                continue  # unreadable: the job is unknown from now on, as a lost one
            kept.append(rec)
        tmp = self.path.with_name(f".{JOURNAL}.{os.getpid()}.tmp")
        lines = [dumps(rec) + b"\n" for rec in kept]
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(b"".join(lines))
        os.replace(tmp, self.path)
        if self._fd is not None:
            os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._index, self._size, self._live = {}, 0, 0
        for rec, line in zip(kept, lines, strict=True):
            self._note(str(rec["job_id"]), (self._size, len(line)))
            self._size += len(line)
        for path in files:
            with contextlib.suppress(OSError):
                path.unlink()
        return kept


def _job_id_of(line: bytes) -> str | None:
    try:
        rec = loads(line)
    except ValueError:
        return None
    return str(rec["job_id"]) if isinstance(rec, dict) and "job_id" in rec else None


def read_job_records(directory: Path) -> dict[str, dict[str, Any]]:
    """``{job_id: its last record}`` of the jobs an agent directory records (read-only; for tools and tests)."""
    records = JobRecords(Path(directory) / "jobs")
    with records._lock:
        records._ensure()
        return {job_id: rec for job_id in list(records._index) if (rec := records._read(job_id)) is not None}
