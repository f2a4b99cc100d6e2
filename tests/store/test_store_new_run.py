"""Creating a run: the run returned (built from what was written, not read back) is the run stored."""

from __future__ import annotations

import pytest

from runyard.errors import InvalidInput
from runyard.store import Store, insert_run


def test_created_run_is_the_stored_run(store: Store) -> None:
    run = store.create_run("p", params={"lr": 0.1, "layers": [2, 3], "opt": {"b": 1, "a": 2}, "on": True},
                           tags={"stage": "dev", "n": 3})  # type: ignore[dict-item]
    assert run == store.get_run(run.id)
    assert run.name == f"run-{run.id}" and run.status == "running" and run.started_at == run.heartbeat_at == run.created_at
    assert run.tags == {"stage": "dev", "n": "3"}
    assert [e.status for e in run.events] == ["running"]


def test_created_run_in_an_experiment_is_the_stored_run(store: Store) -> None:
    exp = store.create_experiment("p", "sweep", config={"command": "true"})
    first = store.create_run("p", name="a", experiment_id=exp.id, status="queued", snapshot_id=None, backend="local")
    second = store.create_run("p", experiment_id=exp.id, status="succeeded")
    assert (first.number, second.number) == (0, 1)
    assert first == store.get_run(first.id) and second == store.get_run(second.id)
    assert first.started_at is None and first.backend == "local"


def test_a_new_project_gets_its_owner(store: Store) -> None:
    run = insert_run(store, "fresh", owner_id=None, status="succeeded")
    assert store.get_project("fresh").id and run == store.get_run(run.id)


def test_refused_input_writes_no_run(store: Store) -> None:
    store.ensure_project("p")
    with pytest.raises(InvalidInput):
        store.create_run("p", params={"x": float("nan")})
    with pytest.raises(InvalidInput):
        store.create_run("p", tags={"t": "a\x00b"})
    with pytest.raises(InvalidInput):
        store.create_run("p", status="bogus")
    with pytest.raises(InvalidInput):
        store.create_run("Not A Name")
    assert store.list_runs(project="p").total == 0
