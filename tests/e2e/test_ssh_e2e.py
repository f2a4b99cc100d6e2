"""The SSH backend end to end: a live server whose backends.yml names the dev sshd on 127.0.0.1:2222.

``runyard run`` submits real projects; the server's scheduler hands runs to the SSH
backend, which ships the snapshot by SFTP and starts the runner detached on the
host (this machine, through sshd); the runner reports to the server. The sshd is
brought up by a session fixture and stopped by its pid if this session started it
(or restarted it). Job processes left on the host are stopped by their process
group ids.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from e2e_helpers import Yard, log_texts, process_gone, push_digits_data, wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backends"))
from ssh_helpers import LOADED_START_S, DevSSHD, dev_sshd_session, stop_ssh_jobs  # noqa: E402

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="session")
def dev_sshd() -> Iterator[DevSSHD]:
    yield from dev_sshd_session()


@pytest.fixture
def ssh_yard(servers, dev_sshd: DevSSHD, tmp_path: Path) -> Iterator[tuple[Yard, Path]]:
    """A server of its own with ``dev-ssh`` in its backends.yml; the host's work_dir is returned with it."""
    home = tmp_path / "servers" / "ssh"
    home.mkdir(parents=True)
    work = tmp_path / "ssh-work"
    entry = {"type": "ssh", "hosts": [dev_sshd.host_options(work_dir=str(work), cpus=2)], "start_timeout_s": LOADED_START_S}
    (home / "backends.yml").write_text(yaml.safe_dump({"dev-ssh": entry}))
    server = servers.start("ssh", home=home)
    try:
        yield servers.yard(server), work
    finally:
        servers.stop_all()  # the scheduler first: it would start jobs again
        stop_ssh_jobs(work)


def _project(tmp_path: Path, name: str, yml: str, script: str) -> tuple[Path, Path]:
    path, out = tmp_path / name, tmp_path / f"{name}-out"
    path.mkdir()
    out.mkdir()
    (path / "runyard.yml").write_text(textwrap.dedent(yml).strip() + f"\nenv:\n  E2E_OUT: {json.dumps(str(out))}\n")
    (path / "train.py").write_text(textwrap.dedent(script).lstrip())
    return path, out


def test_the_digits_sweep_runs_on_ssh_hosts(ssh_yard: tuple[Yard, Path], tmp_path: Path) -> None:
    yard, work = ssh_yard
    project = tmp_path / "digits"
    shutil.copytree(EXAMPLES / "digits-sweep", project)
    spec = yaml.safe_load((project / "runyard.yml").read_text())
    # A reduced copy: 4 runs of 5 short epochs, on the SSH backend.
    spec.update(backend="dev-ssh", command=spec["command"] + " --epochs 5 --epoch-seconds 0.05")
    spec["search"].update(max_runs=4, parallel=2)
    spec.pop("early_stopping")
    (project / "runyard.yml").write_text(yaml.safe_dump(spec))
    push_digits_data(yard, project, spec["project"])  # the runs read it on the SSH host

    exp = yard.submit(project)
    exp = yard.wait_experiment(exp["id"], timeout_s=300)
    assert exp["status"] == "succeeded", yard.describe(exp["id"])
    runs = yard.runs(exp["id"])
    assert len(runs) == 4
    for run in runs:
        assert (run["status"], run["backend"], run["attempt"]) == ("succeeded", "dev-ssh", 1), yard.describe(exp["id"])
        assert run["engine_job_id"] == f"{run['id']}.1@127.0.0.1:2222"
        assert run["metrics"]["val/accuracy"]["count"] == 5
        assert run["metrics"]["train/loss"]["count"] == 5

    run = runs[0]
    info = yard.cli("info", str(run["id"]))
    assert info.returncode == 0, info.stderr
    assert "succeeded" in info.stdout and "val/accuracy" in info.stdout and "dev-ssh" in info.stdout
    logs = yard.cli("logs", str(run["id"]))
    assert logs.returncode == 0, logs.stderr
    epochs = re.findall(r"epoch +(\d+) loss [\d.]+ val_accuracy [\d.]+", logs.stdout)
    assert epochs == ["0", "1", "2", "3", "4"], logs.stdout
    # The snapshot's three files and the dataset's one went to the host's blob cache once, for all four runs.
    assert len([p for p in (work / "cache" / "blobs").rglob("*") if p.is_file()]) == 4
    for r in runs:
        assert [(d["name"], d["dataset"], d["version"]) for d in yard.client.run_datasets(r["id"])] == [("train", "digits", 1)]
    assert sorted(p.name for p in (work / "jobs").iterdir()) == sorted(f"{r['id']}.1" for r in runs)


