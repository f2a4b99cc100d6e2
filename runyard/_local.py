"""Which server the CLI and SDK talk to, and the embedded local server started on demand.

:func:`resolve_server` picks, in order:

1. ``RUNYARD_SERVER`` from the environment, with ``RUNYARD_TOKEN``, or else the
   token saved by ``runyard login`` for that same URL;
2. the credentials saved by ``runyard login`` in ``$RUNYARD_HOME/credentials``
   (JSON ``{"url", "token"}``, mode 0600); ``RUNYARD_TOKEN`` overrides its token;
3. the embedded server: ``python -m runyard.server`` on 127.0.0.1, started in the
   background the first time a command needs it and reused afterwards.

The embedded server is recorded in ``$RUNYARD_HOME/server.json``
(``{"url", "pid", "port", "started_at", "supervisor_pid", "restarts", "restarted_at"}``)
and logs to ``$RUNYARD_HOME/server.log``.
A record is reused only when its pid is alive, is a Runyard server, and
``GET /api/v1/health`` answers; anything else (no file, a dead or recycled pid, a
hung server) starts a new one. An exclusive ``flock`` on ``$RUNYARD_HOME/server.lock``
makes concurrent commands start exactly one server.

Supervision: whoever starts the server also starts a small supervisor process
(``python -m runyard._local supervise``, recorded as ``supervisor_pid``) that polls
the server's pid and, when the server dies, starts it again (backoff 0.5 s doubling to
30 s while it keeps dying within 30 s), on the same port: the port is kept in
``$RUNYARD_HOME/server.last-port`` and probed with ``SO_REUSEADDR`` (as the server binds
it), so sockets of the dead server left in TIME_WAIT do not push it to another port.
``restarts`` and ``restarted_at`` count the supervisor's restarts. :func:`stop_server`
stops the supervisor first, then the server.

Runs started by the local server carry ``RUNYARD_LOCAL_HOME`` (the server's home) in
their environment: when their server does not answer, the SDK's sender reads the current
address from ``server.json`` there (:func:`local_server_url`) before buffering.

Keep imports light: this module runs before every CLI command and SDK call.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runyard import _proc, config
from runyard.errors import InvalidInput, ServerUnreachable

__all__ = ["LOCAL_HOME_ENV", "follow_local_server", "forget_credentials", "last_port", "local_server_url",
           "resolve_server", "save_credentials", "server_status", "start_server", "stop_server", "supervise"]

HOST = "127.0.0.1"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
HEALTH_TIMEOUT_S = 2.0
_MODULE = "runyard.server"
_SUPERVISOR = "runyard._local"
LOCAL_HOME_ENV = "RUNYARD_LOCAL_HOME"  # set for the embedded server and inherited by the runs it launches
RESTART_MIN_S = 0.5
RESTART_MAX_S = 30.0
STABLE_S = 30.0  # a server that lived this long resets the restart backoff
WATCH_EVERY_S = 0.25

# Servers this process started, by pid. Popen keeps the child reapable: without it a
# server stopped by this same process (tests, `runyard server start` then `stop` in
# one interpreter) would linger as a zombie whose pid still looks alive.
_children: dict[int, subprocess.Popen[bytes]] = {}


# --------------------------------------------------------------------------- paths
def _state_path() -> Path:
    return config.home() / "server.json"


def _lock_path() -> Path:
    return config.home() / "server.lock"


def _log_path() -> Path:
    return config.home() / "server.log"


def _credentials_path() -> Path:
    return config.home() / "credentials"


# ------------------------------------------------------------------ public API
def resolve_server() -> tuple[str, str | None]:
    """The (url, token) of the server to use, starting the embedded one if needed.

    Returns:
        ``(url, token)``; ``token`` is ``None`` for the embedded server.

    Raises:
        InvalidInput: ``$RUNYARD_HOME/credentials`` exists but is unreadable.
        ServerUnreachable: the embedded server did not start (the message holds its log tail).
    """
    url = os.environ.get("RUNYARD_SERVER")
    env_token = os.environ.get("RUNYARD_TOKEN") or None
    if url:
        url = url.rstrip("/")
        if env_token:
            return url, env_token
        creds = _read_credentials()
        return url, creds[1] if creds is not None and creds[0] == url else None
    creds = _read_credentials()
    if creds is not None:
        return creds[0], env_token or creds[1]
    return start_server()["url"], env_token


def start_server(*, supervise: bool = False) -> dict[str, Any]:
    """Return the running embedded server, starting one (with its supervisor) if none answers.

    Args:
        supervise: also start a supervisor for a running server that has none (``runyard server start``).

    Safe to call from concurrent processes: only one of them starts a server, the
    others wait on the lock and reuse it. Prints one line to stderr when it starts one.

    Returns:
        ``{"url", "pid", "port", "started_at", "supervisor_pid", "restarts", "restarted_at", "started"}``;
        ``started`` tells whether this call started it.
    """
    info = _read_state()
    if info is not None and _is_up(info) and (not supervise or _is_supervisor(info["supervisor_pid"])):
        return {**info, "started": False}
    with _locked():
        info = _read_state()  # another process may have started it while we waited
        if info is not None and _is_up(info):
            if supervise and not _is_supervisor(info["supervisor_pid"]):
                info = {**info, "supervisor_pid": _spawn_supervisor()}  # e.g. a server of an older Runyard
                _write_state(info)
            return {**info, "started": False}
        supervisor = info["supervisor_pid"] if info is not None and _is_supervisor(info["supervisor_pid"]) else None
        counts = (info["restarts"], info["restarted_at"]) if info is not None and supervisor else (0, None)
        if info is not None:
            # A hung server that still holds its pid would keep the port and the database busy.
            _terminate(info)
            _state_path().unlink(missing_ok=True)
        # A live supervisor (waiting out its backoff) goes on watching the new server.
        info = {**_spawn(), "supervisor_pid": supervisor, "restarts": counts[0], "restarted_at": counts[1]}
        if supervisor is None:
            info["supervisor_pid"] = _spawn_supervisor()
        _write_state(info)
    print(
        f"Started the local Runyard server at {info['url']} (pid {info['pid']}); "
        "stop it with `runyard server stop`.",
        file=sys.stderr,
        flush=True,
    )
    return {**info, "started": True}


def server_status() -> dict[str, Any] | None:
    """The embedded server's record and health, or ``None`` when none is running.

    Returns:
        The record plus ``supervised`` (its supervisor runs), ``healthy`` (whether
        ``/api/v1/health`` answered), ``health`` (its answer, or ``None``) and ``restarting``
        (the server is dead and its supervisor starts it again). A record whose server
        and supervisor are both gone is deleted and reported as ``None``.
    """
    info = _read_state()
    if info is None:
        return None
    supervised = _is_supervisor(info["supervisor_pid"])
    if not _is_runyard_server(info["pid"]):
        if supervised:  # dead, and its supervisor is about to start it again
            return {**info, "supervised": True, "healthy": False, "health": None, "restarting": True}
        with _locked():
            if _read_state() == info:
                _state_path().unlink(missing_ok=True)
        return None
    health = _health(info["url"])
    return {**info, "supervised": supervised, "healthy": health is not None, "health": health, "restarting": False}


def stop_server() -> bool:
    """Stop the embedded server's supervisor, then the server: SIGTERM, then SIGKILL after 10 s; remove ``server.json``.

    Returns:
        ``True`` if a server or supervisor process was stopped, ``False`` if none was running.
    """
    with _locked():
        info = _read_state()
        if info is None:
            return False
        stopped = _terminate_supervisor(info["supervisor_pid"])
        stopped = _terminate(info) or stopped
        _state_path().unlink(missing_ok=True)
    return stopped


# ---------------------------------------------------------------- credentials
def save_credentials(url: str, token: str) -> Path:
    """Save the server and token ``runyard login`` got, readable by this account only (0600)."""
    path = _credentials_path()
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"url": url.rstrip("/"), "token": token}, f)
    os.chmod(tmp, 0o600)  # an existing tmp file kept its old mode
    tmp.replace(path)
    return path


def saved_credentials() -> tuple[str, str | None] | None:
    """The (url, token) saved by ``runyard login``, or None."""
    return _read_credentials()


def forget_credentials() -> bool:
    """Remove the saved credentials; False if there were none."""
    try:
        _credentials_path().unlink()
    except FileNotFoundError:
        return False
    return True


def _read_credentials() -> tuple[str, str | None] | None:
    path = _credentials_path()
    try:
        raw = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise InvalidInput(f"Cannot read the saved credentials {path}: {e}.",
                           "Fix its permissions, or remove it and run `runyard login` again.") from e
    try:
        data = json.loads(raw)
        url, token = data["url"], data.get("token")
        if not isinstance(url, str) or not url or not (token is None or isinstance(token, str)):
            raise TypeError("url must be a non-empty string and token a string")
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise InvalidInput(
            f"The saved credentials {path} must be JSON {{\"url\": ..., \"token\": ...}}, but it could not be read ({e}).",
            f"Remove {path} and run `runyard login` again, or set RUNYARD_SERVER.",
        ) from e
    return url.rstrip("/"), token or None


# ---------------------------------------------------------------------- state
def _read_state() -> dict[str, Any] | None:
    try:
        data = json.loads(_state_path().read_text())
        info = {"url": str(data["url"]), "pid": int(data["pid"]), "port": int(data["port"]),
                "started_at": float(data["started_at"]),
                "supervisor_pid": int(data["supervisor_pid"]) if data.get("supervisor_pid") else None,
                "restarts": int(data.get("restarts") or 0),
                "restarted_at": float(data["restarted_at"]) if data.get("restarted_at") else None}
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, AttributeError):
        # A torn or hand-edited record cannot name a server we could trust; treat it as absent.
        return None
    return info


def _write_state(info: dict[str, Any]) -> None:
    path = _state_path()
    tmp = path.with_name(f".server.json.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(info, indent=2) + "\n")
    os.replace(tmp, path)  # atomic: readers see the old record or the new one, never half


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    with _proc.locked(_lock_path()):
        yield


# ------------------------------------------------------------------ processes
def _pid_alive(pid: int) -> bool:
    """Running (a zombie is not); a child of this process is reaped on the way."""
    proc = _children.get(pid)
    if proc is not None:
        return proc.poll() is None
    return _proc.pid_alive(pid)


def _is_runyard_server(pid: int) -> bool:
    """Alive and running ``runyard.server``: a recycled pid must never be reused or signalled."""
    if pid <= 0 or not _pid_alive(pid):
        return False
    return _MODULE in (_proc.cmdline(pid) or [])


def _health(url: str) -> dict[str, Any] | None:
    from runyard._http import Session, TransportError

    try:
        with Session(url + "/api/v1", timeout_s=HEALTH_TIMEOUT_S) as http:
            resp = http.request("GET", "/health")
    except TransportError:
        return None
    if resp.status_code != 200:
        return None
    try:
        return resp.json()
    except ValueError:
        return None


def _is_up(info: dict[str, Any]) -> bool:
    return _is_runyard_server(info["pid"]) and _health(info["url"]) is not None


def _terminate(info: dict[str, Any]) -> bool:
    """SIGTERM the recorded server, SIGKILL it after ``STOP_TIMEOUT_S``; ``False`` if it was not running."""
    pid = info["pid"]
    if not _is_runyard_server(pid):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not _wait_gone(pid, STOP_TIMEOUT_S):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, 5.0)
    _children.pop(pid, None)
    return True


def _gone(pid: int) -> bool:
    """The process has exited (a zombie counts as exited).

    Not :func:`_is_runyard_server`: an exiting process already shows an empty command
    line while it still holds its port and files.
    """
    return not _pid_alive(pid)


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        time.sleep(0.05)
    return _gone(pid)


def _free_port() -> int:
    """The port the previous local server had, if it is free, else any free port.

    Reusing the port matters: runs started by an earlier server keep reporting to
    the address in their launch, so a restarted server must come back there.
    """
    last = _last_port_path()
    if last.exists():
        try:
            port = int(last.read_text().strip())
            with socket.socket() as s:
                # As the server binds it: sockets of a killed server in TIME_WAIT must not make the
                # port look taken (without this a restarted server came back on another port).
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((HOST, port))
            return port
        except (ValueError, OSError):
            pass
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def last_port() -> int | None:
    """The port the local server last listened on (``server.last-port``), or None."""
    try:
        return int(_last_port_path().read_text().strip())
    except (OSError, ValueError):
        return None


def _last_port_path() -> Path:
    return config.home() / "server.last-port"


def _spawn() -> dict[str, Any]:
    """Start ``python -m runyard.server`` detached and wait until it answers. Call with the lock held."""
    home = config.home()
    log_path = _log_path()
    env = {**os.environ, "RUNYARD_HOME": str(home), LOCAL_HOME_ENV: str(home)}
    env.pop("RUNYARD_SERVER", None)
    # The free port can be taken between our probe and the server's bind; try a few.
    n_attempts = 3
    for attempt in range(1, n_attempts + 1):
        if attempt > 1:
            _last_port_path().unlink(missing_ok=True)  # lost the race for it: take any free port now
        port = _free_port()
        url = f"http://{HOST}:{port}"
        log_start = log_path.stat().st_size if log_path.exists() else 0
        with open(log_path, "ab") as log:
            log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting the local server on {url}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                [sys.executable, "-m", _MODULE, "--host", HOST, "--port", str(port)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=env, cwd=home, start_new_session=True,  # survives the CLI and its Ctrl-C
            )
        _children[proc.pid] = proc
        started_at = time.time()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            if _health(url) is not None:
                _last_port_path().write_text(f"{port}\n")
                return {"url": url, "pid": proc.pid, "port": port, "started_at": started_at}
            time.sleep(0.05)
        tail = _tail(log_path, log_start)
        if proc.poll() is None:
            _terminate({"pid": proc.pid})
            proc.wait(5)
            _children.pop(proc.pid, None)
            raise ServerUnreachable(
                f"The local Runyard server did not answer within {START_TIMEOUT_S:.0f} s at {url}. "
                f"Last lines of {log_path}:\n{tail}",
                f"Run it in the foreground to see why: `runyard server --port {port}`.",
            )
        _children.pop(proc.pid, None)
        if attempt < n_attempts and "address already in use" in tail.lower():
            continue
        raise ServerUnreachable(
            f"The local Runyard server exited with code {proc.returncode} while starting. "
            f"Last lines of {log_path}:\n{tail}",
            f"Fix the cause above, or run it in the foreground to see it: `runyard server --port {port}`.",
        )
    raise AssertionError("unreachable")  # pragma: no cover


def local_server_url(home: str | os.PathLike[str] | None = None) -> str | None:
    """The URL ``server.json`` of ``home`` (default ``$RUNYARD_HOME``) names now, or None; never starts anything.

    For a sender whose server stopped answering: a restarted local server may be elsewhere.
    """
    path = Path(home) / "server.json" if home is not None else _state_path()
    try:
        url = json.loads(path.read_text())["url"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return url if isinstance(url, str) and url else None


def follow_local_server(client: Any, home: str | os.PathLike[str] | None = None) -> str | None:
    """Point ``client`` at the embedded server's current address if it moved; the new URL, or None.

    Only for a client of the embedded server (an ``http://127.0.0.1:`` URL) whose home is
    known: ``home``, else ``$RUNYARD_LOCAL_HOME`` (set for the local server and inherited by
    the agent, runners and runs it launches). ``client`` needs ``base_url`` and ``retarget(url)``
    (``runyard.client.Client``).
    """
    home = home or os.environ.get(LOCAL_HOME_ENV)
    base = getattr(client, "base_url", "")
    retarget = getattr(client, "retarget", None)
    if not home or retarget is None or not base.startswith(f"http://{HOST}:"):
        return None
    url = local_server_url(home)
    if url is None or url == base:
        return None
    retarget(url)
    return url


# ----------------------------------------------------------------- supervisor
def _is_supervisor(pid: int | None) -> bool:
    if not pid or not _pid_alive(pid):
        return False
    cmd = _proc.cmdline(pid) or []
    return _SUPERVISOR in cmd and "supervise" in cmd


def _spawn_supervisor() -> int:
    """Start the detached supervisor of the server in ``server.json``. Call with the lock held."""
    home = config.home()
    env = {**os.environ, "RUNYARD_HOME": str(home)}
    env.pop("RUNYARD_SERVER", None)
    with open(_log_path(), "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", _SUPERVISOR, "supervise"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=env, cwd=home, start_new_session=True,
        )
    _children[proc.pid] = proc
    return proc.pid


def _terminate_supervisor(pid: int | None) -> bool:
    if pid is None or not _is_supervisor(pid):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)  # its default action: it holds nothing but this loop
    if not _wait_gone(pid, 5.0):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, 5.0)
    _children.pop(pid, None)
    return True


def _log(message: str) -> None:
    with contextlib.suppress(OSError), open(_log_path(), "a") as f:
        f.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} supervisor (pid {os.getpid()}): {message}\n")


def supervise() -> None:
    """The supervisor's loop: restart the server of ``server.json`` whenever it dies; end when the record is gone
    or names another supervisor (``runyard server stop`` SIGTERMs it first)."""
    me = os.getpid()
    home = config.home()
    backoff = RESTART_MIN_S
    while True:
        if not home.is_dir():
            return  # the home was deleted (a test's temporary home): nothing left to supervise
        info = _read_state()
        if info is None or info["supervisor_pid"] != me:
            with _locked():  # a command may be replacing the record right now (under the lock): look again
                info = _read_state()
            if info is None or info["supervisor_pid"] != me:
                return
        if _is_runyard_server(info["pid"]):
            time.sleep(WATCH_EVERY_S)
            continue
        died_at = time.time()
        lived = died_at - (info["restarted_at"] or info["started_at"])
        if lived >= STABLE_S:
            backoff = RESTART_MIN_S
        _log(f"the server (pid {info['pid']}) is gone after {lived:.0f} s; restarting it in {backoff:g} s")
        time.sleep(backoff)
        backoff = min(backoff * 2, RESTART_MAX_S)
        with _locked():
            info = _read_state()
            if info is None or info["supervisor_pid"] != me:
                return
            if _is_runyard_server(info["pid"]):
                continue  # a command started it meanwhile
            try:
                new = _spawn()
            except ServerUnreachable as e:
                _log(f"restart failed: {e.message}")
                continue
            _write_state({**new, "started_at": info["started_at"], "supervisor_pid": me,
                          "restarts": info["restarts"] + 1, "restarted_at": new["started_at"]})
        _log(f"restarted the server at {new['url']} (pid {new['pid']})")


def _tail(path: Path, start: int, n_lines: int = 20) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(start)
            text = f.read().decode(errors="replace")
    except OSError as e:
        return f"(cannot read the log: {e})"
    lines = text.strip().splitlines()[-n_lines:]
    return "\n".join("  " + ln for ln in lines) or "  (the log is empty)"


if __name__ == "__main__" and sys.argv[1:] == ["supervise"]:
    supervise()
