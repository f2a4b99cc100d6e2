"""One-line reports on stderr for the SDK, each kind at most once per run.

The SDK never raises into the training loop; what goes wrong is told here instead.
Printing must itself never fail (stderr may be closed at interpreter shutdown).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Hashable

__all__ = ["Reporter", "report"]


def report(message: str) -> None:
    """Print ``runyard: message`` on stderr, swallowing errors of stderr itself."""
    try:
        print(f"runyard: {message}", file=sys.stderr, flush=True)
    except (OSError, ValueError):  # closed or broken stderr at shutdown: nothing better to do
        pass


class Reporter:
    """Reports each kind of problem once. Thread-safe: the sender thread and user code share one."""

    def __init__(self) -> None:
        self._seen: set[Hashable] = set()
        self._lock = threading.Lock()

    def once(self, kind: Hashable, message: str) -> bool:
        """Report ``message`` unless ``kind`` was reported before; true when it printed."""
        with self._lock:
            if kind in self._seen:
                return False
            self._seen.add(kind)
        report(message)
        return True

    def forget(self, kind: Hashable) -> None:
        """Allow ``kind`` to be reported again (e.g. the next outage after a recovery)."""
        with self._lock:
            self._seen.discard(kind)
