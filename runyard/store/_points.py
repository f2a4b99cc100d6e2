"""Metric points packed by block: one binary value per (run, key, block of steps).

A row of ``metric_blocks`` holds every point of one metric of one run whose step
falls in ``[block * BLOCK_STEPS, (block + 1) * BLOCK_STEPS)``, in step order (points
logged for the same step keep their arrival order), as three little-endian arrays
back to back: ``int64`` steps, ``float64`` values (NaN for a missing value) and
``float64`` timestamps. Reading a 100,000-point history is then ~400 rows and three
``array.frombytes`` per row instead of 100,000 rows through the driver, and an
ingest batch writes a few rows instead of one per point (per-row costs are
what make MLflow's store slow).

Pure functions only; the store does the SQL.
"""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Sequence

__all__ = ["BLOCK_STEPS", "BlockStats", "decode", "merge", "pack", "stats_of"]

BLOCK_STEPS = 256
_SWAP = sys.byteorder != "little"
NAN = math.nan

# (min, min_step, min_ts, max, max_step, max_ts): the extremes of a block, ``None``
# min/max when every value is missing (the steps then name the block's first point).
BlockStats = tuple[float | None, int, float, float | None, int, float]


def pack(steps: Sequence[int], values: Sequence[float], ts: Sequence[float]) -> bytes:
    """Pack points (values already NaN for missing) into a block's binary value."""
    parts = [array("q", steps), array("d", values), array("d", ts)]
    if _SWAP:
        for a in parts:
            a.byteswap()
    return b"".join(a.tobytes() for a in parts)


def decode(data: bytes, count: int, steps: array, values: array, ts: array) -> None:
    """Append a block's points to the three arrays (``array('q')``, ``array('d')``, ``array('d')``)."""
    n = 8 * count
    if len(data) != 3 * n:
        raise ValueError(f"a metric block of {count} points holds {len(data)} bytes, not {3 * n}")
    view = memoryview(data)
    start = len(steps)
    steps.frombytes(view[:n])
    values.frombytes(view[n:2 * n])
    ts.frombytes(view[2 * n:])
    if _SWAP:
        for a in (steps, values, ts):
            tail = a[start:]
            tail.byteswap()
            a[start:] = tail


def stats_of(steps: Sequence[int], values: Sequence[float], ts: Sequence[float]) -> BlockStats:
    """The extremes of a run of points (NaN values are skipped)."""
    lo = hi = None
    lo_i = hi_i = 0
    for i, v in enumerate(values):
        if v != v:  # NaN: a missing value
            continue
        if lo is None or v < lo:
            lo, lo_i = v, i
        if hi is None or v > hi:
            hi, hi_i = v, i
    return lo, steps[lo_i], ts[lo_i], hi, steps[hi_i], ts[hi_i]


def _combine(a: BlockStats, b: BlockStats) -> BlockStats:
    lo = a if a[0] is not None and (b[0] is None or a[0] <= b[0]) else b
    hi = a if a[3] is not None and (b[3] is None or a[3] >= b[3]) else b
    if lo[0] is None:
        lo = a  # both missing: keep the older block's first point
    if hi[3] is None:
        hi = a
    return lo[0], lo[1], lo[2], hi[3], hi[4], hi[5]


def merge(old: bytes | None, old_count: int, old_stats: BlockStats | None, steps: list[int], values: list[float],
          ts: list[float]) -> tuple[bytes, int, BlockStats]:
    """A block with new points added: ``(data, count, stats)``.

    New points are appended when they all come at or after the block's last step (the
    usual case: a training loop logs increasing steps); otherwise the block is re-sorted
    by step, keeping the arrival order of equal steps.
    """
    new_stats = stats_of(steps, values, ts)
    if not _sorted(steps):
        order = sorted(range(len(steps)), key=steps.__getitem__)
        steps, values, ts = [steps[i] for i in order], [values[i] for i in order], [ts[i] for i in order]
    if old is None or old_count == 0:
        return pack(steps, values, ts), len(steps), new_stats
    s, v, t = array("q"), array("d"), array("d")
    decode(old, old_count, s, v, t)
    stats = _combine(old_stats, new_stats) if old_stats is not None else new_stats
    if steps[0] >= s[-1]:
        s.extend(steps)
        v.extend(values)
        t.extend(ts)
        return pack(s, v, t), len(s), stats
    all_s, all_v, all_t = s.tolist() + steps, v.tolist() + values, t.tolist() + ts
    order = sorted(range(len(all_s)), key=all_s.__getitem__)  # stable: older points first on equal steps
    return (pack([all_s[i] for i in order], [all_v[i] for i in order], [all_t[i] for i in order]), len(all_s), stats)


def _sorted(steps: list[int]) -> bool:
    return all(steps[i] <= steps[i + 1] for i in range(len(steps) - 1))
