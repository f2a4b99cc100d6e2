"""Distributed Ray on the local backend: a head task, a worker task and the job task; the job
waits for both nodes, then its command sees the whole cluster. Real ``ray start`` processes."""

from __future__ import annotations

import psutil
import pytest
from dist_frameworks import require
from dist_scripts import RAY_PY, RAY_YML, check_ray_job
from e2e_helpers import Yard, log_texts, wait_until

pytestmark = pytest.mark.slow


def _ray_processes(session_marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if session_marker in cmd:
            found.append(proc)
    return found


def test_ray_head_worker_and_job(yard: Yard, make_project) -> None:
    require("ray")
    project = make_project("ray", RAY_YML, RAY_PY)
    exp = yard.submit(project.path)
    yard.wait_experiment(exp["id"], timeout_s=240)
    (run,) = yard.runs(exp["id"])
    logs = "\n".join(log_texts(yard.client, run["id"])[-60:])
    assert run["status"] == "succeeded", yard.describe(exp["id"]) + "\n" + logs
    job = check_ray_job(project.out)
    assert job["address"].startswith("127.0.0.1:")
    job_lines = [ln["text"] for ln in yard.client.read_logs(run["id"], 0, task="job-0")["lines"]]
    assert any("2 of 2 Ray node(s) joined" in t for t in job_lines), job_lines
    # The head and worker were stopped after the job, and counted as done, not failed.
    def task_statuses() -> dict[str, str]:
        return {f"{t['role']}-{t['rank']}": t["status"] for t in yard.client.get_run(run["id"])["tasks"]}

    expected = {"head-0": "succeeded", "worker-0": "succeeded", "job-0": "succeeded"}
    wait_until(lambda: task_statuses() == expected, timeout_s=30, what=f"task statuses {expected}")
    # System metrics are kept per task (the head ran long enough to be sampled).
    metrics = yard.client.get_run(run["id"])["metrics"]
    assert "sys/head-0/memory_mb" in metrics and "sys/memory_mb" not in metrics, sorted(metrics)
    port = job["address"].rsplit(":", 1)[1]
    wait_until(lambda: not _ray_processes(f"127.0.0.1:{port}"), timeout_s=60,
               what="the run's Ray processes to end")
