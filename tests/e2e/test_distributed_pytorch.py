"""Distributed PyTorch on the local backend: DDP over gloo on CPU, master + worker, and fail-fast.

Real processes, a real server and the real local agent; the scripts use only what
Runyard put in the environment (``init_process_group("gloo")`` reads env://).
"""

from __future__ import annotations

import json
import os

import pytest
from dist_frameworks import require
from e2e_helpers import Yard, log_texts, process_gone, wait_until

pytestmark = pytest.mark.slow

DDP_YML = """
project: e2e-ddp
command: python train.py
distributed:
  framework: pytorch
  worker: 1
resources:
  cpus: 0.5
"""

DDP_PY = """
import json, os
import numpy as np
import torch
import torch.distributed as dist
from sklearn.datasets import load_digits
import runyard

dist.init_process_group("gloo")  # env://: MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK
rank, world = dist.get_rank(), dist.get_world_size()
torch.manual_seed(0)
torch.set_num_threads(1)

x = torch.tensor([float(rank + 1)])
dist.all_reduce(x)  # 1 + 2 + ... + world

X, y = load_digits(return_X_y=True)
X = torch.tensor(X[rank::world] / 16.0, dtype=torch.float32)  # each rank its shard
y = torch.tensor(y[rank::world])
model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(64, 10))
opt = torch.optim.SGD(model.parameters(), lr=0.5)
losses = []
for step in range(20):
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(X), y)
    loss.backward()
    opt.step()
    losses.append(loss.item())
    if rank == 0:
        runyard.log({"loss": loss.item()}, step=step)
print(f"rank {rank}: all_reduce={x.item()} loss {losses[0]:.3f} -> {losses[-1]:.3f}")
checksum = sum(p.detach().double().sum().item() for p in model.parameters())
env = {k: os.environ[k] for k in ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK",
                                  "LOCAL_WORLD_SIZE", "NODE_RANK", "RUNYARD_TASK_ROLE", "RUNYARD_TASK_RANK")}
label = env["RUNYARD_TASK_ROLE"] + "-" + env["RUNYARD_TASK_RANK"]
with open(os.path.join(os.environ["E2E_OUT"], label + ".json"), "w") as f:
    json.dump({"sum": x.item(), "losses": losses, "checksum": checksum, "env": env}, f)
dist.destroy_process_group()
"""


def test_ddp_gloo_all_reduce_and_training_steps(yard: Yard, make_project) -> None:
    require("torch")
    project = make_project("ddp", DDP_YML, DDP_PY)
    exp = yard.submit(project.path)
    yard.wait_experiment(exp["id"], timeout_s=240)
    (run,) = yard.runs(exp["id"])
    assert run["status"] == "succeeded", yard.describe(exp["id"]) + "\n" + "\n".join(log_texts(yard.client, run["id"])[-40:])
    results = {label: json.loads((project.out / f"{label}.json").read_text()) for label in ("master-0", "worker-0")}
    # The all-reduce summed rank+1 over both ranks.
    assert results["master-0"]["sum"] == results["worker-0"]["sum"] == 3.0
    # Ranks and rendezvous as torchrun gives them: master is rank 0, both on node 0 of this machine.
    m, w = results["master-0"]["env"], results["worker-0"]["env"]
    assert (m["RANK"], w["RANK"]) == ("0", "1")
    assert m["WORLD_SIZE"] == w["WORLD_SIZE"] == "2"
    assert (m["LOCAL_RANK"], w["LOCAL_RANK"], m["LOCAL_WORLD_SIZE"], m["NODE_RANK"]) == ("0", "1", "2", "0")
    assert m["MASTER_ADDR"] == w["MASTER_ADDR"] == "127.0.0.1" and m["MASTER_PORT"] == w["MASTER_PORT"]
    # DDP kept the replicas identical, and training lowered the loss.
    assert results["master-0"]["checksum"] == pytest.approx(results["worker-0"]["checksum"], rel=1e-9)
    for r in results.values():
        assert r["losses"][-1] < r["losses"][0] * 0.8
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


KILL_YML = """
project: e2e-ddp-kill
command: python train.py
distributed:
  framework: pytorch
  worker: 2
resources:
  cpus: 0.1
"""

KILL_PY = """
import os, time
import torch.distributed as dist

dist.init_process_group("gloo")
label = os.environ["RUNYARD_TASK_ROLE"] + "-" + os.environ["RUNYARD_TASK_RANK"]
with open(os.path.join(os.environ["E2E_OUT"], label + ".pid"), "w") as f:
    f.write(str(os.getpid()))
print(f"{label} ready", flush=True)
while True:
    time.sleep(0.2)
"""


def test_a_killed_worker_fails_the_run_and_stops_its_siblings(yard: Yard, make_project) -> None:
    require("torch")
    project = make_project("ddp-kill", KILL_YML, KILL_PY)
    exp = yard.submit(project.path)
    labels = ("master-0", "worker-0", "worker-1")
    pids = {}
    for label in labels:
        path = project.out / f"{label}.pid"
        wait_until(lambda p=path: p.exists() and p.read_text().strip(), timeout_s=240, what=f"{label} to start")
        pids[label] = int(path.read_text())
    os.kill(pids["worker-1"], 9)
    yard.wait_experiment(exp["id"], timeout_s=120)
    (run,) = yard.runs(exp["id"])
    assert run["status"] == "failed", yard.describe(exp["id"])
    # The run names the task that died, its role and rank, and how it ended.
    assert run["status_message"].startswith("task worker-1 (role worker, rank 1) failed: killed by signal SIGKILL"), \
        run["status_message"]
    assert "worker-1 ready" in run["status_message"]  # its last log lines
    # Its siblings were stopped, not left running.
    for label in ("master-0", "worker-0"):
        wait_until(lambda p=pids[label]: process_gone(p), timeout_s=60, what=f"{label}'s processes to end")
    tasks = {f"{t['role']}-{t['rank']}": t for t in run["tasks"]}
    assert tasks["worker-1"]["status"] == "failed" and tasks["worker-1"]["exit_code"] == 137
    assert tasks["master-0"]["status"] == "canceled" and tasks["worker-0"]["status"] == "canceled"


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
