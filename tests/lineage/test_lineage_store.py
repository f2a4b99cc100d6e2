"""The store's lineage part on SQLite and PostgreSQL: resolving references, recording what runs read, the graph."""

from __future__ import annotations

import json

import pytest
from lineage_helpers import add_dataset_version, add_model_version, store_snapshot
from sqlalchemy import func, select

from runyard.errors import Conflict, InvalidInput, NotFound
from runyard.store import Store, parse_lineage_uri
from runyard.store import _models as m
from runyard.store._engine import read_scope


def _experiment(store: Store, project: str, datasets: dict[str, str]) -> int:
    config = {"project": project, "command": "python train.py", "datasets": datasets}
    return store.create_experiment(project, "exp", config=config).id


def test_latest_resolves_to_a_number_and_a_later_push_does_not_change_queued_runs(store: Store) -> None:
    snap = store_snapshot(store, {"a.csv": b"1,2\n"})
    add_dataset_version(store, "p", "digits", snapshot_id=snap, n_files=1, size=4)
    add_dataset_version(store, "p", "digits", snapshot_id=snap, n_files=1, size=4)
    pinned = store.resolve_datasets("p", {"train": "digits", "raw": "digits:1"})
    # latest is the highest version at resolution time, recorded as a number.
    assert (pinned["train"].version, pinned["raw"].version) == (2, 1)
    assert pinned["train"].snapshot_id == snap and pinned["train"].project == "p"
    exp = _experiment(store, "p", {"train": "p/digits:2"})
    add_dataset_version(store, "p", "digits", snapshot_id=snap)  # version 3 arrives after submission
    exp_row = store.get_experiment(exp)
    with read_scope(store.engine) as conn:
        project_id = conn.execute(select(m.SqlProject.id).where(m.SqlProject.name == "p")).scalar_one()
    ids = store.create_queued_runs(exp, project_id, [(0, "r0", {}), (1, "r1", {})], snapshot_id=None, backend="local",
                                   datasets=exp_row.config["datasets"])
    for rid in ids:
        [item] = store.run_datasets(rid)
        # Every run of the experiment reads the version pinned at submission, not the newest.
        assert (item.name, item.dataset, item.version, item.snapshot_id) == ("train", "digits", 2, snap)
    assert store.run_dataset_snapshot_ids(ids[0]) == [snap]


def test_a_reference_that_does_not_resolve_names_the_dataset_and_its_versions(store: Store) -> None:
    add_dataset_version(store, "p", "digits", refs=[["/data/a.npy", "0" * 64, 3, 1.0]])
    with pytest.raises(NotFound) as e:
        store.resolve_dataset("digits:7", "p")
    assert "p/digits has no version 7; its versions are: 1" in e.value.message and "digits:1" in (e.value.hint or "")
    with pytest.raises(NotFound) as e:
        store.resolve_dataset("scans", "p")
    assert "No dataset 'scans' in project 'p'" in e.value.message and "runyard datasets push" in (e.value.hint or "")
    with pytest.raises(NotFound):
        store.resolve_dataset("elsewhere/digits:1", "p")
    for bad in ["digits:0", "digits:x", "", "a/b/c", "digits\x00", "digits\ud800", "d" * 600, "digits:99999999999"]:
        with pytest.raises(InvalidInput):
            store.resolve_dataset(bad, "p")


def test_queueing_runs_whose_pinned_version_is_gone_stores_nothing(store: Store) -> None:
    add_dataset_version(store, "p", "digits", refs=[["/data/a.npy", "0" * 64, 3, 1.0]])
    exp = _experiment(store, "p", {"train": "p/digits:5"})
    with read_scope(store.engine) as conn:
        project_id = conn.execute(select(m.SqlProject.id).where(m.SqlProject.name == "p")).scalar_one()
    with pytest.raises(NotFound):
        store.create_queued_runs(exp, project_id, [(0, "r0", {})], snapshot_id=None, backend="local",
                                 datasets={"train": "p/digits:5"})
    with read_scope(store.engine) as conn:  # one transaction: no run without its lineage
        assert conn.execute(select(func.count()).select_from(m.SqlRun)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(m.SqlRunDataset)).scalar_one() == 0


def test_recording_a_dataset_from_a_run_is_idempotent_and_refuses_a_second_version_under_one_name(store: Store) -> None:
    add_dataset_version(store, "p", "digits", refs=[["/data/a.npy", "0" * 64, 3, 1.0]])
    add_dataset_version(store, "p", "digits", refs=[["/data/a.npy", "1" * 64, 4, 2.0]])
    run = store.create_run("p", name="r")
    first = store.record_run_dataset(run.id, "train", "digits:latest")
    assert first.version == 2 and first.refs == [["/data/a.npy", "1" * 64, 4, 2.0]]
    again = store.record_run_dataset(run.id, "train", "digits:2")
    assert again.recorded_at == first.recorded_at
    with pytest.raises(Conflict) as e:
        store.record_run_dataset(run.id, "train", "digits:1")
    assert "already reads p/digits:2 under the name 'train'" in e.value.message
    store.record_run_dataset(run.id, "old", "digits:1")
    assert [(d.name, d.version) for d in store.run_datasets(run.id)] == [("old", 1), ("train", 2)]
    for name in ["", "1x", "a b", "x" * 65, "tr\x00ain", "tr\ud800", "ü"]:
        with pytest.raises(InvalidInput):
            store.record_run_dataset(run.id, name, "digits:1")
    with pytest.raises(NotFound):
        store.record_run_dataset(run.id + 999, "train", "digits:1")
    with pytest.raises(NotFound):
        store.run_datasets(run.id + 999)


