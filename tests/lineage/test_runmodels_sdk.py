"""runyard.load_model from code: with an active run it records the version the URI named for the run (an alias
resolved once); without one it only loads."""

from __future__ import annotations

import pytest
from lineage_helpers import upload_snapshot

import runyard
from runyard.client import Client
from runyard.errors import Conflict, InvalidInput, NotFound
from runyard.testing import LiveServer
from runyard.testing.pytest_plugin import LiveServers


@pytest.fixture
def server(live_servers: LiveServers, monkeypatch: pytest.MonkeyPatch) -> LiveServer:
    srv = live_servers.start("runmodels-sdk", env={"RUNYARD_SCHEDULER": "0"})
    monkeypatch.setenv("RUNYARD_SERVER", srv.url)
    with Client(srv.url) as c:
        c.create_project("sdkm")
        for text in (b"one", b"two"):
            c.create_model_version("sdkm", "2024-net", snapshot_id=upload_snapshot(c, {"w.txt": text}))
        c.set_model_alias("sdkm", "2024-net", "production", 1)
    return srv


def test_load_model_records_what_the_active_run_used(server: LiveServer) -> None:
    with runyard.init(project="sdkm") as run:
        path = runyard.load_model("models:/2024-net@production")  # files flavor: the directory
        assert (path / "w.txt").read_bytes() == b"one"
        assert runyard.load_model("models:/sdkm/2024-net/1") == path  # the same version: recorded once
        with Client(server.url) as c:
            c.set_model_alias("sdkm", "2024-net", "production", 2)
        newer = runyard.load_model("models:/2024-net@production")  # another version of it: under NAME-vV
        assert (newer / "w.txt").read_bytes() == b"two"
        runyard.load_model("models:/2024-net/1", name="first")
        with pytest.raises(Conflict):
            runyard.load_model("models:/2024-net/2", name="first")
        with pytest.raises(NotFound) as e:
            runyard.load_model("models:/2024-net/7")
        assert "no version 7" in e.value.message
        for bad in ("models:/", "models:/2024-net/0", "models:/a\x00", "models:/\ud800", "models:/" + "n" * 600):
            with pytest.raises(InvalidInput):
                runyard.load_model(bad)
        with pytest.raises(InvalidInput):
            runyard.load_model("models:/2024-net/1", name="bad name")
        run_id = run.id
    with Client(server.url) as c:
        used = {(x["name"], x["version"]) for x in c.run_models(run_id)}
        assert used == {("_2024-net", 1), ("_2024-net-v2", 2), ("first", 1)}
        graph = c.lineage(f"runs:/{run_id}")
        assert {n["label"] for n in graph["nodes"] if n["kind"] == "model_version"} == {"models:/sdkm/2024-net/1",
                                                                                       "models:/sdkm/2024-net/2"}


def test_load_model_without_a_run_records_nothing(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNYARD_PROJECT", "sdkm")
    monkeypatch.delenv("RUNYARD_RUN_ID", raising=False)
    assert runyard.active_run() is None
    assert (runyard.load_model("models:/2024-net@production") / "w.txt").read_bytes() == b"one"
    with Client(server.url) as c:
        run = c.create_run("sdkm", name="idle")["id"]
        assert c.run_models(run) == []
