"""Runs whose compute nodes cannot reach the server: everything goes to a spool directory.

With ``reach_server: false`` in a backend's configuration (HPC sites whose compute
nodes have no route to the server), the task runner and the SDK inside the task talk
to a :class:`SpoolClient` instead of ``runyard.client.Client``: the same methods,
but each call appends one JSON line to a file on the shared file system. The
backend carries the spool back when it polls (:func:`ingest`) and replays every
line through the real client into the same ingest path as a live run, so the run
looks the same in the CLI and UI.

Layout of a spool directory (one per run attempt, made by the backend)::

    <spool>/<writer>-<pid>.jsonl     one file per process: the runner ("runner-main-0")
                                     and each SDK process ("sdk")
    <spool>/artifacts/<path>         files the task stored as artifacts
    <spool>/.ingested.json           how far each file was replayed (written by ingest)

Each line is ``{"op": ..., ...}`` with op ``logs``, ``metrics`` (the request body,
``batch_id`` included, so a line replayed twice is stored once), ``task``, ``run``,
``params``, ``tags`` or ``artifact``. Lines are appended with one ``write`` each
and end with a newline; a reader only takes lines that are complete.

The snapshot: the backend copies the snapshot's manifest and blobs into a blob
cache on the shared file system before it submits (``snapshots/<id>.json`` and the
``<aa>/<sha256>`` files ``runyard.snapshot.materialize`` reads), so the runner
materialises the code without the server.

Operational traps:

- Heartbeats answer ``running``: a cancel cannot reach the task through the spool,
  so the backend cancels through the engine (``scancel``), whose SIGTERM the runner
  turns into a stop.
- Replays into a run that ended meanwhile (canceled) are refused by the server with
  ``InvalidState`` and skipped, as for a live runner.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from runyard.errors import Conflict, InvalidInput, NotFound, RunyardError

__all__ = ["SPOOL_ENV", "SpoolClient", "ingest", "snapshot_manifest_path"]

SPOOL_ENV = "RUNYARD_SPOOL_DIR"  # set in a task's environment: the SDK spools instead of calling the server
STATE_FILE = ".ingested.json"


def snapshot_manifest_path(blob_cache: Path, snapshot_id: str) -> Path:
    """Where the backend puts a snapshot's manifest in the blob cache."""
    return Path(blob_cache) / "snapshots" / f"{snapshot_id}.json"


class _Response:
    """What ``Client.request`` callers read from a response (the SDK's sender reads nothing)."""

    status_code = 200
    content = b"{}"

    def json(self) -> dict[str, Any]:
        return {}


