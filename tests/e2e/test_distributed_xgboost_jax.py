"""Distributed XGBoost (Runyard's tracker task + 2 workers through xgboost.collective) and
JAX (2 CPU processes, a cross-process sum) on the local backend, with real processes."""

from __future__ import annotations

import pytest
from dist_frameworks import require
from dist_scripts import JAX_PY, JAX_YML, XGB_PY, XGB_YML, check_jax, check_xgboost
from e2e_helpers import Yard, log_texts

pytestmark = pytest.mark.slow


def test_xgboost_two_workers_through_the_collective(yard: Yard, make_project) -> None:
    require("xgboost")
    project = make_project("xgb", XGB_YML, XGB_PY)
    exp = yard.submit(project.path)
    yard.wait_experiment(exp["id"], timeout_s=240)
    (run,) = yard.runs(exp["id"])
    assert run["status"] == "succeeded", yard.describe(exp["id"]) + "\n" + "\n".join(log_texts(yard.client, run["id"])[-40:])
    check_xgboost(project.out)
    # The tracker ran in the master task and finished with its workers.
    tasks = {f"{t['role']}-{t['rank']}": t["status"] for t in run["tasks"]}
    assert tasks == {"master-0": "succeeded", "worker-0": "succeeded", "worker-1": "succeeded"}
    master_lines = [ln["text"] for ln in yard.client.read_logs(run["id"], 0, task="master-0")["lines"]]
    assert any("XGBoost tracker listening on 127.0.0.1:" in t for t in master_lines), master_lines


def test_jax_two_processes_sum_across_processes(yard: Yard, make_project) -> None:
    require("jax")
    project = make_project("jax", JAX_YML, JAX_PY)
    exp = yard.submit(project.path)
    yard.wait_experiment(exp["id"], timeout_s=240)
    (run,) = yard.runs(exp["id"])
    assert run["status"] == "succeeded", yard.describe(exp["id"]) + "\n" + "\n".join(log_texts(yard.client, run["id"])[-40:])
    r0 = check_jax(project.out)
    assert r0["coordinator"].startswith("127.0.0.1:")
