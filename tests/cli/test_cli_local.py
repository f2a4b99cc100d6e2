"""The embedded local server: started on demand, reused, replaced when stale, stopped; and resolve_server's order."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from runyard import _local
from runyard.errors import InvalidInput, ServerUnreachable
from runyard.testing import free_port


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _state(home: Path) -> dict:
    return json.loads((home / "server.json").read_text())


@pytest.fixture
def started(runyard_home: Path) -> Iterator[list[int]]:
    """Pids of embedded servers a test started; all of them are stopped afterwards, by pid."""
    pids: list[int] = []
    yield pids
    state = runyard_home / "server.json"
    if state.exists():
        info = _state(runyard_home)
        pids += [info["pid"], info.get("supervisor_pid") or 0]
    _local.stop_server()
    for pid in pids:
        if pid and _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_started_on_demand_then_reused(cli, runyard_home: Path, started: list[int]) -> None:
    res = cli("projects")
    assert res.exit_code == 0, res.output
    info = _state(runyard_home)
    started.append(info["pid"])
    assert set(info) == {"url", "pid", "port", "started_at", "supervisor_pid", "restarts", "restarted_at"}
    started.append(info["supervisor_pid"])
    assert _alive(info["supervisor_pid"]) and (info["restarts"], info["restarted_at"]) == (0, None)
    assert info["url"] == f"http://127.0.0.1:{info['port']}"
    assert res.stderr == (f"Started the local Runyard server at {info['url']} (pid {info['pid']}); "
                          "stop it with `runyard server stop`.\n")
    assert "No projects yet" in res.stdout
    assert httpx.get(info["url"] + "/api/v1/health").json()["status"] == "ok"
    assert (runyard_home / "server.log").exists()

    res = cli("projects", "create", "demo")
    assert res.exit_code == 0, res.output
    assert res.stderr == ""  # reused: no second start message
    assert _state(runyard_home) == info
    assert [p["name"] for p in json.loads(cli("projects", "--json").stdout)] == ["demo"]


def test_stale_pid_is_replaced(cli, runyard_home: Path, started: list[int]) -> None:
    port = free_port()
    dead = _dead_pid()
    (runyard_home / "server.json").write_text(json.dumps(
        {"url": f"http://127.0.0.1:{port}", "pid": dead, "port": port, "started_at": time.time() - 60}))
    res = cli("projects")
    assert res.exit_code == 0, res.output
    info = _state(runyard_home)
    started.append(info["pid"])
    assert info["pid"] != dead and _alive(info["pid"])
    assert "Started the local Runyard server" in res.stderr


def test_a_recycled_pid_is_neither_trusted_nor_signalled(cli, runyard_home: Path, started: list[int]) -> None:
    # The record names a live process that is not a Runyard server (this test process).
    port = free_port()
    (runyard_home / "server.json").write_text(json.dumps(
        {"url": f"http://127.0.0.1:{port}", "pid": os.getpid(), "port": port, "started_at": time.time()}))
    res = cli("projects", "--json")
    assert res.exit_code == 0, res.output
    info = _state(runyard_home)
    started.append(info["pid"])
    assert info["pid"] != os.getpid()


def test_garbled_record_is_replaced(cli, runyard_home: Path, started: list[int]) -> None:
    (runyard_home / "server.json").write_text("{not json")
    res = cli("projects", "--json")
    assert res.exit_code == 0, res.output
    started.append(_state(runyard_home)["pid"])


def test_server_start_status_stop(cli, runyard_home: Path, started: list[int]) -> None:
    res = cli("server", "status")
    assert res.exit_code == 0
    assert "No local Runyard server is running" in res.stdout
    assert json.loads(cli("server", "status", "--json").stdout) == {"running": False, "runyard_server": None}

    res = cli("server", "start")
    assert res.exit_code == 0, res.output
    info = _state(runyard_home)
    started.append(info["pid"])
    assert res.stdout == info["url"] + "\n"
    res = cli("server", "start")
    assert res.stdout == info["url"] + "\n"
    assert f"already running (pid {info['pid']})" in res.stderr

    res = cli("server", "status")
    assert res.stdout.startswith(f"The local Runyard server is running at {info['url']} (pid {info['pid']}, up ")
    assert "database sqlite" in res.stdout
    data = json.loads(cli("server", "status", "--json").stdout)
    assert data["running"] is True and data["healthy"] is True and data["pid"] == info["pid"]
    assert data["health"]["database"] == "sqlite"

    res = cli("server", "stop")
    assert res.exit_code == 0
    assert res.stdout == f"Stopped the local Runyard server (pid {info['pid']}).\n"
    assert not _alive(info["pid"])
    assert not (runyard_home / "server.json").exists()
    assert cli("server", "stop").stdout == "No local Runyard server is running.\n"


def test_status_forgets_a_dead_server(runyard_home: Path) -> None:
    (runyard_home / "server.json").write_text(json.dumps(
        {"url": "http://127.0.0.1:9", "pid": _dead_pid(), "port": 9, "started_at": time.time()}))
    assert _local.server_status() is None
    assert not (runyard_home / "server.json").exists()
    assert _local.stop_server() is False


def test_concurrent_commands_start_one_server(runyard_home: Path, started: list[int]) -> None:
    cmd = [sys.executable, "-m", "runyard.cli", "projects", "--json"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [p.communicate(timeout=120) for p in procs]
    if (runyard_home / "server.json").exists():
        started.append(_state(runyard_home)["pid"])
    assert [p.returncode for p in procs] == [0, 0, 0], results
    assert all(json.loads(out) == [] for out, _ in results)
    starts = [err for _, err in results if "Started the local Runyard server" in err]
    assert len(starts) == 1, results
    assert f"(pid {_state(runyard_home)['pid']})" in starts[0]


def test_start_failure_shows_the_log_tail(cli, runyard_home: Path, started: list[int],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNYARD_DATABASE_URL", f"postgresql://nobody@127.0.0.1:{free_port()}/nothing")
    res = cli("projects")
    assert res.exit_code == 1
    assert "Traceback" not in res.stderr.split("Last lines of", 1)[0]
    assert res.stderr.startswith("Error: The local Runyard server exited with code ")
    assert f"Last lines of {runyard_home / 'server.log'}:" in res.stderr
    assert "127.0.0.1" in res.stderr  # the database error from the log tail
    assert "Hint: Fix the cause above, or run it in the foreground to see it: `runyard server --port " in res.stderr
    assert not (runyard_home / "server.json").exists()


def test_resolve_server_prefers_the_environment(runyard_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNYARD_SERVER", "https://runyard.example.org/")
    monkeypatch.setenv("RUNYARD_TOKEN", "tok")
    (runyard_home / "credentials").write_text(json.dumps({"url": "https://other", "token": "t2"}))
    assert _local.resolve_server() == ("https://runyard.example.org", "tok")
    monkeypatch.delenv("RUNYARD_TOKEN")
    assert _local.resolve_server() == ("https://runyard.example.org", None)
    assert not (runyard_home / "server.json").exists()


def test_resolve_server_reads_saved_credentials(runyard_home: Path) -> None:
    (runyard_home / "credentials").write_text(json.dumps({"url": "https://runyard.example.org", "token": "secret"}))
    assert _local.resolve_server() == ("https://runyard.example.org", "secret")
    assert not (runyard_home / "server.json").exists()


def test_unreadable_credentials_name_the_fix(runyard_home: Path) -> None:
    (runyard_home / "credentials").write_text('{"token": "s3cret"}')
    with pytest.raises(InvalidInput, match=r"credentials .* must be JSON") as e:
        _local.resolve_server()
    assert e.value.code == "invalid_input"
    assert "runyard login" in (e.value.hint or "")
    assert "s3cret" not in str(e.value)


def test_unreachable_server_error_names_the_fix(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("RUNYARD_SERVER", url)
    res = cli("ls")
    assert res.exit_code == 1
    assert res.stderr.startswith(f"Error: Cannot reach the Runyard server at {url}")
    assert f"Hint: Is it up? Try `curl {url}/api/v1/health`" in res.stderr
    assert "Traceback" not in res.output


def test_start_error_is_server_unreachable(runyard_home: Path, monkeypatch: pytest.MonkeyPatch,
                                           started: list[int]) -> None:
    monkeypatch.setenv("RUNYARD_DATABASE_URL", f"postgresql://nobody@127.0.0.1:{free_port()}/nothing")
    with pytest.raises(ServerUnreachable, match="exited with code") as e:
        _local.start_server()
    assert e.value.code == "unreachable"


def test_a_restarted_local_server_comes_back_on_its_port() -> None:
    """Runs keep reporting to the address in their launch, so a new server reuses it."""
    first = _local.start_server()
    try:
        _local.stop_server()
        second = _local.start_server()
        assert second["started"] and second["pid"] != first["pid"]
        assert second["port"] == first["port"]
    finally:
        _local.stop_server()
