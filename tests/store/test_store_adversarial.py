"""Store contract, adversarial part: concurrent writers of one run, and NUL characters in text."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from runyard.errors import InvalidInput, RunyardError
from runyard.store import Store


def _race(n_threads: int, fn: Callable[[int], None]) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(n_threads)

    def work(i: int) -> None:
        barrier.wait()
        try:
            fn(i)
        except BaseException as e:  # noqa: BLE001 - collected and asserted by the caller
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_every_rank_logging_the_same_params_at_once(store: Store) -> None:
    """Distributed runs: each replica logs the run's params at start, all at the same moment."""
    run = store.create_run("p")
    for i in range(8):
        errors = _race(4, lambda _rank, i=i: store.log_params(run.id, {f"lr{i}": 0.1, "shared": "x"}))
        assert errors == []
    assert store.get_run(run.id).params == {"shared": "x", **{f"lr{i}": 0.1 for i in range(8)}}


def test_concurrent_tag_writes(store: Store) -> None:
    run = store.create_run("p")
    for i in range(8):
        errors = _race(4, lambda rank, i=i: store.set_tags(run.id, {f"t{i}": str(rank), "host": f"h{rank}"}))
        assert errors == []
    tags = store.get_run(run.id).tags
    assert set(tags) == {"host", *(f"t{i}" for i in range(8))}
    assert tags["host"] in {f"h{r}" for r in range(4)}  # one of the writers won, whole


def test_nul_characters(store: Store) -> None:
    run = store.create_run("p")
    # Program output can hold NUL bytes: the line is kept, with U+FFFD in their place, on every database.
    store.append_logs(run.id, "main", [("stdout", "before\x00after", 1.0), ("stdout", "clean", 2.0)])
    assert [ln.text for ln in store.read_logs(run.id)] == ["before\ufffdafter", "clean"]

    # Names with NUL are refused everywhere, with the same error on every database.
    for call in (
        lambda: store.ingest_metrics(run.id, ["lo\x00ss"], [0], [1.0], [0.0]),
        lambda: store.log_params(run.id, {"l\x00r": 1}),
        lambda: store.set_tags(run.id, {"t\x00": "v"}),
        lambda: store.set_tags(run.id, {"t": "v\x00"}),
        lambda: store.append_logs(run.id, "ma\x00in", [("stdout", "x", 1.0)]),
    ):
        with pytest.raises(InvalidInput, match="NUL") as info:
            call()
        assert info.value.code == "invalid_input" and info.value.hint

    # Other free text either stores NUL (SQLite) or is refused as bad input: never an unmapped database error.
    for call in (
        lambda: store.create_run("p", name="a\x00b"),
        lambda: store.log_params(run.id, {"note": "a\x00b"}),
        lambda: store.update_project("p", description="d\x00"),
    ):
        try:
            call()
        except RunyardError as e:
            assert isinstance(e, InvalidInput) and "NUL" in e.message, e
    assert store.metric_summaries(run.id) == {}
