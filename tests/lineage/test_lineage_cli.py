"""``runyard lineage``: the chain from a registered model back to its dataset version, code snapshot and params."""

from __future__ import annotations

import hashlib
import json

import pytest
from lineage_helpers import add_dataset_version, add_model_version, upload_snapshot
from typer.testing import CliRunner, Result

from runyard.client import Client
from runyard.store import Store
from runyard.testing import LiveServer
from runyard.testing.pytest_plugin import LiveServers


def invoke(*args: str) -> Result:
    from runyard.cli import app

    return CliRunner().invoke(app, list(args))


@pytest.fixture
def seeded(live_servers: LiveServers, monkeypatch: pytest.MonkeyPatch) -> tuple[LiveServer, int]:
    server = live_servers.start("lineage-cli", env={"RUNYARD_SCHEDULER": "0"})
    monkeypatch.setenv("RUNYARD_SERVER", server.url)
    with Client(server.url) as c:
        c.create_project("digits")
        data = upload_snapshot(c, {"digits.csv": b"1,2\n"})
        blob = b"print('train')\n"
        digest = hashlib.sha256(blob).hexdigest()
        c.upload_blob(digest, blob)
        code = c.create_snapshot([["train.py", digest, len(blob), 0o644]], git_commit="0123456789abcdef" * 2 + "01234567",
                                 git_branch="main", git_dirty=True)["id"]
        exp = c.create_experiment("digits", "sweep", {"project": "digits", "command": "python train.py"}, snapshot_id=code)
        run = c.create_run("digits", name="best", experiment_id=exp["id"], params={"lr": 0.05, "depth": 4})["id"]
        store = Store.open(f"sqlite:///{server.home / 'runyard.db'}", migrate=False)
        try:
            add_dataset_version(store, "digits", "digits", snapshot_id=data, n_files=1, size=4)
            add_dataset_version(store, "digits", "digits", snapshot_id=data, n_files=1, size=4)
            c.record_run_dataset(run, "train", "digits:latest")
            add_model_version(store, "digits", "clf", run, data, alias="production")
        finally:
            store.close()
    return server, run


def test_lineage_names_the_dataset_version_the_snapshot_and_the_params(seeded: tuple[LiveServer, int]) -> None:
    _, run = seeded
    res = invoke("lineage", "models:/digits/clf@production")
    assert res.exit_code == 0, res.output
    out = res.stdout
    for expected in ("model models:/digits/clf/1 @production", f"trained by: run {run} best", "params: depth=4, lr=0.05",
                     "read as train: dataset digits/digits:2 · 1 files", "code: snapshot ", "git 0123456789ab (main, dirty)",
                     "in: experiment"):
        assert expected in out, f"{expected!r} not in:\n{out}"
    # Unqualified names take --project; the same graph as JSON.
    res = invoke("lineage", "models:/clf/1", "--project", "digits", "--json")
    assert res.exit_code == 0, res.output
    graph = json.loads(res.stdout)
    assert {n["kind"] for n in graph["nodes"]} == {"model_version", "run", "dataset_version", "snapshot", "experiment"}
    # From the dataset version: the run that read it and the model trained from it.
    res = invoke("lineage", "datasets:/digits/digits:2")
    assert res.exit_code == 0, res.output
    assert f"read by: run {run} best" in res.stdout and "(read as train)" in res.stdout
    assert "registered as: model" in res.stdout


@pytest.mark.parametrize(("uri", "expected"), [("models:/digits/clf/7", "has no version 7"),
                                               ("runs:/abc", "must be a number"),
                                               ("datasets:/digits/digits:5", "its versions are: 1, 2"),
                                               ("nope:/1", "known are runs, datasets and models")])
def test_bad_uris_fail_with_the_servers_message(seeded: tuple[LiveServer, int], uri: str, expected: str) -> None:
    res = invoke("lineage", uri)
    assert res.exit_code != 0
    assert expected in res.output and "Traceback" not in res.output
