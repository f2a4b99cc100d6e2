"""The server dies or doubles up in the middle of a sweep, end to end on the local backend.

- SIGKILL of the server mid-sweep, then a new server on the same port and
  database: the local agent keeps the tasks running, their runners and SDKs
  buffer and replay, and the new scheduler follows the runs left by the old one.
- Two servers on one database (PostgreSQL, and one SQLite file): one scheduler
  leader dispatches; no run is dispatched twice. The servers have separate homes,
  hence separate local agents, so a double dispatch would really run twice.
"""

from __future__ import annotations

import collections
import json
import sqlite3
import time
from pathlib import Path

import pytest
from e2e_helpers import Yard, wait_until

from runyard.backends.local import agent_dir, read_job_records
from runyard.testing import free_port

pytestmark = pytest.mark.slow

N_STEPS = 15

SWEEP_YML = """
project: {project}
command: python train.py
params:
  i: [0, 1, 2, 3, 4, 5]
search:
  parallel: {parallel}
  metric: loss
resources:
  cpus: 0.1
"""

SWEEP_PY = f"""
import os, time
import runyard

runyard.init()
with open(os.path.join(os.environ["E2E_OUT"], "starts"), "a") as f:
    f.write(" ".join(os.environ[v] for v in ("RUNYARD_RUN_ID", "RUNYARD_ATTEMPT", "RUNYARD_SERVER")) + "\\n")
for step in range({N_STEPS}):
    runyard.log({{"loss": 1.0 / (step + 1)}}, step=step)
    time.sleep({{sleep_s}})
runyard.finish()
"""


def _check_each_run_dispatched_once(yard: Yard, experiment_id: int, starts: list[str], n_runs: int) -> None:
    runs = yard.runs(experiment_id)
    detail = yard.describe(experiment_id)
    assert len(runs) == n_runs, detail
    for r in runs:
        assert r["status"] == "succeeded", detail
        assert r["attempt"] == 1, detail
        assert [t["attempt"] for t in r["tasks"]] == [1], detail
        assert [e["status"] for e in r["events"]].count("starting") == 1, detail
        assert r["metrics"]["loss"]["count"] == N_STEPS, f"run {r['id']} lost metric points:\n{detail}"
    started = collections.Counter(line.split()[0] for line in starts)
    assert sorted(started) == sorted(str(r["id"]) for r in runs)
    assert max(started.values()) == 1, f"a run's script ran twice: {starts}"


def test_server_sigkill_mid_sweep_then_restart_finishes_the_sweep(servers, make_project) -> None:
    project = make_project("killed", SWEEP_YML.format(project="e2e-killed", parallel=2),
                           SWEEP_PY.replace("{sleep_s}", "0.2"))
    server = servers.start("killed", port=free_port())
    yard = servers.yard(server)
    exp = yard.submit(project.path)

    def mid_sweep() -> bool:
        runs = yard.client.list_runs(experiment_id=exp["id"], limit=100)["items"]
        return any(r["status"] == "running" and r.get("metrics", {}).get("loss", {}).get("count", 0) >= 3 for r in runs)

    wait_until(mid_sweep, what="a run halfway through its steps")
    server.kill()
    wait_until(lambda: len(project.read_lines("starts")) >= 2, 30, "the running runs to go on without the server")
    wait_until(lambda: read_job_records(agent_dir(server.home)), 10, "the agent's job records")
    server.start(timeout_s=60.0)  # same home (SQLite file), same port: the runs' reports find it again

    ended = yard.wait_experiment(exp["id"], timeout_s=180)
    assert ended["status"] == "succeeded", yard.describe(exp["id"])
    assert ended["counts"] == {"succeeded": 6}
    _check_each_run_dispatched_once(yard, exp["id"], project.read_lines("starts"), 6)


