"""Creating a run: one write transaction, and the new run built from what was written (no re-read).

The path behind ``runyard.init()`` and ``POST /runs``: the project is looked up in the
same transaction that inserts the run, its first status event, its params and its tags;
only a project that does not exist yet costs a transaction of its own (``ensure_project``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, func, insert, select, update

import runyard.names as names
from runyard.errors import InvalidInput, NotFound
from runyard.store import _models as m
from runyard.store._engine import statement, write_scope
from runyard.store._records import RUN_STATUSES, Run, RunEvent

if TYPE_CHECKING:
    from runyard.store._store import Store

__all__ = ["insert_run"]


def insert_run(store: Store, project: str, *, name: str = "", experiment_id: int | None = None, number: int | None = None,
               params: Mapping[str, Any] | None = None, tags: Mapping[str, Any] | None = None, status: str = "running",
               snapshot_id: str | None = None, backend: str | None = None, owner_id: int | None = None) -> Run:
    """Create a run in ``project`` (created, owned by ``owner_id``, if it does not exist) and return it.

    Raises:
        InvalidInput: an unknown status, a bad project or run name, a param that is not JSON, a bad
            param or tag name, text the store cannot hold (:func:`runyard.names.check_value`);
            nothing is written then.
    """
    from runyard.store._common import _check_key, _json_ok, _now, _num

    if status not in RUN_STATUSES:
        raise InvalidInput(f"Unknown run status {status!r}.", f"Use one of: {', '.join(RUN_STATUSES)}.")
    names.check_run_name(name)
    param_rows: list[tuple[str, str, float | None]] = []
    for key, value in (params or {}).items():
        _check_key(key, "param")
        names.check_value(value, f"Param {key!r}")
        if not _json_ok(value):
            raise InvalidInput(f"Param {key!r} has a value that is not JSON ({value!r}).",
                               "Log numbers, strings, booleans, lists or dicts.")
        param_rows.append((key, json.dumps(value, sort_keys=True, allow_nan=False), _num(value)))
    tag_values: dict[str, str] = {}
    for key, value in (tags or {}).items():
        _check_key(key, "tag")
        tag_values[key] = names.check_text(str(value), f"Tag {key!r}")
    now = _now()
    running = status == "running"
    for _ in range(2):
        with write_scope(store.engine) as conn:
            pid = conn.execute(_project_id_stmt(), {"name": project}).scalar()
            if pid is not None:
                if number is None:
                    number = (0 if experiment_id is None
                              else conn.execute(_next_number_stmt(), {"experiment_id": experiment_id}).scalar_one())
                rid = conn.execute(_insert_stmt(), {
                    "project_id": pid, "experiment_id": experiment_id, "number": number, "name": name, "status": status,
                    "snapshot_id": snapshot_id, "backend": backend, "created_at": now,
                    "started_at": now if running else None, "heartbeat_at": now if running else None,
                }).scalar_one()
                if not name:
                    name = f"run-{rid}"
                    conn.execute(_rename_stmt(), {"_id": rid, "name": name})
                conn.execute(statement("run_event_insert", lambda: insert(m.SqlRunEvent.__table__)),
                             {"run_id": rid, "status": status, "attempt": 1, "message": "", "ts": now})
                if param_rows:
                    conn.execute(statement("param_insert", lambda: insert(m.SqlParam.__table__)),
                                 [{"run_id": rid, "key": k, "value": v, "num": n} for k, v, n in param_rows])
                if tag_values:
                    conn.execute(statement("tag_insert", lambda: insert(m.SqlTag.__table__)),
                                 [{"run_id": rid, "key": k, "value": v} for k, v in tag_values.items()])
                break
        store.ensure_project(project, owner_id=owner_id)  # a new project: then the run, in the loop's second pass
    else:
        raise NotFound(f"No project named {project!r}: it was deleted while the run was created.", "Try again.")
    return Run(id=rid, project=project, experiment_id=experiment_id, number=number, name=name, status=status,
               snapshot_id=snapshot_id, backend=backend, created_at=now, started_at=now if running else None,
               heartbeat_at=now if running else None, params={k: json.loads(v) for k, v, _ in param_rows}, tags=tag_values,
               events=[RunEvent(status=status, attempt=1, message="", ts=now)])


def _project_id_stmt() -> Any:
    p = m.SqlProject.__table__
    return statement("project_id_by_name", lambda: select(p.c.id).where(p.c.name == bindparam("name")))


def _next_number_stmt() -> Any:
    r = m.SqlRun.__table__
    return statement("run_next_number", lambda: select(func.coalesce(func.max(r.c.number) + 1, 0))
                     .where(r.c.experiment_id == bindparam("experiment_id")))


def _insert_stmt() -> Any:
    r = m.SqlRun.__table__
    return statement("run_insert", lambda: insert(r).returning(r.c.id))


def _rename_stmt() -> Any:
    r = m.SqlRun.__table__
    return statement("run_update", lambda: update(r).where(r.c.id == bindparam("_id")))