SLOW_YML = """
project: e2e-ssh-{name}
backend: dev-ssh
command: python train.py
params:
  steps: {steps}
resources:
  cpus: 1
"""

SLOW_PY = """
import os, time
import runyard

runyard.init()
open(os.path.join(os.environ["E2E_OUT"], "pid"), "w").write(str(os.getpid()))
steps = runyard.params()["steps"]
for step in range(steps):
    runyard.log({"loss": 1.0 / (step + 1)}, step=step)
    print(f"step {step}", flush=True)
    time.sleep(0.5)
runyard.finish()
"""


def test_cancel_stops_a_run_on_the_host(ssh_yard: tuple[Yard, Path], tmp_path: Path) -> None:
    yard, _ = ssh_yard
    project, out = _project(tmp_path, "cancel", SLOW_YML.format(name="cancel", steps=600), SLOW_PY)
    exp = yard.submit(project)
    run_id = wait_until(lambda: [r["id"] for r in yard.runs(exp["id"]) if r["status"] == "running"],
                        what="the run to run")[0]
    wait_until(lambda: (out / "pid").exists() and "step 1" in log_texts(yard.client, run_id), what="two steps")
    pid = int((out / "pid").read_text())

    res = yard.cli("cancel", str(run_id))
    assert res.returncode == 0, res.stderr
    run = yard.wait_run(run_id)
    assert run["status"] == "canceled"
    wait_until(lambda: process_gone(pid), timeout_s=30, what="the task's processes to end")
    job = run["engine_job_id"]
    backend_state = yard.client.get_run(run_id)
    assert backend_state["status"] == "canceled" and job.endswith("@127.0.0.1:2222")


def test_a_run_survives_the_ssh_connection_being_killed(ssh_yard: tuple[Yard, Path], tmp_path: Path,
                                                       dev_sshd: DevSSHD) -> None:
    yard, work = ssh_yard
    steps = 16
    project, out = _project(tmp_path, "outage", SLOW_YML.format(name="outage", steps=steps), SLOW_PY)
    exp = yard.submit(project)
    run_id = wait_until(lambda: [r["id"] for r in yard.runs(exp["id"]) if r["status"] == "running"],
                        what="the run to run")[0]
    wait_until(lambda: "step 2" in log_texts(yard.client, run_id), what="three steps")

    # sshd and every open session die (the server's connection with them), then sshd comes back.
    dev_sshd.kill()
    try:
        wait_until(lambda: "step 6" in log_texts(yard.client, run_id), what="steps while sshd is down")
        assert yard.client.get_run(run_id)["status"] == "running"  # not lost, not failed
    finally:
        dev_sshd.up()
        dev_sshd.started = True

    run = yard.wait_run(run_id)
    assert run["status"] == "succeeded", yard.describe(exp["id"])
    assert run["attempt"] == 1
    assert run["metrics"]["loss"]["count"] == steps
    assert [t for t in log_texts(yard.client, run_id) if t.startswith("step ")] == [f"step {i}" for i in range(steps)]
    exit_file = work / "jobs" / f"{run_id}.1" / "exit"  # written by the job's wrapper once the runner exits
    wait_until(exit_file.exists, timeout_s=30, what="the job's exit file")
    assert exit_file.read_text().strip() == "0"
