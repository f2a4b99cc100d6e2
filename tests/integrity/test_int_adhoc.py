"""Ad-hoc runs (a script calling runyard.init()/log() itself) end with the right status, whatever ends them.

Each test runs a real script in a subprocess against a real server over HTTP:

- the exit status of ``sys.exit(...)``, an exception, a normal end;
- SIGTERM: the buffered points are sent and the run ends ``failed``;
- SIGKILL: the server ends the run ``failed`` ("lost") once its heartbeats stop;
- the server away at ``finish()``: the final status is saved with the points, and
  ``runyard sync`` sends both;
- the server away at ``init()``: the run is kept under a local id and created on the
  server later, by the process itself or by ``runyard sync``;
- the server away for a minute under a run: every point arrives (slow).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runyard.client import Client
from runyard.errors import NotFound
from runyard.testing import LiveServer, free_port
from runyard.testing.pytest_plugin import LiveServers

OUTAGE_S = float(os.environ.get("RUNYARD_TEST_OUTAGE_S", "60"))


def _wait(predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.1)


def _env(home: Path, url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
    # The scripts count their own points; the console capture would add sys/* metrics (tests/sdk/test_sdk_capture.py).
    env.update({"RUNYARD_HOME": str(home), "RUNYARD_SERVER": url, "PYTHONUNBUFFERED": "1", "RUNYARD_SDK_CAPTURE": "0",
                **extra})
    return env


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "train.py"
    path.write_text("import os, signal, sys, time\nimport runyard\n" + textwrap.dedent(body))
    return path


def _run(tmp_path: Path, home: Path, url: str, body: str, timeout_s: float = 60.0, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(_script(tmp_path, body))], env=_env(home, url, **env), capture_output=True,
                          text=True, timeout=timeout_s, check=False)


def _runs(client: Client, project: str) -> list[dict[str, Any]]:
    try:
        return client.list_runs(project=project)["items"]
    except NotFound:  # no run made the project yet
        return []


def _only_run(client: Client, project: str) -> dict[str, Any]:
    items = client.list_runs(project=project)["items"]
    assert len(items) == 1, items
    return client.get_run(items[0]["id"])


def _cli(home: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runyard.cli", *args], env=_env(home, url), capture_output=True, text=True,
                          timeout=60, check=False)


def _steps(client: Client, run_id: int, key: str) -> list[int]:
    history = client.metric_history(run_id, key, max_points=100_000)
    assert not history["downsampled"]
    return [int(s) for s in history["steps"]]


@pytest.fixture
def client(shared_live_server: LiveServer) -> Any:
    with Client(shared_live_server.url) as c:
        yield c


# ------------------------------------------------------------------ exit status
@pytest.mark.parametrize(("ending", "status", "exit_code", "message"), [
    ("pass", "succeeded", 0, ""),
    ("sys.exit(0)", "succeeded", 0, ""),
    ("sys.exit()", "succeeded", 0, ""),
    ("sys.exit(1)", "failed", 1, "the process exited with code 1"),
    ("sys.exit(3)", "failed", 3, "the process exited with code 3"),
    ("sys.exit('bad input')", "failed", 1, "the process exited with: bad input"),
    ("raise ValueError('boom')", "failed", 1, "the process exited with ValueError: boom"),
])
def test_the_exit_status_of_the_script_is_the_runs(tmp_path: Path, runyard_home: Path, shared_live_server: LiveServer,
                                                   client: Client, ending: str, status: str, exit_code: int,
                                                   message: str) -> None:
    project = f"exit-{zlib.crc32(ending.encode())}"
    res = _run(tmp_path, runyard_home, shared_live_server.url, f"""
        runyard.init(project={project!r})
        for i in range(5):
            runyard.log({{"x": i}})
        {ending}
    """)
    run = _only_run(client, project)
    assert (run["status"], run["exit_code"], run["status_message"]) == (status, exit_code, message), res.stderr
    assert run["metrics"]["x"]["count"] == 5


def test_sys_exit_inside_with_block_is_the_runs_status(tmp_path: Path, runyard_home: Path,
                                                       shared_live_server: LiveServer, client: Client) -> None:
    res = _run(tmp_path, runyard_home, shared_live_server.url, """
        with runyard.init(project="exit-with"):
            runyard.log({"x": 1})
            sys.exit(0)
    """)
    assert res.returncode == 0, res.stderr
    assert _only_run(client, "exit-with")["status"] == "succeeded"


# ---------------------------------------------------------------------- signals
def test_sigterm_sends_the_last_points_and_fails_the_run(tmp_path: Path, runyard_home: Path,
                                                         shared_live_server: LiveServer, client: Client) -> None:
    ready = tmp_path / "ready"
    script = _script(tmp_path, f"""
        runyard.init(project="sigterm")
        for i in range(3000):
            runyard.log({{"x": i}})
        open({str(ready)!r}, "w").close()
        time.sleep(60)
    """)
    # A long send interval: without the handler, the points still queued at the signal were lost.
    proc = subprocess.Popen([sys.executable, str(script)], env=_env(runyard_home, shared_live_server.url),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait(ready.exists, 30, "the script to log its points")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGTERM, err  # it still dies of the signal
    run = _only_run(client, "sigterm")
    assert (run["status"], run["exit_code"]) == ("failed", 143), err
    assert run["status_message"] == "the process was stopped by SIGTERM"
    assert run["metrics"]["x"]["count"] == 3000


def test_a_program_with_its_own_sigterm_handler_keeps_it(tmp_path: Path, runyard_home: Path,
                                                         shared_live_server: LiveServer, client: Client) -> None:
    res = _run(tmp_path, runyard_home, shared_live_server.url, """
        signal.signal(signal.SIGTERM, lambda *a: print("own handler"))
        runyard.init(project="own-handler")
        runyard.log({"x": 1})
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)
    """)
    assert res.returncode == 0 and "own handler" in res.stdout, res.stderr
    assert _only_run(client, "own-handler")["status"] == "succeeded"


@pytest.mark.slow  # starts servers of its own: about 10-15 s
def test_a_killed_process_ends_its_run_failed_lost_after_the_heartbeat_timeout(
        tmp_path: Path, runyard_home: Path, live_servers: LiveServers) -> None:
    server = live_servers.start("lost", env={"RUNYARD_LOST_RUN_TIMEOUT_S": "3"})
    ready = tmp_path / "ready"
    script = _script(tmp_path, f"""
        run = runyard.init(project="lost")
        runyard.log({{"x": 1}})
        run.flush()
        open({str(ready)!r}, "w").close()
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, str(script)], env=_env(runyard_home, server.url, RUNYARD_SDK_HEARTBEAT_S="0.5"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with Client(server.url) as c:
            _wait(ready.exists, 30, "the script to start its run")
            time.sleep(6)  # twice the timeout: its heartbeats keep a live run running
            assert _only_run(c, "lost")["status"] == "running"
            proc.kill()
            proc.wait()
            run = _wait(lambda: (r := _only_run(c, "lost"))["status"] != "running" and r, 30, "the run to be lost")
            assert run["status"] == "failed"
            assert run["status_message"].startswith("lost: its process sent no heartbeat for 3 s")
            assert run["metrics"]["x"]["count"] == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------- server away
@pytest.mark.slow  # starts servers of its own: about 10-15 s
def test_finish_with_the_server_away_saves_the_status_and_sync_sends_it(
        tmp_path: Path, runyard_home: Path, live_servers: LiveServers) -> None:
    server = live_servers.start("away-at-finish")
    ready, go = tmp_path / "ready", tmp_path / "go"
    script = _script(tmp_path, f"""
        run = runyard.init(project="away")
        for i in range(10):
            runyard.log({{"x": i}})
        run.flush()
        open({str(ready)!r}, "w").close()
        while not os.path.exists({str(go)!r}):
            time.sleep(0.05)
        for i in range(10, 25):
            runyard.log({{"x": i}})
        sys.exit(2)
    """)
    proc = subprocess.Popen([sys.executable, str(script)], env=_env(runyard_home, server.url, RUNYARD_SDK_FLUSH_TIMEOUT_S="1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait(ready.exists, 30, "the script to start its run")
        server.kill()
        go.touch()
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 2
    assert "did not take its final status failed" in err and "`runyard sync`" in err, err
    (spooled,) = (runyard_home / "spool").iterdir()
    assert (spooled / "status.meta").exists()

    server.start()
    with Client(server.url) as c:
        assert _only_run(c, "away")["status"] == "running"
        res = _cli(runyard_home, server.url, "sync")
        assert res.returncode == 0, res.stderr
        run = _only_run(c, "away")
        assert res.stdout == f"run {run['id']}: sent 15 metric points in 1 batches, status failed.\n"
        assert (run["status"], run["exit_code"]) == ("failed", 2)
        assert _steps(c, run["id"], "x") == list(range(25))
        assert not (runyard_home / "spool").exists() or not any((runyard_home / "spool").iterdir())
        assert _cli(runyard_home, server.url, "sync").stdout.startswith("Nothing to send")


@pytest.mark.slow  # starts servers of its own: about 10-15 s
def test_init_with_the_server_down_spools_the_run_and_sync_creates_it(
        tmp_path: Path, runyard_home: Path, live_servers: LiveServers) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    res = _run(tmp_path, runyard_home, url, """
        runyard.init(project="offline", name="first", params={"lr": 0.1}, tags={"k": "v"})
        runyard.log_params({"layers": 3})
        for i in range(7):
            runyard.log({"x": i})
    """, RUNYARD_SDK_FLUSH_TIMEOUT_S="1")
    assert res.returncode == 0, res.stderr
    (spooled,) = (runyard_home / "spool").iterdir()
    local_id = spooled.name
    assert local_id.startswith("local-")
    assert f"logging to run {local_id}" in res.stderr and "`runyard sync`" in res.stderr, res.stderr

    server = live_servers.start("offline", port=port)
    res = _cli(runyard_home, url, "sync", "--json")
    assert res.returncode == 0, res.stderr
    (result,) = json.loads(res.stdout)
    assert result["local_id"] == local_id and result["created"] is True and result["points"] == 7
    with Client(server.url) as c:
        run = _only_run(c, "offline")
        assert result["run_id"] == run["id"]
        assert (run["name"], run["status"], run["exit_code"]) == ("first", "succeeded", 0)
        assert run["params"] == {"lr": 0.1, "layers": 3} and run["tags"] == {"k": "v"}
        assert _steps(c, run["id"], "x") == list(range(7))
        again = json.loads(_cli(runyard_home, url, "sync", "--json").stdout)
        assert again == []
        assert len(c.list_runs(project="offline")["items"]) == 1


def test_a_run_started_with_the_server_down_is_created_when_it_comes_back(
        tmp_path: Path, runyard_home: Path, live_servers: LiveServers) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    go = tmp_path / "go"
    script = _script(tmp_path, f"""
        runyard.init(project="late")
        for i in range(5):
            runyard.log({{"x": i}})
        while not os.path.exists({str(go)!r}):
            time.sleep(0.05)
        for i in range(5, 9):
            runyard.log({{"x": i}})
    """)
    proc = subprocess.Popen([sys.executable, str(script)], env=_env(runyard_home, url), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        _wait(lambda: (runyard_home / "spool").exists() and any((runyard_home / "spool").iterdir()), 30,
              "the run's local spool")
        server = live_servers.start("late", port=port)
        with Client(server.url) as c:
            _wait(lambda: _runs(c, "late"), 30, "the process to create its run")
            go.touch()
            _, err = proc.communicate(timeout=60)
            run = _only_run(c, "late")
            local_id = err.split("logging to run ", 1)[1].split(",", 1)[0]
            assert f"run {local_id} is run {run['id']} " in err, err
            assert run["status"] == "succeeded"
            assert _steps(c, run["id"], "x") == list(range(9))
        assert not (runyard_home / "spool").exists() or not any((runyard_home / "spool").iterdir())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_the_server_away_for_a_minute_under_a_run_loses_nothing(
        tmp_path: Path, runyard_home: Path, live_servers: LiveServers) -> None:
    """A lost-run timeout shorter than the outage: a restarted server waits a timeout before judging runs."""
    server = live_servers.start("outage", env={"RUNYARD_LOST_RUN_TIMEOUT_S": str(max(2.0, OUTAGE_S / 3))})
    n = int((OUTAGE_S + 10) / 0.05)
    script = _script(tmp_path, f"""
        run = runyard.init(project="outage")
        for i in range({n}):
            runyard.log({{"x": i}})
            time.sleep(0.05)
    """)
    proc = subprocess.Popen([sys.executable, str(script)], env=_env(runyard_home, server.url, RUNYARD_SDK_HEARTBEAT_S="1",
                                                                   RUNYARD_SDK_FLUSH_TIMEOUT_S="120"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with Client(server.url) as c:
            _wait(lambda: _runs(c, "outage"), 30, "the run")
            time.sleep(2)
            server.kill()
            time.sleep(OUTAGE_S)
            server.start()
            _, err = proc.communicate(timeout=OUTAGE_S + 120)
            assert proc.returncode == 0, err
            run = _only_run(c, "outage")
            assert run["status"] == "succeeded", (run["status_message"], err)
            assert _steps(c, run["id"], "x") == list(range(n))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
