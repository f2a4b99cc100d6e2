"""Distributed runs on the real single-node Slurm: each run is one multi-task sbatch job.

The projects are the local backend's (``dist_scripts``), submitted with ``--backend
slurm-dev`` to the server of ``test_slurm``'s ``slurm_yard`` fixture. Slurm starts every
task with ``srun`` as ``python -m runyard.runner exec --launch FILE --task-index
$SLURM_PROCID``; the tasks meet through the server's rendezvous (the endpoint task
publishes ``<hostname>:<port>``, not the local backend's 127.0.0.1), and Ray nodes start
with plain ``ray start``.

Each test checks, besides the framework's result, that Slurm ran the run as one job
whose step had one task per Runyard task (``sacct``). The node (scripts/dev-slurm.sh)
advertises at least 4 CPUs; the largest job here takes 3 (one per task).
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path
from typing import Any

import psutil
import pytest
from dist_frameworks import require
from dist_scripts import (
    DDP_PY,
    DDP_YML,
    JAX_PY,
    JAX_YML,
    KILL_PY,
    KILL_YML,
    RAY_PY,
    RAY_YML,
    XGB_PY,
    XGB_YML,
    check_ddp,
    check_jax,
    check_ray_job,
    check_xgboost,
    kill_a_worker_and_check,
    read_results,
)
from e2e_helpers import Yard, log_texts, wait_until
from test_slurm import slurm_yard  # noqa: F401 - the module's server, whose backends.yml names the dev Slurm

pytestmark = pytest.mark.slow

BACKEND = "slurm-dev"
HOST = socket.gethostname()  # what a task publishes as its rendezvous host


def _run(yard: Yard, project: Any, timeout_s: float = 240) -> dict[str, Any]:
    """Submit ``project`` to the Slurm backend and wait until its one run ended successfully."""
    exp = yard.submit(project.path, "--backend", BACKEND)
    yard.wait_experiment(exp["id"], timeout_s=timeout_s)
    (run,) = yard.runs(exp["id"])
    assert run["status"] == "succeeded", yard.describe(exp["id"]) + "\n" + "\n".join(log_texts(yard.client, run["id"])[-60:])
    assert run["backend"] == BACKEND
    return run


def _job_id(yard: Yard, run: dict[str, Any]) -> str:
    """The Slurm job of the run's attempt, from its job directory."""
    job_file = Path(yard.server.home).parent / "shared" / "dev" / "runs" / f"{run['id']}.{run['attempt']}" / "job_id"
    return job_file.read_text().strip()


def _sacct(job_id: str) -> dict[str, tuple[str, str, str]]:
    """``sacct`` lines of the job and its steps: JobID → (State, ExitCode, NTasks)."""

    def read() -> dict[str, tuple[str, str, str]] | None:
        out = subprocess.run(["sacct", "-n", "-P", "-j", job_id, "-o", "JobID,State,ExitCode,NTasks"],
                             capture_output=True, text=True, check=False).stdout
        rows = {p[0]: (p[1], p[2], p[3]) for p in (line.split("|") for line in out.splitlines()) if len(p) == 4}
        # Accounting lags the end of the job a little: wait until the job and its step are final.
        done = job_id in rows and f"{job_id}.0" in rows and "RUNNING" not in {r[0] for r in rows.values()}
        return rows if done else None

    return wait_until(read, timeout_s=60, what=f"sacct to record job {job_id} and its step", interval_s=0.5)


def _check_one_job(yard: Yard, run: dict[str, Any], n_tasks: int, states: tuple[str, ...] = ("COMPLETED",)) -> None:
    job_id = _job_id(yard, run)
    rows = _sacct(job_id)
    # One job; its srun step ran one task per Runyard task.
    assert rows[job_id][0].split()[0] in states and rows[f"{job_id}.0"][2] == str(n_tasks), rows


def _statuses(yard: Yard, run_id: int) -> dict[str, str]:
    return {f"{t['role']}-{t['rank']}": t["status"] for t in yard.client.get_run(run_id)["tasks"]}


