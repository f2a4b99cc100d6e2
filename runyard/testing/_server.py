"""A real Runyard server in a subprocess, on 127.0.0.1, stopped by its own pid."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from runyard._http import Session, TransportError

__all__ = ["LiveServer", "free_port"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """``runyard server`` as a child process.

    Args:
        home: its RUNYARD_HOME.
        database_url: RUNYARD_DATABASE_URL (default: SQLite in ``home``).
        port: fixed port, so a restarted server keeps its address.
        env: extra environment.
        python: the interpreter to run it with (default: this one's).
        user: the account to run it as (this process must be root; ``home`` should be that account's).
    """

    def __init__(self, home: Path, *, database_url: str | None = None, port: int | None = None,
                 env: dict[str, str] | None = None, python: str | None = None, user: str | None = None) -> None:
        self.home = Path(home)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # A test's server starts the local agent when a run needs it, not with itself: most tests run none.
        self.env = {**os.environ, "RUNYARD_HOME": str(self.home), "RUNYARD_WARM_AGENT": "0", **(env or {})}
        self.env.pop("RUNYARD_SERVER", None)
        if database_url:
            self.env["RUNYARD_DATABASE_URL"] = database_url
        self.python = python or sys.executable
        self.user = user
        self.proc: subprocess.Popen | None = None
        self.log_path = self.home / f"server-{self.port}.log"

    def start(self, timeout_s: float = 30.0) -> LiveServer:
        self.home.mkdir(parents=True, exist_ok=True)
        as_user: dict[str, object] = {}
        if self.user is not None:
            import pwd

            entry = pwd.getpwnam(self.user)
            as_user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": [], "cwd": str(self.home)}
        with open(self.log_path, "ab") as log:  # the server keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [self.python, "-m", "runyard.server", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **as_user,  # type: ignore[call-overload]
            )
        deadline = time.monotonic() + timeout_s
        with Session(self.url + "/api/v1", timeout_s=1) as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_path.read_text()[-3000:]}")
                try:
                    if http.request("GET", "/health").status_code == 200:
                        return self
                except TransportError:
                    time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not answer within {timeout_s}s:\n{self.log_path.read_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def kill(self) -> None:
        """SIGKILL: the server gets no chance to clean up (crash tests)."""
        self.stop(signal.SIGKILL)

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
