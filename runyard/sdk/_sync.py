"""``runyard sync``: send what SDK processes left in ``$RUNYARD_HOME/spool/`` to the server.

A directory there holds what one run could not send before its process ended:

- ``<run_id>/`` or ``local-<hex>/`` (a run started while the server was away);
- ``*.json``: metric batches, each the exact body of one request (``batch_id`` included,
  so a batch sent twice is stored once);
- ``create.meta``: how to create a ``local-`` run (project, name, params, tags), then the
  id the server gave it (``run_id``), written before anything else is sent, so a sync
  interrupted half-way never creates the run twice;
- ``status.meta``: the ad-hoc run's final status, message and exit code;
- ``artifacts/<artifact path>``: images and tables (``log_image``, ``log_table``) not uploaded in time.

Order per run: create it if needed, send its batches oldest first, its images and tables, then its status. Files
are deleted once the server took (or refused for good) them, the directory once empty.
A directory whose ``create.meta`` names a live process other than this one is left
alone: that process still sends it itself.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runyard import _proc
from runyard.errors import Conflict, InvalidState, NotFound, RunyardError, ServerUnreachable, http_status
from runyard.sdk._sender import CREATE_FILE, STATUS_FILE, write_meta

__all__ = ["SyncResult", "pending_runs", "sync"]

_JSON = {"Content-Type": "application/json"}


@dataclass
class SyncResult:
    """What ``sync`` did for one spool directory."""

    directory: str
    run_id: int | None = None
    local_id: str | None = None
    created: bool = False
    points: int = 0
    batches: int = 0
    media: int = 0
    dropped: list[str] = field(default_factory=list)
    status: str | None = None
    skipped: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def pending_runs(home: Path) -> list[Path]:
    """The spool directories under ``home/spool`` (oldest name first)."""
    root = home / "spool"
    try:
        return sorted(p for p in root.iterdir() if p.is_dir())
    except FileNotFoundError:
        return []


def sync(client: Any, home: Path) -> list[SyncResult]:
    """Replay every spool directory of ``home`` through ``client`` (a ``runyard.client.Client``).

    Raises:
        ServerUnreachable: the server stopped answering; what was sent so far is deleted,
            the rest stays for the next sync.
    """
    return [_sync_dir(client, d) for d in pending_runs(home)]


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _sync_dir(client: Any, directory: Path) -> SyncResult:
    result = SyncResult(directory=str(directory))
    create = _read(directory / CREATE_FILE)
    if create is not None:
        result.local_id = create.get("local_id") or directory.name
        pid = create.get("pid")
        if isinstance(pid, int) and pid != os.getpid() and _proc.pid_alive(pid):
            result.skipped = f"its process (pid {pid}) still runs and sends it itself"
            return result
        run_id = create.get("run_id")
        if run_id is None:
            if not create.get("project"):
                result.skipped = f"{directory / CREATE_FILE} is damaged (no project); remove the directory by hand"
                return result
            record = client.create_run(create["project"], name=create.get("name") or "", params=create.get("params") or {},
                                       tags=create.get("tags") or {})
            run_id = int(record["id"])
            write_meta(directory / CREATE_FILE, {**create, "run_id": run_id})  # before sending anything
            result.created = True
    elif directory.name.isdigit():
        run_id = int(directory.name)
    else:
        result.skipped = "not a run's spool (no create.meta and not a run id)"
        return result
    result.run_id = run_id
    for path in sorted((p for p in directory.iterdir() if p.suffix == ".json"), key=_age):
        try:
            body = path.read_bytes()
        except FileNotFoundError:
            continue  # another process sent it meanwhile
        try:
            client.request("POST", f"/runs/{run_id}/metrics", content=body, headers=_JSON)
            result.batches += 1
            result.points += _points(path)
        except ServerUnreachable:
            raise
        except RunyardError as e:
            if http_status(e) >= 500:
                raise
            result.dropped.append(f"{path.name}: {e.message}")
        path.unlink(missing_ok=True)
    _sync_media(client, directory, run_id, result)
    status = _read(directory / STATUS_FILE)
    if status is not None:
        try:
            client.update_run(run_id, status.get("status") or "failed", status.get("message"), status.get("exit_code"))
            result.status = status.get("status")
        except (InvalidState, Conflict, NotFound) as e:
            result.dropped.append(f"status {status.get('status')}: {e.message}")
        (directory / STATUS_FILE).unlink(missing_ok=True)
    (directory / CREATE_FILE).unlink(missing_ok=True)
    for leftover in directory.glob(".*.tmp"):
        leftover.unlink(missing_ok=True)
    try:
        directory.rmdir()
    except OSError:
        pass  # a file written meanwhile: the next sync
    return result


def _sync_media(client: Any, directory: Path, run_id: int, result: SyncResult) -> None:
    """Upload the images and tables saved under ``artifacts/`` (each file whole: saved by rename), then remove them."""
    from runyard.sdk._media import SPOOL_MEDIA

    root = directory / SPOOL_MEDIA
    if not root.is_dir():
        return
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
        rel = path.relative_to(root).as_posix()
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue
        try:
            client.upload_artifact(run_id, rel, data)
            result.media += 1
        except ServerUnreachable:
            raise
        except RunyardError as e:
            if http_status(e) >= 500:
                raise
            result.dropped.append(f"{rel}: {e.message}")
        path.unlink(missing_ok=True)
    for leftover in root.rglob(".*.tmp"):
        leftover.unlink(missing_ok=True)
    for sub in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        try:
            sub.rmdir()
        except OSError:
            pass
    try:
        root.rmdir()
    except OSError:
        pass


def _age(path: Path) -> tuple[int, str]:
    try:
        return path.stat().st_mtime_ns, path.name
    except FileNotFoundError:
        return 0, path.name


def _points(path: Path) -> int:
    try:
        return int(path.stem.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return 0
