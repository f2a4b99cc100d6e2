"""The embedded local server survives being killed: same port, supervised, and runs find it again.

- SIGKILL leaves the port's connections in TIME_WAIT; ``runyard server start`` still
  comes back on the port of ``server.last-port`` (the runs report to that address).
- The supervisor restarts a killed server without any command, and ``runyard server
  status`` counts it; ``runyard server stop`` stops both processes.
- An ad-hoc run of the local server whose server came back elsewhere finds the new
  address in ``$RUNYARD_HOME/server.json``.
- A sweep on the local backend whose server (and supervisor) is SIGKILLed three times,
  each time restarted by ``runyard server start``: every point stored exactly once and
  every run succeeded (slow; ``RUNYARD_TEST_SWEEP`` makes it bigger).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from runyard import _local
from runyard.backends.local import agent_dir, stop_agent
from runyard.client import Client


def _wait(predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _state(home: Path) -> dict[str, Any]:
    return json.loads((home / "server.json").read_text())


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
    env.update({"RUNYARD_HOME": str(home), "PYTHONUNBUFFERED": "1", "COLUMNS": "200"})
    return env


def _cli(home: Path, *args: str | Path, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runyard.cli", *map(str, args)], env=_env(home), capture_output=True,
                          text=True, timeout=timeout_s, check=False, stdin=subprocess.DEVNULL)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/api/v1/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def local(runyard_home: Path) -> Iterator[list[int]]:
    """Pids the test saw (servers, supervisors); all stopped afterwards, by pid, with the home's local agent."""
    pids: list[int] = []
    yield pids
    with contextlib.suppress(FileNotFoundError, ValueError):
        info = _state(runyard_home)
        pids += [info["pid"], info.get("supervisor_pid") or 0]
    _local.stop_server()
    for pid in pids:
        if pid and _alive(pid):
            os.kill(pid, signal.SIGKILL)
    stop_agent(agent_dir(runyard_home), timeout_s=30.0)


def _start(home: Path, pids: list[int]) -> dict[str, Any]:
    res = _cli(home, "server", "start")
    assert res.returncode == 0, res.stderr
    info = _state(home)
    pids += [info["pid"], info.get("supervisor_pid") or 0]
    assert res.stdout == info["url"] + "\n"
    return info


@contextlib.contextmanager
def _squat(port: int) -> Iterator[None]:
    """Listen on ``port`` so that a new server cannot have it. On a busy machine another process's
    outgoing connection may hold it for a moment (the ephemeral range is shared): then it is taken
    already, and is tried again until it is ours or 10 s passed."""
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 10
        while True:
            try:
                squatter.bind(("127.0.0.1", port))
                break
            except OSError as e:
                if e.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        squatter.listen()
        yield


def _kill_all(info: dict[str, Any]) -> None:
    """SIGKILL the supervisor, then the server: a crash nothing restarts."""
    pids = [p for p in (info.get("supervisor_pid"), info["pid"]) if p]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _wait(lambda: not any(_alive(p) for p in pids), 10, "the killed processes to go")


def test_a_killed_server_comes_back_on_its_port_despite_time_wait(runyard_home: Path, local: list[int]) -> None:
    port = None
    for _ in range(3):  # a kill that finds unread bytes resets its connections instead (no TIME_WAIT): again
        info = _start(runyard_home, local)
        assert port is None or info["port"] == port
        port = info["port"]
        with httpx.Client(base_url=info["url"]) as http:  # keep-alive connections the kill leaves behind
            for _ in range(3):
                assert http.get("/api/v1/health").status_code == 200
            _kill_all(info)
        lingering = [c for c in psutil.net_connections("tcp") if c.laddr and c.laddr.port == port
                     and c.status != psutil.CONN_LISTEN]
        if lingering:
            break
    else:
        pytest.fail("no kill left a connection on the port: this test would not test the TIME_WAIT case")
    with socket.socket() as s, pytest.raises(OSError):
        s.bind(("127.0.0.1", port))  # what the probe did without SO_REUSEADDR

    again = _start(runyard_home, local)
    assert again["port"] == port and again["url"] == info["url"]
    assert again["pid"] != info["pid"] and again.get("supervisor_pid") != info.get("supervisor_pid")
    assert _healthy(again["url"])


