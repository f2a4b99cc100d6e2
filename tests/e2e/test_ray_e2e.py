"""The Ray backend end to end: a live server whose backends.yml names the session's real single-node Ray cluster.

The cluster (2 CPUs, token auth) comes from the session fixture ``ray_cluster``; the servers
are stopped by their pids, and every Ray job the module's runs started is stopped by its
submission id at the end (``stop_job``; ended jobs are left as they are).
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
from e2e_helpers import Yard, log_texts, push_digits_data, wait_until

from runyard.backends.ray import RayBackend
from runyard.client import Client
from runyard.testing import LiveServer, RayCluster, free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def _config(cluster: RayCluster, prefix: str) -> dict[str, dict[str, object]]:
    # Servers of the session share the cluster and count their runs from 1 each: a prefix of their own.
    common = {"type": "ray", "address": cluster.dashboard_url, "token": cluster.token, "python": sys.executable,
              "name_prefix": prefix}
    return {
        "ray": common,
        # Nothing listens there: its runs wait, saying why, and never fail for it.
        "ray-down": {**common, "address": f"http://127.0.0.1:{free_port()}", "request_timeout_s": 2},
    }


def _stop_jobs(cluster: RayCluster, client: Client) -> None:
    """Stop every Ray job of this server's runs still running (by submission id)."""
    backend = RayBackend({"address": cluster.dashboard_url, "token": cluster.token})
    try:
        for run in client.list_runs(limit=10000)["items"]:
            job = client.get_run(run["id"]).get("engine_job_id")
            if job and run.get("backend") == "ray":
                backend.cancel(job)
    finally:
        backend.close()


@pytest.fixture(scope="module")
def ray_yard(ray_cluster: RayCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Yard]:
    root = tmp_path_factory.mktemp("ray-e2e")
    home = root / "server-home"
    home.mkdir()
    (home / "backends.yml").write_text(yaml.safe_dump(_config(ray_cluster, "e2e")))
    server = LiveServer(home)
    server.start(timeout_s=60.0)
    client = Client(server.url)
    try:
        yield Yard(server, client, root / "cli-home")
    finally:
        try:
            _stop_jobs(ray_cluster, client)
        finally:
            client.close()
            server.stop()


def _project(tmp_path: Path, name: str, yml: str, script: str = "") -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "runyard.yml").write_text(textwrap.dedent(yml))
    if script:
        (d / "job.py").write_text(textwrap.dedent(script))
    return d


def _job_info(cluster: RayCluster, submission_id: str) -> object:
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(cluster.dashboard_url, headers=cluster.headers).get_job_info(submission_id)


def test_digits_sweep_completes_on_ray(ray_yard: Yard, ray_cluster: RayCluster, tmp_path: Path) -> None:
    project = tmp_path / "digits-sweep"
    shutil.copytree(ROOT / "examples" / "digits-sweep", project)
    yml = (project / "runyard.yml").read_text().replace("max_runs: 12", "max_runs: 2").replace(
        "project: digits", "project: ray-digits")
    (project / "runyard.yml").write_text(yml)
    # Each run also keeps its model's accuracy as an artifact (the example itself stores none).
    train = (project / "train.py").read_text().replace(
        "    runyard.finish()",
        "    with open('accuracy.json', 'w') as f:\n        json.dump({'val_accuracy': acc}, f)\n"
        "    runyard.log_artifact('accuracy.json')\n    runyard.finish()").replace("import time", "import json\nimport time")
    (project / "train.py").write_text(train)
    push_digits_data(ray_yard, project, "ray-digits")  # the runs read it on the Ray cluster

    res = ray_yard.cli("run", project, "--backend", "ray", "--wait", "--json", timeout_s=600)
    assert res.returncode == 0, f"{res.stdout}\n{res.stderr}"
    exp = json.loads(res.stdout)
    assert (exp["backend"], exp["status"]) == ("ray", "succeeded"), ray_yard.describe(exp["id"])
    runs = ray_yard.runs(exp["id"])
    assert len(runs) == 2, ray_yard.describe(exp["id"])
    done = [r for r in runs if r["status"] == "succeeded"]
    assert done, ray_yard.describe(exp["id"])
    run = done[0]
    assert run["backend"] == "ray"
    assert run["engine_job_id"] == f"e2e-{run['id']}-1-main-0"
    assert str(_job_info(ray_cluster, run["engine_job_id"]).status) == "SUCCEEDED"
    info = ray_yard.cli("info", str(run["id"]))
    assert info.returncode == 0 and "val/accuracy" in info.stdout, info.stdout
    logs = ray_yard.cli("logs", str(run["id"]))
    assert logs.returncode == 0 and "epoch" in logs.stdout.lower(), logs.stdout
    paths = {a["path"] for a in ray_yard.client.list_artifacts(run["id"])}
    assert {"accuracy.json", "models/digits/runyard-model.json"} <= paths, paths
    assert [(d["name"], d["dataset"], d["version"]) for d in ray_yard.client.run_datasets(run["id"])] == [
        ("train", "digits", 1)]


