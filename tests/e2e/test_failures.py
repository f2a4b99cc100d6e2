"""Runs that end badly, end to end on the local backend: pruned, canceled, over the time limit,
crashing, restarted; and bad input through the CLI.

Scripts record their own pid in ``$E2E_OUT`` so the tests can check that a stopped
run's processes are really gone, not just marked so.
"""

from __future__ import annotations

import json
import os
import time

import pytest
from e2e_helpers import Yard, log_texts, process_alive, process_gone, wait_until

pytestmark = pytest.mark.slow

PID_FILE = """
import os
import runyard

runyard.init()
OUT = os.environ["E2E_OUT"]
RUN_ID = os.environ["RUNYARD_RUN_ID"]
with open(os.path.join(OUT, RUN_ID + ".pid"), "w") as f:
    f.write(str(os.getpid()))
"""


def _pid(project, run_id: int) -> int:
    path = project.out / f"{run_id}.pid"
    wait_until(lambda: path.exists() and path.read_text().strip(), what=f"run {run_id} to write its pid")
    return int(path.read_text())


# ----------------------------------------------------------------------------- prune
PRUNE_YML = """
project: e2e-prune
command: python train.py
params:
  quality: [good, poor]
search:
  algorithm: grid
  parallel: 1
  metric: loss
  mode: min
early_stopping:
  algorithm: median
  n_startup_runs: 1
  n_warmup_steps: 0
  grace_period_s: 1
resources:
  cpus: 0.1
"""

PRUNE_PY = PID_FILE + """
import time

if runyard.params()["quality"] == "good":
    for step in range(20):
        runyard.log({"loss": 0.1}, step=step)
else:
    # Never asks should_stop(): only the runner can end this (in ~2 minutes otherwise).
    for step in range(600):
        runyard.log({"loss": 100.0 + step}, step=step)
        time.sleep(0.2)
runyard.finish()
"""


def test_a_poor_run_that_ignores_should_stop_is_stopped_and_ends_pruned(yard: Yard, make_project) -> None:
    project = make_project("prune", PRUNE_YML, PRUNE_PY)
    exp = yard.submit(project.path)
    ended = yard.wait_experiment(exp["id"])
    good, poor = yard.runs(exp["id"])
    assert good["params"] == {"quality": "good"} and good["status"] == "succeeded", yard.describe(exp["id"])
    assert poor["params"] == {"quality": "poor"}
    assert poor["status"] == "pruned", yard.describe(exp["id"])
    assert "stopped early by the median rule" in poor["status_message"]
    assert ended["status"] == "succeeded"
    # Stopped soon after the rule fired, not at the script's own end (600 steps).
    assert poor["metrics"]["loss"]["count"] < 100
    assert poor["ended_at"] - poor["started_at"] < 60
    pid = _pid(project, poor["id"])
    wait_until(lambda: process_gone(pid), 30, f"the pruned run's process {pid} to be gone")
    assert any("the run was pruned" in t for t in log_texts(yard.client, poor["id"]))
    wait_until(lambda: yard.client.get_run(poor["id"])["tasks"][0]["status"] == "pruned", 30,
               "the runner to report the pruned task")
    assert yard.client.get_run(poor["id"])["status"] == "pruned"


# ---------------------------------------------------------------------------- cancel
WAIT_PY = PID_FILE + """
import time

for step in range(900):  # until the test creates the release file (or ~90 s)
    if os.path.exists(os.path.join(OUT, "release")):
        break
    runyard.log({"step": step}, step=step)
    time.sleep(0.1)
runyard.finish()
"""

CANCEL_YML = """
project: {project}
command: python train.py
params:
  i: [0, 1, 2]
search:
  parallel: 3
resources:
  cpus: {cpus}
"""


