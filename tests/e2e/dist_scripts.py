"""The projects of the distributed-run tests, shared by every backend that runs them.

Each framework has a ``runyard.yml`` (``*_YML``, no ``backend:``: a test picks one with
``--backend``) and a ``train.py`` (``*_PY``) that uses only what Runyard put in the
environment and writes what the test checks to ``$E2E_OUT``. The ``check_*`` functions
hold the checks that do not depend on where the tasks ran; each test adds its backend's own
(addresses, ranks per node, how the engine recorded the job).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import Yard, process_gone, wait_until

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
engine = {k: os.environ.get(k) for k in ("SLURM_JOB_ID", "SLURM_PROCID", "SLURM_NTASKS")}  # None off Slurm
label = env["RUNYARD_TASK_ROLE"] + "-" + env["RUNYARD_TASK_RANK"]
with open(os.path.join(os.environ["E2E_OUT"], label + ".json"), "w") as f:
    json.dump({"sum": x.item(), "losses": losses, "checksum": checksum, "env": env, "engine": engine}, f)
dist.destroy_process_group()
"""

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

XGB_YML = """
project: e2e-xgb
command: python train.py
distributed:
  framework: xgboost
  master: {replicas: 1, resources: {cpus: 0.1}}
  worker: 2
resources:
  cpus: 0.5
"""

XGB_PY = """
import json, os
import numpy as np
import xgboost as xgb
from sklearn.datasets import load_digits
from xgboost import collective
import runyard.launch

# DMLC_TRACKER_URI, DMLC_TRACKER_PORT and DMLC_TASK_ID, as CommunicatorContext's arguments.
with collective.CommunicatorContext(**runyard.launch.xgboost_args()):
    rank, world = collective.get_rank(), collective.get_world_size()
    X, y = load_digits(return_X_y=True)
    test = np.arange(len(y)) % 5 == 0
    Xtr, ytr = X[~test][rank::world], y[~test][rank::world]  # each worker its shard
    booster = xgb.train({"objective": "multi:softmax", "num_class": 10, "max_depth": 4, "nthread": 1},
                        xgb.DMatrix(Xtr, label=ytr), num_boost_round=20)
    acc = float((booster.predict(xgb.DMatrix(X[test])) == y[test]).mean())
    print(f"worker rank {rank} of {world}: accuracy {acc:.3f}", flush=True)
    label = os.environ["RUNYARD_TASK_ROLE"] + "-" + os.environ["RUNYARD_TASK_RANK"]
    with open(os.path.join(os.environ["E2E_OUT"], label + ".json"), "w") as f:
        json.dump({"rank": rank, "world": world, "accuracy": acc, "model": booster.save_raw("json").decode()}, f)
"""

JAX_YML = """
project: e2e-jax
command: python train.py
distributed:
  framework: jax
  worker: 2
resources:
  cpus: 0.5
"""

JAX_PY = """
import json, os
os.environ["JAX_PLATFORMS"] = "cpu"
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
import runyard.launch

runyard.launch.jax_initialize()  # JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID
pid, n = jax.process_index(), jax.process_count()
mine = jnp.array([float(pid + 1)])
total = float(np.sum(multihost_utils.process_allgather(mine)))  # a sum across the processes
print(f"process {pid} of {n}: sum {total}", flush=True)
with open(os.path.join(os.environ["E2E_OUT"], f"worker-{os.environ['RUNYARD_TASK_RANK']}.json"), "w") as f:
    json.dump({"process": pid, "count": n, "sum": total, "devices": jax.device_count(),
               "coordinator": os.environ["JAX_COORDINATOR_ADDRESS"]}, f)
jax.distributed.shutdown()
"""

RAY_YML = """
project: e2e-ray
command: python train.py
distributed:
  framework: ray
  head: 1
  worker: 1
  job: {replicas: 1, resources: {cpus: 0.1}}
resources:
  cpus: 0.5  # Runyard reserves half a core per node; `ray start` offers ceil(0.5) = 1 CPU
"""

RAY_PY = """
import json, os, socket
import ray

ray.init()  # RAY_ADDRESS, set by Runyard
nodes = [n for n in ray.nodes() if n["Alive"]]

@ray.remote(num_cpus=1)
def square(x):
    return x * x

total = sum(ray.get([square.remote(i) for i in range(6)]))
print(f"job sees {len(nodes)} nodes, {ray.cluster_resources().get('CPU')} CPUs, sum {total}", flush=True)
with open(os.path.join(os.environ["E2E_OUT"], "job.json"), "w") as f:
    json.dump({"nodes": len(nodes), "cpus": ray.cluster_resources().get("CPU"), "sum": total,
               "address": os.environ["RAY_ADDRESS"]}, f)
"""