def test_the_graph_of_a_model_version_reaches_its_run_data_code_image_and_params(store: Store) -> None:
    code = store_snapshot(store, {"train.py": b"print(1)\n"})
    data = store_snapshot(store, {"x.csv": b"1\n"})
    add_dataset_version(store, "p", "digits", snapshot_id=data, n_files=1, size=2)
    exp = store.create_experiment("p", "sweep", config={"project": "p", "command": "x"}, snapshot_id=code)
    run = store.create_run("p", name="best", experiment_id=exp.id, params={"lr": 0.1, "depth": 3})
    store.set_tags(run.id, {"runyard.image": "python:3.12-slim", "runyard.image.id": "sha256:abc"})
    store.record_run_dataset(run.id, "train", "digits:1")
    model_snap = store_snapshot(store, {"model.skops": b"m"})
    add_model_version(store, "p", "digits-clf", run.id, model_snap, alias="production")

    g = store.lineage("models:/p/digits-clf@production")
    nodes = {n.id: n for n in g.nodes}
    assert g.root.startswith("model_version:") and nodes[g.root].label == "models:/p/digits-clf/1"
    assert nodes[g.root].data["aliases"] == ["production"]
    kinds = {(e.source.split(":")[0], e.kind, e.target.split(":")[0]) for e in g.edges}
    assert kinds == {("model_version", "trained_from", "run"), ("run", "read", "dataset_version"),
                     ("run", "code", "snapshot"), ("run", "image", "image"), ("run", "part_of", "experiment")}
    run_node = nodes[f"run:{run.id}"]
    assert run_node.data["params"] == {"depth": 3, "lr": 0.1} and run_node.data["experiment"] == "sweep"
    ds = next(n for n in g.nodes if n.kind == "dataset_version")
    assert ds.label == "p/digits:1" and ds.data["snapshot_id"] == data
    assert nodes[f"snapshot:{code}"].data["id"] == code
    assert nodes["image:python:3.12-slim"].data["id"] == "sha256:abc"
    # The same version three ways; unqualified names take the project given.
    assert store.lineage("models:/digits-clf/1", project="p").root == g.root
    assert store.lineage("models:/p/digits-clf/latest").root == g.root

    # From the dataset version: the runs that read it and the model versions trained from them.
    d = store.lineage("datasets:/p/digits:1")
    assert d.root == ds.id
    assert {(e.source, e.kind, e.target) for e in d.edges} == {(f"run:{run.id}", "read", ds.id),
                                                                (f"run:{run.id}", "registered_as", g.root)}
    # From the run: what it read and what it registered.
    r = store.lineage(f"runs:/{run.id}")
    assert r.root == f"run:{run.id}" and ("registered_as" in {e.kind for e in r.edges})


def test_a_snapshot_node_names_its_git_commit(store: Store) -> None:
    store.record_blob("a" * 64, 1)
    store.create_snapshot("c" * 64, [["t.py", "a" * 64, 1, 0o644]], git_commit="deadbeef" * 5, git_branch="main",
                          git_dirty=True)
    exp = store.create_experiment("p", "e", config={"project": "p", "command": "x"}, snapshot_id="c" * 64)
    run = store.create_run("p", experiment_id=exp.id)
    g = store.lineage(f"runs:/{run.id}")
    snap = next(n for n in g.nodes if n.kind == "snapshot")
    assert snap.data["git_commit"] == "deadbeef" * 5 and snap.data["git_dirty"] is True
    assert "git deadbeefdead dirty" in snap.label


@pytest.mark.parametrize("uri", ["", "runs:/", "runs:/x", "runs:/-1", "models:/", "models:/a/b/c/1", "models:/n/0",
                                 "models:/n@", "models:/n@1a", "datasets:/", "datasets:/a/b/c", "files:/x", "runs:/1\x00",
                                 "runs:/\ud800", "runs:/" + "9" * 30, "x" * 700, "models:/p/n@" + "a" * 200])
def test_bad_lineage_uris_are_refused(uri: str) -> None:
    with pytest.raises(InvalidInput):
        parse_lineage_uri(uri)


def test_what_a_uri_names_must_exist(store: Store) -> None:
    with pytest.raises(NotFound):
        store.lineage("runs:/12345")
    with pytest.raises(NotFound):
        store.lineage("models:/p/none/1")
    with pytest.raises(NotFound):
        store.lineage("datasets:/p/none:1")
    with pytest.raises(InvalidInput):
        store.lineage("datasets:/none:1")  # unqualified, and no project given
    store.ensure_project("p")
    snap = store_snapshot(store, {"m": b"m"})
    add_model_version(store, "p", "clf", None, snap)
    with pytest.raises(NotFound) as e:
        store.lineage("models:/p/clf@production")
    assert "has no alias 'production'" in e.value.message
    # A model version whose run was deleted is a graph of one node.
    assert [n.kind for n in store.lineage("models:/p/clf/1").nodes] == ["model_version"]
    assert json.loads(store.lineage("models:/p/clf/1").model_dump_json())["edges"] == []
