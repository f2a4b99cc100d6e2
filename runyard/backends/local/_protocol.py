"""The local agent's wire protocol and files: messages, paths, job ids and the code fingerprint.

Files, all under ``$RUNYARD_HOME/agent/``:

- ``agent.json``: ``{"pid", "socket", "started_at", "version", "protocol"}`` of the running agent.
- ``agent.sock``: the Unix socket (a path under the temp dir when this one would
  exceed the 107-byte limit of ``sun_path``; ``agent.json`` names the one in use).
- ``agent.lock``: held (``flock``) by the running agent for its whole life; a lock
  that can be taken means no agent runs, whatever ``agent.json`` says, and
  recycled pids never fool it. ``start.lock`` serialises starting one.
- ``jobs/journal.jsonl``: every job's states, appended; a job's last line is its state (``_jobs.py``).
- ``work/<job_id>/<task>/``: the task's working directory (snapshot materialised here;
  a run_as pool job's is ``<jobs_dir>/<job_id>/<task>/``, owned by its account).
  Removed when an agent starts, once the job ended over 7 days ago (its record is gone).
- ``work/<job_id>/.runyard/<task>/stdout``, ``stderr``, ``exit-code``: the task's output
  and its command's exit code (written by the task's wrapper when it ends), so the task
  outlives the agent and a later agent learns how it ended; ``.runyard/report.json``
  (mode 600): the server and run token a later agent reports that exit with (removed once
  reported); ``.runyard/home``: a pool job's directory.
- ``agent.log``: the agent's own log.

Protocol: JSON lines over the socket, one request and one answer per line, every
answer ``{"ok": true, ...}`` or ``{"ok": false, "code", "message", "hint"}``.

- ``{"op": "ping"}`` → ``pid``, ``version``, ``protocol``, ``n_active``, ``fingerprint``.
- ``{"op": "submit", "job_id", "launch", "gpu_inventory"}`` → ``gpus`` (the
  indices assigned, one task per GPU at a time), ``existing`` (the id was known:
  submitting is idempotent). With ``"queue": {"group", "at_most", "cpus",
  "memory_mb"}`` (single-task jobs without GPUs) the job waits in the agent,
  PENDING, until fewer than ``at_most`` jobs of its ``group`` (an experiment)
  run and its CPUs and memory fit in ``cpus``/``memory_mb`` (the machine's),
  and starts the moment they do, in submission order (``_admission.py``).
  Queued jobs hold their resources in ``usage`` from submission on. A queued job
  lives only in the agent's memory: a new agent reports it LOST with raw state
  ``no-record`` (:data:`NO_RECORD`; the backend sets ``EngineState.no_record``),
  and the scheduler queues its run again.
  With ``"run_as": {"pool", "accounts", "jobs_dir"}`` the job runs as one of ``accounts``
  (one project per account at a time; the agent must run as root); a queued job waits
  for a free one (``pending: waiting for a job account ...``), an unqueued one is refused.
- ``{"op": "poll", "job_ids", "wait_s"}`` → ``states`` ``{id: {status, exit_code,
  reason, raw}}``; with ``wait_s`` > 0 it answers as soon as one listed job is
  terminal, or after ``wait_s`` (a scheduler can block on it instead of sleeping).
- ``{"op": "cancel", "job_id"}``: SIGTERM the task's group, SIGKILL after its
  grace period; idempotent.
- ``{"op": "usage"}`` → ``cpus``, ``memory_mb``, ``gpus``, ``n_jobs``: what active jobs hold.
- ``{"op": "shutdown"}``: stop like SIGTERM does. With ``"if_idle": true`` only when
  no job is active (the server's stop asks this way) → ``stopping``.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Any

import orjson

from runyard import _proc
from runyard.errors import InvalidInput

PROTOCOL = 1
NO_RECORD = "no-record"  # a lost job's raw state when no agent ever wrote a record of it: it never started
OPS = ("ping", "submit", "poll", "cancel", "usage", "shutdown")
_JOB_ID = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,127}$")
_SUN_PATH_MAX = 107

def dumps(obj: Any) -> bytes:
    """``obj`` as compact JSON bytes."""
    return orjson.dumps(obj)


loads = orjson.loads


def version() -> str:
    """Runyard's version (the agent reports it in ``ping`` and ``agent.json``)."""
    from runyard import __version__

    return __version__


def code_fingerprint() -> str:
    """Runyard's version plus the path, size and mtime of every ``.py`` file of the installed package.

    An agent started before an upgrade (or, in development, an edit) would keep
    running old code; the backend compares this with the agent's and replaces an
    idle agent whose code differs. Stat-based, never reading a file: a walk of the
    package's ~200 files, a few milliseconds, run when an agent starts and when a
    client connects to one.
    """
    import runyard

    root = Path(runyard.__file__).parent
    h = hashlib.sha1(version().encode())
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and not d.startswith("."))
        for name in sorted(filenames):
            if not name.endswith(".py"):
                continue
            path = os.path.join(dirpath, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            h.update(f"{os.path.relpath(path, root)}:{st.st_size}:{st.st_mtime_ns};".encode())
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


def socket_path(directory: Path) -> str:
    """Where the agent of ``directory`` listens (a temp-dir path when the natural one is too long)."""
    path = str(directory / "agent.sock")
    if len(path.encode()) <= _SUN_PATH_MAX:
        return path
    digest = hashlib.sha1(str(directory.resolve()).encode()).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), f"runyard-agent-{os.getuid()}-{digest}.sock")


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object file, or ``None`` when missing or not an object."""
    try:
        data = loads(path.read_bytes())
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` atomically: a reader sees the old content or the new, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(dumps(data))
    os.replace(tmp, path)


def agent_alive(directory: Path) -> bool:
    """Whether an agent holds ``agent.lock`` (the only liveness test that survives pid reuse)."""
    return _proc.is_locked(directory / "agent.lock")


# ---------------------------------------------------------------------- job ids
def valid_job_id(job_id: str) -> bool:
    """Whether ``job_id`` could be one of this backend's (``"<run_id>.<attempt>"``, safe as a file name)."""
    return bool(_JOB_ID.match(job_id))


def check_job_id(job_id: str) -> None:
    """Raise ``InvalidInput`` unless ``job_id`` is a valid job id."""
    if not valid_job_id(job_id):
        raise InvalidInput(f"Job ids are letters, digits, '.', '-' and '_' (at most 128), but got {job_id!r}.",
                           "Use the id submit() returned.")
