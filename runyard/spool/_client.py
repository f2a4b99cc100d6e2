"""The writing side of a run's spool: :class:`SpoolClient`, the client stand-in that appends JSON lines."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Self

from runyard.errors import NotFound, RunyardError

__all__ = ["SPOOL_ENV", "SpoolClient", "snapshot_manifest_path"]

SPOOL_ENV = "RUNYARD_SPOOL_DIR"  # set in a task's environment: the SDK spools instead of calling the server
BLOB_CACHE_ENV = "RUNYARD_BLOB_CACHE"  # set beside SPOOL_ENV: where the backend put the snapshot
_COPY_CHUNK = 1024 * 1024


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
        blob_cache: where the backend put the snapshot (see the ``runyard.spool`` docs).
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
        return cls(os.environ[SPOOL_ENV], "sdk", blob_cache=os.environ.get(BLOB_CACHE_ENV) or None)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> Self:
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
                while chunk := data.read(_COPY_CHUNK):
                    f.write(chunk)
            else:
                f.writelines(data)
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
