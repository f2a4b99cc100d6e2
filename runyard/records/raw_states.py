"""Raw engine states with a meaning of their own: written by the runner's local agent, read by the scheduler."""

from __future__ import annotations

__all__ = ["NO_RECORD"]

NO_RECORD = "no-record"
"""A lost job's raw state when no agent ever wrote a record of it: it never started."""
