"""Run status changes: every move of a run's status, checked by ``records.status.check_transition``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import bindparam, func, insert, or_, select, update

from runyard import config
from runyard.errors import InvalidInput, InvalidState, NotFound
from runyard.records.status import can_transition, check_transition
from runyard.store import _models as m
from runyard.store._common import StorePart, _now
from runyard.store._engine import read_scope, write_scope
from runyard.store._engine import statement as _stmt
from runyard.store._records import RUN_STATUSES, TERMINAL_STATUSES, Run

#: The backend of runs logged by a client Runyard does not run or hear from (the MLflow-compatible API's runs).
EXTERNAL_BACKEND = "mlflow"


class StatusesPart(StorePart):
    """The ``Store``'s run status methods."""

    def set_run_status(
        self,
        run_id: int,
        status: str,
        *,
        message: str | None = None,
        exit_code: int | None = None,
        expect: Iterable[str] | None = None,
        engine_job_id: str | None = None,
        full: bool = True,
    ) -> Run | None:
        """Move a run to ``status``. A move out of a terminal status is refused (InvalidState).

        Returns the run as it is now, or ``None`` with ``full=False`` (the scheduler's and
        the runner's hot paths: reloading a run costs five queries).

        ``expect``: only move if the current status is one of these (compare-and-set, so
        two scheduler passes never both start a run); otherwise raise InvalidState.
        Setting the status a run already has is an idempotent no-op.
        """
        if status not in RUN_STATUSES:
            raise InvalidInput(f"Unknown run status {status!r}.", f"Use one of: {', '.join(RUN_STATUSES)}.")
        with write_scope(self.engine) as conn:
            self._set_status_in(conn, run_id, status, message=message, exit_code=exit_code, expect=expect,
                                engine_job_id=engine_job_id)
            return self._get_run_in(conn, run_id) if full else None

    def _set_status_in(self, conn, run_id: int, status: str, *, message: str | None = None, exit_code: int | None = None,  # noqa: ANN001
                       expect: Iterable[str] | None = None, engine_job_id: str | None = None) -> bool:
        """``set_run_status`` inside a write transaction; false when the run already had ``status``."""
        now = _now()
        r = m.SqlRun
        current, attempt = _lock_status(conn, run_id)
        if expect is not None and current not in set(expect):
            raise InvalidState(f"Run {run_id} is {current}, not {' or '.join(expect)}.", "Refresh and try again.")
        check_transition(current, status, run_id=run_id)
        if current == status:
            return False
        values = _status_columns(status, message, exit_code, now)
        if engine_job_id is not None:
            values["engine_job_id"] = engine_job_id
        conn.execute(_stmt("run_update", lambda: update(r.__table__).where(r.__table__.c.id == bindparam("_id"))),
                     {"_id": run_id, **values})
        conn.execute(_stmt("run_event_insert", lambda: insert(m.SqlRunEvent.__table__)),
                     {"run_id": run_id, "status": status, "attempt": attempt, "message": message or "", "ts": now})
        if status in TERMINAL_STATUSES:
            end_run_tokens_in(conn, run_id, now)
        return True

    def _set_statuses_in(self, conn, run_id: int, changes: Sequence[tuple[str, str | None, int | None]]) -> tuple[bool, str]:  # noqa: ANN001
        """Several ``_set_status_in`` calls in a row, with one read and one update of the run.

        Each ``(status, message, exit_code)`` is checked against the status the previous one
        left; a refused one is skipped, as ``InvalidState`` would be. Returns whether the last
        was accepted and the run's status after them all.
        """
        now = _now()
        r = m.SqlRun
        current, attempt = _lock_status(conn, run_id)
        values: dict[str, Any] = {}
        events: list[dict[str, Any]] = []
        accepted = True
        for status, message, exit_code in changes:
            if not can_transition(current, status):
                accepted = False
                continue
            accepted = True
            if current == status:
                continue
            values.update(_status_columns(status, message, exit_code, now))
            events.append({"run_id": run_id, "status": status, "attempt": attempt, "message": message or "", "ts": now})
            current = status
        if values:
            conn.execute(_stmt("run_update", lambda: update(r.__table__).where(r.__table__.c.id == bindparam("_id"))),
                         {"_id": run_id, **values})
            conn.execute(_stmt("run_event_insert", lambda: insert(m.SqlRunEvent.__table__)), events)
            if "ended_at" in values:
                end_run_tokens_in(conn, run_id, now)
        return accepted, current

    def fail_lost_runs(self, before: float, message: str) -> list[int]:
        """End ``failed`` (with ``message``) the ad-hoc runs still running whose last sign of life is before ``before``.

        Ad-hoc runs (no experiment) are set running by their own process, whose SDK heartbeats;
        a run's sign of life is its last heartbeat, else its start. Runs of experiments are
        followed through their engines instead. Runs logged through the MLflow-compatible API
        (backend :data:`EXTERNAL_BACKEND`) are left alone: MLflow's client sends no heartbeat, so
        a quiet hour of training is no sign of a lost process. One indexed query when nothing is lost.

        Returns:
            The ids of the runs it ended.
        """
        r = m.SqlRun
        alive_at = func.coalesce(r.heartbeat_at, r.started_at, r.created_at)
        with read_scope(self.engine) as conn:
            ids = [row[0] for row in conn.execute(_stmt("lost_runs", lambda: select(r.id).where(
                r.status == "running", r.experiment_id.is_(None), alive_at < bindparam("before"),
                or_(r.backend.is_(None), r.backend != EXTERNAL_BACKEND))), {"before": before})]
        ended = []
        for run_id in ids:
            with write_scope(self.engine) as conn:
                row = conn.execute(select(r.status, alive_at).where(r.id == run_id).with_for_update()).first()
                if row is None or row[0] != "running" or row[1] >= before:  # it heartbeat or ended meanwhile
                    continue
                self._set_status_in(conn, run_id, "failed", message=message)
            ended.append(run_id)
        return ended

    def set_run_message(self, run_id: int, message: str, *, statuses: Iterable[str]) -> bool:
        """Set the status message of a run that is in one of ``statuses`` (e.g. the engine's
        "pending: Resources" while the run waits in a queue); false when the run is in another status."""
        with write_scope(self.engine) as conn:
            result = conn.execute(update(m.SqlRun).where(m.SqlRun.id == run_id, m.SqlRun.status.in_(list(statuses)))
                                  .values(status_message=message))
            return bool(result.rowcount)

    def restart_run(self, run_id: int, message: str) -> Run:
        """Queue a failed (or lost) run again with ``attempt + 1``; it keeps its id."""
        now = _now()
        with write_scope(self.engine) as conn:
            row = conn.execute(select(m.SqlRun.status, m.SqlRun.attempt).where(m.SqlRun.id == run_id)).first()
            if row is None:
                raise NotFound(f"No run with id {run_id}.", "List runs with `runyard ls`.")
            check_transition(row[0], "queued", restart=True, run_id=run_id)
            attempt = row[1] + 1
            conn.execute(
                update(m.SqlRun).where(m.SqlRun.id == run_id).values(
                    status="queued", attempt=attempt, engine_job_id=None, started_at=None, ended_at=None, exit_code=None,
                    status_message=message)
            )
            conn.execute(insert(m.SqlRunEvent).values(run_id=run_id, status="queued", attempt=attempt, message=message, ts=now))
            return self._get_run_in(conn, run_id)


