"""runyard.use_dataset from code: with an active run it records the version for the run; without one it only reads."""

from __future__ import annotations

import os

import pytest
from lineage_helpers import add_dataset_version, upload_snapshot

import runyard
from runyard.client import Client
from runyard.errors import Conflict, InvalidInput, NotFound
from runyard.store import Store
from runyard.testing import LiveServer
from runyard.testing.pytest_plugin import LiveServers

DATA = {"digits.csv": b"1,2,3\n"}


@pytest.fixture
def server(live_servers: LiveServers, monkeypatch: pytest.MonkeyPatch) -> LiveServer:
    srv = live_servers.start("lineage-sdk", env={"RUNYARD_SCHEDULER": "0"})
    monkeypatch.setenv("RUNYARD_SERVER", srv.url)
    with Client(srv.url) as c:
        c.create_project("sdk")
        snap = upload_snapshot(c, DATA)
    store = Store.open(f"sqlite:///{srv.home / 'runyard.db'}", migrate=False)
    try:
        add_dataset_version(store, "sdk", "digits", snapshot_id=snap, n_files=1, size=6)
        add_dataset_version(store, "sdk", "digits", snapshot_id=snap, n_files=1, size=6)
    finally:
        store.close()
    return srv


def test_use_dataset_records_the_version_for_the_active_run(server: LiveServer) -> None:
    with runyard.init(project="sdk") as run:
        path = runyard.use_dataset("digits:latest")
        assert (path / "digits.csv").read_bytes() == DATA["digits.csv"]
        assert os.stat(path / "digits.csv").st_mode & 0o222 == 0
        assert runyard.use_dataset("digits:2") == path  # the same version: the same directory, recorded once
        older = runyard.use_dataset("sdk/digits:1", name="old")
        assert older != path and (older / "digits.csv").exists()
        with pytest.raises(Conflict):
            runyard.use_dataset("digits:1")  # the run already reads version 2 as "digits"
        with pytest.raises(NotFound) as e:
            runyard.use_dataset("digits:7", name="x")
        assert "its versions are: 1, 2" in e.value.message
        with pytest.raises(InvalidInput):
            runyard.use_dataset("digits:0")
        with pytest.raises(InvalidInput):
            runyard.use_dataset("digits", name="bad name")
        run_id = run.id
    with Client(server.url) as c:
        assert {(d["name"], d["version"]) for d in c.run_datasets(run_id)} == {("digits", 2), ("old", 1)}
        graph = c.lineage(f"runs:/{run_id}")
        assert {n["label"] for n in graph["nodes"] if n["kind"] == "dataset_version"} == {"sdk/digits:2", "sdk/digits:1"}


def test_use_dataset_without_a_run_reads_the_version_of_the_project_given(server: LiveServer,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNYARD_PROJECT", "sdk")
    path = runyard.use_dataset("digits")
    assert path.parts[-3:-1] == ("sdk", "digits") and path.name.startswith("2-")
    assert (path / "digits.csv").read_bytes() == DATA["digits.csv"]
    assert runyard.active_run() is None
    with pytest.raises(NotFound):
        runyard.use_dataset("digits", project="elsewhere")