class SpoolClient:
    """The subset of ``runyard.client.Client`` a runner and the SDK use, written to a spool. Thread-safe.

    Args:
        directory: the run attempt's spool directory (shared with the backend).
        writer: names this process's file, e.g. ``runner-main-0`` or ``sdk``.
        blob_cache: where the backend put the snapshot (see the module docs).
    """

    def __init__(self, directory: str | os.PathLike[str], writer: str = "sdk", *, blob_cache: str | os.PathLike[str] | None = None) -> None:
        self.dir = Path(directory)
        self.base_url = f"spool:{self.dir}"
        self.blob_cache = Path(blob_cache) if blob_cache else None
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / f"{writer}-{os.getpid()}.jsonl"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls) -> SpoolClient:
        return cls(os.environ[SPOOL_ENV], "sdk", blob_cache=os.environ.get("RUNYARD_BLOB_CACHE") or None)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> SpoolClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _append(self, op: str, **fields: Any) -> None:
        line = (json.dumps({"op": op, "t": time.time(), **fields}, separators=(",", ":")) + "\n").encode()
        with self._lock:
            if self._fd < 0:
                raise RunyardError(f"The spool file {self.path} is closed.", "This is a bug in Runyard: report it.")
            os.write(self._fd, line)  # O_APPEND: one write per line, so lines never interleave

    # ------------------------------------------------------------ the runner's calls
    def heartbeat(self, run_id: int) -> str:
        return "running"

    def get_run(self, run_id: int) -> dict[str, Any]:
        return {"id": run_id, "status": "running"}

    def update_run(self, run_id: int, status: str, message: str | None = None, exit_code: int | None = None) -> dict[str, Any]:
        self._append("run", status=status, message=message, exit_code=exit_code)
        return {"id": run_id, "status": status}

    def update_task(self, run_id: int, role: str, rank: int, **fields: Any) -> dict[str, Any]:
        self._append("task", role=role, rank=rank, fields={k: v for k, v in fields.items() if v is not None})
        return {}

    def report(self, run_id: int, *, task: dict[str, Any] | None = None, run: dict[str, Any] | None = None,
               then: dict[str, Any] | None = None) -> dict[str, Any]:
        """The reporter's combined start/end report, spooled as its task and run parts (replayed in this order)."""
        status = "running"
        for step_task, step_run in [(task, run)] + ([(then.get("task"), then.get("run"))] if then else []):
            if step_task is not None:
                fields = dict(step_task)
                self.update_task(run_id, fields.pop("role"), fields.pop("rank"), **fields)
            if step_run is not None:
                self.update_run(run_id, step_run["status"], step_run.get("message"), step_run.get("exit_code"))
                status = step_run["status"]
        return {"applied": True, "status": status}

    def append_logs(self, run_id: int, task: str, lines: list[dict[str, Any]], *, batch_id: str | None = None) -> int:
        self._append("logs", task=task, lines=lines, batch_id=batch_id or uuid.uuid4().hex)
        return 0

    def log_metrics(self, run_id: int, keys: list[str], steps: list[int], values: list[float | None],
                    timestamps: list[float], batch_id: str | None = None) -> dict[str, Any]:
        self._append("metrics", body={"batch_id": batch_id, "keys": keys, "steps": steps, "values": values,
                                      "timestamps": timestamps})
        return {}

    def log_params(self, run_id: int, params: dict[str, Any]) -> dict[str, Any]:
        self._append("params", params=params)
        return {}

    def set_tags(self, run_id: int, tags: dict[str, str]) -> dict[str, Any]:
        self._append("tags", tags={k: str(v) for k, v in tags.items()})
        return {}

    def request(self, method: str, path: str, *, content: Any = None, json: Any = None, **_: Any) -> _Response:
        """The SDK's sender posts metric bodies as raw JSON; nothing else goes through here."""
        if method == "POST" and path.endswith("/metrics"):
            body = json if json is not None else _loads(content)
            self._append("metrics", body=body)
            return _Response()
        raise RunyardError(f"{method} {path} is not available while the run spools (reach_server: false).",
                           "Only metrics, logs, params, tags, artifacts and statuses are carried back by the backend.")

    def upload_artifact(self, run_id: int, path: str, data: bytes | BinaryIO | Iterator[bytes]) -> dict[str, Any]:
        rel = Path(path)
        if rel.is_absolute() or ".." in rel.parts:
            raise RunyardError(f"The artifact path {path!r} must be relative and stay inside the run.",
                               "Pass a name like 'model/weights.pt'.")
        dest = self.dir / "artifacts" / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            if isinstance(data, bytes | bytearray):
                f.write(data)
            elif hasattr(data, "read"):
                shutil.copyfileobj(data, f)  # type: ignore[arg-type]
            else:
                for chunk in data:
                    f.write(chunk)
        os.replace(tmp, dest)
        self._append("artifact", path=rel.as_posix())
        return {"path": rel.as_posix(), "size": dest.stat().st_size}

    # ------------------------------------------------------------ the snapshot
    def get_snapshot(self, snapshot_id: str) -> dict[str, Any]:
        if self.blob_cache is None:
            raise NotFound(f"Snapshot {snapshot_id} is not available: this run spools and has no blob cache.",
                           "The backend must set RUNYARD_BLOB_CACHE; this is a bug in the backend.")
        path = snapshot_manifest_path(self.blob_cache, snapshot_id)
        try:
            return json.loads(path.read_text())
        except FileNotFoundError as e:
            raise NotFound(f"Snapshot {snapshot_id} is not in the blob cache {self.blob_cache} ({path} is missing).",
                           "The backend copies it there before submitting; is the directory on a file system "
                           "the compute nodes share?") from e

    def download_blob(self, digest: str, dest: Path) -> int:
        raise NotFound(f"Blob {digest} is not in the blob cache {self.blob_cache}, and this run cannot reach the server.",
                       "The backend copies every blob there before submitting; is the directory on a shared file system?")


def _loads(content: Any) -> Any:
    if isinstance(content, bytes | bytearray):
        return json.loads(content)
    if isinstance(content, str):
        return json.loads(content)
    return json.loads(b"".join(content))


