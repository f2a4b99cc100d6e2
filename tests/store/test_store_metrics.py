"""Store contract: metric ingest, idempotent batches, summaries, history and downsampling,
plus the adversarial table (NaN, inf, empty and malformed batches, huge keys and numbers)."""

from __future__ import annotations

import math
import random
import threading
from typing import Any

import pytest

from runyard.errors import InvalidInput, NotFound
from runyard.store import BLOCK_STEPS, Store


def _points(store: Store, run_id: int, key: str, steps: list[int], values: list[Any], *, batch_id: str | None = None,
            ts0: float = 1000.0) -> tuple[int, bool]:
    n = len(steps)
    return store.ingest_metrics(run_id, [key] * n, steps, values, [ts0 + i for i in range(n)], batch_id=batch_id)


def test_bulk_ingest_of_interleaved_keys(store: Store) -> None:
    run = store.create_run("p")
    keys, steps, values, ts = [], [], [], []
    for step in range(1000):
        for key in ("loss", "acc", "val/loss"):
            keys.append(key)
            steps.append(step)
            values.append(step * 0.5 if key == "acc" else 1000.0 - step)
            ts.append(100.0 + step)
    assert store.ingest_metrics(run.id, keys, steps, values, ts) == (3000, False)

    summaries = store.metric_summaries(run.id)
    assert set(summaries) == {"loss", "acc", "val/loss"}
    acc = summaries["acc"]
    assert (acc.last, acc.step, acc.min, acc.max, acc.count, acc.ts) == (499.5, 999, 0.0, 499.5, 1000, 1099.0)
    hist = store.metric_history(run.id, "val/loss")
    assert hist["key"] == "val/loss" and hist["total"] == 1000 and hist["downsampled"] is False
    assert hist["steps"] == list(range(1000))
    assert hist["values"] == [1000.0 - s for s in range(1000)]
    assert hist["timestamps"] == [100.0 + s for s in range(1000)]


def test_duplicate_batch_id_is_stored_once(store: Store) -> None:
    run = store.create_run("p")
    other = store.create_run("p")
    assert _points(store, run.id, "loss", [0, 1, 2], [3.0, 2.0, 1.0], batch_id="b-1") == (3, False)
    assert _points(store, run.id, "loss", [0, 1, 2], [3.0, 2.0, 1.0], batch_id="b-1") == (0, True)
    # A retry carrying different points is still the same batch: skipped whole.
    assert _points(store, run.id, "loss", [7], [-5.0], batch_id="b-1") == (0, True)
    # Batch ids are per run.
    assert _points(store, other.id, "loss", [0], [9.0], batch_id="b-1") == (1, False)

    summary = store.metric_summaries(run.id)["loss"]
    assert (summary.count, summary.min, summary.last) == (3, 1.0, 1.0)
    assert store.metric_history(run.id, "loss")["steps"] == [0, 1, 2]


def test_concurrent_retries_of_one_batch_store_it_once(store: Store) -> None:
    run = store.create_run("p")
    results: list[tuple[int, bool]] = []
    barrier = threading.Barrier(4)

    def send() -> None:
        barrier.wait()
        results.append(_points(store, run.id, "loss", list(range(50)), [float(i) for i in range(50)], batch_id="same"))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [(0, True)] * 3 + [(50, False)]
    assert store.metric_summaries(run.id)["loss"].count == 50


def test_summaries_across_out_of_order_batches(store: Store) -> None:
    run = store.create_run("p")
    _points(store, run.id, "loss", [10, 11, 12], [5.0, 4.0, 6.0], ts0=10)
    _points(store, run.id, "loss", [3, 1, 2], [9.0, -1.0, 8.0], ts0=20)  # earlier steps, arriving late
    s = store.metric_summaries(run.id)["loss"]
    assert (s.last, s.step, s.ts, s.min, s.max, s.count) == (6.0, 12, 12.0, -1.0, 9.0, 6)

    _points(store, run.id, "loss", [20, 15], [7.0, 100.0], ts0=30)  # newest step first within the batch
    s = store.metric_summaries(run.id)["loss"]
    assert (s.last, s.step, s.ts, s.min, s.max, s.count) == (7.0, 20, 30.0, -1.0, 100.0, 8)

    hist = store.metric_history(run.id, "loss")
    assert hist["steps"] == [1, 2, 3, 10, 11, 12, 15, 20]
    assert hist["values"] == [-1.0, 8.0, 9.0, 5.0, 4.0, 6.0, 100.0, 7.0]


def test_nan_is_none_and_ignored_by_min_max(store: Store) -> None:
    run = store.create_run("p")
    _points(store, run.id, "loss", [0], [float("nan")])  # a series that starts with NaN
    s = store.metric_summaries(run.id)["loss"]
    assert (s.last, s.min, s.max, s.count) == (None, None, None, 1)

    _points(store, run.id, "loss", [1, 2, 3], [2.0, float("nan"), None])
    s = store.metric_summaries(run.id)["loss"]
    assert (s.last, s.step, s.min, s.max, s.count) == (None, 3, 2.0, 2.0, 4)

    _points(store, run.id, "loss", [4], [1.5])
    s = store.metric_summaries(run.id)["loss"]
    assert (s.last, s.min, s.max, s.count) == (1.5, 1.5, 2.0, 5)
    assert store.metric_history(run.id, "loss")["values"] == [None, 2.0, None, None, 1.5]


