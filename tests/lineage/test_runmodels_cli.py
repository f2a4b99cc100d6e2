"""``runyard lineage`` prints the model versions a run used, and from a model version the runs that used it."""

from __future__ import annotations

import json

import pytest
from lineage_helpers import upload_snapshot
from typer.testing import CliRunner, Result

from runyard.client import Client
from runyard.testing.pytest_plugin import LiveServers


def invoke(*args: str) -> Result:
    from runyard.cli import app

    return CliRunner().invoke(app, list(args))


def test_lineage_prints_used_model_both_ways(live_servers: LiveServers, monkeypatch: pytest.MonkeyPatch) -> None:
    server = live_servers.start("runmodels-cli", env={"RUNYARD_SCHEDULER": "0"})
    monkeypatch.setenv("RUNYARD_SERVER", server.url)
    with Client(server.url) as c:
        c.create_project("nlp")
        snap = upload_snapshot(c, {"w.bin": b"weights"})
        c.create_model_version("nlp", "bert", snapshot_id=snap)
        c.set_model_alias("nlp", "bert", "production", 1)
        run = c.create_run("nlp", name="finetune", params={"lr": 0.01})["id"]
        c.record_run_model(run, "teacher", "models:/bert@production")
        c.create_model_version("nlp", "student", snapshot_id=snap, run_id=run)
    res = invoke("lineage", f"runs:/{run}")
    assert res.exit_code == 0, res.output
    assert "used model as teacher: model models:/nlp/bert/1 @production" in res.stdout, res.stdout
    res = invoke("lineage", "models:/nlp/bert@production")
    assert res.exit_code == 0, res.output
    assert f"used by: run {run} finetune" in res.stdout and "(used as teacher)" in res.stdout, res.stdout
    assert "registered as: model models:/nlp/student/1" in res.stdout, res.stdout
    res = invoke("lineage", "models:/nlp/student/1", "--json")
    graph = json.loads(res.stdout)
    assert {e["kind"] for e in graph["edges"]} >= {"trained_from", "used_model"}
