"""Runs in container images end to end: a live server, its local agent with podman, a real single-node
Slurm with Charliecloud, the CLI.

The digits sweep runs in the test image (the host's Python) plus a build step that installs numpy and
scikit-learn from wheels mounted into the build (the backend's ``build_options``), as a site with a
wheelhouse would. The server is stopped by its pid at the end of the module; Slurm jobs by their ids.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from e2e_helpers import Yard, log_texts, push_digits_data

from runyard.client import Client
from runyard.testing import LiveServer

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BUILD = "python3 -m pip install --no-index --find-links /wheels scikit-learn skops"


@pytest.fixture(scope="module")
def ctr_yard(slurm_cluster: str, podman_image: str, wheelhouse: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Yard]:
    root = tmp_path_factory.mktemp("containers-e2e")
    home = root / "server-home"
    home.mkdir()
    wheels = ["--volume", f"{wheelhouse}:/wheels:ro"]
    config = {
        "local": {"type": "local", "build_options": wheels},
        "strict": {"type": "slurm", "partition": slurm_cluster, "work_dir": str(root / "shared" / "strict"),
                   "require_image": True},
        "slurm-ch": {"type": "slurm", "partition": slurm_cluster, "poll_min_s": 0.3, "poll_max_s": 2.0,
                     "work_dir": str(root / "shared" / "ch"), "container_runtime": "charliecloud",
                     "image_dir": str(root / "shared" / "images"), "build_options": wheels},
    }
    (home / "backends.yml").write_text(yaml.safe_dump(config))
    server = LiveServer(home)
    server.start(timeout_s=60.0)
    client = Client(server.url)
    try:
        yield Yard(server, client, root / "cli-home")
    finally:
        client.close()
        server.stop()
        for job_file in (root / "shared").glob("*/runs/*/job_id"):
            subprocess.run(["scancel", job_file.read_text().strip()], capture_output=True, check=False)


def _digits(yard: Yard, tmp_path: Path, name: str, image: str, *, runs: int = 3, extra: str = "") -> Path:
    project = tmp_path / name
    shutil.copytree(ROOT / "examples" / "digits-sweep", project)
    yml = (project / "runyard.yml").read_text()
    yml = yml.replace("max_runs: 12", f"max_runs: {runs}").replace("project: digits", f"project: {name}")
    yml += f"image: {image}\nbuild:\n  steps:\n    - {BUILD}\n{extra}"
    (project / "runyard.yml").write_text(yml)
    push_digits_data(yard, project, name)  # the runs read it inside the container
    return project


def _run(yard: Yard, project: Path, *args: str) -> dict:
    res = yard.cli("run", project, *args, "--wait", "--json", timeout_s=900)
    assert res.returncode in (0, 1), f"{res.stdout}\n{res.stderr}"
    return json.loads(res.stdout)


def test_the_digits_sweep_runs_in_an_image_built_once_with_podman(ctr_yard: Yard, podman_image: str,
                                                                  tmp_path: Path) -> None:
    exp = _run(ctr_yard, _digits(ctr_yard, tmp_path, "ctr-digits", podman_image))
    assert exp["status"] == "succeeded", ctr_yard.describe(exp["id"])
    runs = ctr_yard.runs(exp["id"])
    assert len(runs) == 3
    done = [r for r in runs if r["status"] == "succeeded"]
    assert done
    logs = {r["id"]: log_texts(ctr_yard.client, r["id"]) for r in runs}
    # One build for the sweep (or none, when an earlier session built the same inputs); reused by the rest.
    built = [rid for rid, texts in logs.items() if any(t.startswith("[runyard] building image") for t in texts)]
    assert len(built) <= 1, built
    assert sum(any("was built before" in t for t in texts) for texts in logs.values()) >= 2
    full = ctr_yard.client.get_run(done[0]["id"])
    assert "val/accuracy" in ctr_yard.client.metric_summaries(full["id"])
    tags = [ctr_yard.client.get_run(r["id"])["tags"] for r in runs]
    assert len({t["runyard.image.id"] for t in tags}) == 1
    assert full["tags"]["runyard.image"].startswith("localhost/runyard-build:")

    images = json.loads(ctr_yard.cli("images", "--project", "ctr-digits", "--json").stdout)
    assert len(images) == 1 and images[0]["runs"] == 3 and images[0]["runtime"] == "podman"
    table = ctr_yard.cli("images", "--project", "ctr-digits")
    assert table.returncode == 0 and "localhost/runyard-build:" in table.stdout

    # A rerun uses the very image (its id), not whatever the tag or the build gives now.
    rerun = json.loads(ctr_yard.cli("rerun", str(done[0]["id"]), "--detach", "--json").stdout)
    assert rerun["config"]["image"] == full["tags"]["runyard.image.id"] and "build" not in rerun["config"]
    (again,) = ctr_yard.runs(rerun["id"])
    again = ctr_yard.wait_run(again["id"], timeout_s=300)
    assert again["status"] == "succeeded", log_texts(ctr_yard.client, again["id"])
    assert ctr_yard.client.get_run(again["id"])["tags"]["runyard.image.id"] == full["tags"]["runyard.image.id"]
    diff = json.loads(ctr_yard.cli("diff", str(done[0]["id"]), str(again["id"]), "--json").stdout)
    assert "runyard.image" in diff["image"]  # the build's tag, then the id it was pinned to


def test_a_failing_build_fails_every_run_with_its_last_lines(ctr_yard: Yard, podman_image: str,
                                                            tmp_path: Path) -> None:
    project = tmp_path / "ctr-badbuild"
    project.mkdir()
    (project / "runyard.yml").write_text(textwrap.dedent(f"""
        project: ctr-badbuild
        command: echo never
        params: {{x: [1, 2]}}
        image: {podman_image}
        build:
          steps: ["python3 -m pip install --no-index --find-links /wheels no-such-package-xyz"]
    """))
    exp = _run(ctr_yard, project)
    assert exp["status"] == "failed"
    for run in ctr_yard.runs(exp["id"]):
        run = ctr_yard.client.get_run(run["id"])
        assert run["status"] == "failed" and run["status_message"].startswith("image build failed")
        assert "no-such-package-xyz" in run["status_message"]


def test_a_job_in_an_image_cannot_read_the_server_s_home(ctr_yard: Yard, podman_image: str, tmp_path: Path) -> None:
    project = tmp_path / "ctr-home"
    project.mkdir()
    home = ctr_yard.server.home
    (project / "runyard.yml").write_text(textwrap.dedent(f"""
        project: ctr-home
        command: ls {home} /root/.runyard; cat {home}/backends.yml
        image: {podman_image}
    """))
    exp = _run(ctr_yard, project)
    (run,) = ctr_yard.runs(exp["id"])
    texts = "\n".join(log_texts(ctr_yard.client, run["id"]))
    assert run["status"] == "failed" and "No such file or directory" in texts
    assert "slurm-ch" not in texts  # backends.yml's content


def test_a_backend_that_requires_an_image_refuses_a_run_without_one(ctr_yard: Yard, tmp_path: Path) -> None:
    project = tmp_path / "ctr-strict"
    project.mkdir()
    (project / "runyard.yml").write_text("project: ctr-strict\ncommand: echo hi\nbackend: strict\n")
    res = ctr_yard.cli("run", project, "--detach")
    assert res.returncode != 0
    assert "runs every job in a container" in res.stderr and "image:" in res.stderr
    assert "ctr-strict" not in {p["name"] for p in ctr_yard.client.list_projects()}  # nothing was stored


def test_the_digits_sweep_runs_on_slurm_through_charliecloud(ctr_yard: Yard, podman_image: str,
                                                            tmp_path: Path) -> None:
    exp = _run(ctr_yard, _digits(ctr_yard, tmp_path, "ctr-slurm-digits", podman_image, runs=2), "--backend", "slurm-ch")
    assert exp["status"] == "succeeded", ctr_yard.describe(exp["id"])
    runs = ctr_yard.runs(exp["id"])
    assert len(runs) == 2
    for run in runs:
        full = ctr_yard.client.get_run(run["id"])
        assert full["backend"] == "slurm-ch"
        assert full["tags"]["runyard.image.runtime"] == "charliecloud"
        assert Path(full["tags"]["runyard.image.file"]).is_dir()
        assert "val/accuracy" in ctr_yard.client.metric_summaries(run["id"])
    texts = log_texts(ctr_yard.client, runs[0]["id"])
    assert any("epoch" in t.lower() for t in texts)


def test_a_distributed_run_s_tasks_start_in_their_roles_images(ctr_yard: Yard, podman_image: str,
                                                              tmp_path: Path) -> None:
    """Every task of a PyTorch-style run starts in a container with its rank's variables; the worker role
    names its image by id (an image of its own), the master takes the top-level one."""
    image_id = subprocess.run(["podman", "image", "inspect", "--format", "{{.Id}}", podman_image],
                              capture_output=True, text=True, check=True).stdout.strip()
    project = tmp_path / "ctr-dist"
    project.mkdir()
    (project / "runyard.yml").write_text(textwrap.dedent(f"""
        project: ctr-dist
        command: python3 -c "import os; print('rank', os.environ['RANK'], 'of', os.environ['WORLD_SIZE'], os.getcwd())"
        image: {podman_image}
        distributed:
          framework: pytorch
          master: 1
          worker: {{replicas: 1, image: "sha256:{image_id}"}}
        resources: {{cpus: 0.5}}
    """))
    exp = _run(ctr_yard, project)
    assert exp["status"] == "succeeded", ctr_yard.describe(exp["id"])
    (run,) = ctr_yard.runs(exp["id"])
    texts = log_texts(ctr_yard.client, run["id"])
    assert "rank 0 of 2 /runyard/work" in texts and "rank 1 of 2 /runyard/work" in texts, texts
    tags = ctr_yard.client.get_run(run["id"])["tags"]
    assert tags["runyard.image"] == podman_image  # the master's
    assert tags["runyard.image.worker"] == f"sha256:{image_id}" and tags["runyard.image.worker.runtime"] == "podman"