def _running(yard: Yard, experiment_id: int, n: int) -> list[dict]:
    def check() -> list[dict] | None:
        runs = yard.client.list_runs(experiment_id=experiment_id, status=["running"], limit=100)["items"]
        return runs if len(runs) >= n else None

    return wait_until(check, what=f"{n} runs of experiment {experiment_id} running")


def test_cancel_one_run_stops_its_process_and_the_others_continue(yard: Yard, make_project) -> None:
    project = make_project("cancel-run", CANCEL_YML.format(project="e2e-cancel-run", cpus=0.1), WAIT_PY)
    exp = yard.submit(project.path)
    running = sorted(_running(yard, exp["id"], 3), key=lambda r: r["number"])
    pids = {r["id"]: _pid(project, r["id"]) for r in running}
    victim, *others = running

    res = yard.cli("cancel", str(victim["id"]))
    assert res.returncode == 0, res.stderr
    canceled = yard.wait_run(victim["id"])
    assert canceled["status"] == "canceled"
    assert "canceled by user" in canceled["status_message"]
    wait_until(lambda: process_gone(pids[victim["id"]]), 30, "the canceled run's process to be gone")
    for r in others:
        assert yard.client.get_run(r["id"])["status"] == "running"
        assert process_alive(pids[r["id"]])

    (project.out / "release").touch()
    ended = yard.wait_experiment(exp["id"])
    statuses = {r["id"]: r["status"] for r in yard.runs(exp["id"])}
    assert statuses == {victim["id"]: "canceled", others[0]["id"]: "succeeded", others[1]["id"]: "succeeded"}
    assert ended["status"] == "canceled"  # a run the user canceled did not finish: the experiment's outcome says so
    assert "1 of 3 runs canceled" in ended["message"]
    assert yard.client.get_run(victim["id"])["status"] == "canceled"  # the runner's late report did not undo it


