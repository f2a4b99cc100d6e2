"""The scheduler: a control loop inside the server that turns experiments into running tasks."""

from runyard.scheduler._clock import Clock, SystemClock
from runyard.scheduler._dispatch import (
    BackendPool,
    backend_names,
    build_launch,
    engine_outcome,
    infeasible,
)
from runyard.scheduler._loop import Scheduler

__all__ = ["BackendPool", "Clock", "Scheduler", "SystemClock", "backend_names", "build_launch", "engine_outcome",
           "infeasible"]