def test_a_failing_run_reports_its_exit_code(ray_yard: Yard, tmp_path: Path) -> None:
    project = _project(tmp_path, "exit", """
        project: ray-exit
        command: echo about to fail; exit 7
        backend: ray
    """)
    exp = ray_yard.submit(project)
    run_id = wait_until(lambda: ray_yard.runs(exp["id"]), 30, "a run")[0]["id"]
    run = ray_yard.wait_run(run_id, timeout_s=90)
    assert (run["status"], run["exit_code"]) == ("failed", 7), run
    status = ray_yard.cli("status", str(run_id))
    assert "exit code 7" in status.stdout, status.stdout
    assert "about to fail" in log_texts(ray_yard.client, run_id)


def test_cancel_stops_the_ray_job(ray_yard: Yard, ray_cluster: RayCluster, tmp_path: Path) -> None:
    project = _project(tmp_path, "cancel", """
        project: ray-cancel
        command: echo started; sleep 300
        backend: ray
        resources: {cpus: 0.5}
    """)
    exp = ray_yard.submit(project)
    run_id = wait_until(lambda: ray_yard.runs(exp["id"]), 30, "a run")[0]["id"]
    wait_until(lambda: "started" in log_texts(ray_yard.client, run_id), 90, "the task's output")
    res = ray_yard.cli("cancel", str(run_id))
    assert res.returncode == 0, res.stderr
    run = ray_yard.wait_run(run_id, timeout_s=60)
    assert run["status"] == "canceled", run
    # Whichever comes first ends the Ray job: stop_job (STOPPED), or the runner, which sees the cancel on its
    # heartbeat, stops the task and exits. Either way it ends long before its `sleep 300`.
    statuses: list[str] = []

    def ended() -> bool:
        statuses.append(str(_job_info(ray_cluster, run["engine_job_id"]).status))
        return statuses[-1] in ("STOPPED", "SUCCEEDED", "FAILED")

    wait_until(ended, 60, f"Ray job {run['engine_job_id']} to end (last status: {statuses[-1:]})")


def test_a_run_larger_than_the_cluster_is_held_with_its_reason(ray_yard: Yard, tmp_path: Path) -> None:
    project = _project(tmp_path, "big", """
        project: ray-big
        command: echo never
        backend: ray
        resources: {cpus: 64}
    """)
    exp = ray_yard.submit(project)
    try:
        run_id = wait_until(lambda: ray_yard.runs(exp["id"]), 30, "a run")[0]["id"]

        def held() -> dict | None:
            run = ray_yard.client.get_run(run_id)
            return run if run["status_message"].startswith("pending:") else None

        run = wait_until(held, 30, "the run's reason for waiting")
        # Held by Runyard, not handed to Ray: it names what it waits for.
        assert run["status"] == "queued" and not run.get("engine_job_id"), {
            k: run.get(k) for k in ("status", "status_message", "events", "engine_job_id")}
        # At most the cluster's 2 CPUs are free (less while an earlier test's job still ends).
        assert re.fullmatch(r"pending: (2|1\.5|1|0\.5|0) of 64 CPUs free", run["status_message"]), run["status_message"]
        status = ray_yard.cli("status", str(run_id))
        assert "of 64 CPUs free" in status.stdout, status.stdout
    finally:
        ray_yard.client.cancel_experiment(exp["id"])
    assert ray_yard.wait_run(run_id)["status"] == "canceled"


def test_a_run_waits_while_the_dashboard_is_unreachable(ray_yard: Yard, tmp_path: Path) -> None:
    project = _project(tmp_path, "down", """
        project: ray-down
        command: echo never
        backend: ray-down
    """)
    exp = ray_yard.submit(project)
    try:
        run_id = wait_until(lambda: ray_yard.runs(exp["id"]), 30, "a run")[0]["id"]

        def held() -> dict | None:
            run = ray_yard.client.get_run(run_id)
            return run if run["status_message"].startswith("pending:") else None

        run = wait_until(held, 30, "the run's reason for waiting")
        assert run["status"] == "queued", run
        assert run["status_message"].startswith("pending: its backend cannot tell its free resources: the Ray "
                                                "dashboard at http://127.0.0.1:"), run["status_message"]
        assert "cannot be reached" in run["status_message"], run["status_message"]
    finally:
        ray_yard.client.cancel_experiment(exp["id"])


