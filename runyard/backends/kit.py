"""Helpers every backend that starts ``python -m runyard.runner exec`` needs: command line, launch file, snapshot blobs.

- :func:`runner_command`: the runner's shell command line for one task;
- :func:`launch_reaching`, :func:`launch_file_bytes`: the launch as the far side sees it
  (its server URL) and the JSON of its launch file (written mode 600: it holds the run's token);
- :func:`stage_snapshot`: put a snapshot's blobs into a blob cache the far side reads
  (``<cache>/<aa>/<sha256>``), each blob sent once, through a :class:`BlobTarget`;
  :class:`DirectoryBlobs` is the target for a directory this machine writes (or any
  ``write``/``exists`` pair), ``runyard.backends._remote.RemoteBlobs`` the one over SSH;
- :func:`poll_waiting`: ``poll(job_ids, wait_s)`` over a plain poll;
- :func:`job_name`: ``"<run_id>.<attempt>"``, the name of one attempt;
- :func:`job_environment`: the environment a job starts from, built from an allow-list
  (never the server's whole environment); :func:`agent_environment` the one a process
  that starts jobs (the local agent, ``sbatch``) gets.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from runyard.errors import BackendError
from runyard.records.compute import EngineState, RunLaunch

__all__ = [
    "BlobTarget",
    "DirectoryBlobs",
    "JOB_ENV_NAMES",
    "agent_environment",
    "job_environment",
    "job_name",
    "launch_file_bytes",
    "launch_reaching",
    "local_blob",
    "poll_waiting",
    "runner_command",
    "stage_snapshot",
]


# What a job takes from the environment of the process that starts it; nothing else reaches it.
# Secrets of the server (RUNYARD_ADMIN_PASSWORD, RUNYARD_DATABASE_URL, AWS_*, ...) are not on it.
JOB_ENV_NAMES = frozenset({
    "PATH", "LANG", "LANGUAGE", "TZ", "TERM", "TMPDIR", "TMP", "TEMP", "PYTHONPATH", "VIRTUAL_ENV",
    "LD_LIBRARY_PATH", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CUDA_HOME", "SLURM_CONF",
    "RUNYARD_DEBUG",
    # Where the embedded local server keeps server.json (a path, no secret): its runs find it there
    # again if it comes back on another port.
    "RUNYARD_LOCAL_HOME",
})
JOB_ENV_PREFIXES = ("LC_", "RUNYARD_SDK_")  # the locale; the SDK's tuning knobs (buffer sizes, flush timeout)
# Runyard's own variables a process that starts jobs keeps (never the server's secrets).
_AGENT_RUNYARD = ("RUNYARD_HOME", "RUNYARD_LOCAL_GPUS")


def job_environment(source: Mapping[str, str] | None = None, *, user: str | None = None, home: str | None = None,
                    env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a job starts from: the allow-listed variables of ``source`` plus ``env``.

    Taken from ``source`` (default ``os.environ``): ``JOB_ENV_NAMES``, ``LC_*`` and ``RUNYARD_SDK_*``; ``USER``,
    ``LOGNAME`` and ``HOME`` are the job's account's (``user``/``home``, default: this
    process's account). Nothing else of ``source`` reaches the job, so the server's own
    secrets (``RUNYARD_ADMIN_PASSWORD``, ``RUNYARD_DATABASE_URL``, ``AWS_*``, ...) never do.
    ``env`` (the backend's configured ``env``, then the experiment's) is laid over it;
    the runner adds Runyard's variables (``RUNYARD_RUN_ID``, ``RUNYARD_SERVER``, ``RUNYARD_TOKEN``, ...).

    Every backend that starts processes builds their environment here.
    """
    import pwd

    source = os.environ if source is None else source
    out = {k: v for k, v in source.items() if k in JOB_ENV_NAMES or k.startswith(JOB_ENV_PREFIXES)}
    if user is None:
        try:
            entry = pwd.getpwuid(os.getuid())
            user, default_home = entry.pw_name, entry.pw_dir
        except KeyError:
            user, default_home = str(os.getuid()), "/"
        home = home or source.get("HOME") or default_home
    else:
        try:
            default_home = pwd.getpwnam(user).pw_dir
        except KeyError:
            default_home = "/"
        home = home or default_home
    out.update({"USER": user, "LOGNAME": user, "HOME": home})
    out.setdefault("PATH", os.defpath)
    out.update(env or {})
    return out


