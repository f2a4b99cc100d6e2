"""Persistence: tables, migrations and the ``Store`` facade returning frozen records."""

from runyard.store._engine import make_engine
from runyard.store._migrate import current_revision, head_revision, upgrade
from runyard.store._new_run import insert_run
from runyard.store._query import Filter, Order, parse_filter, parse_order
from runyard.store._records import (
    ACTIVE_STATUSES,
    RUN_STATUSES,
    TERMINAL_STATUSES,
    Artifact,
    Experiment,
    LogLine,
    MetricSummary,
    Project,
    Run,
    RunEvent,
    RunPage,
    Snapshot,
    Task,
)
from runyard.store._store import BLOCK_STEPS, Store
from runyard.store._tags import TagFilter, parse_tag_filter

__all__ = [
    "ACTIVE_STATUSES",
    "BLOCK_STEPS",
    "RUN_STATUSES",
    "TERMINAL_STATUSES",
    "Artifact",
    "Experiment",
    "Filter",
    "LogLine",
    "MetricSummary",
    "Order",
    "Project",
    "Run",
    "RunEvent",
    "RunPage",
    "Snapshot",
    "Store",
    "TagFilter",
    "Task",
    "current_revision",
    "head_revision",
    "insert_run",
    "make_engine",
    "parse_filter",
    "parse_order",
    "parse_tag_filter",
    "upgrade",
]
