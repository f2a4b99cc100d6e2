"""How an experiment ends, end to end: a live server with its scheduler, the local backend, and the CLI.

Regressions:
- an experiment with 4 of 5 runs failed ended ``succeeded``; one a user canceled ended ``failed``;
- ``runyard run --follow`` exited 0 when the experiment failed and printed nothing until the end
  without a terminal;
- ``runyard status`` of a failed run said "exit code 1 — exit code 1" without the program's error;
- a search whose metric no run logged succeeded as a random search without a word.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runyard.client import Client
from runyard.records.status import experiment_outcome
from runyard.testing import LiveServer
from runyard.testing.pytest_plugin import LiveServers

pytestmark = pytest.mark.slow

WAIT_S = 180.0


@pytest.fixture(scope="module")
def yard(module_live_servers: LiveServers) -> LiveServer:
    return module_live_servers.start("experiments", env={"RUNYARD_LOCAL_GPUS": ""})


@pytest.fixture
def client(yard: LiveServer) -> Iterator[Client]:
    with Client(yard.url) as c:
        yield c


def _cli(yard: LiveServer, home: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """``runyard ARGS`` in a subprocess: stdout is a pipe, not a terminal."""
    env = {**os.environ, "RUNYARD_SERVER": yard.url, "RUNYARD_HOME": str(home), "COLUMNS": "200"}
    for var in ("RUNYARD_DEBUG", "RUNYARD_TOKEN", "RUNYARD_DATABASE_URL"):
        env.pop(var, None)
    return subprocess.run([sys.executable, "-m", "runyard.cli", *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=WAIT_S, stdin=subprocess.DEVNULL, check=False)


def _project(tmp_path: Path, name: str, yml: str, script: str) -> Path:
    path = tmp_path / name
    path.mkdir()
    (path / "runyard.yml").write_text(textwrap.dedent(yml).strip() + "\n")
    (path / "train.py").write_text(textwrap.dedent(script).lstrip())
    return path


FAILING_YML = """
project: int-fail-{uid}
command: python train.py {{i}}
params:
  i: [0, 1, 2, 3, 4]
search:
  parallel: 5
resources:
  cpus: 0.1
"""

FAILING_PY = """
import sys
import runyard

runyard.init()
runyard.log({"loss": 1.0}, step=0)
if sys.argv[1] != "0":
    print(f"ValueError: bad batch in shard {sys.argv[1]}", file=sys.stderr, flush=True)
    sys.exit(1)
runyard.finish()
"""


def test_four_of_five_failed_runs_fail_the_experiment_and_the_follow(yard: LiveServer, client: Client,
                                                                     tmp_path: Path) -> None:
    project = _project(tmp_path, "fails", FAILING_YML.format(uid=os.getpid()), FAILING_PY)
    res = _cli(yard, tmp_path / "home", "run", project, "--follow")
    out = res.stdout
    assert res.returncode == 1, f"{out}\n{res.stderr}"  # the experiment failed
    # Without a terminal: one plain line per status change, then the final table and the summary.
    assert out.count(": failed") >= 4 and ": succeeded" in out, out
    exp_id = int(out.split("Experiment ", 1)[1].split(" ", 1)[0])
    exp = client.get_experiment(exp_id)
    assert (exp["status"], exp["message"]) == ("failed", "4 of 5 runs failed")
    assert exp["counts"] == {"failed": 4, "succeeded": 1}
    assert f"Experiment {exp_id} failed (4 of 5 runs failed)" in out

    failed = [r for r in client.list_runs(experiment_id=exp_id)["items"] if r["status"] == "failed"][0]
    res = _cli(yard, tmp_path / "home", "status", str(failed["id"]))
    assert res.returncode == 0, res.stderr
    line = res.stdout.strip()
    assert "exit code 1" in line and line.count("exit code 1") == 1, line
    assert line.endswith(f"ValueError: bad batch in shard {failed['params']['i']}"), line


CANCEL_YML = """
project: int-cancel-{uid}
command: python train.py
params:
  i: [0, 1]
search:
  parallel: 2
resources:
  cpus: 0.1
"""

CANCEL_PY = """
import time
import runyard

runyard.init()
time.sleep(300)
"""


def test_a_canceled_experiment_stays_canceled(yard: LiveServer, client: Client, tmp_path: Path) -> None:
    project = _project(tmp_path, "cancels", CANCEL_YML.format(uid=os.getpid()), CANCEL_PY)
    res = _cli(yard, tmp_path / "home", "run", project, "--json")
    assert res.returncode == 0, res.stderr
    exp_id = int(res.stdout.split('"id":', 1)[1].split(",", 1)[0])
    deadline = time.monotonic() + WAIT_S
    while client.get_experiment(exp_id)["counts"].get("running", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    client.cancel_experiment(exp_id)
    res = _cli(yard, tmp_path / "home", "follow", str(exp_id))
    assert res.returncode == 2, f"{res.stdout}\n{res.stderr}"
    # The scheduler passes again meanwhile (its runs end canceled): the experiment stays canceled.
    deadline = time.monotonic() + 30
    while any(r["status"] not in ("canceled",) for r in client.list_runs(experiment_id=exp_id)["items"]):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    time.sleep(2.5)
    exp = client.get_experiment(exp_id)
    assert exp["status"] == "canceled", exp


SILENT_YML = """
project: int-silent-{uid}
command: python train.py
params:
  x: {{uniform: [0.0, 1.0]}}
search:
  algorithm: tpe
  metric: val_acc
  mode: max
  max_runs: 3
  parallel: 3
resources:
  cpus: 0.1
"""

SILENT_PY = """
import runyard

runyard.init()
runyard.log({"acc": runyard.params()["x"]}, step=0)  # not val_acc: the search metric is never logged
runyard.finish()
"""


def test_a_search_metric_no_run_logged_leaves_a_warning(yard: LiveServer, client: Client, tmp_path: Path) -> None:
    project = _project(tmp_path, "silent", SILENT_YML.format(uid=os.getpid()), SILENT_PY)
    res = _cli(yard, tmp_path / "home", "run", project, "--wait", "--json")
    assert res.returncode == 0, f"{res.stdout}\n{res.stderr}"
    exp_id = int(res.stdout.split('"id":', 1)[1].split(",", 1)[0])
    exp = client.get_experiment(exp_id)
    assert exp["status"] == "succeeded"
    assert exp["warnings"] == ["metric val_acc was never logged by any run: the tpe search is behaving as random search "
                               "and there is no best run"]
    res = _cli(yard, tmp_path / "home", "follow", str(exp_id))
    assert res.returncode == 0
    assert "Warning: metric val_acc was never logged by any run" in res.stderr


@pytest.mark.parametrize(("counts", "outcome"), [
    ({"succeeded": 3, "pruned": 2}, ("succeeded", "5 of 5 runs succeeded (2 pruned)")),
    ({"succeeded": 1, "failed": 4}, ("failed", "4 of 5 runs failed")),
    ({"succeeded": 1, "canceled": 1}, ("canceled", "1 of 2 runs canceled")),
    ({"failed": 1, "canceled": 1}, ("failed", "1 of 2 runs failed")),
])
def test_the_experiment_rule(counts: dict[str, int], outcome: tuple[str, str]) -> None:
    assert experiment_outcome(counts) == outcome
