"""Formatting helpers of the CLI: durations, relative times, numbers, sizes, params; their docstring examples."""

from __future__ import annotations

import doctest

import pytest

from runyard.cli import _output
from runyard.cli._output import (
    ago,
    compact_params,
    fmt_duration,
    fmt_number,
    fmt_size,
    run_duration,
)


@pytest.mark.parametrize(("seconds", "text"), [
    (None, "-"), (-3, "0ms"), (0.25, "250ms"), (1, "1s"), (59.9, "59s"), (60, "1m00s"), (72, "1m12s"),
    (3599, "59m59s"), (3600, "1h00m"), (7380, "2h03m"), (86400 + 4 * 3600, "1d04h"),
])
def test_fmt_duration(seconds, text) -> None:
    assert fmt_duration(seconds) == text


@pytest.mark.parametrize(("delta", "text"), [
    (0, "just now"), (-10, "just now"), (4, "just now"), (45, "45s ago"), (180, "3m ago"), (7200, "2h ago"),
    (3 * 86400, "3d ago"),
])
def test_ago(delta, text) -> None:
    now = 1_700_000_000.0
    assert ago(now - delta, now=now) == text


def test_ago_switches_to_a_date_after_a_month() -> None:
    now = 1_700_000_000.0
    assert ago(now - 40 * 86400, now=now).count("-") == 2  # YYYY-MM-DD
    assert ago(None) == "-"


@pytest.mark.parametrize(("value", "text"), [
    (None, "nan"), (float("nan"), "nan"), (float("inf"), "inf"), (3, "3"), (True, "True"), (0.123456, "0.1235"),
    (1e-7, "1e-07"), (123456.0, "1.235e+05"), ("x", "x"),
])
def test_fmt_number(value, text) -> None:
    assert fmt_number(value) == text


@pytest.mark.parametrize(("n", "text"), [(0, "0 B"), (999, "999 B"), (1500, "1.5 KB"), (1_024_000, "1.0 MB"),
                                         (3 * 10**9, "3.0 GB")])
def test_fmt_size(n, text) -> None:
    assert fmt_size(n) == text


def test_compact_params() -> None:
    assert compact_params({}) == ""
    assert compact_params({"lr": 0.001, "opt": "adam", "layers": [1, 2], "aug": True}) == \
        "lr=0.001 opt=adam layers=[1,2] aug=true"
    long = compact_params({f"p{i}": i for i in range(30)}, max_chars=20)
    assert len(long) == 20 and long.endswith("…")


def test_run_duration() -> None:
    assert run_duration({"started_at": None}) is None
    assert run_duration({"started_at": 10.0, "ended_at": 70.0}) == 60.0
    assert run_duration({"started_at": 10.0, "ended_at": None}, now=15.0) == 5.0


def test_docstring_examples() -> None:
    failed, attempted = doctest.testmod(_output, raise_on_error=False, report=True)
    assert attempted >= 4
    assert failed == 0
