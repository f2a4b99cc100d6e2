"""``GET /api/v1/health``: ``ok``, or ``degraded`` with the reasons (disk nearly full, database unreachable,
write failures of the last minute). Answered from a cache at most a second old, so it stays cheap."""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from runyard import config

__all__ = ["HealthCheck"]

_CACHE_S = 1.0
_DB_TIMEOUT_S = 1.0
_RECENT_S = 60.0


def min_free_bytes() -> int:
    """Below this much free space on a disk the server writes to, health says ``degraded`` (RUNYARD_HEALTH_MIN_FREE_MB)."""
    return int(float(os.environ.get("RUNYARD_HEALTH_MIN_FREE_MB", "100")) * 1024 * 1024)


class HealthCheck:
    """The server's health, computed at most once per second (thread-safe).

    Args:
        app: the FastAPI app (its ``state.store``, ``state.artifacts``, ``state.storage_problems``).
    """

    def __init__(self, app: Any) -> None:
        self._app = app
        self._lock = threading.Lock()
        self._at = -_CACHE_S
        self._answer: tuple[str, list[str], bool] = ("ok", [], True)
        # One thread for the database probe: a probe that hangs is waited for at most _DB_TIMEOUT_S, and
        # while it hangs no second one is started.
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="runyard-health")
        self._probe: concurrent.futures.Future[None] | None = None

    def status(self) -> tuple[str, list[str], bool]:
        """``(status, problems, database_ok)``."""
        with self._lock:
            now = time.monotonic()
            if now - self._at >= _CACHE_S:
                self._answer = self._compute()
                self._at = time.monotonic()
            return self._answer

    def _compute(self) -> tuple[str, list[str], bool]:
        problems: list[str] = []
        db_ok = True
        why = self._database()
        if why:
            problems.append(why)
            db_ok = False
        problems += self._disks()
        state = self._app.state
        recent = getattr(state, "storage_problems", None)
        if recent is not None:
            problems += [f"a write failed: {p}" for p in recent.recent(_RECENT_S)]
        return ("degraded" if problems else "ok"), problems, db_ok

    def _database(self) -> str:
        store = self._app.state.store
        if store is None:
            return ""
        if self._probe is not None and not self._probe.done():
            return f"database unreachable: a check has not answered for over {_DB_TIMEOUT_S:g} s"

        def select_one() -> None:
            from sqlalchemy import text

            with store.engine.connect() as conn:
                conn.execute(text("SELECT 1"))

        self._probe = self._pool.submit(select_one)
        try:
            self._probe.result(timeout=_DB_TIMEOUT_S)
        except concurrent.futures.TimeoutError:
            return f"database unreachable: SELECT 1 did not answer within {_DB_TIMEOUT_S:g} s"
        except Exception as e:  # noqa: BLE001 - any failure of the probe is the answer
            first = (str(getattr(e, "orig", None) or e).strip().splitlines() or [type(e).__name__])[0]
            return f"database unreachable: {first}"
        return ""

    def _disks(self) -> list[str]:
        """Free space where the server writes: the SQLite file's directory (else RUNYARD_HOME), and a local artifact store."""
        places: dict[str, Path] = {}
        store = self._app.state.store
        url = getattr(getattr(store, "engine", None), "url", None)
        if url is not None and url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            places["database"] = Path(url.database).parent
        else:
            places["RUNYARD_HOME"] = config.home()
        artifacts = getattr(self._app.state, "artifacts", None)
        if artifacts is not None and getattr(artifacts.fs, "protocol", None) in ("file", ("file", "local"), "local"):
            places["artifact store"] = Path(artifacts.root)
        problems = []
        floor = min_free_bytes()
        seen: set[int] = set()
        for what, path in places.items():
            try:
                dev = path.stat().st_dev
                if dev in seen:
                    continue
                seen.add(dev)
                free = shutil.disk_usage(path).free
            except OSError as e:
                problems.append(f"{what} at {path} cannot be read: {e.strerror or e}")
                continue
            if free < floor:
                problems.append(f"disk full: {free / 1048576:.1f} MiB free for the {what} at {path} "
                                f"(under RUNYARD_HEALTH_MIN_FREE_MB={floor // 1048576})")
        return problems

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
