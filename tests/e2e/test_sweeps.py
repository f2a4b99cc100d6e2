"""Sweeps end to end on the local backend: grid coverage, TPE reproducibility, GPU accounting, rerun and diff.

Each test submits a real project with ``runyard run`` to a live server; the
scheduler proposes and dispatches runs to the local agent, whose runner executes
the project's script (which reports through the SDK).
"""

from __future__ import annotations

import itertools
import json

import pytest
from e2e_helpers import Yard, log_texts

pytestmark = pytest.mark.slow


GRID_YML = """
project: e2e-grid
command: python train.py --a {a} --b {b}
params:
  a: [1, 2, 3]
  b: [x, y]
  c: 7
search:
  parallel: 3
  metric: loss
resources:
  cpus: 0.1
"""

GRID_PY = """
import argparse
import runyard

parser = argparse.ArgumentParser()
parser.add_argument("--a", type=int, required=True)
parser.add_argument("--b", required=True)
args = parser.parse_args()
run = runyard.init()
for step in range(3):
    runyard.log({"loss": args.a * 10 + step}, step=step)
print(f"a={args.a} b={args.b} c={runyard.params()['c']}")
runyard.finish()
"""


def test_grid_covers_exactly_its_product(yard: Yard, make_project) -> None:
    project = make_project("grid", GRID_YML, GRID_PY)
    res = yard.cli("run", project.path, "--wait", "--json")
    assert res.returncode == 0, f"{res.stdout}\n{res.stderr}"
    exp = json.loads(res.stdout)
    assert exp["status"] == "succeeded", yard.describe(exp["id"])
    assert exp["counts"] == {"succeeded": 6}

    runs = yard.runs(exp["id"])
    seen = [(r["params"]["a"], r["params"]["b"]) for r in runs]
    assert sorted(seen) == sorted(itertools.product([1, 2, 3], ["x", "y"]))
    assert len(set(seen)) == len(seen) == 6
    for r in runs:
        assert r["status"] == "succeeded" and r["exit_code"] == 0 and r["attempt"] == 1
        assert r["params"]["c"] == 7  # the fixed param travels with every run
        assert r["metrics"]["loss"]["count"] == 3
        assert r["metrics"]["loss"]["last"] == r["params"]["a"] * 10 + 2
        lines = log_texts(yard.client, r["id"])
        assert f"a={r['params']['a']} b={r['params']['b']} c=7" in lines


TPE_YML = """
project: e2e-tpe
command: python train.py
params:
  x: {{uniform: [-3.0, 3.0]}}
  k: [a, b, c]
  n: {{int: [1, 8]}}
search:
  algorithm: tpe
  max_runs: {max_runs}
  parallel: 1
  metric: loss
  mode: min
  seed: {seed}
resources:
  cpus: 0.1
"""

TPE_PY = """
import runyard

runyard.init()
p = runyard.params()
loss = (p["x"] - 1.0) ** 2 + {"a": 0.0, "b": 0.5, "c": 1.0}[p["k"]] + 0.1 * p["n"]
runyard.log({"loss": loss}, step=0)
runyard.finish()
"""


def test_tpe_with_a_fixed_seed_proposes_the_same_params(yard: Yard, make_project) -> None:
    # TPE samples at random for its first 10 runs; runs 11 and 12 are proposed by the model
    # fitted to the earlier results, so they are the same only if the replayed history is.
    same = make_project("tpe", TPE_YML.format(max_runs=12, seed=1234), TPE_PY)
    other = make_project("tpe-other", TPE_YML.format(max_runs=3, seed=99), TPE_PY)
    first = yard.submit(same.path)
    second = yard.submit(same.path)
    third = yard.submit(other.path)
    assert first["snapshot_id"] == second["snapshot_id"]
    for exp in (first, second, third):
        ended = yard.wait_experiment(exp["id"], timeout_s=240)
        assert ended["status"] == "succeeded", yard.describe(exp["id"])

    a, b, c = (yard.runs(e["id"]) for e in (first, second, third))
    assert len(a) == len(b) == 12 and len(c) == 3
    assert all(r["status"] == "succeeded" for r in a + b + c)
    params_a = [r["params"] for r in a]
    assert params_a == [r["params"] for r in b]
    assert len({json.dumps(p, sort_keys=True) for p in params_a}) == 12
    assert [r["metrics"]["loss"]["last"] for r in a] == [r["metrics"]["loss"]["last"] for r in b]
    assert [r["params"] for r in c] != params_a[:3]  # the seed is what makes them equal


GPU_YML = """
project: e2e-gpu
command: python train.py
params:
  i: [0, 1, 2]
search:
  parallel: 3
resources:
  cpus: 0.1
  gpus: 1
"""

