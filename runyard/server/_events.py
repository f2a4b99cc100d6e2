"""In-process change counters that let long-polls and event streams wake quickly.

Writers call ``bump(topic)``; waiters compare ``version(topic)`` cheaply every
100 ms and still re-read the database at least once a second, so changes made by
another server process are seen too.
"""

from __future__ import annotations

import asyncio
import threading
import time

__all__ = ["Changes"]


class Changes:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._versions: dict[str, int] = {}

    def bump(self, topic: str) -> None:
        with self._lock:
            self._versions[topic] = self._versions.get(topic, 0) + 1

    def version(self, topic: str) -> int:
        return self._versions.get(topic, 0)

    async def wait(self, topic: str, since: int, timeout_s: float, *, recheck_s: float = 1.0) -> int:
        """Sleep until ``topic`` moves past ``since``, ``recheck_s`` passes, or ``timeout_s`` ends."""
        deadline = time.monotonic() + min(timeout_s, recheck_s)
        while time.monotonic() < deadline:
            v = self.version(topic)
            if v != since:
                return v
            await asyncio.sleep(0.05)
        return self.version(topic)
