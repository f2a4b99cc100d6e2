"""`runyard validate DIR` and `runyard run --dry-run` check everything a submission would, and submit nothing."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from int_helpers import awkward_project, cli

from runyard.client import Client
from runyard.testing import LiveServer
from runyard.testing.pytest_plugin import LiveServers

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(module_live_servers: LiveServers) -> LiveServer:
    return module_live_servers.start("validate", env={"RUNYARD_SCHEDULER": "0"})


def _nothing_stored(server: LiveServer, project: str) -> None:
    with Client(server.url) as client:
        assert project not in {p["name"] for p in client.list_projects()}
        assert client.list_experiments() == []


def test_validate_a_good_project(server: LiveServer, tmp_path: Path) -> None:
    project = f"v-{uuid.uuid4().hex[:8]}"
    root = awkward_project(tmp_path / "proj", project)
    res = cli("validate", str(root), server=server.url)
    assert res.returncode == 0, res.stderr
    assert f"runyard.yml: ok (project {project}, experiment sweep" in res.stdout
    assert "6 runs (grid search)." in res.stdout
    assert "snapshot: 2 files" in res.stdout
    assert "data/  195.3 KiB" in res.stdout  # ignored, with its size
    assert "pipe: skipped, a FIFO, not a regular file." in res.stdout
    assert "loop-a: skipped, a symlink loop" in res.stdout

    res = cli("validate", str(root), "-p", "lr=0.01", "--json", server=server.url)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["ok"] and report["errors"] == []
    assert report["runs"]["count"] == 3
    assert report["runs"]["runs"] == [{"lr": 0.01, "depth": d} for d in (2, 4, 8)]
    assert report["snapshot"]["ignored"] == [{"path": "data/", "bytes": 200_000, "complete": True}]
    assert len(report["snapshot"]["skipped"]) == 5
    _nothing_stored(server, project)


def test_validate_reports_errors_and_exits_1(server: LiveServer, tmp_path: Path) -> None:
    project = f"v-{uuid.uuid4().hex[:8]}"
    root = awkward_project(tmp_path / "proj", project)
    res = cli("validate", str(root), "-p", "nope=1", "--json", server=server.url)
    assert res.returncode == 1
    report = json.loads(res.stdout)
    assert report["ok"] is False
    assert report["errors"][0]["section"] == "params"
    assert "declares no param 'nope'" in report["errors"][0]["message"]

    (root / "runyard.yml").write_text(f"project: {project}\ncommand: python train.py\nresources:\n  cpu: 2\n")
    res = cli("validate", str(root), server=server.url)
    assert res.returncode == 1
    assert "runyard.yml" in res.stderr and "cpu" in res.stderr, res.stderr

    (root / "runyard.yml").write_text(f"project: {project}\ncommand: python train.py {{lr}}\n"
                                      "params:\n  lr: {uniform: [0.1, 0.01]}\n")
    res = cli("validate", str(root), server=server.url)
    assert res.returncode == 1, res.stdout
    _nothing_stored(server, project)


def test_run_dry_run_lists_the_runs_and_submits_nothing(server: LiveServer, tmp_path: Path) -> None:
    project = f"v-{uuid.uuid4().hex[:8]}"
    root = awkward_project(tmp_path / "proj", project)
    res = cli("run", str(root), "--dry-run", server=server.url)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["#", "lr", "depth"]
    assert [line.split() for line in lines[1:7]] == [[str(i + 1), str(lr), str(d)]
                                                    for i, (lr, d) in enumerate((lr, d) for lr in (0.1, 0.01)
                                                                                for d in (2, 4, 8))]
    assert "6 runs (grid search)." in res.stdout
    assert "pipe: skipped, a FIFO" in res.stderr

    res = cli("run", str(root), "--dry-run", "--json", "-p", "depth=4", server=server.url)
    assert res.returncode == 0, res.stderr
    plan = json.loads(res.stdout)
    assert plan["dry_run"] is True and plan["count"] == 2
    assert plan["runs"] == [{"lr": 0.1, "depth": 4}, {"lr": 0.01, "depth": 4}]
    _nothing_stored(server, project)