def _kill_inside_a_dispatch(db_path: Path, server, project, timeout_s: float = 60.0) -> int:
    """SIGKILL ``server`` inside a dispatch: after its compare-and-set to starting and the backend's
    submit, before it stored the engine's job ids. The server runs with the failpoint
    ``scheduler.before_recording_jobs`` (runyard._failpoints), which holds it there for a minute, so
    the kill lands in that window every time. Returns the id of a run caught starting without a job id.
    """

    def caught() -> int | None:
        with sqlite3.connect(db_path, timeout=30) as db:
            row = db.execute("SELECT id FROM runs WHERE status = 'starting' AND engine_job_id IS NULL").fetchone()
        # The job reached the engine: its script started (the submit returned before the pause).
        return int(row[0]) if row is not None and project.read_lines("starts") else None

    run_id = wait_until(caught, timeout_s, "a run starting, its job submitted and its job id not yet stored",
                        interval_s=0.1)
    server.kill()
    return run_id


def _lease_expired(db_path: Path) -> bool:
    with sqlite3.connect(db_path, timeout=30) as db:
        row = db.execute("SELECT expires_at FROM locks WHERE name = 'scheduler'").fetchone()
    return row is None or row[0] < time.time()


def test_server_sigkill_between_dispatch_and_recording_the_job_runs_the_run_once(servers, make_project,
                                                                                 tmp_path: Path) -> None:
    project = make_project("frozen", SWEEP_YML.format(project="e2e-frozen", parallel=2),
                           SWEEP_PY.replace("{sleep_s}", "0.05"))
    db_path = tmp_path / "frozen.db"
    server = servers.start("frozen", port=free_port(), database_url=f"sqlite:///{db_path}",
                           env={"RUNYARD_FAILPOINTS": "scheduler.before_recording_jobs=60"})
    yard = servers.yard(server)
    exp = yard.submit(project.path)
    caught = _kill_inside_a_dispatch(db_path, server, project)
    server.env.pop("RUNYARD_FAILPOINTS")  # the restarted server records its job ids at once
    # Restart once the dead server's scheduler lease ran out, so the new scheduler's first pass
    # meets the run still starting (else the runner's own "running" report may come first).
    wait_until(lambda: _lease_expired(db_path), 30, "the killed server's scheduler lease to expire", interval_s=0.2)
    server.start(timeout_s=60.0)

    ended = yard.wait_experiment(exp["id"], timeout_s=180)
    assert ended["status"] == "succeeded", yard.describe(exp["id"])
    starts = project.read_lines("starts")
    runs = yard.runs(exp["id"])
    detail = yard.describe(exp["id"]) + "\nstarts:\n" + "\n".join(starts)
    assert len(runs) == 6, detail
    started = collections.Counter(line.split()[0] for line in starts)
    assert sorted(started) == sorted(str(r["id"]) for r in runs), detail
    assert max(started.values()) == 1, f"a script ran twice (run {caught} was caught starting):\n{detail}"
    for r in runs:
        assert r["status"] == "succeeded" and r["attempt"] == 1, detail  # a run that never failed keeps attempt 1
        assert r["metrics"]["loss"]["count"] == N_STEPS, detail


