"""The packed block format: round trips, appends, out-of-order merges and extremes."""

from __future__ import annotations

import math
from array import array

import pytest

from runyard.store._points import decode, merge, pack, stats_of

NAN = math.nan


def _unpack(data: bytes, count: int) -> tuple[list[int], list[float], list[float]]:
    s, v, t = array("q"), array("d"), array("d")
    decode(data, count, s, v, t)
    return s.tolist(), v.tolist(), t.tolist()


def test_pack_and_decode_round_trip_extreme_values() -> None:
    steps = [-(2**63), -1, 0, 2**63 - 1]
    values = [-1e308, 0.0, math.inf, 5e-324]
    ts = [0.0, 1.5, 2.25, 1.7e9]
    assert _unpack(pack(steps, values, ts), 4) == (steps, values, ts)


def test_decode_appends_and_refuses_a_wrong_length() -> None:
    s, v, t = array("q", [7]), array("d", [7.0]), array("d", [7.0])
    decode(pack([8], [8.0], [8.0]), 1, s, v, t)
    assert (s.tolist(), v.tolist(), t.tolist()) == ([7, 8], [7.0, 8.0], [7.0, 8.0])
    with pytest.raises(ValueError, match="a metric block of 2 points holds 24 bytes, not 48"):
        decode(pack([1], [1.0], [1.0]), 2, s, v, t)


def test_stats_skip_missing_values_and_name_their_points() -> None:
    assert stats_of([1, 2, 3, 4], [NAN, 5.0, -2.0, 5.0], [10.0, 20.0, 30.0, 40.0]) == (-2.0, 3, 30.0, 5.0, 2, 20.0)
    lo, lo_step, _, hi, hi_step, _ = stats_of([3, 4], [NAN, NAN], [1.0, 2.0])
    assert (lo, hi, lo_step, hi_step) == (None, None, 3, 3)


def test_merge_appends_in_order_and_combines_extremes() -> None:
    data, n, st = merge(None, 0, None, [0, 1], [3.0, 1.0], [0.0, 1.0])
    data, n, st = merge(data, n, st, [2, 3], [NAN, 9.0], [2.0, 3.0])
    steps, values, _ = _unpack(data, n)
    assert (n, steps, values[:2], values[3]) == (4, [0, 1, 2, 3], [3.0, 1.0], 9.0)
    assert math.isnan(values[2])
    assert st == (1.0, 1, 1.0, 9.0, 3, 3.0)


def test_merge_sorts_late_points_and_keeps_arrival_order_of_equal_steps() -> None:
    data, n, st = merge(None, 0, None, [5, 6, 7], [5.0, 6.0, 7.0], [0.0, 0.0, 0.0])
    data, n, st = merge(data, n, st, [6, 1], [60.0, 1.0], [1.0, 1.0])  # unsorted batch, one step seen before
    steps, values, ts = _unpack(data, n)
    assert steps == [1, 5, 6, 6, 7]
    assert values == [1.0, 5.0, 6.0, 60.0, 7.0]  # the first value of step 6 first
    assert st == (1.0, 1, 1.0, 60.0, 6, 1.0)


def test_merge_of_only_missing_values_keeps_the_older_first_point() -> None:
    data, n, st = merge(None, 0, None, [4], [NAN], [1.0])
    _, _, st = merge(data, n, st, [2], [NAN], [2.0])
    assert (st[0], st[1], st[3], st[4]) == (None, 4, None, 4)