def test_infinities_are_kept(store: Store) -> None:
    run = store.create_run("p")
    _points(store, run.id, "x", [0, 1, 2], [1.0, math.inf, -math.inf])
    s = store.metric_summaries(run.id)["x"]
    assert (s.last, s.min, s.max, s.count) == (-math.inf, -math.inf, math.inf, 3)
    assert store.metric_history(run.id, "x")["values"] == [1.0, math.inf, -math.inf]


def test_history_errors(store: Store) -> None:
    run = store.create_run("p")
    _points(store, run.id, "loss", [0, 1], [1.0, 2.0])
    with pytest.raises(NotFound, match="has no metric 'acc'") as info:
        store.metric_history(run.id, "acc")
    assert info.value.code == "not_found" and info.value.hint
    other = store.create_run("p")  # the key exists, but not for this run
    with pytest.raises(NotFound, match="has no metric 'loss'"):
        store.metric_history(other.id, "loss")
    with pytest.raises(NotFound, match="No run with id 999999"):
        store.metric_history(999_999, "loss")
    with pytest.raises(NotFound, match="No run with id 999999"):
        _points(store, 999_999, "loss", [0], [1.0])
    with pytest.raises(InvalidInput, match="max_points must be ≥ 2, but got 1"):
        store.metric_history(run.id, "loss", max_points=1)
    full = store.metric_history(run.id, "loss", max_points=2)  # enough room: nothing dropped
    assert (full["downsampled"], full["steps"]) == (False, [0, 1])


def _check_downsampled(hist: dict[str, Any], truth: dict[int, float], max_points: int) -> None:
    assert hist["downsampled"] is True
    assert hist["total"] == len(truth)
    assert 0 < len(hist["steps"]) <= max_points
    assert hist["steps"] == sorted(hist["steps"])
    assert len(set(hist["steps"])) == len(hist["steps"])
    for step, value in zip(hist["steps"], hist["values"], strict=True):  # every point kept is a real point
        assert truth[step] == value
    lo = min(truth, key=truth.__getitem__)
    hi = max(truth, key=truth.__getitem__)
    assert lo in hist["steps"] and hi in hist["steps"]
    assert min(hist["values"]) == truth[lo] and max(hist["values"]) == truth[hi]


def test_downsampling_from_raw_points_keeps_global_min_and_max(store: Store) -> None:
    # 5,000 points make 20 blocks, fewer than the 50 buckets of max_points=100: the raw-points path.
    n, max_points = 5000, 100
    assert n // BLOCK_STEPS < max_points // 2
    rng = random.Random(1)
    truth = {s: rng.uniform(-1, 1) for s in range(n)}
    truth[1234], truth[3777] = -50.0, 60.0
    run = store.create_run("p")
    steps = list(truth)
    rng.shuffle(steps)
    for i in range(0, n, 1000):  # several batches, out of order
        chunk = steps[i : i + 1000]
        _points(store, run.id, "loss", chunk, [truth[s] for s in chunk])
    _check_downsampled(store.metric_history(run.id, "loss", max_points=max_points), truth, max_points)


def test_downsampling_from_blocks_keeps_global_min_and_max(store: Store) -> None:
    # 40,000 points make 156 blocks, at least the 50 buckets of max_points=100: the blocks path.
    n, max_points = 40_000, 100
    assert n // BLOCK_STEPS >= max_points // 2
    rng = random.Random(2)
    truth = {s: math.sin(s / 500) + rng.uniform(-0.1, 0.1) for s in range(n)}
    truth[777] = -40.0  # global min
    truth[31_000] = 45.0  # global max
    truth[31_001] = 44.0  # same block as the max, arriving in another batch
    truth[5_000] = float(30)
    run = store.create_run("p")
    batches = [list(range(20_000, 40_000)), list(range(20_000))]  # later steps first
    batches[0].remove(31_001)
    batches.append([31_001])
    for chunk in batches:
        _points(store, run.id, "loss", chunk, [truth[s] for s in chunk])
    hist = store.metric_history(run.id, "loss", max_points=max_points)
    _check_downsampled(hist, truth, max_points)
    assert 5_000 in hist["steps"]  # a local spike survives in its bucket

    odd = store.metric_history(run.id, "loss", max_points=7)
    _check_downsampled(odd, truth, 7)


def test_downsampling_of_a_series_with_nan(store: Store) -> None:
    run = store.create_run("p")
    truth = {s: (float("nan") if s % 3 == 0 else float(s % 17)) for s in range(3000)}
    _points(store, run.id, "loss", list(truth), list(truth.values()))
    hist = store.metric_history(run.id, "loss", max_points=40)
    assert hist["downsampled"] and len(hist["steps"]) <= 40
    finite = [v for v in hist["values"] if v is not None]
    assert min(finite) == 0.0 and max(finite) == 16.0


# ----------------------------------------------------------------- adversarial


