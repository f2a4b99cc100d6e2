"""Distributed PyTorch on the local backend: DDP over gloo on CPU, master + worker, and fail-fast.

Real processes, a real server and the real local agent; the scripts use only what
Runyard put in the environment (``init_process_group("gloo")`` reads env://).
"""

from __future__ import annotations

import pytest
from dist_frameworks import require
from dist_scripts import DDP_PY, DDP_YML, KILL_PY, KILL_YML, check_ddp, kill_a_worker_and_check, read_results
from e2e_helpers import Yard, log_texts

pytestmark = pytest.mark.slow


def test_ddp_gloo_all_reduce_and_training_steps(yard: Yard, make_project) -> None:
    require("torch")
    project = make_project("ddp", DDP_YML, DDP_PY)
    exp = yard.submit(project.path)
    yard.wait_experiment(exp["id"], timeout_s=240)
    (run,) = yard.runs(exp["id"])
    assert run["status"] == "succeeded", yard.describe(exp["id"]) + "\n" + "\n".join(log_texts(yard.client, run["id"])[-40:])
    results = read_results(project.out, ("master-0", "worker-0"))
    check_ddp(results)
    # Ranks and rendezvous as torchrun gives them: both on node 0 of this machine, on the loopback address.
    m, w = results["master-0"]["env"], results["worker-0"]["env"]
    assert (m["LOCAL_RANK"], w["LOCAL_RANK"], m["LOCAL_WORLD_SIZE"], m["NODE_RANK"]) == ("0", "1", "2", "0")
    assert m["MASTER_ADDR"] == "127.0.0.1"
    # Both tasks are recorded with their role and rank, and their logs are kept apart.
    assert sorted((t["role"], t["rank"], t["status"]) for t in run["tasks"]) == [("master", 0, "succeeded"),
                                                                                  ("worker", 0, "succeeded")]
    worker_lines = [ln["text"] for ln in yard.client.read_logs(run["id"], 0, task="worker-0")["lines"]]
    assert any(t.startswith("rank 1: all_reduce=3.0") for t in worker_lines), worker_lines
    assert not any(t.startswith("rank 0:") for t in worker_lines)
    cli = yard.cli("logs", str(run["id"]), "--task", "master-0")
    assert cli.returncode == 0 and "rank 0: all_reduce=3.0" in cli.stdout and "rank 1:" not in cli.stdout, cli
    every = yard.cli("logs", str(run["id"]))
    assert "[worker-0] rank 1: all_reduce=3.0" in every.stdout and "[master-0] rank 0: all_reduce=3.0" in every.stdout
    bad = yard.cli("logs", str(run["id"]), "--task", "worker-7")
    assert bad.returncode != 0
    assert f"Run {run['id']} has no task 'worker-7'; its tasks are master-0, worker-0." in bad.stderr + bad.stdout
    # Metrics logged by rank 0 reached the run.
    assert "loss" in yard.client.get_run(run["id"])["metrics"]


def test_a_killed_worker_fails_the_run_and_stops_its_siblings(yard: Yard, make_project) -> None:
    require("torch")
    project = make_project("ddp-kill", KILL_YML, KILL_PY)
    exp = yard.submit(project.path)
    kill_a_worker_and_check(yard, project.out, exp["id"])


RESTART_YML = """
project: e2e-ddp-restart
command: python train.py
max_restarts: 1
distributed:
  framework: pytorch
  worker: 1
resources:
  cpus: 0.1
"""

RESTART_PY = """
import os
import torch
import torch.distributed as dist

dist.init_process_group("gloo")
attempt, label = os.environ["RUNYARD_ATTEMPT"], os.environ["RUNYARD_TASK_ROLE"] + "-" + os.environ["RUNYARD_TASK_RANK"]
with open(os.path.join(os.environ["E2E_OUT"], "starts"), "a") as f:
    f.write(f"{attempt} {label} {os.environ['MASTER_PORT']}\\n")
if attempt == "1" and label == "worker-0":
    raise SystemExit("worker-0 gives up on attempt 1")
x = torch.tensor([1.0])
dist.all_reduce(x)
assert x.item() == 2.0
dist.destroy_process_group()
"""


def test_a_restart_restarts_the_whole_group(yard: Yard, make_project) -> None:
    require("torch")
    project = make_project("ddp-restart", RESTART_YML, RESTART_PY)
    exp = yard.submit(project.path)
    yard.wait_experiment(exp["id"], timeout_s=240)
    (run,) = yard.runs(exp["id"])
    assert run["status"] == "succeeded" and run["attempt"] == 2, yard.describe(exp["id"])
    starts = [line.split() for line in project.read_lines("starts")]
    # Attempt 2 started both tasks again, with a fresh rendezvous port.
    assert sorted((a, label) for a, label, _ in starts) == [("1", "master-0"), ("1", "worker-0"),
                                                             ("2", "master-0"), ("2", "worker-0")]
    ports = {a: p for a, _, p in starts}
    assert ports["1"] != ports["2"]
    assert any(e["status"] == "failed" and e["attempt"] == 1 for e in run["events"])
