"""The scheduler's reads and writes: leader lease, dispatch compare-and-set, engine jobs, queued runs."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, insert, literal, or_, select, update

from runyard.errors import InvalidInput, InvalidState, NotFound
from runyard.store import _models as m
from runyard.store._common import StorePart, _check_key, _clean_float, _json_ok, _now, _num
from runyard.store._engine import read_scope, write_scope
from runyard.store._engine import statement as _stmt


class SchedulingPart(StorePart):
    """The ``Store``'s scheduler methods."""

    def acquire_lease(self, name: str, holder: str, ttl_s: float) -> bool:
        """Take or renew the named lease; true when ``holder`` has it for the next ``ttl_s`` seconds."""
        now = _now()
        lk = m.SqlLock
        with write_scope(self.engine) as conn:
            if conn.engine.dialect.name == "postgresql":
                conn.exec_driver_sql("LOCK TABLE locks IN SHARE ROW EXCLUSIVE MODE")
            row = conn.execute(select(lk.holder, lk.expires_at).where(lk.name == name)).first()
            if row is None:
                conn.execute(insert(lk).values(name=name, holder=holder, expires_at=now + ttl_s))
                return True
            if row[0] == holder or row[1] < now:
                conn.execute(update(lk).where(lk.name == name).values(holder=holder, expires_at=now + ttl_s))
                return True
            return False

    def release_lease(self, name: str, holder: str) -> None:
        with write_scope(self.engine) as conn:
            conn.execute(delete(m.SqlLock).where(m.SqlLock.name == name, m.SqlLock.holder == holder))

    def claim_runs(self, runs: Sequence[tuple[int, int]]) -> dict[int, str]:
        """The scheduler's dispatch of several runs in one transaction.

        For each ``(run id, attempt)``: compare-and-set ``queued → starting`` and mint the
        attempt's run token (``AuthStore.mint_run_token``'s rules). Returns ``{run id: token}``
        of the runs claimed; a run that is no longer queued (canceled meanwhile, or taken by
        another scheduler) is left out.
        """
        from runyard.store._auth import mint_run_token_in

        claimed: dict[int, str] = {}
        with write_scope(self.engine) as conn:
            for run_id, attempt in runs:
                try:
                    self._set_status_in(conn, run_id, "starting", message="", expect=["queued"])
                except (InvalidState, NotFound):
                    continue  # checked before anything is written: the transaction goes on
                claimed[run_id] = mint_run_token_in(conn, run_id, attempt)
        return claimed

    def set_engine_jobs(self, jobs: Sequence[tuple[int, str, str]]) -> None:
        """Record ``(run id, engine job id, backend)`` of several dispatched runs in one transaction."""
        if not jobs:
            return
        table = m.SqlRun.__table__
        with write_scope(self.engine) as conn:
            conn.execute(_stmt("run_set_job", lambda: update(table).where(table.c.id == bindparam("_id"))),
                         [{"_id": run_id, "engine_job_id": job_id, "backend": backend} for run_id, job_id, backend in jobs])

    def set_engine_job(self, run_id: int, job_id: str | None, backend: str | None = None) -> None:
        values: dict[str, Any] = {"engine_job_id": job_id}
        if backend is not None:
            values["backend"] = backend
        with write_scope(self.engine) as conn:
            conn.execute(update(m.SqlRun).where(m.SqlRun.id == run_id).values(**values))

    def scheduler_runs(self, statuses: Sequence[str], *, ended_after: float | None = None,
                       running_experiments: bool = False) -> list[dict[str, Any]]:
        """Light rows for the scheduler: runs with these statuses (and, for terminal ones, ended after a
        time; with ``running_experiments``, only runs of experiments still running)."""
        r = m.SqlRun
        stmt = select(r.id, r.experiment_id, r.status, r.attempt, r.engine_job_id, r.backend, r.number, r.created_at,
                      r.heartbeat_at, r.ended_at).where(r.status.in_(list(statuses)), r.experiment_id.is_not(None))
        if ended_after is not None:
            stmt = stmt.where(r.ended_at > ended_after)
        if running_experiments:
            e = m.SqlExperiment
            stmt = stmt.where(r.experiment_id.in_(select(e.id).where(e.status == "running")))
        with read_scope(self.engine) as conn:
            return [dict(row._mapping) for row in conn.execute(stmt.order_by(r.id))]

    def scheduler_experiments(self) -> list[dict[str, Any]]:
        """Light rows for the scheduler: the running experiments, oldest first, with their run counts.

        Keys: id, project, project_id, name, config (the JSON text; the scheduler parses a
        config once per experiment), snapshot_id, backend, counts (status → number of runs).
        """
        e, p, r = m.SqlExperiment, m.SqlProject, m.SqlRun
        with read_scope(self.engine) as conn:
            rows = conn.execute(
                select(e.id, p.name, e.project_id, e.name, e.config, e.snapshot_id, e.backend)
                .join(p, p.id == e.project_id).where(e.status == "running").order_by(e.id)
            ).all()
            counts: dict[int, dict[str, int]] = {row[0]: {} for row in rows}
            if counts:
                for eid, status, n in conn.execute(
                    select(r.experiment_id, r.status, func.count()).where(r.experiment_id.in_(list(counts)))
                    .group_by(r.experiment_id, r.status)
                ):
                    counts[eid][status] = n
        return [
            {"id": row[0], "project": row[1], "project_id": row[2], "name": row[3], "config": row[4],
             "snapshot_id": row[5], "backend": row[6], "counts": counts[row[0]]}
            for row in rows
        ]

    def scheduler_state(self, *, ended_after: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Everything one scheduler round starts from, in one read transaction.

        Returns ``(experiments, runs)``: the running experiments as ``scheduler_experiments``
        gives them, and light rows (``scheduler_runs``' keys) of the runs of experiments
        that are queued, starting or running, failed (restarts), or canceled or failed
        after ``ended_after`` (their jobs may still have to be stopped), ordered by id.
        """
        e, p, r = m.SqlExperiment, m.SqlProject, m.SqlRun
        with read_scope(self.engine) as conn:
            rows = conn.execute(_stmt("sched_experiments", lambda: (
                select(e.id, p.name, e.project_id, e.name, e.config, e.snapshot_id, e.backend)
                .join(p, p.id == e.project_id).where(e.status == "running").order_by(e.id)))).all()
            counts: dict[int, dict[str, int]] = {row[0]: {} for row in rows}
            if counts:
                for eid, status, n in conn.execute(_stmt("sched_counts", lambda: (
                        select(r.experiment_id, r.status, func.count())
                        .where(r.experiment_id.in_(bindparam("eids", expanding=True)))
                        .group_by(r.experiment_id, r.status))), {"eids": list(counts)}):
                    counts[eid][status] = n
            runs = conn.execute(_stmt("sched_runs", lambda: (
                select(r.id, r.experiment_id, r.status, r.attempt, r.engine_job_id, r.backend, r.number, r.created_at,
                       r.heartbeat_at, r.ended_at)
                .where(r.experiment_id.is_not(None), or_(
                    r.status.in_(["queued", "starting", "running"]),
                    and_(r.status.in_(["canceled", "failed"]), r.ended_at > bindparam("ended_after")),
                    and_(r.status == "failed", r.experiment_id.in_(bindparam("eids", expanding=True))),
                ))
                .order_by(r.id))), {"ended_after": ended_after, "eids": list(counts)}).all()
        experiments = [
            {"id": row[0], "project": row[1], "project_id": row[2], "name": row[3], "config": row[4],
             "snapshot_id": row[5], "backend": row[6], "counts": counts[row[0]]}
            for row in rows
        ]
        keys = ("id", "experiment_id", "status", "attempt", "engine_job_id", "backend", "number", "created_at",
                "heartbeat_at", "ended_at")
        return experiments, [dict(zip(keys, row, strict=True)) for row in runs]

    def experiment_runs_brief(self, experiment_id: int, metric: str | None) -> list[tuple[int, int, str, float | None, int]]:
        """``(id, number, status, last value of metric, its count)`` of every run of the experiment.

        One indexed query and no models: the scheduler rebuilds a search's history from
        this on every proposal, so its cost is paid once per run of a sweep.
        """
        r, s = m.SqlRun, m.SqlMetricSummary
        with read_scope(self.engine) as conn:
            key_id = self._metric_key_id(conn, metric) if metric else None
            if key_id is None:
                stmt = select(r.id, r.number, r.status, literal(None), literal(0)).where(r.experiment_id == experiment_id)
            else:
                stmt = (
                    select(r.id, r.number, r.status, s.last, func.coalesce(s.count, 0))
                    .outerjoin(s, and_(s.run_id == r.id, s.key_id == key_id))
                    .where(r.experiment_id == experiment_id)
                )
            rows = conn.execute(stmt.order_by(r.number)).all()
        return [(row[0], row[1], row[2], _clean_float(row[3]), row[4] or 0) for row in rows]

    def create_queued_runs(self, experiment_id: int, project_id: int, runs: Sequence[tuple[int, str, dict[str, Any]]], *,
                           snapshot_id: str | None, backend: str | None,
                           datasets: Mapping[str, str] | None = None) -> list[int]:
        """Queue the scheduler's proposals ``(number, name, params)`` of one experiment in one transaction.

        Returns the new runs' ids in order, or ``[]`` when the experiment is no longer
        running (a cancel that came after the scheduler read it). Params are validated
        like ``create_run``'s.
        """
        if not runs:
            return []
        now = _now()
        param_rows: list[tuple[int, dict[str, Any]]] = []
        ids: list[int] = []
        with write_scope(self.engine) as conn:
            status = conn.execute(select(m.SqlExperiment.status).where(m.SqlExperiment.id == experiment_id)).scalar()
            if status != "running":
                return []  # canceled (or ended) since the scheduler read it: its proposals are moot
            table = m.SqlRun.__table__
            run_insert = _stmt("run_insert", lambda: insert(table).returning(table.c.id))
            for number, name, params in runs:
                rid = conn.execute(run_insert, {
                    "project_id": project_id, "experiment_id": experiment_id, "number": number, "name": name,
                    "status": "queued", "snapshot_id": snapshot_id, "backend": backend, "created_at": now,
                }).scalar_one()
                ids.append(rid)
                param_rows.append((rid, params))
            conn.execute(insert(m.SqlRunEvent), [
                {"run_id": rid, "status": "queued", "attempt": 1, "message": "", "ts": now} for rid in ids])
            rows = []
            for rid, params in param_rows:
                for key, value in params.items():
                    _check_key(key, "param")
                    if not _json_ok(value):
                        raise InvalidInput(f"Param {key!r} has a value that is not JSON ({value!r}).",
                                           "Log numbers, strings, booleans, lists or dicts.")
                    rows.append({"run_id": rid, "key": key, "value": json.dumps(value, sort_keys=True, allow_nan=False),
                                 "num": _num(value)})
            if rows:
                conn.execute(insert(m.SqlParam), rows)
            if datasets:  # lineage: what each run reads, recorded with the run
                project = conn.execute(select(m.SqlProject.name).where(m.SqlProject.id == project_id)).scalar_one()
                from runyard.store._lineage import insert_run_datasets

                insert_run_datasets(conn, project, ids, datasets)
        return ids