def _two_servers_dispatch_each_run_once(servers, make_project, tmp_path: Path, database_url: str, name: str) -> None:
    project = make_project(name, SWEEP_YML.format(project=f"e2e-{name}", parallel=3).replace(
        "i: [0, 1, 2, 3, 4, 5]", "i: [0, 1, 2, 3, 4, 5, 6, 7]"), SWEEP_PY.replace("{sleep_s}", "0.05"))
    # A team's servers share the database and the artifact store (snapshot blobs live there).
    env = {"RUNYARD_ARTIFACTS_URL": str(tmp_path / f"{name}-artifacts")}
    # One after the other: the first applies the migrations, as in a rolling deployment.
    a = servers.start(f"{name}-a", database_url=database_url, env=env)
    b = servers.start(f"{name}-b", database_url=database_url, env=env)
    yard_a, yard_b = servers.yard(a), servers.yard(b)
    exp = yard_b.submit(project.path)
    ended = yard_a.wait_experiment(exp["id"], timeout_s=180)
    assert ended["status"] == "succeeded", yard_a.describe(exp["id"])
    assert yard_b.client.get_experiment(exp["id"])["status"] == "succeeded"
    starts = project.read_lines("starts")
    _check_each_run_dispatched_once(yard_a, exp["id"], starts, 8)
    # One leader dispatched everything: every run reported to the same server, and only
    # that server's agent has job records.
    assert len({line.split()[2] for line in starts}) == 1, starts
    jobs = {home: sorted(read_job_records(agent_dir(home))) for home in (a.home, b.home)
            if (agent_dir(home) / "jobs").exists()}
    assert sorted(j for ids in jobs.values() for j in ids) == sorted(f"{r['id']}.1" for r in yard_a.runs(exp["id"])), \
        json.dumps({str(k): v for k, v in jobs.items()})
    assert sum(1 for ids in jobs.values() if ids) == 1


@pytest.mark.postgres
def test_two_servers_on_one_postgresql_database_dispatch_each_run_once(servers, make_project, tmp_path: Path,
                                                                     pg_url: str) -> None:
    _two_servers_dispatch_each_run_once(servers, make_project, tmp_path, pg_url, "two-pg")


def test_two_servers_on_one_sqlite_file_dispatch_each_run_once(servers, make_project, tmp_path: Path) -> None:
    _two_servers_dispatch_each_run_once(servers, make_project, tmp_path, f"sqlite:///{tmp_path / 'shared.db'}",
                                        "two-sqlite")


AGENT_YML = """
project: e2e-agent-killed
command: python train.py
params:
  i: [0, 1, 2, 3]
search:
  parallel: 1
resources:
  cpus: 0.1
"""

AGENT_PY = """
import os, time
with open(os.path.join(os.environ["E2E_OUT"], "starts"), "a") as f:
    f.write(os.environ["RUNYARD_RUN_ID"] + " " + os.environ["RUNYARD_ATTEMPT"] + "\\n")
time.sleep(1.5)
"""


def test_runs_waiting_in_a_killed_agent_are_queued_again_and_run_once(servers, make_project) -> None:
    """SIGKILL of the local agent while a sweep's next runs wait in it: those never started, so
    they go back to queued (same attempt) and run once each in the new agent."""
    import json
    import os
    import signal

    from runyard.testing import pid_alive

    project = make_project("agent-killed", AGENT_YML, AGENT_PY)
    server = servers.start("agent-killed")
    yard = servers.yard(server)
    exp = yard.submit(project.path)

    def one_running_three_waiting() -> list[int] | None:
        runs = yard.runs(exp["id"])
        if sorted(r["status"] for r in runs) != ["running", "starting", "starting", "starting"]:
            return None  # (a run just spawned is still `starting` until its start report lands)
        return [r["id"] for r in runs if r["status"] == "starting"]

    waiting = wait_until(one_running_three_waiting, 30, "one run running and the others waiting in the agent")
    first = next(r["id"] for r in yard.runs(exp["id"]) if r["status"] == "running")
    pid = json.loads((agent_dir(server.home) / "agent.json").read_text())["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(pid), 10, "the agent to die")

    ended = yard.wait_experiment(exp["id"], timeout_s=120)
    detail = yard.describe(exp["id"])
    runs = {r["id"]: r for r in yard.runs(exp["id"])}
    for run_id in waiting:
        run = runs[run_id]
        assert run["status"] == "succeeded" and run["attempt"] == 1, detail
        assert "queued" in [e["status"] for e in run["events"]][1:], detail  # requeued, not failed
    starts = collections.Counter(line.split()[0] for line in project.read_lines("starts"))
    assert all(starts[str(run_id)] == 1 for run_id in waiting), starts
    assert runs[first]["status"] in ("succeeded", "failed"), detail  # its task outlived the agent, unwatched
    assert ended["status"] in ("succeeded", "failed"), detail
