"""What a run's runner reports: its tasks' rows, its heartbeats and its reports."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, insert, select, update

from runyard.errors import InvalidInput, InvalidState, NotFound
from runyard.store import _models as m
from runyard.store._common import StorePart, _now
from runyard.store._engine import read_scope, write_scope
from runyard.store._engine import statement as _stmt
from runyard.store._records import RUN_STATUSES, TERMINAL_STATUSES, Task


class TasksPart(StorePart):
    """The ``Store``'s task and report methods."""

    def heartbeat(self, run_id: int) -> str:
        """Record that the run is alive; returns its status (so a runner learns of cancel/prune)."""
        with write_scope(self.engine) as conn:
            status = self._require_run(conn, run_id)
            conn.execute(update(m.SqlRun).where(m.SqlRun.id == run_id).values(heartbeat_at=_now()))
        return status

    def upsert_task(
        self,
        run_id: int,
        role: str,
        rank: int,
        *,
        attempt: int | None = None,
        status: str | None = None,
        host: str | None = None,
        pid: int | None = None,
        exit_code: int | None = None,
        address: str | None = None,
    ) -> Task:
        """Create or update the task (role, rank) of the run's current attempt (or ``attempt``).

        ``address``: the ``host:port`` the task listens on for its framework's rendezvous.
        """
        with write_scope(self.engine) as conn:
            return self._upsert_task_in(conn, run_id, role, rank, attempt=attempt, status=status, host=host, pid=pid,
                                        exit_code=exit_code, address=address)

    def _upsert_task_in(self, conn, run_id: int, role: str, rank: int, *, attempt: int | None = None,  # noqa: ANN001
                        status: str | None = None, host: str | None = None, pid: int | None = None,
                        exit_code: int | None = None, address: str | None = None, returning: bool = True,
                        started: bool = False) -> Task | None:
        """Create or update a task's row; ``started``: set its start time now too (a start and an
        end reported at once, the end's status given)."""
        now = _now()
        t = m.SqlTask
        run_attempt = conn.execute(_stmt("run_attempt", lambda: select(m.SqlRun.attempt).where(m.SqlRun.id == bindparam("run_id"))),
                                   {"run_id": run_id}).scalar()
        if run_attempt is None:
            raise NotFound(f"No run with id {run_id}.", "List runs with `runyard ls`.")
        attempt = attempt or run_attempt
        row = conn.execute(
            _stmt("task_id", lambda: select(t.id).where(t.run_id == bindparam("run_id"), t.role == bindparam("role"),
                                                        t.rank == bindparam("rank"), t.attempt == bindparam("attempt"))),
            {"run_id": run_id, "role": role, "rank": rank, "attempt": attempt},
        ).scalar()
        values: dict[str, Any] = {}
        if started:
            values["started_at"] = now
        if status is not None:
            values["status"] = status
            if status == "running":
                values["started_at"] = now
            if status in TERMINAL_STATUSES:
                values["ended_at"] = now
        for name, v in (("host", host), ("pid", pid), ("exit_code", exit_code), ("address", address)):
            if v is not None:
                values[name] = v
        values["heartbeat_at"] = now
        if row is None:
            table = t.__table__
            row = conn.execute(_stmt("task_insert", lambda: insert(table).returning(table.c.id)),
                               {"run_id": run_id, "role": role, "rank": rank, "attempt": attempt,
                                **{"status": "queued", **values}}).scalar_one()
        elif values:
            conn.execute(_stmt("task_update", lambda: update(t.__table__).where(t.__table__.c.id == bindparam("_id"))),
                         {"_id": row, **values})
        if status in ("pruned", "canceled") and attempt == run_attempt:
            # The run ended when the server decided (pruned, canceled), but its task ran on until the runner
            # stopped it: its duration lasts until then, so a run that ignored the decision shows how long it ran.
            r = m.SqlRun.__table__
            conn.execute(_stmt("run_ended_late", lambda: update(r).where(
                r.c.id == bindparam("run_id"), r.c.status.in_(["pruned", "canceled"]), r.c.ended_at.is_not(None),
                r.c.ended_at < bindparam("now")).values(ended_at=bindparam("now"))), {"run_id": run_id, "now": now})
        if not returning:
            return None
        r = conn.execute(select(t.__table__).where(t.id == row)).one()
        return Task(id=r.id, role=r.role, rank=r.rank, attempt=r.attempt, status=r.status, host=r.host, pid=r.pid,
                    exit_code=r.exit_code, started_at=r.started_at, ended_at=r.ended_at, address=r.address)

    def task_addresses(self, run_id: int, attempt: int) -> dict[str, str]:
        """``{"role-rank": "host:port"}`` of the attempt's tasks that published a rendezvous address.

        Raises:
            NotFound: no run with this id.
        """
        t = m.SqlTask
        with read_scope(self.engine) as conn:
            self._require_run(conn, run_id)
            rows = conn.execute(select(t.role, t.rank, t.address).where(t.run_id == run_id, t.attempt == attempt,
                                                                        t.address != ""))
            return {f"{role}-{rank}": address for role, rank, address in rows}

    def report(self, run_id: int, *, task: dict[str, Any] | None = None, run: dict[str, Any] | None = None,
               steps: Sequence[tuple[dict[str, Any] | None, dict[str, Any] | None]] | None = None) -> tuple[bool, str]:
        """A task runner's report in one transaction: its task's fields and the run's new status.

        ``task``: ``role``, ``rank`` and ``upsert_task``'s fields; ``run``: ``status``,
        ``message``, ``exit_code``. ``steps``, instead of ``task`` and ``run``: several
        ``(task, run)`` reports applied in order (a short task's start and end in one
        request). Returns ``(applied, status)``: whether the last run status change was
        accepted (false when the run had already ended, e.g. canceled or pruned — the
        task's fields are recorded all the same) and the run's status now.
        """
        if steps is None:
            steps = [(task, run)]
        for task, run in steps:
            if run is not None and run.get("status") not in RUN_STATUSES:
                raise InvalidInput(f"Unknown run status {run.get('status')!r}.", f"Use one of: {', '.join(RUN_STATUSES)}.")
            if task is not None and task.get("status") is not None and task["status"] not in RUN_STATUSES:
                raise InvalidInput(f"Unknown task status {task['status']!r}.", f"Use one of: {', '.join(RUN_STATUSES)}.")
        applied = True
        tasks = [dict(task) for task, _ in steps if task is not None]
        changes = [(run["status"], run.get("message"), run.get("exit_code")) for _, run in steps if run is not None]
        with write_scope(self.engine) as conn:
            if len({(t.get("role"), t.get("rank"), t.get("attempt")) for t in tasks}) == 1:
                # One task's start and end (a short task): one row written with both, and the run's
                # statuses in one read and one update; the same rows and events as step by step.
                fields: dict[str, Any] = {}
                for t in tasks:
                    fields.update(t)
                started = any(t.get("status") == "running" for t in tasks)
                self._upsert_task_in(conn, run_id, fields.pop("role"), fields.pop("rank"), returning=False,
                                     started=started, **fields)
                if changes:
                    applied, status = self._set_statuses_in(conn, run_id, changes)
                    return applied, status
            else:
                for task, run in steps:
                    if task is not None:
                        fields = dict(task)
                        self._upsert_task_in(conn, run_id, fields.pop("role"), fields.pop("rank"), returning=False, **fields)
                    if run is not None:
                        try:
                            self._set_status_in(conn, run_id, run["status"], message=run.get("message"),
                                                exit_code=run.get("exit_code"))
                            applied = True
                        except InvalidState:
                            applied = False
            status = self._require_run(conn, run_id)
        return applied, status
