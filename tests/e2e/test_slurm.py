"""The Slurm backend end to end: a live server whose backends.yml names a real single-node Slurm.

The cluster comes from scripts/dev-slurm.sh (the session fixture ``slurm_cluster`` brings it
up if needed). The server is stopped by its pid at the end of the module, and every Slurm
job the module's runs started is cancelled by its job id (read from the runs' job dirs).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import Yard, log_texts, push_digits_data, wait_until

from runyard.client import Client
from runyard.testing import LiveServer

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def slurm_yard(slurm_cluster: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Yard]:
    root = tmp_path_factory.mktemp("slurm-e2e")
    home = root / "server-home"
    home.mkdir()
    common = {"type": "slurm", "partition": slurm_cluster, "poll_min_s": 0.3, "poll_max_s": 2.0}
    config = {
        "slurm-dev": {**common, "work_dir": str(root / "shared" / "dev")},
        # The compute side cannot reach the server: its URL points at a closed port, so only the spool gets through.
        "slurm-spool": {**common, "work_dir": str(root / "shared" / "spool"), "reach_server": False,
                        "server_url": "http://127.0.0.1:9"},
        "slurm-nosbatch": {**common, "work_dir": str(root / "shared" / "x"), "sbatch": str(root / "no" / "sbatch")},
    }
    import yaml

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


def _project(tmp_path: Path, name: str, yml: str, script: str = "") -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "runyard.yml").write_text(textwrap.dedent(yml))
    if script:
        (d / "job.py").write_text(textwrap.dedent(script))
    return d


def test_digits_sweep_completes_on_slurm(slurm_yard: Yard, tmp_path: Path) -> None:
    project = tmp_path / "digits-sweep"
    shutil.copytree(ROOT / "examples" / "digits-sweep", project)
    yml = (project / "runyard.yml").read_text().replace("max_runs: 12", "max_runs: 4").replace("project: digits",
                                                                                               "project: slurm-digits")
    (project / "runyard.yml").write_text(yml)
    push_digits_data(slurm_yard, project, "slurm-digits")  # the runs read it from Slurm's node
    res = slurm_yard.cli("run", project, "--backend", "slurm-dev", "--wait", "--json", timeout_s=600)
    assert res.returncode == 0, f"{res.stdout}\n{res.stderr}"
    exp = json.loads(res.stdout)
    assert exp["backend"] == "slurm-dev"
    assert exp["status"] == "succeeded", slurm_yard.describe(exp["id"])
    runs = slurm_yard.runs(exp["id"])
    assert len(runs) == 4
    done = [r for r in runs if r["status"] == "succeeded"]
    assert done, slurm_yard.describe(exp["id"])
    run = done[0]
    assert run["backend"] == "slurm-dev"
    info = slurm_yard.cli("info", str(run["id"]))
    assert info.returncode == 0 and "val/accuracy" in info.stdout, info.stdout
    logs = slurm_yard.cli("logs", str(run["id"]))
    assert logs.returncode == 0 and "epoch" in logs.stdout.lower(), logs.stdout
    assert [(d["name"], d["dataset"], d["version"]) for d in slurm_yard.client.run_datasets(run["id"])] == [
        ("train", "digits", 1)]
    assert "models/digits/runyard-model.json" in {a["path"] for a in slurm_yard.client.list_artifacts(run["id"])}


def test_a_nonzero_exit_code_is_reported(slurm_yard: Yard, tmp_path: Path) -> None:
    project = _project(tmp_path, "exit", """
        project: slurm-exit
        command: echo about to fail; exit 7
        backend: slurm-dev
    """)
    exp = slurm_yard.submit(project)
    (run,) = [slurm_yard.wait_run(r["id"]) for r in wait_until(lambda: slurm_yard.runs(exp["id"]), 30, "a run")]
    assert (run["status"], run["exit_code"]) == ("failed", 7), run
    status = slurm_yard.cli("status", str(run["id"]))
    assert "exit code 7" in status.stdout, status.stdout
    assert "about to fail" in log_texts(slurm_yard.client, run["id"])


def test_an_unmodified_script_gets_its_metrics_outputs_and_threads_on_slurm(slurm_yard: Yard, tmp_path: Path) -> None:
    project = _project(tmp_path, "unmodified", """
        project: slurm-unmodified
        command: python job.py
        backend: slurm-dev
        output_metrics: [{preset: key=value}]
        outputs: [model.pt]
        resources: {cpus: 1}
    """, """
        import os
        print(f"threads={os.environ['OMP_NUM_THREADS']} loss=0.5", flush=True)
        open("model.pt", "w").write("w")
    """)
    exp = slurm_yard.submit(project)
    (run,) = [slurm_yard.wait_run(r["id"]) for r in wait_until(lambda: slurm_yard.runs(exp["id"]), 30, "a run")]
    assert run["status"] == "succeeded", run
    run = slurm_yard.client.get_run(run["id"])
    assert run["metrics"]["threads"]["last"] == 1 and run["metrics"]["loss"]["last"] == 0.5
    assert [a["path"] for a in slurm_yard.client.list_artifacts(run["id"])] == ["model.pt"]


def test_a_run_over_its_time_limit_fails_with_timeout(slurm_yard: Yard, tmp_path: Path) -> None:
    project = _project(tmp_path, "timeout", """
        project: slurm-timeout
        command: echo sleeping; sleep 120
        backend: slurm-dev
        resources: {time_limit: 3s}
    """)
    exp = slurm_yard.submit(project)
    run = slurm_yard.wait_run(wait_until(lambda: slurm_yard.runs(exp["id"]), 30, "a run")[0]["id"], timeout_s=90)
    assert run["status"] == "failed", run
    assert run["status_message"].startswith("TIMEOUT"), run["status_message"]


def test_cancel_stops_the_slurm_job(slurm_yard: Yard, tmp_path: Path) -> None:
    project = _project(tmp_path, "cancel", """
        project: slurm-cancel
        command: echo started; sleep 300
        backend: slurm-dev
    """)
    exp = slurm_yard.submit(project)
    run_id = wait_until(lambda: slurm_yard.runs(exp["id"]), 30, "a run")[0]["id"]
    wait_until(lambda: "started" in log_texts(slurm_yard.client, run_id), 90, "the task's output")
    res = slurm_yard.cli("cancel", str(run_id))
    assert res.returncode == 0, res.stderr
    run = slurm_yard.wait_run(run_id)
    assert run["status"] == "canceled"
    job_id = run["engine_job_id"] if "engine_job_id" in run else _job_id_of(slurm_yard, run_id)

    # Whichever comes first ends the job: scancel (CANCELLED), or the runner, which sees the cancel on
    # its heartbeat, stops the task and exits (COMPLETED or FAILED, by the runner's exit code). Either
    # way the job must end long before its `sleep 300`, and be gone from the queue.
    states: list[str] = []

    def slurm_job_ended() -> bool:
        out = subprocess.run(["sacct", "-n", "-P", "-X", "-j", job_id, "-o", "State"], capture_output=True, text=True).stdout
        states.append(out.strip())
        return states[-1].split(" ")[0] in {"CANCELLED", "COMPLETED", "FAILED"}

    try:
        wait_until(slurm_job_ended, 60, f"Slurm job {job_id} to end")
    except pytest.fail.Exception:
        pytest.fail(f"Slurm job {job_id} still not ended 60 s after the cancel: sacct says {states[-1]!r}")
    queue = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True).stdout
    assert queue.strip() in ("", "COMPLETING"), queue


def _job_id_of(yard: Yard, run_id: int) -> str:
    home = Path(yard.server.home)
    for job_file in (home.parent / "shared").glob(f"*/runs/{run_id}.*/job_id"):
        return job_file.read_text().strip()
    raise AssertionError(f"no job_id file for run {run_id}")


def test_a_queued_job_shows_the_engine_reason(slurm_yard: Yard, tmp_path: Path) -> None:
    cpus = int(subprocess.run(["sinfo", "-h", "-o", "%c"], capture_output=True, text=True).stdout.split()[0])
    project = _project(tmp_path, "pending", f"""
        project: slurm-pending
        command: echo holding; sleep 300
        backend: slurm-dev
        params: {{i: [1, 2]}}
        search: {{parallel: 2}}
        resources: {{cpus: {cpus}}}
    """)
    exp = slurm_yard.submit(project)
    try:
        def a_pending_run() -> dict | None:
            # The one blocked by its sibling, which holds the node: a run can be pending for a moment
            # while an earlier test's job is still leaving the node, then start.
            runs = slurm_yard.runs(exp["id"])
            if not any(r["status"] == "running" for r in runs):
                return None
            for r in runs:
                if r["status"] == "starting" and r["status_message"].startswith("pending: "):
                    return r
            return None

        run = wait_until(a_pending_run, 60, "a run waiting in Slurm's queue")
        assert run["status"] == "starting"
        status = slurm_yard.cli("status", str(run["id"]))
        assert "pending: Resources" in status.stdout or "pending: Priority" in status.stdout, status.stdout
    finally:
        slurm_yard.client.cancel_experiment(exp["id"])
    for r in slurm_yard.runs(exp["id"]):
        assert slurm_yard.wait_run(r["id"])["status"] == "canceled"


def test_a_run_that_cannot_reach_the_server_reports_through_the_spool(slurm_yard: Yard, tmp_path: Path) -> None:
    project = _project(tmp_path, "spool", """
        project: slurm-spool
        command: python job.py
        backend: slurm-spool
    """, """
        import os
        import runyard

        print("server as seen by the task:", os.environ["RUNYARD_SERVER"])
        run = runyard.init()
        for step in range(5):
            runyard.log({"loss": 1.0 / (step + 1)}, step=step)
        print("logged 5 steps")
        runyard.finish()
    """)
    exp = slurm_yard.submit(project)
    run_id = wait_until(lambda: slurm_yard.runs(exp["id"]), 30, "a run")[0]["id"]
    run = slurm_yard.wait_run(run_id, timeout_s=120)
    assert run["status"] == "succeeded", slurm_yard.describe(exp["id"])
    assert run["metrics"]["loss"]["count"] == 5 and run["metrics"]["loss"]["last"] == pytest.approx(0.2)
    texts = log_texts(slurm_yard.client, run_id)
    assert "server as seen by the task: http://127.0.0.1:9" in texts and "logged 5 steps" in texts
    info = slurm_yard.cli("info", str(run_id))
    assert "loss" in info.stdout
    logs = slurm_yard.cli("logs", str(run_id))
    assert "logged 5 steps" in logs.stdout
    # Nothing stored twice when the spool is read again (a restarted server, a poll after the end).
    from runyard.backends.config import load_backends
    from runyard.backends.slurm import SlurmBackend

    entry = load_backends(Path(slurm_yard.server.home) / "backends.yml")["slurm-spool"]
    backend = SlurmBackend(entry.options, home=tmp_path / "other-home")
    try:
        from runyard.spool import ingest

        spool = next((Path(slurm_yard.server.home).parent / "shared" / "spool" / "runs").glob(f"{run_id}.*/spool"))
        assert ingest(str(spool), run_id, slurm_yard.client) == 0
        (spool / ".ingested.json").unlink()
        ingest(str(spool), run_id, slurm_yard.client)  # replays everything: metric batches keep their ids
    finally:
        backend.close()
    assert slurm_yard.client.get_run(run_id)["metrics"]["loss"]["count"] == 5


def test_backends_test_reports_a_missing_sbatch(slurm_yard: Yard) -> None:
    env = {**os.environ, "RUNYARD_HOME": str(slurm_yard.server.home), "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "runyard.cli", "backends", "test"]
    res = subprocess.run([*cmd, "slurm-nosbatch"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 1
    assert "FAIL sbatch" in res.stdout and "no/sbatch on this machine: not found" in res.stdout, res.stdout
    assert "set the backend's sbatch option to its absolute path" in res.stdout
    # The same backend with a PATH that lacks Slurm's commands.
    res = subprocess.run([*cmd, "slurm-dev"], env={**env, "PATH": "/nonexistent"}, capture_output=True, text=True,
                         timeout=120, check=False)
    assert res.returncode == 1 and "sbatch on this machine: not found" in res.stdout, res.stdout
    res = subprocess.run([*cmd, "slurm-dev"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0 and "checks passed" in res.stdout, res.stdout