# ------------------------------------------------------------------ backend side
class SpoolReader:
    """How a backend reads a spool directory: local files, or through a remote host."""

    def list(self, directory: str) -> list[str]:  # names of *.jsonl files
        names = []
        try:
            for entry in os.scandir(directory):
                if entry.name.endswith(".jsonl"):
                    names.append(entry.name)
        except FileNotFoundError:
            return []
        return names

    def read_from(self, path: str, offset: int) -> bytes:
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                return f.read()
        except FileNotFoundError:
            return b""

    def read_all(self, path: str) -> bytes | None:
        try:
            return Path(path).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, path: str, data: bytes) -> None:
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)

    def open_artifact(self, path: str) -> Any:
        return open(path, "rb")


def ingest(directory: str, run_id: int, client: Any, reader: SpoolReader | None = None) -> int:
    """Replay the spool's new complete lines through ``client`` (a ``runyard.client.Client``).

    SDK files go first, then the runner's: the runner writes the run's final status
    after its task (and so the SDK) ended, so metrics always land before it. How far
    each file was replayed is kept in ``.ingested.json`` next to the files, so a
    restarted server replays nothing twice (metric batches would be deduplicated by
    their ``batch_id`` anyway; log lines would not).

    Returns:
        The number of lines replayed.

    Raises:
        ServerUnreachable: the server did not answer; the lines stay for the next call.
    """
    reader = reader or SpoolReader()
    state_path = f"{directory}/{STATE_FILE}"
    raw = reader.read_all(state_path)
    offsets: dict[str, int] = json.loads(raw) if raw else {}
    # The runners' files are read before the directory is listed again for the SDK files: whatever
    # a runner wrote by then (its final status included) came after its task's SDK lines, which the
    # second listing and the reads after it therefore see. Listing once and reading runner files
    # last could miss an SDK file created after the listing while replaying the run's end.
    runner_names = sorted(n for n in reader.list(directory) if n.startswith("runner-"))
    runner_data = {name: reader.read_from(f"{directory}/{name}", offsets.get(name, 0)) for name in runner_names}
    sdk_names = sorted(n for n in reader.list(directory) if not n.startswith("runner-"))
    files = [(name, reader.read_from(f"{directory}/{name}", offsets.get(name, 0))) for name in sdk_names]
    files += list(runner_data.items())
    n_done = 0
    try:
        for name, data in files:
            offset = offsets.get(name, 0)
            end = data.rfind(b"\n")
            if end < 0:
                continue
            for line in data[: end + 1].splitlines(keepends=True):
                if line.strip():
                    try:
                        op = json.loads(line)
                    except ValueError:
                        op = None  # a damaged line (disk full on the node): skip it, keep the rest
                    if isinstance(op, dict):
                        _replay(op, directory, run_id, client, reader)
                    n_done += 1
                offset += len(line)
                offsets[name] = offset
    finally:
        if n_done:
            reader.write(state_path, json.dumps(offsets).encode())
    return n_done


def _replay(op: Mapping[str, Any], directory: str, run_id: int, client: Any, reader: SpoolReader) -> None:
    kind = op.get("op")
    try:
        if kind == "logs":
            client.append_logs(run_id, op["task"], op["lines"], batch_id=op.get("batch_id"))
        elif kind == "metrics":
            client.log_metrics(run_id, **op["body"])
        elif kind == "task":
            client.update_task(run_id, op["role"], op["rank"], **op.get("fields", {}))
        elif kind == "run":
            client.update_run(run_id, op["status"], op.get("message"), op.get("exit_code"))
        elif kind == "params":
            client.log_params(run_id, op["params"])
        elif kind == "tags":
            client.set_tags(run_id, op["tags"])
        elif kind == "artifact":
            with reader.open_artifact(f"{directory}/artifacts/{op['path']}") as f:
                client.upload_artifact(run_id, op["path"], f)
    except (Conflict, NotFound):
        pass  # the run ended (canceled) or was deleted meanwhile: as for a live runner, the update is dropped
    except InvalidInput as e:  # refused for good (e.g. a malformed batch): dropped, as the live reporter does
        import logging

        logging.getLogger("runyard.backends").warning("run %s: spooled %s refused, dropped: %s", run_id, kind, e.message)
