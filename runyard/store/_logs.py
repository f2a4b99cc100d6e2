"""Logs: append a task's lines once per batch, read and tail them."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, insert, select, update

import runyard.names as names
from runyard.store import _models as m
from runyard.store._common import StorePart, _now
from runyard.store._engine import read_scope, write_scope
from runyard.store._records import LogLine


class LogsPart(StorePart):
    """The ``Store``'s log methods."""

    def _prepare_log_sql(self, ph: str) -> None:
        """Build append_logs' SQL once per store (``ph``: the driver's placeholder)."""
        self._sql_log_batch = (
            f"INSERT INTO log_batches (run_id, batch_id, last_offset, created_at) VALUES ({ph}, {ph}, 0, {ph}) "
            "ON CONFLICT (run_id, batch_id) DO NOTHING"
        )

    def append_logs(self, run_id: int, task: str, lines: Sequence[tuple[str, str, float]], *,
                    batch_id: str | None = None) -> tuple[int, bool]:
        """Append (stream, text, ts) lines of one task; returns (the offset of the last line, was_duplicate).

        A batch whose ``batch_id`` was already stored for this run is skipped whole (its
        offset is returned again), so a runner may retry a batch whose answer it never got.
        NUL characters and unpaired surrogates in program output become U+FFFD
        (:func:`runyard.names.clean_log_text`): PostgreSQL text cannot hold NUL, JSON cannot hold
        a lone surrogate, and refusing the batch would lose the run's log.
        """
        if not lines:
            return 0, False
        names.check_text(task, "The task label")
        with write_scope(self.engine) as conn:
            self._require_run(conn, run_id)
            # Claim the batch id; a batch stored before inserts no row (rowcount 0) and is answered with its offset.
            if batch_id is not None and not conn.exec_driver_sql(self._sql_log_batch, (run_id, batch_id, _now())).rowcount:
                lb = m.SqlLogBatch
                stored = conn.execute(select(lb.last_offset).where(lb.run_id == run_id, lb.batch_id == batch_id)).scalar()
                return int(stored or 0), True
            conn.execute(
                insert(m.SqlLogLine),
                [{"run_id": run_id, "task": task, "stream": s, "text": names.clean_log_text(t), "ts": ts} for s, t, ts in lines],
            )
            offset = conn.execute(select(func.max(m.SqlLogLine.id)).where(m.SqlLogLine.run_id == run_id)).scalar_one()
            if batch_id is not None:
                lb = m.SqlLogBatch
                conn.execute(update(lb).where(lb.run_id == run_id, lb.batch_id == batch_id).values(last_offset=offset))
            return offset, False

    def read_logs(self, run_id: int, *, offset: int = 0, limit: int = 1000, task: str | None = None) -> list[LogLine]:
        """Lines with an offset greater than ``offset``, oldest first."""
        ll = m.SqlLogLine
        stmt = select(ll.id, ll.task, ll.stream, ll.text, ll.ts).where(ll.run_id == run_id, ll.id > offset)
        if task:
            stmt = stmt.where(ll.task == task)
        with read_scope(self.engine) as conn:
            self._require_run(conn, run_id)
            rows = conn.execute(stmt.order_by(ll.id).limit(limit)).all()
        return [LogLine(offset=r[0], task=r[1], stream=r[2], text=r[3], ts=r[4]) for r in rows]

    def tail_logs(self, run_id: int, n: int = 20, task: str | None = None, stream: str | None = None) -> list[LogLine]:
        """The last ``n`` lines (of one task, of one stream: stdout, stderr or system), oldest first."""
        ll = m.SqlLogLine
        stmt = select(ll.id, ll.task, ll.stream, ll.text, ll.ts).where(ll.run_id == run_id)
        if task:
            stmt = stmt.where(ll.task == task)
        if stream:
            stmt = stmt.where(ll.stream == stream)
        with read_scope(self.engine) as conn:
            self._require_run(conn, run_id)
            rows = conn.execute(stmt.order_by(ll.id.desc()).limit(n)).all()
        return [LogLine(offset=r[0], task=r[1], stream=r[2], text=r[3], ts=r[4]) for r in reversed(rows)]