def read_results(out: Path, labels: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """The ``<label>.json`` each task wrote into ``$E2E_OUT``."""
    return {label: json.loads((out / f"{label}.json").read_text()) for label in labels}


def check_ddp(results: dict[str, dict[str, Any]]) -> None:
    """DDP_PY's results: the all-reduce, torchrun's ranks, identical replicas, a falling loss."""
    m, w = results["master-0"], results["worker-0"]
    # The all-reduce summed rank+1 over both ranks.
    assert m["sum"] == w["sum"] == 3.0
    # master-0 is rank 0 and hosts the rendezvous both ranks were given.
    assert (m["env"]["RANK"], w["env"]["RANK"]) == ("0", "1")
    assert m["env"]["WORLD_SIZE"] == w["env"]["WORLD_SIZE"] == "2"
    assert (m["env"]["MASTER_ADDR"], m["env"]["MASTER_PORT"]) == (w["env"]["MASTER_ADDR"], w["env"]["MASTER_PORT"])
    # DDP kept the replicas identical, and training lowered the loss.
    assert m["checksum"] == pytest.approx(w["checksum"], rel=1e-9)
    for r in (m, w):
        assert r["losses"][-1] < r["losses"][0] * 0.8


def check_xgboost(out: Path) -> None:
    """XGB_PY's results: two workers of one collective, one model, accurate on held-out digits."""
    w0, w1 = read_results(out, ("worker-0", "worker-1")).values()
    assert {w0["rank"], w1["rank"]} == {0, 1} and w0["world"] == w1["world"] == 2
    # Trained together: both workers hold the same model, and it is accurate on held-out digits.
    assert w0["model"] == w1["model"]
    assert w0["accuracy"] > 0.85


def check_jax(out: Path) -> dict[str, Any]:
    """JAX_PY's results: two processes of one JAX cluster summed across processes; returns worker-0's."""
    r0, r1 = read_results(out, ("worker-0", "worker-1")).values()
    assert (r0["process"], r1["process"]) == (0, 1) and r0["count"] == r1["count"] == 2
    assert r0["sum"] == r1["sum"] == 3.0
    assert r0["devices"] == 2  # one CPU device per process, seen globally
    assert r0["coordinator"] == r1["coordinator"]
    return r0


def check_ray_job(out: Path) -> dict[str, Any]:
    """RAY_PY's result: the job ran once both nodes had joined, and used both; returns it."""
    job = json.loads((out / "job.json").read_text())
    # The job ran once every node had joined: the head and the worker, one CPU each.
    assert job["nodes"] == 2 and job["cpus"] == 2.0
    assert job["sum"] == sum(i * i for i in range(6))
    return job


def kill_a_worker_and_check(yard: Yard, out: Path, experiment_id: int) -> dict[str, Any]:
    """KILL_PY's run: SIGKILL worker-1 once every task is up, then check that the run failed naming it
    and that its siblings were stopped. Returns the run."""
    labels = ("master-0", "worker-0", "worker-1")
    pids = {}
    for label in labels:
        path = out / f"{label}.pid"
        wait_until(lambda p=path: p.exists() and p.read_text().strip(), timeout_s=240, what=f"{label} to start")
        pids[label] = int(path.read_text())
    os.kill(pids["worker-1"], 9)
    yard.wait_experiment(experiment_id, timeout_s=120)
    (run,) = yard.runs(experiment_id)
    assert run["status"] == "failed", yard.describe(experiment_id)
    # The run names the task that died, its role and rank, and how it ended.
    assert run["status_message"].startswith("task worker-1 (role worker, rank 1) failed: killed by signal SIGKILL"), \
        run["status_message"]
    assert "worker-1 ready" in run["status_message"]  # its last log lines
    # Its siblings were stopped, not left running.
    for label in ("master-0", "worker-0"):
        wait_until(lambda p=pids[label]: process_gone(p), timeout_s=60, what=f"{label}'s processes to end")

    def task_statuses() -> dict[str, tuple[str, int | None]]:
        return {f"{t['role']}-{t['rank']}": (t["status"], t["exit_code"]) for t in yard.client.get_run(run["id"])["tasks"]}

    # The stopped siblings report themselves canceled as they end (on another backend, after the run failed).
    expected = {"master-0": ("canceled", None), "worker-0": ("canceled", None), "worker-1": ("failed", 137)}

    def settled() -> bool:
        got = task_statuses()
        return {k: (s, c if k == "worker-1" else None) for k, (s, c) in got.items()} == expected

    deadline = time.monotonic() + 60
    while not settled():
        if time.monotonic() > deadline:
            pytest.fail(f"the tasks ended as {task_statuses()}, not as {expected}")
        time.sleep(0.2)
    return run