def test_ddp_gloo_on_slurm(slurm_yard: Yard, make_project) -> None:  # noqa: F811
    require("torch")
    project = make_project("ddp", DDP_YML, DDP_PY)
    run = _run(slurm_yard, project)
    results = read_results(project.out, ("master-0", "worker-0"))
    check_ddp(results)
    m, w = results["master-0"], results["worker-0"]
    # The rendezvous went through the server: master-0 published this node's name and a port.
    assert m["env"]["MASTER_ADDR"] == HOST
    # Each rank was the Slurm task of its index, in one job of two tasks.
    job_id = _job_id(slurm_yard, run)
    assert m["engine"] == {"SLURM_JOB_ID": job_id, "SLURM_PROCID": "0", "SLURM_NTASKS": "2"}
    assert w["engine"] == {"SLURM_JOB_ID": job_id, "SLURM_PROCID": "1", "SLURM_NTASKS": "2"}
    _check_one_job(slurm_yard, run, 2)
    assert _statuses(slurm_yard, run["id"]) == {"master-0": "succeeded", "worker-0": "succeeded"}
    tasks = {f"{t['role']}-{t['rank']}": t for t in slurm_yard.client.get_run(run["id"])["tasks"]}
    assert tasks["master-0"]["address"] == f"{HOST}:{m['env']['MASTER_PORT']}"
    # Each task's lines are kept under its label, and rank 0's metrics reached the run.
    worker_lines = [ln["text"] for ln in slurm_yard.client.read_logs(run["id"], 0, task="worker-0")["lines"]]
    assert any(t.startswith("rank 1: all_reduce=3.0") for t in worker_lines), worker_lines
    assert not any(t.startswith("rank 0:") for t in worker_lines)
    assert slurm_yard.client.get_run(run["id"])["metrics"]["loss"]["count"] == 20


def test_xgboost_two_workers_on_slurm(slurm_yard: Yard, make_project) -> None:  # noqa: F811
    require("xgboost")
    project = make_project("xgb", XGB_YML, XGB_PY)
    run = _run(slurm_yard, project)
    check_xgboost(project.out)
    _check_one_job(slurm_yard, run, 3)
    assert _statuses(slurm_yard, run["id"]) == {"master-0": "succeeded", "worker-0": "succeeded", "worker-1": "succeeded"}
    master_lines = [ln["text"] for ln in slurm_yard.client.read_logs(run["id"], 0, task="master-0")["lines"]]
    assert any(f"XGBoost tracker listening on {HOST}:" in t for t in master_lines), master_lines


def test_jax_two_processes_on_slurm(slurm_yard: Yard, make_project) -> None:  # noqa: F811
    require("jax")
    project = make_project("jax", JAX_YML, JAX_PY)
    run = _run(slurm_yard, project)
    r0 = check_jax(project.out)
    assert r0["coordinator"].startswith(f"{HOST}:")
    _check_one_job(slurm_yard, run, 2)


def test_ray_head_worker_and_job_on_slurm(slurm_yard: Yard, make_project) -> None:  # noqa: F811
    require("ray")
    project = make_project("ray", RAY_YML, RAY_PY)
    run = _run(slurm_yard, project)
    job = check_ray_job(project.out)
    assert job["address"].startswith(f"{HOST}:")
    job_lines = [ln["text"] for ln in slurm_yard.client.read_logs(run["id"], 0, task="job-0")["lines"]]
    assert any("2 of 2 Ray node(s) joined" in t for t in job_lines), job_lines
    # The head and the worker node were stopped once the job was done, as succeeded: the Slurm job completed.
    _check_one_job(slurm_yard, run, 3)
    assert _statuses(slurm_yard, run["id"]) == {"head-0": "succeeded", "worker-0": "succeeded", "job-0": "succeeded"}
    port = job["address"].rsplit(":", 1)[1]
    wait_until(lambda: not [p for p in psutil.process_iter(["cmdline"]) if f":{port}" in " ".join(p.info["cmdline"] or [])],
               timeout_s=60, what="the run's Ray processes to end")


def test_a_killed_worker_fails_the_slurm_job_and_stops_its_siblings(slurm_yard: Yard, make_project) -> None:  # noqa: F811
    require("torch")
    project = make_project("ddp-kill", KILL_YML, KILL_PY)
    exp = slurm_yard.submit(project.path, "--backend", BACKEND)
    run = kill_a_worker_and_check(slurm_yard, project.out, exp["id"])
    # The job ended too: Runyard cancels the job of a run that failed ("CANCELLED by <uid>"), unless
    # every runner had exited by then (FAILED: the killed task's exit code).
    _check_one_job(slurm_yard, run, 3, states=("CANCELLED", "FAILED"))
