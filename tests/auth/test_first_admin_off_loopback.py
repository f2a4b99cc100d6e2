"""A real server bound to 0.0.0.0 (reachable from other machines): sign-in is required and the
first admin is created at its first start (docs/operating.md, "First admin").

The tests only ever connect to 127.0.0.1; that the server listens on every interface is read
from its own listening socket (psutil). Each server is stopped by its pid.
"""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest
from auth_helpers import ADMIN_PW

from runyard.client import Client
from runyard.errors import Unauthorized
from runyard.testing import free_port, pid_alive, wait_for

V1 = "/api/v1"
_CLEARED = ("RUNYARD_AUTH", "RUNYARD_ADMIN_USERNAME", "RUNYARD_ADMIN_PASSWORD", "RUNYARD_SERVER", "RUNYARD_TOKEN",
            "RUNYARD_PUBLIC_URL")


@dataclass
class OpenServer:
    """``python -m runyard.server --host 0.0.0.0``; ``url`` is its 127.0.0.1 address."""

    proc: subprocess.Popen
    port: int
    log_path: Path
    terminal: int | None = None  # the pty master its stderr writes to, if any
    seen: bytearray = field(default_factory=bytearray)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def read_terminal(self, until: str, timeout_s: float = 10.0) -> str:
        """What the server wrote on its terminal so far, reading until ``until`` shows (or the timeout)."""
        assert self.terminal is not None
        deadline = time.monotonic() + timeout_s
        while until not in self.seen.decode(errors="replace") and time.monotonic() < deadline:
            ready, _, _ = select.select([self.terminal], [], [], 0.1)
            if ready:
                try:
                    self.seen += os.read(self.terminal, 65536)
                except OSError:  # the server closed its side
                    break
        return self.seen.decode(errors="replace")


@contextmanager
def serve_on_all_interfaces(home: Path, *, tty: bool = False, port: int | None = None, **env: str) -> Iterator[OpenServer]:
    home.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    full_env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    full_env.update({"RUNYARD_HOME": str(home), "RUNYARD_SCHEDULER": "0", **env})
    log_path = home / f"server-{port}.log"
    master = slave = None
    if tty:
        master, slave = os.openpty()
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "runyard.server", "--host", "0.0.0.0", "--port", str(port)],
                                env=full_env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=slave if slave is not None else subprocess.STDOUT, start_new_session=True)
    if slave is not None:
        os.close(slave)
    server = OpenServer(proc, port, log_path, master)
    try:
        def healthy() -> bool:
            assert proc.poll() is None, f"the server exited with {proc.returncode}: {log_path.read_text()[-2000:]}"
            try:
                return httpx.get(server.url + V1 + "/health", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(healthy, timeout_s=60, what="the server on 0.0.0.0 to answer on 127.0.0.1")
        yield server
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(5)
        assert not pid_alive(proc.pid)
        if master is not None:
            os.close(master)


def listening_addresses(pid: int, port: int) -> set[str]:
    return {c.laddr.ip for c in psutil.Process(pid).net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port}


def test_first_admin_from_the_environment_on_a_server_reachable_from_other_machines(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with serve_on_all_interfaces(home, RUNYARD_ADMIN_USERNAME="root", RUNYARD_ADMIN_PASSWORD=ADMIN_PW) as server:
        assert listening_addresses(server.proc.pid, server.port) == {"0.0.0.0"}
        # No RUNYARD_AUTH: sign-in is required, there is no single-user local mode.
        anon = httpx.get(server.url + V1 + "/projects", timeout=10)
        assert anon.status_code == 401 and "runyard login" in anon.json()["hint"]
        assert httpx.get(server.url + V1 + "/me", timeout=10).status_code == 401
        with Client(server.url) as c:
            with pytest.raises(Unauthorized):
                c.login("admin", ADMIN_PW)  # the first admin is named by RUNYARD_ADMIN_USERNAME
            answer = c.login("root", ADMIN_PW)
            assert answer["user"]["is_admin"] is True
            assert c.me()["mode"] == "auth"
            assert [u["username"] for u in c.list_users()] == ["root"]
            created = c.audit(action="user.create")
        assert [(e["actor"], e["target"], e["detail"]) for e in created] == [
            ("server", "root", {"is_admin": True, "first_admin": True})]
        assert not (home / "initial-admin-password").exists()  # the password came from the environment
        log = server.log_path.read_text()
        assert "Created the first admin 'root' with the password from RUNYARD_ADMIN_PASSWORD" in log
        assert ADMIN_PW not in log
    # A restart with another password in the environment changes nothing: the admin exists.
    with (serve_on_all_interfaces(home, RUNYARD_ADMIN_USERNAME="root", RUNYARD_ADMIN_PASSWORD="other-pw-12345") as server,
          Client(server.url) as c):
        with pytest.raises(Unauthorized):
            c.login("root", "other-pw-12345")
        c.login("root", ADMIN_PW)
        assert [u["username"] for u in c.list_users()] == ["root"]


def test_generated_first_admin_password_is_shown_once_on_the_terminal(tmp_path: Path) -> None:
    home = tmp_path / "home"
    # RUNYARD_AUTH=auto (the loopback default) does not give local mode off loopback either.
    with serve_on_all_interfaces(home, tty=True, RUNYARD_AUTH="auto") as server:
        assert listening_addresses(server.proc.pid, server.port) == {"0.0.0.0"}
        shown = server.read_terminal(until="(shown once;")
        found = re.findall(r"First admin: admin  password: (\S+)  \(shown once; also in (\S+)\)", shown)
        assert len(found) == 1, shown
        password, path = found[0]
        secret_file = home / "initial-admin-password"
        assert path == str(secret_file)
        assert secret_file.read_text() == password + "\n" and stat.S_IMODE(secret_file.stat().st_mode) == 0o600
        assert len(password) >= 16
        assert httpx.get(server.url + V1 + "/projects", timeout=10).status_code == 401
        with Client(server.url) as c:
            with pytest.raises(Unauthorized):
                c.login("admin", "")
            assert c.login("admin", password)["user"]["is_admin"] is True
    # Restarted (on a terminal again): no new admin, no password shown, the same one still works.
    with serve_on_all_interfaces(home, tty=True) as server:
        with Client(server.url) as c:
            c.login("admin", password)
            assert [u["username"] for u in c.list_users()] == ["admin"]
        assert "First admin" not in server.read_terminal(until="First admin", timeout_s=2)
    assert secret_file.read_text() == password + "\n"


def test_server_on_all_interfaces_refuses_to_start_without_sign_in(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    env.update({"RUNYARD_HOME": str(tmp_path / "home"), "RUNYARD_AUTH": "off", "RUNYARD_SCHEDULER": "0"})
    proc = subprocess.run([sys.executable, "-m", "runyard.server", "--host", "0.0.0.0", "--port", str(port)], env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "Refusing to serve on 0.0.0.0 without sign-in (RUNYARD_AUTH=off)" in proc.stderr
    assert "set RUNYARD_ADMIN_PASSWORD for the first admin" in proc.stderr
    with socket.socket() as s:  # it never listened
        assert s.connect_ex(("127.0.0.1", port)) != 0
    assert not (tmp_path / "home" / "initial-admin-password").exists()
