"""``runyard backends test NAME`` on an SSH backend against the real dev sshd (127.0.0.1:2222).

The CLI runs as a subprocess (``python -m runyard.cli``) with its own RUNYARD_HOME; the
backend is added with ``runyard backends add`` as an operator would. A failed check exits 1
and prints what failed, on which host, and the fix.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from ssh_helpers import DevSSHD, dev_sshd_session


@pytest.fixture(scope="session")
def dev_sshd() -> Iterator[DevSSHD]:
    yield from dev_sshd_session()


def runyard(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RUNYARD_HOME": str(home), "COLUMNS": "200"}
    env.pop("RUNYARD_SERVER", None)
    return subprocess.run([sys.executable, "-m", "runyard.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL, check=False)


def add_ssh_backend(home: Path, dev_sshd: DevSSHD, work: Path, **host: str) -> None:
    """``runyard backends add dev --type ssh --set hosts=[{...}]`` for the dev sshd, with ``host`` overriding options."""
    options = {k: str(v) for k, v in dev_sshd.host_options(work_dir=str(work)).items()} | host
    flow = ", ".join(f"{k}: {json.dumps(v) if k not in ('port', 'cpus') else v}" for k, v in options.items())
    res = runyard(home, "backends", "add", "dev", "--type", "ssh", "--set", f"hosts=[{{{flow}}}]")
    assert res.returncode == 0, res.stderr


def test_backends_test_passes_on_a_good_host(dev_sshd: DevSSHD, tmp_path: Path) -> None:
    home = tmp_path / "home"
    add_ssh_backend(home, dev_sshd, tmp_path / "work")
    res = runyard(home, "backends", "test", "dev")
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == ["ok   ssh connection", "ok   commands on the host",
                                                          "ok   work directory", "ok   python on the host",
                                                          "ok   runyard on the host"]
    assert lines[-1] == "Backend dev: all 5 checks passed."


def test_backends_test_reports_a_wrong_key(dev_sshd: DevSSHD, tmp_path: Path) -> None:
    home = tmp_path / "home"
    wrong = dev_sshd.dir / "host_key"  # a private key sshd does not accept for root
    add_ssh_backend(home, dev_sshd, tmp_path / "work", key_file=str(wrong))

    res = runyard(home, "backends", "test", "dev")

    assert res.returncode == 1, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith("FAIL ssh connection: ")
    assert f"root@127.0.0.1:{dev_sshd.port} refused the login with key {wrong}" in lines[0], lines[0]
    assert lines[1].startswith("      fix: ") and "authorized_keys" in lines[1]
    assert lines[-1] == "Backend dev: 1 check(s) failed: ssh connection."
    assert len(lines) == 3  # nothing else is tried without a connection
    assert res.stderr == ""

    res = runyard(home, "backends", "test", "dev", "--json")
    assert res.returncode == 1
    [check] = json.loads(res.stdout)
    assert (check["name"], check["ok"]) == ("ssh connection", False)
    assert str(wrong) in check["detail"] and "authorized_keys" in check["hint"]


def test_backends_test_reports_a_missing_python(dev_sshd: DevSSHD, tmp_path: Path) -> None:
    home = tmp_path / "home"
    add_ssh_backend(home, dev_sshd, tmp_path / "work", python="/nonexistent/python3")

    res = runyard(home, "backends", "test", "dev")

    assert res.returncode == 1, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert [line.split(":")[0] for line in lines if not line.startswith(" ")][:4] == [
        "ok   ssh connection", "ok   commands on the host", "ok   work directory", "FAIL python on the host"]
    fail = next(i for i, line in enumerate(lines) if line.startswith("FAIL"))
    assert f"`/nonexistent/python3` on root@127.0.0.1:{dev_sshd.port}: not found" in lines[fail], lines[fail]
    assert lines[fail + 1].startswith("      fix: ") and "set the host's python option" in lines[fail + 1]
    assert "runyard on the host" not in res.stdout  # nothing to import runyard with
    assert lines[-1] == "Backend dev: 1 check(s) failed: python on the host."

    checks = {c["name"]: c for c in json.loads(runyard(home, "backends", "test", "dev", "--json").stdout)}
    assert checks["python on the host"]["ok"] is False and "not found" in checks["python on the host"]["detail"]
    assert checks["ssh connection"]["ok"] is True


def test_backends_test_of_an_unknown_backend(tmp_path: Path) -> None:
    res = runyard(tmp_path / "home", "backends", "test", "dev")
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.startswith("Error: No backend named 'dev'. Configured backends: local.")
    assert "Hint: Add it with `runyard backends add dev --type TYPE`." in res.stderr