RAY_DRIVER = """
    import os
    import time

    import ray
    import runyard

    runyard.init()
    ray.init()  # RAY_ADDRESS, set by Ray in the job: the cluster the job runs on
    print("address", os.environ["RAY_ADDRESS"])
    print("framework", os.environ.get("RUNYARD_FRAMEWORK"))
    print("nodes", len([n for n in ray.nodes() if n["Alive"]]))

    @ray.remote(num_cpus=1)
    def square(x):
        return x * x, os.getpid()

    results = ray.get([square.remote(i) for i in range(4)])
    print("squares", sum(r[0] for r in results))
    print("driver", os.getpid(), "workers", len({r[1] for r in results} - {os.getpid()}))
    runyard.log({"squares": float(sum(r[0] for r in results))}, step=0)
    runyard.finish()
"""


def test_a_ray_run_uses_the_clusters_workers(ray_yard: Yard, ray_cluster: RayCluster, tmp_path: Path) -> None:
    project = _project(tmp_path, "raydriver", f"""
        project: ray-driver
        command: {sys.executable} job.py
        backend: ray
        resources: {{cpus: 1}}
        distributed:
          framework: ray
          worker: {{replicas: 2}}
    """, RAY_DRIVER)
    raylets = set(ray_cluster.pids())
    exp = ray_yard.submit(project)
    run_id = wait_until(lambda: ray_yard.runs(exp["id"]), 30, "a run")[0]["id"]
    run = ray_yard.wait_run(run_id, timeout_s=120)
    logs = log_texts(ray_yard.client, run_id)
    assert run["status"] == "succeeded", (run, logs[-30:])
    # Only the driver ran, as one Ray job: no head or worker task, no second cluster.
    assert run["engine_job_id"] == f"e2e-{run_id}-1-job-0"
    assert {f"{t['role']}-{t['rank']}" for t in run["tasks"]} == {"job-0"}, run["tasks"]
    assert f"address {ray_cluster.address}" in logs, logs
    assert "framework ray" in logs and "nodes 1" in logs and "squares 14" in logs, logs
    driver_line = next(t for t in logs if t.startswith("driver "))
    assert not driver_line.endswith("workers 0"), driver_line  # the tasks ran in the cluster's worker processes
    assert run["metrics"]["squares"]["last"] == 14.0, run["metrics"]
    # The cluster's own processes are the same as before (workers come and go; no new raylet or GCS).
    cluster_now = {p for p in ray_cluster.pids() if _is_core(p)}
    assert cluster_now == {p for p in raylets if _is_core(p)}, (cluster_now, raylets)


def _is_core(pid: int) -> bool:
    """Whether the process is one of a Ray node's daemons (raylet, GCS), not a worker."""
    import psutil

    try:
        name = " ".join(psutil.Process(pid).cmdline()[:1])
    except psutil.Error:
        return False
    return name.endswith(("raylet", "gcs_server"))


def test_a_restarted_server_adopts_its_running_ray_jobs(ray_cluster: RayCluster, tmp_path: Path) -> None:
    home = tmp_path / "restart-home"
    home.mkdir()
    (home / "backends.yml").write_text(yaml.safe_dump(_config(ray_cluster, "adopt")))
    port = free_port()
    first = LiveServer(home, port=port).start(timeout_s=60.0)
    second: LiveServer | None = None
    client = Client(first.url)
    try:
        project = _project(tmp_path, "adopt", """
            project: ray-adopt
            command: echo started; sleep 6; echo finished
            backend: ray
            resources: {cpus: 0.5}
        """)
        yard = Yard(first, client, tmp_path / "cli-home")
        exp = yard.submit(project)
        run_id = wait_until(lambda: yard.runs(exp["id"]), 30, "a run")[0]["id"]
        wait_until(lambda: "started" in log_texts(client, run_id), 90, "the task's output")
        job_id = client.get_run(run_id)["engine_job_id"]
        first.kill()  # no chance to clean up: the job runs on in Ray

        second = LiveServer(home, port=port).start(timeout_s=60.0)
        run = Yard(second, client, tmp_path / "cli-home").wait_run(run_id, timeout_s=90)
        assert run["status"] == "succeeded", run
        assert run["engine_job_id"] == job_id and run["attempt"] == 1, run
        assert log_texts(client, run_id)[-1:] == ["finished"]
        # The runner reports the run's end, then exits: the Ray job ends a moment later.
        wait_until(lambda: str(_job_info(ray_cluster, job_id).status) == "SUCCEEDED", 30, f"Ray job {job_id} to succeed")
    finally:
        try:
            _stop_jobs(ray_cluster, client)
        finally:
            client.close()
            first.stop()
            if second is not None:
                second.stop()
