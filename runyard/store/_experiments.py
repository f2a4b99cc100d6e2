"""Experiments: create, read, list and end them, and their runs' columns (the ``Store``'s experiment methods)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, insert, select, update

import runyard.names as names
from runyard.errors import InvalidInput, NotFound
from runyard.store import _models as m
from runyard.store._common import StorePart, _clean_float, _json_value, _now
from runyard.store._engine import read_scope, write_scope
from runyard.store._query import parse_field
from runyard.store._records import TERMINAL_STATUSES, Experiment


class ExperimentsPart(StorePart):
    """The ``Store``'s experiment methods."""

    def create_experiment(
        self, project: str, name: str, *, config: dict[str, Any] | None = None, snapshot_id: str | None = None, backend: str = "local",
        created_by: int | None = None,
    ) -> Experiment:
        """``created_by``: the submitting user's id (disabling them cancels the experiment's queued runs)."""
        names.check_experiment_name(name)
        names.check_value(config or {}, "config")
        self.ensure_project(project)
        with write_scope(self.engine) as conn:
            pid = self._project_id(conn, project)
            eid = conn.execute(
                insert(m.SqlExperiment)
                .values(project_id=pid, name=name, status="running", config=json.dumps(config or {}),
                        snapshot_id=snapshot_id, backend=backend, created_at=_now(), created_by=created_by)
                .returning(m.SqlExperiment.id)
            ).scalar_one()
        return self.get_experiment(eid)

    def get_experiment(self, experiment_id: int) -> Experiment:
        found = self.list_experiments(experiment_id=experiment_id)
        if not found:
            raise NotFound(f"No experiment with id {experiment_id}.", "List experiments with `runyard experiments`.")
        return found[0]

    def list_experiments(self, project: str | None = None, *, experiment_id: int | None = None, limit: int = 1000,
                         project_ids: Sequence[int] | None = None) -> list[Experiment]:
        """Newest first; ``project_ids`` keeps only those projects' experiments (what a user may see)."""
        e, p = m.SqlExperiment, m.SqlProject
        stmt = select(e.__table__, p.name.label("project_name")).join(p, p.id == e.project_id).order_by(e.id.desc()).limit(limit)
        if project_ids is not None:
            stmt = stmt.where(e.project_id.in_(list(project_ids)))
        if project is not None:
            stmt = stmt.where(p.name == project)
        if experiment_id is not None:
            stmt = stmt.where(e.id == experiment_id)
        with read_scope(self.engine) as conn:
            rows = conn.execute(stmt).all()
            ids = [r[0] for r in rows]
            counts: dict[int, dict[str, int]] = {i: {} for i in ids}
            if ids:
                for eid, status, n in conn.execute(
                    select(m.SqlRun.experiment_id, m.SqlRun.status, func.count())
                    .where(m.SqlRun.experiment_id.in_(ids))
                    .group_by(m.SqlRun.experiment_id, m.SqlRun.status)
                ):
                    counts[eid][status] = n
        return [
            Experiment(
                id=r.id, project=r.project_name, name=r.name, status=r.status, config=_json_value(r.config), snapshot_id=r.snapshot_id,
                backend=r.backend, message=r.message, created_at=r.created_at, ended_at=r.ended_at, counts=counts[r.id],
                warnings=json.loads(r.warnings or "[]"),
            )
            for r in rows
        ]

    def set_experiment_status(self, experiment_id: int, status: str, message: str = "", *,
                              only_if: str | None = None) -> Experiment:
        """Set the experiment's status; with ``only_if``, only while it has that status (else nothing changes)."""
        ended = _now() if status in TERMINAL_STATUSES else None
        e = m.SqlExperiment
        with write_scope(self.engine) as conn:
            stmt = update(e).where(e.id == experiment_id)
            if only_if is not None:
                stmt = stmt.where(e.status == only_if)
            res = conn.execute(stmt.values(status=status, message=message, ended_at=ended))
            if res.rowcount == 0 and (only_if is None or conn.execute(select(e.id).where(e.id == experiment_id)).first() is None):
                raise NotFound(f"No experiment with id {experiment_id}.", "List experiments with `runyard experiments`.")
        return self.get_experiment(experiment_id)

    def add_experiment_warning(self, experiment_id: int, text: str) -> None:
        """Record a warning on the experiment (once: the same text again is not repeated)."""
        e = m.SqlExperiment
        with write_scope(self.engine) as conn:
            stored = conn.execute(select(e.warnings).where(e.id == experiment_id)).scalar()
            if stored is None:
                raise NotFound(f"No experiment with id {experiment_id}.", "List experiments with `runyard experiments`.")
            warnings = json.loads(stored or "[]")
            if text not in warnings:
                conn.execute(update(e).where(e.id == experiment_id).values(warnings=json.dumps([*warnings, text])))

    def experiment_keys(self, experiment_id: int) -> dict[str, list[str]]:
        """The param and metric names the experiment's runs have, sorted: a table's column choices."""
        self.get_experiment(experiment_id)
        r = m.SqlRun
        runs = select(r.id).where(r.experiment_id == experiment_id)
        with read_scope(self.engine) as conn:
            params = sorted(conn.execute(select(m.SqlParam.key).where(m.SqlParam.run_id.in_(runs)).distinct()).scalars())
            metrics = sorted(conn.execute(
                select(m.SqlMetricKey.name).where(m.SqlMetricKey.id.in_(
                    select(m.SqlMetricSummary.key_id).where(m.SqlMetricSummary.run_id.in_(runs)).distinct()))
            ).scalars())
        return {"params": params, "metrics": metrics}

    def experiment_columns(self, experiment_id: int, fields: Sequence[str]) -> dict[str, Any]:
        """Columns of values for every run of the experiment: ``{"ids": [...], "columns": {field: [...]}}``.

        ``fields`` name params (``params.lr``) and metric summaries (``metrics.acc.max``, ``.last``
        by default); a run without a value has ``None``. Made for plots over all runs (10,000 runs
        in one small response), without building a record per run.
        """
        params: list[str] = []
        metrics: list[tuple[str, str, str]] = []
        quoted: dict[str, bool] = {}
        for f in fields:
            if f.startswith(("params.", "metrics.")):
                kind, key, agg, quoted[f] = parse_field(f)
                if kind == "param":
                    params.append(key)
                else:
                    metrics.append((f, key, agg))
                continue
            raise InvalidInput(f"Unknown field {f!r}: columns are params or metrics.",
                               "Write params.NAME or metrics.NAME[.last|.min|.max], e.g. fields=metrics.loss.min.")
        self.get_experiment(experiment_id)
        r = m.SqlRun
        with read_scope(self.engine) as conn:
            ids = list(conn.execute(select(r.id).where(r.experiment_id == experiment_id).order_by(r.id)).scalars())
            pos = {rid: i for i, rid in enumerate(ids)}
            columns: dict[str, list[Any]] = {}
            runs = select(r.id).where(r.experiment_id == experiment_id)
            if params:
                for k in params:
                    columns[f"params.{k}"] = [None] * len(ids)
                p = m.SqlParam
                for rid, key, value in conn.execute(select(p.run_id, p.key, p.value).where(p.run_id.in_(runs), p.key.in_(params))):
                    columns[f"params.{key}"][pos[rid]] = _json_value(value)
            sm = m.SqlMetricSummary
            for field, key, agg in metrics:
                col: list[Any] = [None] * len(ids)
                columns[field] = col
                kid = self._resolve_metric(conn, key, quoted[field], f"field {field!r}")
                if kid is None:
                    continue
                value = {"last": sm.last, "min": sm.min, "max": sm.max}[agg]
                for rid, v in conn.execute(select(sm.run_id, value).where(sm.key_id == kid, sm.run_id.in_(runs))):
                    col[pos[rid]] = _clean_float(v)
        return {"ids": ids, "columns": columns}
