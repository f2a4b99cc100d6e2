"""The store's reads behind the web UI, on SQLite and PostgreSQL: runs limited to some fields,
an experiment's param and metric names, and its values as columns over all runs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runyard.errors import InvalidInput, NotFound
from runyard.store import Store, parse_order


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store.open(db_url)
    try:
        yield s
    finally:
        s.close()


def _seed(store: Store) -> tuple[int, list[int]]:
    exp = store.create_experiment("ui", "sweep", config={"command": "x"})
    other = store.create_experiment("ui", "other", config={"command": "x"})
    ids = []
    for i in range(4):
        run = store.create_run("ui", experiment_id=exp.id, params={"lr": 10.0 ** -i, "opt": ["adam", "sgd"][i % 2]})
        if i != 3:
            store.ingest_metrics(run.id, ["loss", "loss", "acc"], [0, 1, 0], [2.0 - i, 1.0 - i / 10, i / 4], [1.0, 2.0, 1.0])
        ids.append(run.id)
    stray = store.create_run("ui", experiment_id=other.id, params={"other_param": 1})
    store.ingest_metrics(stray.id, ["other_metric"], [0], [1.0], [1.0])
    return exp.id, ids


def test_fields_limit_what_runs_carry(store: Store) -> None:
    eid, ids = _seed(store)
    page = store.list_runs(experiment_id=eid, fields=["params.opt", "metrics.acc"], order=parse_order("metrics.acc.last desc"))
    assert [r.id for r in page.items] == [ids[2], ids[1], ids[0], ids[3]]  # runs without acc last
    assert all(set(r.params) == {"opt"} for r in page.items)
    assert [set(r.metrics) for r in page.items] == [{"acc"}, {"acc"}, {"acc"}, set()]
    assert set(store.list_runs(experiment_id=eid, fields=[]).items[0].params) == set()
    assert set(store.list_runs(experiment_id=eid).items[0].params) == {"lr", "opt"}
    for bad in ("lr", "params.", "metrics.", "tags.team"):
        with pytest.raises(InvalidInput, match="Unknown field"):
            store.list_runs(experiment_id=eid, fields=[bad])


def test_experiment_keys_and_columns(store: Store) -> None:
    eid, ids = _seed(store)
    assert store.experiment_keys(eid) == {"params": ["lr", "opt"], "metrics": ["acc", "loss"]}
    cols = store.experiment_columns(eid, ["params.lr", "params.opt", "metrics.loss.min", "metrics.loss", "metrics.acc.max"])
    assert cols["ids"] == ids
    c = cols["columns"]
    assert c["params.lr"] == [1.0, 0.1, 0.01, 0.001]
    assert c["params.opt"] == ["adam", "sgd", "adam", "sgd"]
    assert c["metrics.loss.min"] == pytest.approx([1.0, 0.9, 0.0, None])
    assert c["metrics.loss"] == pytest.approx([1.0, 0.9, 0.8, None])  # .last by default
    assert c["metrics.acc.max"] == [0.0, 0.25, 0.5, None]
    assert store.experiment_columns(eid, ["metrics.unknown.max"])["columns"]["metrics.unknown.max"] == [None] * 4
    with pytest.raises(InvalidInput, match="Unknown field 'bogus'"):
        store.experiment_columns(eid, ["bogus"])
    with pytest.raises(NotFound, match="No experiment with id 424242"):
        store.experiment_columns(424242, ["params.lr"])
    with pytest.raises(NotFound):
        store.experiment_keys(424242)
