"""The ``Store`` facade: one object with every read and write the server makes, returning frozen records.

Its methods live in per-resource parts (``_projects``, ``_experiments``, ``_runs``, ``_statuses``,
``_scheduling``, ``_tasks``, ``_metrics``, ``_logs``, ``_files``, ``_media``) that share ``_common.StorePart``.

Thread safety: a ``Store`` is shared by all request threads; each method opens its
own transaction. Ownership: records returned are immutable copies.
"""

from __future__ import annotations

import threading

from sqlalchemy import Engine

from runyard.store._datasets import DatasetsPart  # versioned datasets
from runyard.store._engine import make_engine
from runyard.store._experiments import ExperimentsPart
from runyard.store._files import FilesPart
from runyard.store._lineage import LineagePart
from runyard.store._logs import LogsPart
from runyard.store._media import MediaPart
from runyard.store._metrics import MetricsPart
from runyard.store._points import BLOCK_STEPS
from runyard.store._projects import ProjectsPart
from runyard.store._registry import RegistryPart
from runyard.store._runs import RunsPart
from runyard.store._scheduling import SchedulingPart
from runyard.store._statuses import StatusesPart
from runyard.store._tasks import TasksPart

__all__ = ["BLOCK_STEPS", "Store"]


class Store(ProjectsPart, ExperimentsPart, RunsPart, StatusesPart, SchedulingPart, TasksPart, MetricsPart, LogsPart, FilesPart,
            MediaPart,
            RegistryPart,  # the model registry
            DatasetsPart,  # versioned datasets
            LineagePart):  # the datasets runs read, and the lineage graph
    """Facade over the database. Create with ``Store.open()`` (applies migrations)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        self._key_ids: dict[str, int] = {}
        self._key_lock = threading.Lock()
        ph = "?" if self._sqlite else "%s"
        self._prepare_metric_sql(ph)
        self._prepare_log_sql(ph)

    @classmethod
    def open(cls, url: str | None = None, *, migrate: bool = True) -> Store:
        """Connect to ``url`` (default from the environment) and bring the schema up to date."""
        engine = make_engine(url)
        if migrate:
            from runyard.store._migrate import upgrade

            upgrade(engine)
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()