def agent_environment(source: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a process that starts jobs (the local agent, ``sbatch``): :func:`job_environment`
    plus the ``RUNYARD_HOME`` and ``RUNYARD_LOCAL_GPUS`` it needs and the ``SLURM_*`` settings of this machine.

    Started with this instead of the server's environment, it holds no secret a job could
    read from its ``/proc/<pid>/environ``, and a ``sbatch`` that exports its whole environment
    (``--export=ALL``, the default) exports only this.
    """
    source = os.environ if source is None else source
    out = job_environment(source)
    out.update({k: v for k, v in source.items() if k in _AGENT_RUNYARD or k.startswith("SLURM_")})
    return out


def job_name(launch: RunLaunch) -> str:
    """``"<run_id>.<attempt>"``: unique per attempt, so a submit that names its job by it is idempotent."""
    return f"{launch.run_id}.{launch.attempt}"


def runner_command(python: str, launch_file: str, *, workdir: str | None = None, spool: str | None = None,
                   blob_cache: str | None = None, shell_args: str = "") -> str:
    """``PYTHON -m runyard.runner exec --launch FILE ...`` as one shell command line (arguments quoted).

    Args:
        python: the far side's interpreter that imports runyard (a command or a path).
        launch_file: the launch file, as the far side sees it.
        workdir: the task's working directory (default: the runner's, under the job).
        spool: with ``blob_cache``: the runner writes to this spool directory instead of
            the server, and materialises the snapshot from the blob cache.
        shell_args: appended unquoted (e.g. ``--task-index "$SLURM_PROCID"``).
    """
    argv = [python, "-m", "runyard.runner", "exec", "--launch", launch_file]
    if spool:
        argv += ["--spool", spool, "--blob-cache", blob_cache or ""]
    if workdir:
        argv += ["--workdir", workdir]
    line = " ".join(shlex.quote(a) for a in argv)
    return f"{line} {shell_args}" if shell_args else line


def launch_reaching(launch: RunLaunch, server_url: str | None) -> RunLaunch:
    """``launch`` with the server's URL as the far side reaches it (``RUNYARD_SERVER`` too); itself when ``None``."""
    if not server_url:
        return launch
    env = dict(launch.env)
    env["RUNYARD_SERVER"] = server_url
    return dataclasses.replace(launch, server_url=server_url, env=env)


def launch_file_bytes(launch: RunLaunch) -> bytes:
    """The launch file's content (``runyard.runner.read_launch_file`` reads it). Write it mode 600: it holds the token."""
    from runyard.runner import launch_to_dict

    return json.dumps(launch_to_dict(launch)).encode()


class BlobTarget(Protocol):
    """A blob cache on the far side: ``<root>/<aa>/<sha256>``."""

    def missing(self, digests: Sequence[str]) -> set[str]:
        """Which of ``digests`` the cache lacks (ideally in one call)."""
        ...

    def put(self, digest: str, local_path: Path) -> None:
        """Copy one blob (a verified file on this machine) into the cache, atomically."""
        ...


