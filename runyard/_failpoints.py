"""Named places where a test can hold a process on purpose, to land a crash inside a short window.

``RUNYARD_FAILPOINTS="scheduler.before_recording_jobs=60"`` makes :func:`pause` at that name sleep 60 s
(comma-separated ``name=seconds`` pairs). The crash tests set it on a server they are about to SIGKILL, so
the kill lands between two steps that otherwise follow each other within milliseconds; unset (always, in
production) a pause is one dictionary lookup.
"""

from __future__ import annotations

import os
import time

__all__ = ["pause"]

_POINTS: dict[str, float] | None = None


def _points() -> dict[str, float]:
    global _POINTS
    if _POINTS is None:
        points = {}
        for item in os.environ.get("RUNYARD_FAILPOINTS", "").split(","):
            name, _, seconds = item.partition("=")
            if name.strip():
                try:
                    points[name.strip()] = float(seconds)
                except ValueError:
                    points[name.strip()] = 0.0
        _POINTS = points
    return _POINTS


def pause(name: str) -> None:
    """Sleep as long as RUNYARD_FAILPOINTS says for ``name`` (not at all when it does not name it)."""
    seconds = _points().get(name)
    if seconds:
        time.sleep(seconds)
