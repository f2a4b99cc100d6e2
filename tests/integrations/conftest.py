"""Fixtures of the framework integrations' tests: a live server, its client, and experiments run on it.

Each framework's module trains a tiny model built in the test, on CPU, with nothing downloaded,
twice over:

- in this process, logging to an ad-hoc run (``runyard.init()``); the test then prunes the run
  on the server by hand and checks that training stops at the next step;
- as an experiment of two runs (``runyard run``) with the median early-stopping rule: a good run
  and a poor one that the rule prunes; the poor run's framework must stop by itself (through
  ``runyard.should_stop()``), well within the grace period.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from integration_helpers import WAIT_S, Sweep, wait_until

import runyard
from runyard.backends.local import agent_dir, stop_agent
from runyard.client import Client
from runyard.testing import LiveServer


@pytest.fixture
def server(shared_live_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> LiveServer:
    """The session's shared server (each test makes its own runs), made the SDK's server through RUNYARD_SERVER."""
    monkeypatch.setenv("RUNYARD_SERVER", shared_live_server.url)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    return shared_live_server


@pytest.fixture
def client(server: LiveServer) -> Iterator[Client]:
    with Client(server.url) as c:
        yield c


@pytest.fixture(autouse=True)
def no_active_run(runyard_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """SDK settings from the outer environment are cleared; a run a test left active is finished."""
    for var in ("RUNYARD_PROJECT", "RUNYARD_SDK_BUFFER_POINTS", "RUNYARD_SDK_FLUSH_TIMEOUT_S"):
        monkeypatch.delenv(var, raising=False)
    yield
    run = runyard.active_run()
    if run is not None:
        monkeypatch.setenv("RUNYARD_SDK_FLUSH_TIMEOUT_S", "5")
        run.finish("failed")


TERMINAL = frozenset({"succeeded", "failed", "canceled", "pruned"})
SWEEP_YML = """
project: {project}
command: python train.py
params:
  quality: [good, poor]
search:
  algorithm: grid
  parallel: 2
  metric: {metric}
  mode: min
early_stopping:
  algorithm: median
  n_startup_runs: 1
  grace_period_s: 120
resources:
  cpus: 0.5
env:
  E2E_OUT: {out}
  HF_HUB_OFFLINE: "1"
  TRANSFORMERS_OFFLINE: "1"
"""


POOR_LINE = 'poor = runyard.params()["quality"] == "poor"\n'
WAIT_FOR_GOOD = """while poor and not [n for n in os.listdir(os.environ["E2E_OUT"]) if n.endswith(".json")]:
    time.sleep(0.1)
"""


@pytest.fixture
def sweep(server: LiveServer, client: Client, tmp_path: Path) -> Iterator[Callable[..., Sweep]]:
    """``sweep(project, metric, script)``: run ``script`` as an experiment of runs quality=good, then quality=poor.

    The script reads ``runyard.params()["quality"]`` and writes ``$E2E_OUT/<run id>.json`` when
    training returns. The experiment has 120 s of grace: a pruned run that the framework did not
    stop by itself would show it by running to its end, or being stopped by the runner.
    """

    # Both runs start at once, so their framework imports overlap; the poor run trains only once the good one has
    # written its result (the rule needs one finished run to compare with), then takes half a second a step.
    def run(project: str, metric: str, script: str) -> Sweep:
        script = textwrap.dedent(script).lstrip()
        assert POOR_LINE in script, "the script sets `poor` as the others do"
        script = script.replace(POOR_LINE, POOR_LINE + WAIT_FOR_GOOD, 1)
        directory, out = tmp_path / project, tmp_path / f"{project}-out"
        directory.mkdir()
        out.mkdir()
        (directory / "runyard.yml").write_text(
            textwrap.dedent(SWEEP_YML).format(project=project, metric=metric, out=json.dumps(str(out))).lstrip())
        (directory / "train.py").write_text(script)
        env = {**os.environ, "RUNYARD_SERVER": server.url, "RUNYARD_HOME": str(tmp_path / "cli-home")}
        res = subprocess.run([sys.executable, "-m", "runyard.cli", "run", str(directory), "--json"], env=env,
                             capture_output=True, text=True, timeout=WAIT_S, stdin=subprocess.DEVNULL, check=False)
        assert res.returncode == 0, f"runyard run failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
        experiment_id = json.loads(res.stdout)["id"]
        experiment = wait_until(lambda: (e := client.get_experiment(experiment_id))["status"] != "running" and e,
                                what=f"experiment {experiment_id} to end")
        items = client.list_runs(experiment_id=experiment_id, limit=10)["items"]
        ids = [r["id"] for r in sorted(items, key=lambda r: r["number"])]
        # A pruned run is marked so at once; its process goes on until it stops itself (or the grace period ends).
        for run_id in ids:
            wait_until(lambda run_id=run_id: all(t["status"] in TERMINAL for t in client.get_run(run_id)["tasks"]),
                       what=f"the tasks of run {run_id} to end")
        good, poor = (client.get_run(run_id) for run_id in ids)
        assert good["params"]["quality"] == "good" and poor["params"]["quality"] == "poor"
        return Sweep(experiment, good, poor, out, client)

    try:
        yield run
    finally:
        stop_agent(agent_dir(server.home), timeout_s=30.0)
