"""Persistence: tables, migrations, the ``Store`` facade returning frozen records, and the ``AuthStore``.

The access-control names (``AuthStore`` and its records) load on first use: ``runyard.store._auth``
hashes a dummy password with argon2 at import, a cost that users of the ``Store`` alone need not pay.
"""

from typing import TYPE_CHECKING, Any

from runyard.store._engine import make_engine
from runyard.store._lineage import (
    LineageEdge,
    LineageGraph,
    LineageNode,
    RunDataset,
    check_run_dataset_name,
    parse_lineage_uri,
)
from runyard.store._migrate import current_revision, head_revision, upgrade
from runyard.store._new_run import insert_run
from runyard.store._query import Filter, Order, parse_filter, parse_order
from runyard.store._records import (
    ACTIVE_STATUSES,
    RUN_STATUSES,
    TERMINAL_STATUSES,
    Artifact,
    Experiment,
    ImageItem,
    LogLine,
    MetricSummary,
    Model,
    ModelAliasChange,
    ModelAliasEvent,
    ModelDetail,
    ModelVersion,
    Project,
    Run,
    RunEvent,
    RunNote,
    RunPage,
    Snapshot,
    TableItem,
    Task,
)
from runyard.store._statuses import EXTERNAL_BACKEND
from runyard.store._store import BLOCK_STEPS, Store
from runyard.store._tags import TagFilter, parse_tag_filter

if TYPE_CHECKING:
    from runyard.store._auth import ROLES, AccessInfo, AuditEvent, AuthStore, Member, TokenInfo, User

_AUTH_NAMES = frozenset({"ROLES", "AccessInfo", "AuditEvent", "AuthStore", "Member", "TokenInfo", "User"})


def __getattr__(name: str) -> Any:
    if name in _AUTH_NAMES:
        from runyard.store import _auth

        return getattr(_auth, name)
    raise AttributeError(f"module 'runyard.store' has no attribute {name!r}")


__all__ = [
    "ACTIVE_STATUSES",
    "BLOCK_STEPS",
    "EXTERNAL_BACKEND",
    "ROLES",
    "RUN_STATUSES",
    "TERMINAL_STATUSES",
    "AccessInfo",
    "Artifact",
    "AuditEvent",
    "AuthStore",
    "Experiment",
    "Filter",
    "ImageItem",
    "LogLine",
    "Member",
    "MetricSummary",
    "Model",
    "ModelAliasChange",
    "ModelAliasEvent",
    "ModelDetail",
    "ModelVersion",
    "Order",
    "Project",
    "Run",
    "RunEvent",
    "RunNote",
    "RunPage",
    "Snapshot",
    "Store",
    "TableItem",
    "TagFilter",
    "Task",
    "TokenInfo",
    "User",
    "current_revision",
    "head_revision",
    "insert_run",
    "make_engine",
    "parse_filter",
    "parse_order",
    "parse_tag_filter",
    "upgrade",
    # lineage
    "LineageEdge",
    "LineageGraph",
    "LineageNode",
    "RunDataset",
    "check_run_dataset_name",
    "parse_lineage_uri",
]
