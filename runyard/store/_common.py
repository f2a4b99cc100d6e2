"""What every part of the ``Store`` shares: the engine handle, run and metric-key lookups, value checks."""

from __future__ import annotations

import json
import math
import threading
import time
from typing import Any

from sqlalchemy import Engine, bindparam, select

import runyard.names as names
from runyard.errors import InvalidInput, NotFound
from runyard.store import _models as m
from runyard.store._engine import statement as _stmt
from runyard.store._query import AGGREGATES


def _now() -> float:
    return time.time()


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def _json_value(text: str) -> Any:
    """A stored JSON value (a param, a config). Text stored before unpaired surrogates were refused
    comes back with U+FFFD in their place, so that no listing fails to serialise it."""
    value = json.loads(text)
    if "\\ud" in text or "\\uD" in text:  # only then can json.loads have made a surrogate
        value = _without_surrogates(value)
    return value


def _without_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return names.clean_log_text(value)
    if isinstance(value, dict):
        return {_without_surrogates(k): _without_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_surrogates(v) for v in value]
    return value


def _clean_float(v: float | None) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


class StorePart:
    """Base of the ``Store``'s per-resource parts: the state they share, set by ``Store.__init__``.

    A part may call another part's methods through ``self``: ``Store`` inherits them all.
    """

    engine: Engine
    _sqlite: bool  # SQLite (placeholder ``?``) or PostgreSQL (``%s``)
    _key_ids: dict[str, int]  # metric name -> metric_keys.id, filled as keys are met
    _key_lock: threading.Lock  # one creator of metric keys at a time in this process

    def _require_run(self, conn, run_id: int) -> str:  # noqa: ANN001
        status = conn.execute(_stmt("run_status", lambda: select(m.SqlRun.status).where(m.SqlRun.id == bindparam("run_id"))),
                              {"run_id": run_id}).scalar()
        if status is None:
            raise NotFound(f"No run with id {run_id}.", "List runs with `runyard ls`.")
        return status

    def _lock_run(self, conn, run_id: int) -> str:  # noqa: ANN001
        """Like _require_run, holding the run's row until commit (PostgreSQL; SQLite writers are serial).

        For read-then-write of a run's params and tags: every replica of a distributed run logs the same
        params at start, and without the lock the slower inserts failed with a unique violation.
        """
        status = conn.execute(select(m.SqlRun.status).where(m.SqlRun.id == run_id).with_for_update()).scalar()
        if status is None:
            raise NotFound(f"No run with id {run_id}.", "List runs with `runyard ls`.")
        return status

    def _metric_key_id(self, conn, key: str) -> int | None:  # noqa: ANN001
        kid = self._key_ids.get(key)
        if kid is None:
            kid = conn.execute(select(m.SqlMetricKey.id).where(m.SqlMetricKey.name == key)).scalar()
            if kid is not None:
                self._key_ids[key] = kid
        return kid

    def _resolve_metric(self, conn, key: str, quoted: bool, where: str) -> int | None:  # noqa: ANN001
        """The id of metric ``key``; None when no run logged it (a filter then matches nothing).

        ``metrics.loss.avg`` reads as the metric ``loss.avg`` (names may hold dots), but when
        no such metric was logged, ``avg`` was meant as an aggregate: refused with the valid ones,
        instead of silently matching nothing or leaving the runs unsorted.
        """
        kid = self._metric_key_id(conn, key)
        if kid is None and not quoted and "." in key:
            head, _, tail = key.rpartition(".")
            aggs = ", ".join(AGGREGATES)
            if self._metric_key_id(conn, head) is not None:
                raise InvalidInput(f"Unknown aggregate {tail!r} of metric {head!r} in {where}.",
                                   f"The aggregates are {aggs}, e.g. metrics.{head}.min.")
            raise InvalidInput(
                f"Unknown aggregate {tail!r} in {where}: no run logged a metric {head!r} or {key!r}.",
                f'The aggregates are {aggs}; write a metric name that holds dots in double quotes: metrics."{key}".',
            )
        return kid


def _json_ok(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def _check_key(key: str, what: str) -> None:
    """A param, tag or metric name: the rule of :mod:`runyard.names` (NUL: PostgreSQL text cannot hold it,
    so SQLite refuses it too, one contract)."""
    names.check_key(key, what)