def test_empty_batch_stores_nothing(store: Store) -> None:
    run = store.create_run("p")
    assert store.ingest_metrics(run.id, [], [], [], []) == (0, False)
    assert store.metric_summaries(run.id) == {}
    assert store.ingest_metrics(run.id, [], [], [], [], batch_id="empty") == (0, False)
    assert store.ingest_metrics(run.id, [], [], [], [], batch_id="empty") == (0, True)


MISMATCHED = [  # keys, steps, values, timestamps
    (["a", "a"], [0], [1.0, 2.0], [0.0, 0.0]),
    (["a"], [0, 1], [1.0], [0.0]),
    (["a"], [0], [], [0.0]),
    (["a"], [0], [1.0], []),
]

BAD_POINTS = [  # key, step, value, message fragment
    ("k" * 251, 0, 1.0, "metric name must be 1-250 characters"),
    ("", 0, 1.0, "metric name must be 1-250 characters"),
    ("a\nb", 0, 1.0, "without newlines"),
    ("loss", 0, "0.5", "Metric values must be numbers"),
    ("loss", 0, True, "Metric values must be numbers"),
    ("loss", 0, [1.0], "Metric values must be numbers"),
    ("loss", 0, 10**400, "too large for a 64-bit float"),
    ("loss", 2**63, 1.0, "Metric steps must be integers"),
    ("loss", -(2**63) - 1, 1.0, "Metric steps must be integers"),
    ("loss", 1.5, 1.0, "Metric steps must be integers"),
    ("loss", "3", 1.0, "Metric steps must be integers"),
    ("loss", None, 1.0, "Metric steps must be integers"),
]


def test_malformed_batches_are_refused_whole(store: Store) -> None:
    # One database per test is the expensive part on PostgreSQL, so the table runs in one test.
    run = store.create_run("p")
    for keys, steps, values, timestamps in MISMATCHED:
        with pytest.raises(InvalidInput, match="equal length") as info:
            store.ingest_metrics(run.id, keys, steps, values, timestamps)
        assert info.value.code == "invalid_input" and info.value.hint
    for key, step, value, match in BAD_POINTS:
        with pytest.raises(InvalidInput, match=match) as info:
            store.ingest_metrics(run.id, ["ok", key], [0, step], [1.0, value], [0.0, 0.0], batch_id=f"b-{match}")
        assert info.value.code == "invalid_input" and info.value.hint, (key, step, value)
    assert store.metric_summaries(run.id) == {}  # nothing of any refused batch was stored
    # A refused batch did not burn its batch_id: the corrected retry is stored.
    assert store.ingest_metrics(run.id, ["ok"], [0], [1.0], [0.0], batch_id="b-Metric steps must be integers") == (1, False)


def test_key_of_250_characters_and_extreme_steps_are_accepted(store: Store) -> None:
    run = store.create_run("p")
    key = "k" * 250
    lo, hi = -(2**63), 2**63 - 1
    assert store.ingest_metrics(run.id, [key, key], [hi, lo], [1e308, -1e308], [0.0, 0.0]) == (2, False)
    hist = store.metric_history(run.id, key)
    assert hist["steps"] == [lo, hi] and hist["values"] == [-1e308, 1e308]


def test_two_stores_creating_the_same_new_keys_concurrently(store: Store) -> None:
    """Two server processes share one database: the first log of a new key must not race."""
    second = Store.open(store.engine.url.render_as_string(hide_password=False))
    run = store.create_run("p")
    errors: list[BaseException] = []
    try:
        for i in range(15):
            barrier = threading.Barrier(2)

            def log(s: Store, i: int = i, barrier: threading.Barrier = barrier) -> None:
                barrier.wait()
                try:
                    s.ingest_metrics(run.id, [f"k{i}", "shared"], [0, i], [1.0, 2.0], [0.0, 0.0])
                except BaseException as e:  # noqa: BLE001 - collected and asserted below
                    errors.append(e)

            threads = [threading.Thread(target=log, args=(s,)) for s in (store, second)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    finally:
        second.close()
    assert errors == []
    summaries = store.metric_summaries(run.id)
    assert summaries["shared"].count == 30
    assert all(summaries[f"k{i}"].count == 2 for i in range(15))


def test_concurrent_writers_of_one_metric_lose_no_point(store: Store) -> None:
    """Ranks of a distributed run log the same key into the same blocks at once: every point survives
    (blocks are read, merged and rewritten, so writers of one run must queue)."""
    run = store.create_run("p").id
    n_threads, per_thread = 4, 300

    def log(rank: int) -> None:
        for start in range(0, per_thread, 50):
            steps = list(range(start, start + 50))
            store.ingest_metrics(run, ["loss"] * 50, steps, [float(rank)] * 50, [float(s) for s in steps],
                                 batch_id=f"r{rank}-{start}")

    threads = [threading.Thread(target=log, args=(rank,)) for rank in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    hist = store.metric_history(run, "loss")
    assert hist["total"] == len(hist["steps"]) == n_threads * per_thread
    assert hist["steps"] == sorted(hist["steps"])
    assert sorted(hist["values"]).count(3.0) == per_thread