def test_cancel_an_experiment_cancels_its_running_and_queued_runs(yard: Yard, make_project) -> None:
    # Each run asks for 45% of the machine's CPUs: two run, the third waits for capacity in the
    # local agent's queue (starting, with the agent's reason as its message).
    cpus = round((os.cpu_count() or 1) * 0.45, 2)
    project = make_project("cancel-exp", CANCEL_YML.format(project="e2e-cancel-exp", cpus=cpus), WAIT_PY)
    exp = yard.submit(project.path)
    running = _running(yard, exp["id"], 2)
    pids = [_pid(project, r["id"]) for r in running]
    assert sorted(r["status"] for r in yard.runs(exp["id"])) == ["running", "running", "starting"]
    waiting = next(r for r in yard.runs(exp["id"]) if r["status"] == "starting")
    reason = "pending: waiting for CPUs or memory on this machine"
    wait_until(lambda: yard.client.get_run(waiting["id"])["status_message"] == reason,
               10, "the waiting run to show the agent's reason")

    res = yard.cli("cancel", f"exp:{exp['id']}", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["status"] == "canceled"
    for pid in pids:
        wait_until(lambda pid=pid: process_gone(pid), 30, f"process {pid} of a canceled run to be gone")
    runs = [yard.wait_run(r["id"]) for r in yard.runs(exp["id"])]
    assert [r["status"] for r in runs] == ["canceled"] * 3, yard.describe(exp["id"])
    assert yard.client.get_experiment(exp["id"])["status"] == "canceled"
    # Nothing happens over a scheduler pass (no event to wait for): the behaviour under test.
    time.sleep(1.5)  # a scheduler pass later: nothing was proposed or dispatched after the cancel
    assert [r["status"] for r in yard.runs(exp["id"])] == ["canceled"] * 3
    assert len(list(project.out.glob("*.pid"))) == 2  # the queued run never started


def test_cancel_an_experiment_while_its_search_proposes_leaves_no_run_queued(yard: Yard) -> None:
    # 40 runs to propose; the cancel lands while the scheduler creates them. Each run asks for
    # the whole machine's CPUs, so at most one runs at a time.
    cpus = os.cpu_count() or 1
    config = {"project": "e2e-cancel-early", "command": "sleep 60", "params": {"i": list(range(40))},
              "search": {"parallel": 40}, "resources": {"cpus": cpus}}
    yard.client.create_project("e2e-cancel-early")
    for attempt in range(3):
        exp = yard.client.create_experiment("e2e-cancel-early", f"early-{attempt}", config)
        time.sleep(0.05 * attempt)  # the cancel lands at a different point of the proposing each attempt
        assert yard.client.cancel_experiment(exp["id"])["status"] == "canceled"

        def settled(experiment_id: int = exp["id"]) -> bool:
            runs = yard.client.list_runs(experiment_id=experiment_id, limit=1000)["items"]
            return all(r["status"] == "canceled" for r in runs)

        for _ in range(2):  # and still so a few scheduler passes later
            wait_until(settled, 30, f"every run of canceled experiment {exp['id']} to be canceled (none left queued)")
            time.sleep(1.5)  # a scheduler pass during which nothing may change: the behaviour under test
        assert yard.client.get_experiment(exp["id"])["status"] == "canceled"


# ------------------------------------------------------------------------ time limit
TIME_LIMIT_YML = """
project: e2e-time-limit
command: python train.py
resources:
  cpus: 0.1
  time_limit: 2
"""

SLEEP_PY = PID_FILE + """
import time

print("working", flush=True)
time.sleep(120)
runyard.finish()
"""


def test_time_limit_kills_an_overrunning_task(yard: Yard, make_project) -> None:
    project = make_project("time-limit", TIME_LIMIT_YML, SLEEP_PY)
    exp = yard.submit(project.path)
    ended = yard.wait_experiment(exp["id"])
    (run,) = yard.runs(exp["id"])
    assert run["status"] == "failed", yard.describe(exp["id"])
    assert "time limit of 2s" in run["status_message"]
    assert run["ended_at"] - run["started_at"] < 30
    assert ended["status"] == "failed"
    pid = _pid(project, run["id"])
    wait_until(lambda: process_gone(pid), 30, "the timed-out process to be gone")


# ---------------------------------------------------------------------------- crash
CRASH_YML = """
project: e2e-crash
command: python train.py
resources:
  cpus: 0.1
"""

CRASH_PY = """
import sys

for i in range(1, 31):
    print(f"line {i}")
print("boom: the model diverged", file=sys.stderr)
sys.exit(3)
"""


def test_a_crashing_command_fails_with_its_exit_code_and_last_lines(yard: Yard, make_project) -> None:
    project = make_project("crash", CRASH_YML, CRASH_PY)
    res = yard.cli("run", project.path, "--wait", "--json")
    assert res.returncode == 1, f"`runyard run --wait` must fail when a run failed:\n{res.stdout}\n{res.stderr}"
    exp = json.loads(res.stdout)
    assert exp["status"] == "failed"
    (run,) = yard.runs(exp["id"])
    assert run["status"] == "failed"
    assert run["exit_code"] == 3
    message = run["status_message"]
    assert message.startswith("exit code 3"), message
    assert "line 30" in message and "boom: the model diverged" in message
    assert "line 5\n" not in message + "\n"  # only the last lines
    (task,) = run["tasks"]
    assert task["status"] == "failed" and task["exit_code"] == 3


# ------------------------------------------------------------------------- restarts
RESTART_YML = """
project: e2e-restart
command: python train.py
params:
  behaviour: [always-crash, crash-once]
search:
  parallel: 2
max_restarts: 2
resources:
  cpus: 0.1
"""

RESTART_PY = """
import os, sys
import runyard

runyard.init()
out, run_id, attempt = os.environ["E2E_OUT"], os.environ["RUNYARD_RUN_ID"], os.environ["RUNYARD_ATTEMPT"]
with open(os.path.join(out, "attempts"), "a") as f:
    f.write(f"{run_id} {attempt}\\n")
marker = os.path.join(out, "marker-" + run_id)
if runyard.params()["behaviour"] == "crash-once" and os.path.exists(marker):
    print("the second attempt works")
    runyard.finish()
    sys.exit(0)
open(marker, "w").close()
print(f"crashing on attempt {attempt}")
sys.exit(5)
"""


def test_max_restarts_restarts_a_crashed_run_under_the_same_id(yard: Yard, make_project) -> None:
    project = make_project("restart", RESTART_YML, RESTART_PY)
    res = yard.cli("run", project.path, "--wait", "--json")
    assert res.returncode == 1, f"one run failed for good, so --wait exits 1:\n{res.stdout}\n{res.stderr}"
    exp = json.loads(res.stdout)
    always, once = yard.runs(exp["id"])
    assert len(yard.runs(exp["id"])) == 2  # restarts keep the run; they add no runs
    attempts = [ln.split() for ln in project.read_lines("attempts")]

    assert always["params"] == {"behaviour": "always-crash"}
    assert always["status"] == "failed" and always["exit_code"] == 5, yard.describe(exp["id"])
    assert always["attempt"] == 3
    assert [a for r, a in attempts if r == str(always["id"])] == ["1", "2", "3"]
    assert sorted(t["attempt"] for t in always["tasks"]) == [1, 2, 3]
    assert [e["attempt"] for e in always["events"] if e["status"] == "failed"] == [1, 2, 3]
    assert [e["attempt"] for e in always["events"] if e["status"] == "queued"] == [1, 2, 3]
    assert "crashing on attempt 3" in always["status_message"]

    assert once["params"] == {"behaviour": "crash-once"}
    assert once["status"] == "succeeded" and once["attempt"] == 2, yard.describe(exp["id"])
    assert [a for r, a in attempts if r == str(once["id"])] == ["1", "2"]
    assert sorted(t["attempt"] for t in once["tasks"]) == [1, 2]
    assert [e["status"] for e in once["events"]].count("failed") == 1
    assert exp["status"] == "failed"  # a run failed after its restarts: the experiment failed, its summary says how many
    assert "1 of 2 runs failed" in exp["message"]
    assert exp["counts"] == {"failed": 1, "succeeded": 1}


# ----------------------------------------------------------------------- bad input
GOOD_YML = """
project: e2e-bad-input
command: python train.py --lr {lr}
params:
  lr: [0.1, 0.2]
resources:
  cpus: 0.1
"""


def test_bad_input_through_the_cli_fails_with_a_clear_message_and_no_traceback(yard: Yard, make_project) -> None:
    bad = make_project("bad-yml", "project: e2e-bad-input\ncommand: python train.py\nsearch:\n  parallel: 0\n", "")
    res = yard.cli("run", bad.path)
    assert res.returncode == 1
    assert "runyard.yml:4: search.parallel must be an integer ≥ 1, but got 0" in res.stderr
    assert "Traceback" not in res.stderr + res.stdout

    typo = make_project("typo-yml", "project: e2e-bad-input\ncommand: python train.py\nserach:\n  parallel: 2\n", "")
    res = yard.cli("run", typo.path)
    assert res.returncode == 1
    assert "runyard.yml:3" in res.stderr and "serach" in res.stderr
    assert "Traceback" not in res.stderr + res.stdout

    good = make_project("good-yml", GOOD_YML, "")
    res = yard.cli("run", good.path, "--backend", "slrum")
    assert res.returncode == 1
    assert "slrum" in res.stderr and "local" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr + res.stdout

    res = yard.cli("run", good.path, "-p", "depth=3")
    assert res.returncode == 1
    assert "declares no param 'depth'" in res.stderr and "lr" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr + res.stdout

    assert "e2e-bad-input" not in [p["name"] for p in yard.client.list_projects()]  # nothing was stored
