"""The task's system metrics: :class:`runyard._sysmetrics.ProcessTreeSampler`, shared with the SDK's ad-hoc runs."""

from __future__ import annotations

from runyard._sysmetrics import ProcessTreeSampler

__all__ = ["ProcessTreeSampler"]