@pytest.mark.slow  # starts servers of its own: about 10-15 s
def test_the_supervisor_restarts_a_killed_server_and_stop_ends_both(runyard_home: Path, local: list[int]) -> None:
    info = _start(runyard_home, local)
    status = json.loads(_cli(runyard_home, "server", "status", "--json").stdout)
    assert (status["supervised"], status["restarts"], status["restarted_at"]) == (True, 0, None)

    os.kill(info["pid"], signal.SIGKILL)
    new = _wait(lambda: (s := _state(runyard_home))["pid"] != info["pid"] and _healthy(s["url"]) and s, 60,
                "the supervisor to restart the server")
    local.append(new["pid"])
    assert new["port"] == info["port"] and new["supervisor_pid"] == info["supervisor_pid"]
    assert new["restarts"] == 1 and new["restarted_at"] > info["started_at"]
    status = json.loads(_cli(runyard_home, "server", "status", "--json").stdout)
    assert (status["running"], status["healthy"], status["restarts"]) == (True, True, 1)
    text = _cli(runyard_home, "server", "status").stdout
    assert f"Its supervisor (pid {info['supervisor_pid']}) restarted it 1 time, last " in text
    assert "restarted the server at" in (runyard_home / "server.log").read_text()

    res = _cli(runyard_home, "server", "stop")
    assert res.stdout == f"Stopped the local Runyard server (pid {new['pid']}).\n"
    assert not _alive(new["pid"]) and not _alive(info["supervisor_pid"])
    assert not (runyard_home / "server.json").exists()


def test_server_start_supervises_an_unsupervised_server(runyard_home: Path, local: list[int]) -> None:
    info = _start(runyard_home, local)
    os.kill(info["supervisor_pid"], signal.SIGKILL)
    _wait(lambda: not _alive(info["supervisor_pid"]), 10, "the supervisor to go")
    assert "It is not supervised" in _cli(runyard_home, "server", "status").stdout
    res = _cli(runyard_home, "server", "start")
    assert "already running" in res.stderr
    again = _state(runyard_home)
    local.append(again["supervisor_pid"])
    assert again["pid"] == info["pid"] and again["supervisor_pid"] not in (None, info["supervisor_pid"])
    assert _alive(again["supervisor_pid"])


@pytest.mark.slow  # starts servers of its own: about 10-15 s
def test_an_adhoc_run_follows_the_local_server_to_its_new_address(tmp_path: Path, runyard_home: Path,
                                                                  local: list[int]) -> None:
    info = _start(runyard_home, local)
    moved, go = tmp_path / "moved", tmp_path / "go"
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(f"""
        import os, time
        import runyard
        run = runyard.init(project="follow")
        for i in range(5):
            runyard.log({{"x": i}})
        run.flush()
        open({str(moved)!r}, "w").close()
        while not os.path.exists({str(go)!r}):
            time.sleep(0.05)
        for i in range(5, 12):
            runyard.log({{"x": i}})
    """))
    proc = subprocess.Popen([sys.executable, str(script)], env=_env(runyard_home), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        _wait(moved.exists, 60, "the script's first points")
        _kill_all(info)
        with _squat(info["port"]):  # its port is taken now: the new server goes elsewhere
            new = _start(runyard_home, local)
            assert new["port"] != info["port"]
        go.touch()  # the old address refuses connections now (a taken port that answers would time out first)
        _, err = proc.communicate(timeout=60)
        assert f"the local server moved from {info['url']} to {new['url']}" in err, err
        with Client(new["url"]) as c:
            (item,) = c.list_runs(project="follow")["items"]
            run = c.get_run(item["id"])
            assert run["status"] == "succeeded", err
            assert c.metric_history(run["id"], "x")["steps"] == list(range(12))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# The sweep's size can be raised for a measurement, e.g. 20 runs of 500 points through 5 kills:
# RUNYARD_TEST_SWEEP="20 500 5 0.02" (runs, points per run, kills, seconds between points).
_SWEEP = os.environ.get("RUNYARD_TEST_SWEEP", "8 60 3 0.1").split()
N_RUNS, N_STEPS, N_KILLS, STEP_S = int(_SWEEP[0]), int(_SWEEP[1]), int(_SWEEP[2]), float(_SWEEP[3])

SWEEP_YML = f"""
project: killsweep
command: python train.py
params:
  i: {list(range(N_RUNS))}
search:
  parallel: 4
resources:
  cpus: 0.1
"""

SWEEP_PY = f"""
import time
import runyard

runyard.init()
print("start", flush=True)
for step in range({N_STEPS}):
    runyard.log({{"loss": 1.0 / (step + 1)}}, step=step)
    time.sleep({STEP_S})
print("done", flush=True)
runyard.finish()
"""


@pytest.mark.slow
def test_a_sweep_survives_server_kills(tmp_path: Path, runyard_home: Path, local: list[int]) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "runyard.yml").write_text(textwrap.dedent(SWEEP_YML).strip() + "\n")
    (project / "train.py").write_text(textwrap.dedent(SWEEP_PY).lstrip())
    info = _start(runyard_home, local)
    res = _cli(runyard_home, "run", project, "--json")
    assert res.returncode == 0, res.stderr
    exp = json.loads(res.stdout)
    client = Client(info["url"])
    try:
        def n_points() -> int:
            items = client.list_runs(experiment_id=exp["id"], limit=100)["items"]
            return sum(r.get("metrics", {}).get("loss", {}).get("count", 0) for r in items)

        for k in range(N_KILLS):
            target = (k + 1) * N_RUNS * N_STEPS // (N_KILLS + 1)  # e.g. a quarter, a half, three quarters of the points
            _wait(lambda t=target: n_points() >= t, 120, f"{target} points before kill {k + 1}")
            _kill_all(info)
            time.sleep(1.0)
            info = _start(runyard_home, local)
            assert info["url"] == client.base_url

        def ended() -> dict[str, Any] | None:
            e = client.get_experiment(exp["id"])
            return e if e["status"] != "running" else None

        final = _wait(ended, 180 + N_RUNS * N_STEPS * STEP_S, "the sweep to end")
        runs = [client.get_run(r["id"]) for r in client.list_runs(experiment_id=exp["id"], limit=1000)["items"]]
        detail = "\n".join(f"{r['id']} {r['status']} {r['status_message']!r} {r['metrics']}" for r in runs)
        assert final["status"] == "succeeded", detail
        assert len(runs) == N_RUNS
        for r in runs:
            assert r["status"] == "succeeded", detail
            history = client.metric_history(r["id"], "loss", max_points=10_000)
            assert history["steps"] == list(range(N_STEPS)), f"run {r['id']}: {history['steps']}"
            texts = [line["text"] for line in client.read_logs(r["id"], limit=1000)["lines"]]
            assert "start" in texts and "done" in texts, (r["id"], texts)
    finally:
        client.close()


