"""A local agent SIGKILLed in the middle of a sweep: its tasks keep running, a new agent adopts them.

The sweep runs ``parallel: 2`` of four runs, two that print every step and two quiet
ones; the agent is killed while two of them run. Each run must end with its true status
(the tasks exit 0: succeeded, read back from the exit-code file the task's wrapper
writes, never ``failed``), with ``max_restarts`` too (no rerun: one attempt, every metric
point exactly once), a printing task must survive its next print (its output goes to a
file, not a pipe of the dead agent), and the new agent must count the adopted runs toward
``parallel`` (never more than two running, observed through the server all along).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from runyard.backends.local import agent_dir, stop_agent
from runyard.client import Client
from runyard.errors import NotFound
from runyard.testing import LiveServer

pytestmark = pytest.mark.slow

STEPS = 25
STEP_S = 0.2
KINDS = ["print-1", "quiet-1", "print-2", "quiet-2"]
SCRIPT = f"""
import time
import runyard

runyard.init()
kind = runyard.params()["kind"]
for step in range({STEPS}):
    runyard.log({{"x": float(step)}}, step=step)
    if kind.startswith("print"):
        print(f"step {{step}}", flush=True)
    time.sleep({STEP_S})
runyard.finish()
"""


def _wait(predicate: Any, what: str, timeout_s: float = 45.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "home", env={"RUNYARD_LOCAL_GPUS": ""})
    try:
        live.start(timeout_s=60.0)
        yield live
    finally:
        live.stop()
        stop_agent(agent_dir(live.home), timeout_s=30.0)


def _submit(server: LiveServer, project: Path) -> dict[str, Any]:
    import subprocess

    env = {**os.environ, "RUNYARD_SERVER": server.url, "RUNYARD_HOME": str(project.parent / "cli-home")}
    env.pop("RUNYARD_TOKEN", None)
    res = subprocess.run([sys.executable, "-m", "runyard.cli", "run", str(project), "--json"], env=env,
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, check=False)
    assert res.returncode == 0, f"runyard run failed:\n{res.stdout}\n{res.stderr}"
    return json.loads(res.stdout)


class RunningWatch:
    """Samples how many of the experiment's runs the server has running, every 50 ms, in a thread."""

    def __init__(self, client: Client, experiment_id: int) -> None:
        self.client, self.experiment_id = client, experiment_id
        self.max_running = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            items = self.client.list_runs(experiment_id=self.experiment_id, status=["running"], limit=100)["items"]
            self.max_running = max(self.max_running, len(items))
            self.samples += 1
            self._stop.wait(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


@pytest.mark.parametrize("max_restarts", [0, 2])
def test_a_sigkilled_agent_leaves_each_run_its_true_status_once(server: LiveServer, tmp_path: Path,
                                                                max_restarts: int) -> None:
    started = time.monotonic()
    project = tmp_path / "crash"
    project.mkdir()
    spec = {"project": f"int-crash-{max_restarts}", "command": "python train.py", "max_restarts": max_restarts,
            "params": {"kind": KINDS}, "search": {"algorithm": "grid", "parallel": 2}, "resources": {"cpus": 0.1}}
    (project / "runyard.yml").write_text(yaml.safe_dump(spec))
    (project / "train.py").write_text(textwrap.dedent(SCRIPT).lstrip())
    client = Client(server.url)
    watch = None
    try:
        exp = _submit(server, project)
        watch = RunningWatch(client, exp["id"])

        def two_running_with_points() -> list[dict[str, Any]] | None:
            running = client.list_runs(experiment_id=exp["id"], status=["running"], limit=10)["items"]
            if len(running) < 2:
                return None
            for run in running:
                if len(_points(client, run["id"])) < 4:
                    return None
            return running

        victims = _wait(two_running_with_points, "two runs running with a few points each")
        info = json.loads((agent_dir(server.home) / "agent.json").read_text())
        os.kill(int(info["pid"]), signal.SIGKILL)

        def ended() -> dict[str, Any] | None:
            e = client.get_experiment(exp["id"])
            return e if e["status"] != "running" else None

        _wait(ended, f"experiment {exp['id']} to end")
        watch.stop()
        runs = [client.get_run(r["id"]) for r in client.list_runs(experiment_id=exp["id"], limit=100)["items"]]
        assert sorted(r["params"]["kind"] for r in runs) == sorted(KINDS)
        summary = "\n".join(f"run {r['id']} {r['params']} {r['status']} attempt={r['attempt']} {r['status_message'][:160]!r}"
                            for r in runs)
        for run in runs:
            assert run["status"] == "succeeded", summary
            assert run["attempt"] == 1, "a run was run again:\n" + summary
            steps = _points(client, run["id"])
            assert sorted(steps) == list(range(STEPS)), f"run {run['id']}: points {sorted(steps)}\n{summary}"
        adopted = {r["id"]: r for r in runs if r["id"] in {v["id"] for v in victims}}
        assert len(adopted) == 2
        for run in adopted.values():
            assert "exit-code file" in run["status_message"], summary  # its true exit code, read back by the new agent
            if run["params"]["kind"].startswith("print"):  # it printed on after the agent died: all its lines are in its file
                job_dir = agent_dir(server.home) / "work" / f"{run['id']}.1" / ".runyard"
                lines = [ln for f in job_dir.glob("*/stdout") for ln in f.read_text().splitlines()]
                assert lines == [f"step {i}" for i in range(STEPS)], lines
        assert watch.samples > 20
        assert watch.max_running <= 2, f"{watch.max_running} runs ran at once with parallel: 2\n{summary}"
    finally:
        if watch is not None:
            watch.stop()
        client.close()
    assert time.monotonic() - started < 60.0


def _points(client: Client, run_id: int) -> list[int]:
    """The steps of the run's metric ``x``, one per point stored ([] before its first)."""
    try:
        history = client.metric_history(run_id, "x")
    except NotFound:
        return []
    return [int(s) for s in history.get("steps") or []]
