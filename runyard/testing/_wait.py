"""Waiting on real processes in tests: poll a condition with a deadline, check a pid."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from runyard._proc import pid_alive

__all__ = ["pid_alive", "wait_for"]


def wait_for(predicate: Callable[[], Any], timeout_s: float = 20.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; AssertionError naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.05)

