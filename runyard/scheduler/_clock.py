"""Time as the scheduler sees it: monotonic seconds, wall-clock seconds, and waiting for a wake-up."""

from __future__ import annotations

import threading
import time
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    """What the scheduler reads the time from and waits with (tests pass ``runyard.testing.FakeClock``)."""

    def monotonic(self) -> float:
        """Seconds for intervals (lease renewal, pass spacing)."""
        ...

    def time(self) -> float:
        """Seconds since the epoch, comparable with the store's timestamps (created_at, ended_at)."""
        ...

    def wait(self, event: threading.Event, timeout_s: float) -> bool:
        """Wait until ``event`` is set or ``timeout_s`` passed; true when it is set."""
        ...


class SystemClock:
    """The machine's clocks; waiting blocks the calling thread."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def wait(self, event: threading.Event, timeout_s: float) -> bool:
        return event.wait(timeout_s)