GPU_PY = """
import glob, json, os, time
import runyard

runyard.init()
out, run_id = os.environ["E2E_OUT"], os.environ["RUNYARD_RUN_ID"]
start = time.time()
cuda = os.environ.get("CUDA_VISIBLE_DEVICES")
runyard.log_params({"cuda_visible_devices": cuda})
open(os.path.join(out, run_id + ".started"), "w").close()
# Stay until a second run started too (or 20 s), so two runs surely overlap if two may.
while len(glob.glob(os.path.join(out, "*.started"))) < 2 and time.time() - start < 20:
    time.sleep(0.05)
time.sleep(0.5)
end = time.time()
with open(os.path.join(out, run_id + ".json"), "w") as f:
    json.dump({"cuda": cuda, "start": start, "end": end}, f)
runyard.finish()
"""


def test_gpu_accounting_runs_two_of_three_at_once_on_distinct_gpus(yard: Yard, make_project) -> None:
    # The shared server has RUNYARD_LOCAL_GPUS=0,1: two GPUs, and CPUs to spare for three runs.
    project = make_project("gpu", GPU_YML, GPU_PY)
    exp = yard.submit(project.path)
    ended = yard.wait_experiment(exp["id"])
    assert ended["status"] == "succeeded", yard.describe(exp["id"])
    runs = yard.runs(exp["id"])
    assert len(runs) == 3

    seen = {}
    for r in runs:
        seen[r["id"]] = json.loads((project.out / f"{r['id']}.json").read_text())
        assert seen[r["id"]]["cuda"] in ("0", "1"), seen  # exactly one GPU each
        assert r["params"]["cuda_visible_devices"] == seen[r["id"]]["cuda"]
    intervals = sorted(seen.values(), key=lambda s: s["start"])
    for s, t in itertools.combinations(intervals, 2):
        if s["start"] < t["end"] and t["start"] < s["end"]:
            assert s["cuda"] != t["cuda"], f"two runs shared GPU {s['cuda']} at once: {intervals}"
    at_start = [sum(1 for o in intervals if o["start"] <= s["start"] < o["end"]) for s in intervals]
    assert max(at_start) == 2, f"expected two runs at once, never three: {intervals}"
    third = intervals[2]
    assert third["start"] >= min(intervals[0]["end"], intervals[1]["end"]), intervals


RERUN_YML = """
project: e2e-rerun
command: python train.py --lr {lr}
params:
  lr: [0.1, 0.2]
  depth: 3
search:
  parallel: 2
  metric: loss
resources:
  cpus: 0.1
"""

RERUN_PY = """
import sys
import runyard

runyard.init()
runyard.log({"loss": float(sys.argv[2])}, step=0)
runyard.finish()
"""


def test_rerun_reproduces_snapshot_and_params_and_diff_shows_a_changed_param(yard: Yard, make_project) -> None:
    project = make_project("rerun", RERUN_YML, RERUN_PY)
    res = yard.cli("run", project.path, "--wait", "--json")
    assert res.returncode == 0, f"{res.stdout}\n{res.stderr}"
    exp = json.loads(res.stdout)
    old = next(r for r in yard.runs(exp["id"]) if r["params"]["lr"] == 0.1)

    res = yard.cli("rerun", str(old["id"]), "--json")
    assert res.returncode == 0, res.stderr
    same = json.loads(res.stdout)
    res = yard.cli("rerun", str(old["id"]), "-p", "lr=0.2", "--json")  # one of its choices (others are refused)
    assert res.returncode == 0, res.stderr
    changed = json.loads(res.stdout)
    for e in (same, changed):
        ended = yard.wait_experiment(e["id"])
        assert ended["status"] == "succeeded", yard.describe(e["id"])
    (new,) = yard.runs(same["id"])
    (new_changed,) = yard.runs(changed["id"])

    assert new["snapshot_id"] == old["snapshot_id"] == exp["snapshot_id"]
    assert new["params"] == old["params"] == {"lr": 0.1, "depth": 3}
    assert new["metrics"]["loss"]["last"] == 0.1  # the same code ran with the same params
    assert new_changed["snapshot_id"] == old["snapshot_id"]
    assert new_changed["params"] == {"lr": 0.2, "depth": 3}
    assert new_changed["metrics"]["loss"]["last"] == 0.2

    res = yard.cli("diff", str(old["id"]), str(new["id"]), "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["params"] == {}
    res = yard.cli("diff", str(old["id"]), str(new_changed["id"]), "--json")
    assert res.returncode == 0, res.stderr
    d = json.loads(res.stdout)
    assert d["params"] == {"lr": [0.1, 0.2]}
    assert d["code"] == []
    res = yard.cli("diff", str(old["id"]), str(new_changed["id"]))
    assert res.returncode == 0, res.stderr
    assert "lr: 0.1 → 0.2" in res.stdout
