"""The backend's side of the local agent: connect to it (starting or replacing it as needed), call it, stop it."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from runyard import _proc
from runyard.backends.local import _protocol
from runyard.backends.local._protocol import (
    agent_alive,
    agent_dir,
    dumps,
    loads,
    read_json,
)
from runyard.errors import BackendError, InvalidInput, SubmitError

__all__ = ["AGENT_MODULE", "AgentClient", "stop_agent"]

log = logging.getLogger("runyard.backends")

START_TIMEOUT_S = 30.0
AGENT_MODULE = "runyard.backends.local"  # `python -m runyard.backends.local agent --dir DIR` serves an agent

_children: dict[int, subprocess.Popen[bytes]] = {}  # agents this process started, kept to reap them


class AgentClient:
    """The backend's connection to the agent: starts it on demand, restarts it if it died.

    Thread-safe: calls are serialised on one connection.

    Args:
        directory: the agent directory (default ``$RUNYARD_HOME/agent``).
        start_timeout_s: how long to wait for a new agent to answer.
    """

    def __init__(self, directory: Path | None = None, *, start_timeout_s: float = START_TIMEOUT_S) -> None:
        self.dir = Path(directory) if directory is not None else agent_dir()
        self.start_timeout_s = start_timeout_s
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._reader: Any = None

    def call(self, op: str, *, timeout_s: float = 30.0, **args: Any) -> dict[str, Any]:
        """One request; reconnects (and restarts the agent) once if the connection broke.

        Raises:
            BackendError: the agent cannot be started or reached, or failed the request.
            SubmitError / InvalidInput: the agent refused the request.
        """
        payload = dumps({"op": op, **args}) + b"\n"
        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._sock is None:
                        self._connect()
                    assert self._sock is not None
                    self._sock.settimeout(timeout_s)
                    self._sock.sendall(payload)
                    line = self._reader.readline()
                    if not line:
                        raise ConnectionResetError("the agent closed the connection")
                    resp = loads(line)
                    break
                except TimeoutError as e:
                    self._drop()
                    raise BackendError(f"The local agent did not answer {op!r} within {timeout_s:g} s.",
                                       f"See {self.dir / 'agent.log'}; stop it with `kill {self.pid or 'PID'}` and retry.") from e
                except (OSError, ValueError) as e:
                    self._drop()
                    if attempt == 2:
                        raise BackendError(f"Lost the connection to the local agent during {op!r}: {e}.",
                                           f"See {self.dir / 'agent.log'}.") from e
                    log.info("agent connection lost (%s); reconnecting", e)
        if not resp.get("ok"):
            code = resp.get("code")
            cls = {"submit_error": SubmitError, "invalid_input": InvalidInput}.get(code, BackendError)
            raise cls(str(resp.get("message")), resp.get("hint"))
        return resp

    @property
    def pid(self) -> int | None:
        """The pid ``agent.json`` names (``None`` before an agent started)."""
        info = read_json(self.dir / "agent.json")
        return int(info["pid"]) if info and "pid" in info else None

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(OSError):
                self._reader.close()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        self._sock = self._reader = None

    def _exchange(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self._sock is not None
        self._sock.settimeout(10.0)
        self._sock.sendall(dumps(request) + b"\n")
        line = self._reader.readline()
        if not line:
            raise ConnectionResetError("the agent closed the connection")
        return loads(line)

    def _current(self) -> bool:
        """Whether the connected agent runs this code; ``False`` leaves the connection open
        only when the agent is idle and should be replaced."""
        try:
            info = self._exchange({"op": "ping"})
        except (OSError, ValueError):
            self._drop()
            return False
        if info.get("fingerprint") == _protocol.code_fingerprint():
            return True
        if info.get("n_active"):
            log.warning("the local agent (pid %s) runs other Runyard code (%s) but has active jobs; keeping it",
                        info.get("pid"), info.get("version"))
            return True
        log.info("replacing the idle local agent (pid %s): it runs other Runyard code", info.get("pid"))
        return False

    def _try_connect(self, info: dict[str, Any] | None) -> bool:
        if not info or not info.get("socket"):
            return False
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(info["socket"]))
        except OSError:
            sock.close()
            return False
        self._sock, self._reader = sock, sock.makefile("rb")
        return True

    def _connect(self) -> None:
        _reap()
        self.dir.mkdir(parents=True, exist_ok=True)
        if self._try_connect(read_json(self.dir / "agent.json")) and self._current():
            return
        with _proc.locked(self.dir / "start.lock"):
            if self._sock is None and self._try_connect(read_json(self.dir / "agent.json")) and self._current():
                return
            if self._sock is not None:  # an idle agent running other code: replace it
                self._exchange({"op": "shutdown"})
                self._drop()
                deadline = time.monotonic() + self.start_timeout_s
                while agent_alive(self.dir) and time.monotonic() < deadline:
                    time.sleep(0.02)
            proc = None if agent_alive(self.dir) else self._spawn()
            deadline = time.monotonic() + self.start_timeout_s
            while time.monotonic() < deadline:
                info = read_json(self.dir / "agent.json")
                if (proc is None or (info or {}).get("pid") == proc.pid) and self._try_connect(info):
                    return
                if proc is not None and proc.poll() is not None:
                    raise BackendError(f"The local agent exited with code {proc.returncode} while starting. "
                                       f"Last lines of {self.dir / 'agent.log'}:\n{_tail(self.dir / 'agent.log')}",
                                       f"Run it in the foreground to see why: `{sys.executable} -m {AGENT_MODULE} agent "
                                       f"--dir {self.dir}`.")
                time.sleep(0.01)  # only while an agent starts, once per agent
        raise BackendError(f"The local agent did not answer within {self.start_timeout_s:g} s. "
                           f"Last lines of {self.dir / 'agent.log'}:\n{_tail(self.dir / 'agent.log')}",
                           f"Stop it (`kill {self.pid or 'PID'}`) and retry.")

    def _spawn(self) -> subprocess.Popen[bytes]:
        from runyard.backends.kit import agent_environment

        with open(self.dir / "agent.log", "ab") as logf:
            proc = subprocess.Popen(
                [sys.executable, "-m", AGENT_MODULE, "agent", "--dir", str(self.dir)],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, cwd=self.dir,
                start_new_session=True,  # survives the server, its process group and its Ctrl-C
                env=agent_environment(),  # never the server's secrets: a job could read the agent's environ
            )
        _children[proc.pid] = proc
        return proc


def stop_agent(directory: Path | None = None, timeout_s: float = 30.0) -> bool:
    """Stop the agent serving ``directory`` by its pid: SIGTERM, SIGKILL after ``timeout_s``.

    Its tasks are stopped like cancels first. Returns whether an agent was running.
    """
    directory = Path(directory) if directory is not None else agent_dir()
    info = read_json(directory / "agent.json")
    if not agent_alive(directory) or not info or not info.get("pid"):
        _reap()
        return False
    pid = int(info["pid"])
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while agent_alive(directory) and time.monotonic() < deadline:
        time.sleep(0.05)
    if agent_alive(directory):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while agent_alive(directory) and time.monotonic() < deadline + 5:
            time.sleep(0.05)
    _reap(wait_pid=pid)
    return True


def _reap(wait_pid: int | None = None) -> None:
    for pid, proc in list(_children.items()):
        if pid == wait_pid:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        if proc.poll() is not None:
            del _children[pid]


def _tail(path: Path, n_lines: int = 20) -> str:
    try:
        text = path.read_bytes()[-8000:].decode(errors="replace")
    except OSError as e:
        return f"  (cannot read the log: {e})"
    return "\n".join("  " + ln for ln in text.strip().splitlines()[-n_lines:]) or "  (the log is empty)"
