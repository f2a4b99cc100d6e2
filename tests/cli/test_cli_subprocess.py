"""The CLI as users start it: the console script and ``python -m runyard.cli``, in fresh processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

RUNYARD = Path(sys.executable).with_name("runyard")


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=False, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_console_script_help() -> None:
    res = _run(str(RUNYARD), "--help")
    assert res.returncode == 0, res.stderr
    for command in ("projects", "experiments", "ls", "status", "info", "logs", "cancel", "download", "server", "db"):
        assert command in res.stdout


def test_version() -> None:
    from runyard import __version__

    res = _run(sys.executable, "-m", "runyard.cli", "--version")
    assert res.stdout == f"runyard {__version__}\n"


def test_json_and_errors_through_the_console_script(seed) -> None:
    env = {"RUNYARD_SERVER": os.environ["RUNYARD_SERVER"]}
    res = _run(str(RUNYARD), "ls", "--json", env=env)
    assert res.returncode == 0, res.stderr
    assert {r["id"] for r in json.loads(res.stdout)["items"]} == {seed.done, seed.active}

    res = _run(sys.executable, "-m", "runyard.cli", "info", str(seed.done), "--json", env=env)
    assert json.loads(res.stdout)["name"] == "baseline"

    res = _run(str(RUNYARD), "info", "999", env=env)
    assert res.returncode == 1
    assert res.stdout == ""
    assert res.stderr == "Error: No run with id 999.\nHint: List runs with `runyard ls`.\n"


@pytest.mark.parametrize("args", [["nosuchcommand"], ["ls", "--limit", "0"], ["info"], ["info", "abc"]])
def test_usage_errors_exit_2(args: list[str]) -> None:
    res = _run(str(RUNYARD), *args)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    assert "Usage: runyard" in res.stderr


def test_importing_the_cli_stays_light() -> None:
    code = ("import sys, runyard.cli; "
            "print(sorted(m for m in ('httpx', 'sqlalchemy', 'uvicorn', 'fastapi', 'alembic', 'psutil', "
            "'runyard.server', 'runyard.store', 'runyard.client', 'rich.table', 'rich.progress') if m in sys.modules))")
    res = _run(sys.executable, "-c", code)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_server_runs_in_the_foreground(tmp_path: Path) -> None:
    import signal
    import socket

    import httpx

    from runyard.testing import free_port, wait_for

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "RUNYARD_HOME": str(tmp_path / "home"), "RUNYARD_SCHEDULER": "0"}
    proc = subprocess.Popen([str(RUNYARD), "server", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        def answers() -> bool:
            assert proc.poll() is None, proc.communicate()
            try:
                return httpx.get(url + "/api/v1/health", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(answers, 60, "the foreground server to answer")
        # A second server on the same port fails at once, naming the fix.
        res = _run(str(RUNYARD), "server", "--port", str(port), env=env)
        assert res.returncode == 1
        assert res.stderr.startswith(f"Error: Cannot listen on 127.0.0.1:{port}: ")
        assert f"Hint: Is a server already running there? Try `curl {url}/api/v1/health`" in res.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    # Uvicorn shuts down gracefully, then re-raises the SIGTERM it caught.
    assert proc.returncode in (0, -signal.SIGTERM), err
    assert err.startswith(f"Serving Runyard on {url} (Ctrl-C stops it).")
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0  # stopped
