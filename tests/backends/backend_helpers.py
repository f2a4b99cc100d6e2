"""Helpers for the backend tests (a module, not conftest: conftest modules are not importable by name)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(predicate: Callable[[], Any], timeout_s: float = 20.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy (tests observe real processes)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.05)


def pid_alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_terminal(backend: Any, job_id: str, timeout_s: float = 30.0) -> Any:
    """The job's terminal EngineState, waiting on the agent (poll with wait_s)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = backend.poll([job_id], wait_s=min(2.0, max(0.01, deadline - time.monotonic())))[job_id]
        if state.status.terminal:
            return state
    raise AssertionError(f"job {job_id} did not end within {timeout_s}s")