def _lock_status(conn: Any, run_id: int) -> tuple[str, int]:
    """The run's status and attempt, its row locked for the rest of the transaction.

    FOR UPDATE: under PostgreSQL's READ COMMITTED, concurrent callers would otherwise all read
    the old status (SQLite's BEGIN IMMEDIATE already serialises writers).
    """
    r = m.SqlRun
    row = conn.execute(_stmt("run_status_for_update", lambda: select(r.status, r.attempt)
                             .where(r.id == bindparam("run_id")).with_for_update()), {"run_id": run_id}).first()
    if row is None:
        raise NotFound(f"No run with id {run_id}.", "List runs with `runyard ls`.")
    return row[0], row[1]


def _status_columns(status: str, message: str | None, exit_code: int | None, now: float) -> dict[str, Any]:
    """The run columns a move to ``status`` writes (its times, message and exit code)."""
    values: dict[str, Any] = {"status": status}
    if message is not None:
        values["status_message"] = message
    if exit_code is not None:
        values["exit_code"] = exit_code
    if status == "running":
        values["started_at"] = now
        values["heartbeat_at"] = now
        if message is None:
            values["status_message"] = ""  # an engine's "pending: …" no longer holds
    if status in TERMINAL_STATUSES:
        values["ended_at"] = now
    return values


def end_run_tokens_in(conn: Any, run_id: int, ended_at: float) -> None:
    """When a run ends: its tokens expire after the grace of ``RUNYARD_RUN_TOKEN_GRACE_S``.

    Set on the token row, so the check on every report stays the one token lookup it was.
    A token already due to expire sooner keeps its time; a restart mints a new token.
    """
    t = m.SqlToken.__table__
    conn.execute(_stmt("run_tokens_expire", lambda: update(t).where(
        t.c.run_id == bindparam("_run_id"), t.c.kind == "run", t.c.revoked_at.is_(None),
        or_(t.c.expires_at.is_(None), t.c.expires_at > bindparam("_exp"))).values(expires_at=bindparam("_exp"))),
        {"_run_id": run_id, "_exp": ended_at + config.run_token_grace_s()})