@pytest.mark.slow
def test_launched_runs_follow_the_local_server_to_a_new_port(tmp_path: Path, runyard_home: Path, local: list[int]) -> None:
    """The port was taken while the server was down: runners and SDKs of running runs find it in server.json."""
    project = tmp_path / "proj"
    project.mkdir()
    (project / "runyard.yml").write_text(textwrap.dedent(SWEEP_YML).strip().replace(
        str(list(range(N_RUNS))), "[0, 1]").replace("parallel: 4", "parallel: 2") + "\n")
    (project / "train.py").write_text(textwrap.dedent(SWEEP_PY).lstrip())
    info = _start(runyard_home, local)
    res = _cli(runyard_home, "run", project, "--json")
    assert res.returncode == 0, res.stderr
    exp = json.loads(res.stdout)
    with Client(info["url"]) as old:
        def halfway() -> bool:
            items = old.list_runs(experiment_id=exp["id"], limit=10)["items"]
            return len(items) == 2 and all(r.get("metrics", {}).get("loss", {}).get("count", 0) >= 10 for r in items)

        _wait(halfway, 120, "both runs halfway")
    _kill_all(info)
    with _squat(info["port"]):
        new = _start(runyard_home, local)
        assert new["port"] != info["port"]
    with Client(new["url"]) as client:
        def ended() -> dict[str, Any] | None:
            e = client.get_experiment(exp["id"])
            return e if e["status"] != "running" else None

        final = _wait(ended, 120, "the sweep to end")
        runs = [client.get_run(r["id"]) for r in client.list_runs(experiment_id=exp["id"], limit=10)["items"]]
        detail = "\n".join(f"{r['id']} {r['status']} {r['status_message']!r} {r['metrics']}" for r in runs)
        assert final["status"] == "succeeded", detail
        for r in runs:
            assert r["status"] == "succeeded", detail
            assert client.metric_history(r["id"], "loss", max_points=10_000)["steps"] == list(range(N_STEPS)), detail
            texts = [line["text"] for line in client.read_logs(r["id"], limit=1000)["lines"]]
            assert "start" in texts and "done" in texts, (r["id"], texts)
