"""Helpers for the backend tests (a module, not conftest: conftest modules are not importable by name)."""

from __future__ import annotations

import time
from typing import Any

from runyard.testing import pid_alive, wait_for

__all__ = ["pid_alive", "wait_for", "wait_terminal"]


def wait_terminal(backend: Any, job_id: str, timeout_s: float = 30.0) -> Any:
    """The job's terminal EngineState, waiting on the agent (poll with wait_s)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = backend.poll([job_id], wait_s=min(2.0, max(0.01, deadline - time.monotonic())))[job_id]
        if state.status.terminal:
            return state
    raise AssertionError(f"job {job_id} did not end within {timeout_s}s")