@dataclasses.dataclass
class DirectoryBlobs:
    """A blob cache reached through ``exists``/``write`` callables (default: this machine's file system).

    Args:
        root: the cache's directory.
        exists: ``exists(path) -> bool`` (default ``os.path.exists``).
        write: ``write(path, data, mode)``, atomic, parents created (default: a local atomic write).
    """

    root: str
    exists: Callable[[str], bool] = os.path.exists
    write: Callable[[str, bytes, int], None] | None = None

    def path(self, digest: str) -> str:
        return f"{self.root.rstrip('/')}/{digest[:2]}/{digest}"

    def missing(self, digests: Sequence[str]) -> set[str]:
        return {d for d in digests if not self.exists(self.path(d))}

    def put(self, digest: str, local_path: Path) -> None:
        data = Path(local_path).read_bytes()
        if self.write is not None:
            self.write(self.path(digest), data, 0o444)
            return
        dest = Path(self.path(digest))
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{digest}.{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(data)
        os.chmod(tmp, 0o444)
        os.replace(tmp, dest)


def local_blob(client: Any, digest: str, size: int) -> Path:
    """The blob in this machine's cache (``$RUNYARD_HOME/cache/blobs``), downloaded from the server when missing.

    Raises:
        BackendError: the server's copy does not hash to ``digest``.
    """
    from runyard import config
    from runyard.snapshot import hash_file

    path = config.home() / "cache" / "blobs" / digest[:2] / digest
    if path.is_file() and hash_file(path)[0] == digest:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{digest}.{uuid.uuid4().hex}.tmp")
    try:
        client.download_blob(digest, tmp)
        got, n = hash_file(tmp)
        if got != digest:
            raise BackendError(f"Blob {digest} from the server hashes to {got} ({n} bytes, expected {size}).",
                               "The server's copy is damaged; re-create the snapshot with `runyard run`.")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        tmp.with_name(tmp.name + ".part").unlink(missing_ok=True)
    return path


def launch_snapshot_ids(launch: RunLaunch) -> list[str]:
    """The snapshots a launch's runner materialises: its code's, then its datasets' (``RunLaunch.datasets``)."""
    ids = [launch.snapshot_id] if launch.snapshot_id else []
    for version in launch.datasets.values():
        sid = version.get("snapshot_id")
        if sid and sid not in ids:
            ids.append(str(sid))
    return ids


def stage_snapshot(launch: RunLaunch, target: BlobTarget, *, known: set[str] | None = None,
                   snapshot_id: str | None = None) -> dict[str, Any]:
    """Put the blobs of ``launch``'s snapshot (or of ``snapshot_id``, one of :func:`launch_snapshot_ids`) that
    ``target`` lacks into it; returns the snapshot (its manifest).

    Blobs come from this machine's cache, downloaded from the server (``launch.server_url``
    with the run's token) when missing. Each blob crosses once: ``target.missing`` is
    asked for the blobs not in ``known``, and ``known`` (a set the caller keeps per
    target) gets every blob the target has afterwards.
    """
    from runyard.client import Client

    snapshot_id = snapshot_id or launch.snapshot_id
    if not snapshot_id:
        return {}
    with Client(launch.server_url, launch.token, timeout_s=60.0) as client:
        snap = client.get_snapshot(snapshot_id)
        sizes = {str(f[1]): int(f[2]) for f in snap["files"]}
        wanted = [d for d in sorted(sizes) if known is None or d not in known]
        if wanted:
            lacking = target.missing(wanted)
            for digest in wanted:
                if digest in lacking:
                    target.put(digest, local_blob(client, digest, sizes[digest]))
                if known is not None:
                    known.add(digest)
    return snap


def poll_waiting(poll_once: Callable[[Sequence[str]], Mapping[str, EngineState]], job_ids: Sequence[str],
                 wait_s: float = 0.0, *, interval_s: float = 0.25) -> dict[str, EngineState]:
    """``poll_once(job_ids)``, repeated up to ``wait_s`` until one job is terminal (once when ``wait_s`` <= 0)."""
    deadline = time.monotonic() + wait_s
    while True:
        states = dict(poll_once(job_ids))
        if wait_s <= 0 or any(s.status.terminal for s in states.values()) or time.monotonic() >= deadline:
            return states
        time.sleep(min(interval_s, max(0.0, deadline - time.monotonic())))

