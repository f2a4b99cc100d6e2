"""Metrics: batch ingest into summaries and blocks, and (downsampled) histories."""

from __future__ import annotations

import gc
import math
from array import array
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, select

from runyard import config
from runyard.errors import InvalidInput, NotFound
from runyard.store import _models as m
from runyard.store._common import StorePart, _check_key, _now
from runyard.store._engine import read_scope, write_scope
from runyard.store._points import BLOCK_STEPS, decode, merge
from runyard.store._records import MetricSummary

_STEP_MIN, _STEP_MAX = -(2**63), 2**63 - 1  # BIGINT


class MetricsPart(StorePart):
    """The ``Store``'s metric methods."""

    def _prepare_metric_sql(self, ph: str) -> None:
        """Build ingest's SQL once per store (``ph``: the driver's placeholder)."""
        # A summary describes the latest attempt that logged the metric: points of a newer attempt
        # replace it, points of an older one (a late batch of an attempt that was restarted) leave it.
        newer, same = "excluded.attempt > t.attempt", "excluded.attempt = t.attempt"
        self._sql_upsert_summary = (
            "INSERT INTO metric_summaries AS t (run_id, key_id, last, last_step, last_ts, min, max, count, attempt) "
            f"VALUES ({', '.join([ph] * 9)}) ON CONFLICT (run_id, key_id) DO UPDATE SET "
            f"last = CASE WHEN {newer} OR ({same} AND excluded.last_step >= t.last_step) THEN excluded.last ELSE t.last END, "
            f"last_ts = CASE WHEN {newer} OR ({same} AND excluded.last_step >= t.last_step) "
            "THEN excluded.last_ts ELSE t.last_ts END, "
            f"last_step = CASE WHEN {newer} OR ({same} AND excluded.last_step >= t.last_step) "
            "THEN excluded.last_step ELSE t.last_step END, "
            f"min = CASE WHEN {newer} THEN excluded.min WHEN NOT {same} THEN t.min "
            "WHEN excluded.min IS NULL THEN t.min WHEN t.min IS NULL OR excluded.min < t.min "
            "THEN excluded.min ELSE t.min END, "
            f"max = CASE WHEN {newer} THEN excluded.max WHEN NOT {same} THEN t.max "
            "WHEN excluded.max IS NULL THEN t.max WHEN t.max IS NULL OR excluded.max > t.max "
            "THEN excluded.max ELSE t.max END, "
            f"count = CASE WHEN {newer} THEN excluded.count WHEN {same} THEN t.count + excluded.count ELSE t.count END, "
            f"attempt = CASE WHEN {newer} THEN excluded.attempt ELSE t.attempt END"
        )
        # The whole block is rewritten: ingest computed it from the stored block and the new points.
        self._sql_upsert_block = (
            "INSERT INTO metric_blocks (run_id, key_id, attempt, block, count, min, min_step, min_ts, max, max_step, max_ts, "
            f"data) VALUES ({', '.join([ph] * 12)}) ON CONFLICT (run_id, key_id, attempt, block) DO UPDATE SET "
            "count = excluded.count, min = excluded.min, min_step = excluded.min_step, min_ts = excluded.min_ts, "
            "max = excluded.max, max_step = excluded.max_step, max_ts = excluded.max_ts, data = excluded.data"
        )
        self._sql_blocks_of_key = (
            "SELECT block, count, min, min_step, min_ts, max, max_step, max_ts, data FROM metric_blocks "
            f"WHERE run_id = {ph} AND key_id = {ph} AND attempt = {ph} AND block BETWEEN {ph} AND {ph}"
        )
        self._sql_run_attempt = f"SELECT attempt FROM runs WHERE id = {ph}" + ("" if ph == "?" else " FOR UPDATE")
        self._sql_batch = (
            f"INSERT INTO metric_batches (run_id, batch_id, n_points, created_at) VALUES ({ph}, {ph}, {ph}, {ph}) "
            "ON CONFLICT (run_id, batch_id) DO NOTHING"
        )

    def _ensure_key_ids(self, names: Iterable[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        missing = []
        for name in names:
            kid = self._key_ids.get(name)
            if kid is None:
                missing.append(name)
            else:
                out[name] = kid
        if missing:
            for name in missing:
                _check_key(name, "metric")
            with self._key_lock:
                with write_scope(self.engine) as conn:
                    known = dict(conn.execute(select(m.SqlMetricKey.name, m.SqlMetricKey.id).where(m.SqlMetricKey.name.in_(missing))).all())
                    new = [n for n in missing if n not in known]
                    if new:
                        # ON CONFLICT: another server process may create the same key meanwhile (PostgreSQL).
                        ph = "?" if self._sqlite else "%s"
                        conn.exec_driver_sql(
                            f"INSERT INTO metric_keys (name) VALUES ({ph}) ON CONFLICT (name) DO NOTHING", [(n,) for n in new]
                        )
                        known.update(conn.execute(select(m.SqlMetricKey.name, m.SqlMetricKey.id).where(m.SqlMetricKey.name.in_(new))).all())
                self._key_ids.update(known)
                out.update(known)
        return out

    def ingest_metrics(
        self,
        run_id: int,
        keys: Sequence[str],
        steps: Sequence[int],
        values: Sequence[float | None],
        timestamps: Sequence[float],
        *,
        batch_id: str | None = None,
    ) -> tuple[int, bool]:
        """Store a batch of points in one transaction; returns (points stored, was_duplicate).

        A batch whose ``batch_id`` was already stored for this run is skipped whole, so a
        client may retry freely. Summaries and downsampling blocks are updated in the same
        transaction, so readers never see points without their summary.
        """
        n = len(keys)
        if not (len(steps) == len(values) == len(timestamps) == n):
            raise InvalidInput(
                f"A metric batch needs keys, steps, values and timestamps of equal length, but got "
                f"{n}, {len(steps)}, {len(values)} and {len(timestamps)}.",
                "Send one entry per point in each list.",
            )
        for s in steps:  # the step column is BIGINT: out-of-range or non-integer steps must not reach the driver
            if type(s) is not int or not _STEP_MIN <= s <= _STEP_MAX:
                raise InvalidInput(
                    f"Metric steps must be integers from -2**63 to 2**63-1, but got step {s!r}.",
                    "Send whole-number steps, e.g. the epoch or iteration.",
                )
        cap = config.max_metric_keys()
        distinct = set(keys)
        if len(distinct) > cap:
            raise _too_many_keys(run_id, len(distinct), cap)
        kids_by_name = self._ensure_key_ids(distinct)
        kid = [kids_by_name[k] for k in keys]
        vals: list[float | None] = []
        for v in values:
            if v is None or v != v:  # NaN is stored as NULL (SQLite cannot hold NaN)
                vals.append(None)
            elif isinstance(v, bool) or not isinstance(v, (int, float)):
                raise InvalidInput(f"Metric values must be numbers, but got {v!r}.", "Log floats or ints; convert tensors with float(x).")
            else:
                try:
                    vals.append(float(v))
                except OverflowError as e:
                    raise InvalidInput(
                        f"Metric value is an integer too large for a 64-bit float ({v.bit_length()} bits).",
                        "Log values below 1.8e308, or float('inf') for an unbounded value.",
                    ) from e
        # Per-key summary of this batch, and its points grouped by block.
        summ: dict[int, list] = {}
        groups: dict[tuple[int, int], tuple[list[int], list[float], list[float]]] = {}
        nan = math.nan
        for i in range(n):
            k, s, v, t = kid[i], steps[i], vals[i], timestamps[i]
            a = summ.get(k)
            if a is None:
                summ[k] = [v, s, t, v, v, 1]
            else:
                if s >= a[1]:
                    a[0], a[1], a[2] = v, s, t
                if v is not None:
                    if a[3] is None or v < a[3]:
                        a[3] = v
                    if a[4] is None or v > a[4]:
                        a[4] = v
                a[5] += 1
            g = groups.get((k, s // BLOCK_STEPS))
            if g is None:
                g = groups[(k, s // BLOCK_STEPS)] = ([], [], [])
            g[0].append(s)
            g[1].append(nan if v is None else v)
            g[2].append(float(t))
        span: dict[int, list[int]] = {}  # key → [first block, last block] this batch touches
        for k, blk in groups:
            r = span.get(k)
            if r is None:
                span[k] = [blk, blk]
            else:
                r[0], r[1] = min(r[0], blk), max(r[1], blk)
        with write_scope(self.engine) as conn:
            # The points belong to the run's current attempt (a restart numbers the next one), read with
            # the run's row: SQLite's BEGIN IMMEDIATE already serialises writers; PostgreSQL locks the row,
            # since blocks are read, merged and rewritten (one writer per run at a time).
            attempt = conn.exec_driver_sql(self._sql_run_attempt, (run_id,)).scalar()
            if attempt is None:
                raise NotFound(f"No run with id {run_id}.", "List runs with `runyard ls`.")
            if batch_id is not None:
                res = conn.exec_driver_sql(self._sql_batch, (run_id, batch_id, n, _now()))
                if res.rowcount == 0:
                    return 0, True
            if summ:
                self._check_key_cap(conn, run_id, list(summ), cap)
            if groups:
                stored: dict[tuple[int, int], tuple] = {}
                for k, (lo, hi) in span.items():
                    for row in conn.exec_driver_sql(self._sql_blocks_of_key, (run_id, k, attempt, lo, hi)):
                        stored[(k, row[0])] = row
                upserts = []
                for (k, blk), (g_steps, g_values, g_ts) in groups.items():
                    old = stored.get((k, blk))
                    if old is None:
                        data, count, st = merge(None, 0, None, g_steps, g_values, g_ts)
                    else:
                        data, count, st = merge(bytes(old[8]), old[1], tuple(old[2:8]), g_steps, g_values, g_ts)
                    upserts.append((run_id, k, attempt, blk, count, *st, data))
                conn.exec_driver_sql(
                    self._sql_upsert_summary, [(run_id, k, a[0], a[1], a[2], a[3], a[4], a[5], attempt) for k, a in summ.items()]
                )
                conn.exec_driver_sql(self._sql_upsert_block, upserts)
        return n, False

    def _check_key_cap(self, conn, run_id: int, kids: list[int], cap: int) -> None:  # noqa: ANN001
        """Refuse the batch (the caller's transaction rolls back: nothing of it is stored) when its new
        keys would take the run past ``cap`` distinct keys. One count per batch, on the summaries'
        primary key; the keys the batch already has are counted only when the run is near the cap."""
        ph = "?" if self._sqlite else "%s"
        have = conn.exec_driver_sql(f"SELECT count(*) FROM metric_summaries WHERE run_id = {ph}", (run_id,)).scalar_one()
        if have + len(kids) <= cap:
            return
        known = conn.execute(select(func.count()).select_from(m.SqlMetricSummary).where(
            m.SqlMetricSummary.run_id == run_id, m.SqlMetricSummary.key_id.in_(kids))).scalar_one()
        if have + len(kids) - known > cap:
            raise _too_many_keys(run_id, have + len(kids) - known, cap)

    def metric_summaries(self, run_id: int) -> dict[str, MetricSummary]:
        return self.get_run(run_id).metrics

    def metric_history(self, run_id: int, key: str, *, max_points: int | None = None,
                       attempt: int | str | None = None) -> dict[str, Any]:
        """All points of a metric in step order, or at most ``max_points`` of them.

        ``attempt``: the run's attempt whose points to read; ``None`` (or ``"latest"``) reads the
        latest attempt that logged the metric (a restarted run logs its steps again), ``"all"``
        reads every attempt, one after the other, with ``attempts`` naming each point's attempt.

        Downsampling splits the series into ``max_points // 2`` buckets and keeps the
        minimum and the maximum point of each, so spikes and the global extremes survive.
        Long series are bucketed from ``metric_blocks`` rather than the raw points.
        """
        if max_points is not None and max_points < 2:
            raise InvalidInput(f"max_points must be ≥ 2, but got {max_points}.", "Ask for at least 2 points, e.g. max_points=1000.")
        want = _attempt_arg(attempt)
        ph = "?" if self._sqlite else "%s"
        with read_scope(self.engine) as conn:
            self._require_run(conn, run_id)
            kid = self._metric_key_id(conn, key)
            row = None
            if kid is not None:
                sm = m.SqlMetricSummary
                row = conn.execute(select(sm.count, sm.attempt).where(sm.run_id == run_id, sm.key_id == kid)).first()
            if row is None or not row[0]:
                raise NotFound(f"Run {run_id} has no metric {key!r}.", "See its metrics with `runyard info RUN`.")
            assert kid is not None
            if want is None:  # the latest attempt: its count is the summary's
                counts = {int(row[1]): int(row[0])}
            else:
                sql = (f"SELECT attempt, SUM(count) FROM metric_blocks WHERE run_id = {ph} AND key_id = {ph} "
                       + ("" if want == "all" else f"AND attempt = {ph} ") + "GROUP BY attempt ORDER BY attempt")
                args = (run_id, kid) if want == "all" else (run_id, kid, want)
                counts = {int(a): int(n) for a, n in conn.exec_driver_sql(sql, args).all()}
                if not counts:
                    raise NotFound(f"Run {run_id} has no points of metric {key!r} in attempt {want}.",
                                   "Leave attempt out for the latest attempt, or pass attempt=all for every attempt.")
            per = None if max_points is None else max(2, max_points // len(counts))
            parts = [self._history_of(conn, run_id, kid, a, n, per) for a, n in counts.items()]
        if want != "all":
            a = next(iter(counts))
            steps, values, ts, down = parts[0]
            return {"key": key, "steps": steps, "values": values, "timestamps": ts, "downsampled": down,
                    "total": counts[a], "attempt": a}
        out: dict[str, Any] = {"key": key, "steps": [], "values": [], "timestamps": [], "downsampled": False,
                               "total": sum(counts.values()), "attempt": max(counts), "attempts": []}
        for a, (steps, values, ts, down) in zip(counts, parts, strict=True):
            out["steps"] += steps
            out["values"] += values
            out["timestamps"] += ts
            out["attempts"] += [a] * len(steps)
            out["downsampled"] = out["downsampled"] or down
        return out

    def _history_of(self, conn, run_id: int, kid: int, attempt: int, count: int,  # noqa: ANN001
                    max_points: int | None) -> tuple[list[int], list[float | None], list[float], bool]:
        """One attempt's points of a metric (``count`` of them): (steps, values, timestamps, downsampled)."""
        if max_points is None or count <= max_points:
            return (*self._points(conn, run_id, kid, attempt), False)
        ph = "?" if self._sqlite else "%s"
        n_buckets = max_points // 2
        blocks = conn.exec_driver_sql(
            "SELECT min, min_step, min_ts, max, max_step, max_ts FROM metric_blocks "
            f"WHERE run_id = {ph} AND key_id = {ph} AND attempt = {ph} ORDER BY block",
            (run_id, kid, attempt),
        ).all()
        if len(blocks) >= n_buckets:
            rows = _bucket_blocks(blocks, n_buckets)
        else:
            rows = _bucket_points(list(zip(*self._points(conn, run_id, kid, attempt), strict=True)), n_buckets)
        c = _columns("", rows, downsampled=True, total=count)
        return c["steps"], c["values"], c["timestamps"], True

    def _points(self, conn, run_id: int, kid: int, attempt: int) -> tuple[list[int], list[float | None], list[float]]:  # noqa: ANN001
        """Every point of one metric of a run's attempt, in step order, unpacked from its blocks."""
        ph = "?" if self._sqlite else "%s"
        rows = _raw_fetch(conn, f"SELECT count, data FROM metric_blocks WHERE run_id = {ph} AND key_id = {ph} "
                                f"AND attempt = {ph} ORDER BY block", (run_id, kid, attempt))
        steps, values, ts = array("q"), array("d"), array("d")
        for count, data in rows:
            decode(data, count, steps, values, ts)
        was_enabled = gc.isenabled()
        gc.disable()  # 300,000 fresh floats and ints: nothing to collect, and collections would double the time
        try:
            value_list: list[float | None] = values.tolist()
            if any(v != v for v in value_list):  # NaN stands for a missing value: callers get None
                value_list = [None if v != v else v for v in value_list]
            return steps.tolist(), value_list, ts.tolist()
        finally:
            if was_enabled:
                gc.enable()


def _too_many_keys(run_id: int, n: int, cap: int) -> InvalidInput:
    return InvalidInput(
        f"Run {run_id} may hold at most {cap} distinct metric keys (RUNYARD_MAX_METRIC_KEYS); this batch would make it {n}. "
        "The whole batch was refused.",
        "Log fewer distinct keys (put an index in the step, not the key), or ask the admin to raise RUNYARD_MAX_METRIC_KEYS.",
    )


def _attempt_arg(attempt: int | str | None) -> int | str | None:
    """``attempt`` of a history read: None (the latest), "all", or an attempt number ≥ 1."""
    if attempt is None or attempt == "latest":
        return None
    if attempt == "all":
        return "all"
    if isinstance(attempt, str) and attempt.isdigit():
        attempt = int(attempt)
    if isinstance(attempt, int) and not isinstance(attempt, bool) and 1 <= attempt <= 2**31 - 1:
        return attempt
    raise InvalidInput(f"attempt must be latest, all or an attempt number ≥ 1, but got {attempt!r}.",
                       "Leave it out for the latest attempt, or pass attempt=all for every attempt's points.")


def _raw_fetch(conn, sql: str, params: tuple) -> list[tuple]:  # noqa: ANN001
    """Fetch through the DBAPI cursor: ~3x faster than Row objects for long histories.

    The cyclic GC is paused meanwhile: 100,000 fresh tuples trigger repeated
    collections that more than double the read time, and none of them can form a cycle.
    """
    cur = conn.connection.dbapi_connection.cursor()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        cur.execute(sql, params)
        return cur.fetchall()
    finally:
        if was_enabled:
            gc.enable()
        cur.close()


def _columns(key: str, rows: Sequence[Sequence[Any]], *, downsampled: bool, total: int) -> dict[str, Any]:
    if rows:
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            steps, values, ts = (list(c) for c in zip(*rows, strict=True))
        finally:
            if was_enabled:
                gc.enable()
    else:
        steps, values, ts = [], [], []
    return {"key": key, "steps": steps, "values": values, "timestamps": ts, "downsampled": downsampled, "total": total}


def _bucket_points(rows: Sequence[Sequence[Any]], n_buckets: int) -> list[tuple[int, float | None, float]]:
    """Min and max point of each of ``n_buckets`` equal-count buckets, in step order."""
    n = len(rows)
    out: list[tuple[int, float | None, float]] = []
    for b in range(n_buckets):
        lo, hi = b * n // n_buckets, (b + 1) * n // n_buckets
        if lo >= hi:
            continue
        chunk = rows[lo:hi]
        finite = [r for r in chunk if r[1] is not None]
        if not finite:
            out.append(tuple(chunk[0]))
            continue
        mn = min(finite, key=lambda r: r[1])
        mx = max(finite, key=lambda r: r[1])
        first, second = (mn, mx) if mn[0] <= mx[0] else (mx, mn)
        out.append(tuple(first))
        if second is not first:
            out.append(tuple(second))
    return out


def _bucket_blocks(blocks: Sequence[Sequence[Any]], n_buckets: int) -> list[tuple[int, float | None, float]]:
    """Like _bucket_points, over block rows (min, min_step, min_ts, max, max_step, max_ts)."""
    n = len(blocks)
    out: list[tuple[int, float | None, float]] = []
    for b in range(n_buckets):
        lo, hi = b * n // n_buckets, (b + 1) * n // n_buckets
        if lo >= hi:
            continue
        chunk = [r for r in blocks[lo:hi] if r[0] is not None]
        if not chunk:
            r = blocks[lo]
            out.append((r[1], None, r[2]))
            continue
        mn = min(chunk, key=lambda r: r[0])
        mx = max(chunk, key=lambda r: r[3])
        p_min, p_max = (mn[1], mn[0], mn[2]), (mx[4], mx[3], mx[5])
        if p_min[0] == p_max[0]:
            out.append(p_min)
        else:
            out.extend(sorted((p_min, p_max)))
    return out
