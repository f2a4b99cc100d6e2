"""Distributed XGBoost (Runyard's tracker task + 2 workers through xgboost.collective) and
JAX (2 CPU processes, a cross-process sum) on the local backend, with real processes."""

from __future__ import annotations

import json

import pytest
from dist_frameworks import require
from e2e_helpers import Yard, log_texts

pytestmark = pytest.mark.slow

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


def test_xgboost_two_workers_through_the_collective(yard: Yard, make_project) -> None:
    require("xgboost")
    project = make_project("xgb", XGB_YML, XGB_PY)
    exp = yard.submit(project.path)
    yard.wait_experiment(exp["id"], timeout_s=240)
    (run,) = yard.runs(exp["id"])
    assert run["status"] == "succeeded", yard.describe(exp["id"]) + "\n" + "\n".join(log_texts(yard.client, run["id"])[-40:])
    w0, w1 = (json.loads((project.out / f"worker-{i}.json").read_text()) for i in (0, 1))
    assert {w0["rank"], w1["rank"]} == {0, 1} and w0["world"] == w1["world"] == 2
    # Trained together: both workers hold the same model, and it is accurate on held-out digits.
    assert w0["model"] == w1["model"]
    assert w0["accuracy"] > 0.85
    # The tracker ran in the master task and finished with its workers.
    tasks = {f"{t['role']}-{t['rank']}": t["status"] for t in run["tasks"]}
    assert tasks == {"master-0": "succeeded", "worker-0": "succeeded", "worker-1": "succeeded"}
    master_lines = [ln["text"] for ln in yard.client.read_logs(run["id"], 0, task="master-0")["lines"]]
    assert any("XGBoost tracker listening on 127.0.0.1:" in t for t in master_lines), master_lines


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
    json.dump({"process": pid, "count": n, "sum": total, "devices": jax.device_count()}, f)
jax.distributed.shutdown()
"""


def test_jax_two_processes_sum_across_processes(yard: Yard, make_project) -> None:
    require("jax")
    project = make_project("jax", JAX_YML, JAX_PY)
    exp = yard.submit(project.path)
    yard.wait_experiment(exp["id"], timeout_s=240)
    (run,) = yard.runs(exp["id"])
    assert run["status"] == "succeeded", yard.describe(exp["id"]) + "\n" + "\n".join(log_texts(yard.client, run["id"])[-40:])
    r0, r1 = (json.loads((project.out / f"worker-{i}.json").read_text()) for i in (0, 1))
    assert (r0["process"], r1["process"]) == (0, 1) and r0["count"] == r1["count"] == 2
    assert r0["sum"] == r1["sum"] == 3.0
    assert r0["devices"] == 2  # one CPU device per process, seen globally
