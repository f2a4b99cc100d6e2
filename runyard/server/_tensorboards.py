"""The server's TensorBoard processes and the capabilities that reach them (``/tb/<cap>/``).

One TensorBoard per experiment, on 127.0.0.1 at a free port, over a directory this server owns
(under a temporary directory removed when the server stops): each run whose ``tensorboard/``
artifacts exist gets a subdirectory ``<run id>-<run name>`` with those files. A new request for
the same experiment compares the artifact listing (paths, sizes, digests) with what was
downloaded and fetches only new or changed files; TensorBoard reloads its logdir every few
seconds, so an open page shows them without a restart.

A process is stopped (by its own pid) when no proxied request reached it for ``idle_s``
(RUNYARD_TENSORBOARD_IDLE_S, default 600), when a new experiment needs a slot while
``max_boards`` (RUNYARD_TENSORBOARD_MAX, default 4) run (the least recently used one that had no
request for :data:`BUSY_S` goes; if every one is busy the request is refused), and when the
server stops. As a safety net for a server that is killed, each process also exits by itself
after twice ``idle_s`` without a request.

A capability is a random token (:func:`secrets.token_urlsafe`, 192 bits) kept in memory, bound
to one experiment and one caller (a user's id and name, or the local user), valid for
:data:`CAP_TTL_S` after its last use. It is lost when the server restarts: the UI and the CLI
ask for a new one.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from runyard._proc import killpg
from runyard.artifacts import ArtifactStorage
from runyard.errors import NotFound, RunyardError, ServiceUnavailable
from runyard.store import Store

__all__ = ["ARTIFACT_PREFIX", "BUSY_S", "CAP_TTL_S", "Board", "Capability", "TensorBoards"]

log = logging.getLogger("runyard.server.tensorboard")

ARTIFACT_PREFIX = "tensorboard/"
CAP_TTL_S = 12 * 3600.0
"""How long a capability stays valid after its last use."""
BUSY_S = 60.0
"""A process with a proxied request this recent is busy: it is not stopped to make room (TensorBoard's
page asks for new data every 30 s while it is open)."""
START_TIMEOUT_S = 60.0


def idle_setting() -> float:
    return _number("RUNYARD_TENSORBOARD_IDLE_S", "600", "seconds, e.g. RUNYARD_TENSORBOARD_IDLE_S=600")


def max_setting() -> int:
    n = int(_number("RUNYARD_TENSORBOARD_MAX", "4", "a whole number of processes, e.g. RUNYARD_TENSORBOARD_MAX=4"))
    if n < 1:
        raise RunyardError(f"RUNYARD_TENSORBOARD_MAX is {n}; it must be at least 1.", "Set RUNYARD_TENSORBOARD_MAX=4 (the default).")
    return n


def _number(name: str, default: str, example: str) -> float:
    raw = os.environ.get(name, default)
    try:
        value = float(raw)
    except ValueError:
        raise RunyardError(f"{name} is {raw!r}, which is not a number.", f"Set it to {example}.") from None
    if value <= 0:
        raise RunyardError(f"{name} is {raw!r}; it must be more than 0.", f"Set it to {example}.")
    return value


@dataclass
class Capability:
    """What a ``/tb/<cap>/`` path grants: one experiment's TensorBoard to one caller."""

    experiment_id: int
    kind: str  # "user" or "local"
    user_id: int | None
    username: str | None
    expires_at: float
    checked_at: float = 0.0


@dataclass
class Board:
    """One experiment's TensorBoard process."""

    experiment_id: int
    directory: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    last_used: float = field(default_factory=time.monotonic)
    files: dict[tuple[int, str], tuple[int, str]] = field(default_factory=dict)  # (run, path) -> (size, sha256)
    runs: set[int] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class TensorBoards:
    """The processes and capabilities of one server (``app.state.tensorboards``); thread safe."""

    def __init__(self, store: Store, artifacts: ArtifactStorage, *, idle_s: float | None = None,
                 max_boards: int | None = None) -> None:
        self.store = store
        self.artifacts = artifacts
        self.idle_s = idle_s if idle_s is not None else idle_setting()
        self.max_boards = max_boards if max_boards is not None else max_setting()
        self.root = Path(tempfile.mkdtemp(prefix="runyard-server-tensorboard-"))
        self.boards: dict[int, Board] = {}
        self.caps: dict[str, Capability] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reaper = threading.Thread(target=self._reap_loop, name="tensorboard-reaper", daemon=True)
        self._reaper.start()

    # ------------------------------------------------------------ capabilities
    def issue(self, experiment_id: int, kind: str, user_id: int | None, username: str | None) -> str:
        cap = secrets.token_urlsafe(24)
        with self._lock:
            now = time.time()
            self.caps = {k: c for k, c in self.caps.items() if c.expires_at > now}
            self.caps[cap] = Capability(experiment_id, kind, user_id, username, now + CAP_TTL_S)
        return cap

    def lookup(self, cap: str) -> Capability | None:
        """The capability (renewed), or None when unknown or expired."""
        with self._lock:
            found = self.caps.get(cap)
            now = time.time()
            if found is None:
                return None
            if found.expires_at <= now:
                del self.caps[cap]
                return None
            found.expires_at = now + CAP_TTL_S
            return found

    def revoke(self, cap: str) -> None:
        with self._lock:
            self.caps.pop(cap, None)

    # ------------------------------------------------------------ processes
    def open(self, experiment_id: int) -> tuple[Board, int, int]:
        """Start (or refresh) the experiment's TensorBoard: (board, runs with files, files)."""
        wanted = self._listing(experiment_id)
        if not wanted:
            raise NotFound(f"No run of experiment {experiment_id} kept TensorBoard event files.",
                           "Set `tensorboard: {logdir: logs/, serve: true}` in runyard.yml and run the experiment again.")
        with self._lock:
            board = self.boards.get(experiment_id)
            if board is None or board.proc is not None and not board.alive():  # none, or exited (proc None: starting)
                if board is not None:
                    self._forget(board)
                self._make_room()
                board = Board(experiment_id, self.root / f"experiment-{experiment_id}")
                self.boards[experiment_id] = board
            board.last_used = time.monotonic()
        with board.lock:
            self._download(board, wanted)
            if not board.alive():
                try:
                    self._start(board)
                except BaseException:
                    with self._lock:
                        if self.boards.get(experiment_id) is board:
                            self._forget(board)
                    raise
        return board, len(board.runs), len(board.files)

    def board_for(self, experiment_id: int) -> Board | None:
        """The running process of an experiment, marked as used now."""
        with self._lock:
            board = self.boards.get(experiment_id)
            if board is None or not board.alive():
                return None
            board.last_used = time.monotonic()
            return board

    def pids(self) -> list[int]:
        with self._lock:
            return [b.proc.pid for b in self.boards.values() if b.proc is not None and b.alive()]

    def close(self) -> None:
        """Stop every process and remove the downloaded files (the server stops)."""
        self._stop.set()
        with self._lock:
            for board in list(self.boards.values()):
                self._forget(board)
            self.caps.clear()
        shutil.rmtree(self.root, ignore_errors=True)

    # ------------------------------------------------------------ internals
    def _listing(self, experiment_id: int) -> dict[tuple[int, str], tuple[int, str, str]]:
        """(run id, path) -> (size, sha256, run folder) of every ``tensorboard/`` artifact of the experiment."""
        self.store.get_experiment(experiment_id)
        return {(run_id, art.path): (art.size, art.sha256, f"{run_id}-{_safe(name)}".rstrip("-"))
                for run_id, name, art in self.store.experiment_artifacts(experiment_id, ARTIFACT_PREFIX)}

    def summary(self, experiment_id: int) -> tuple[int, int, bool]:
        """(runs with files, files, whether its process runs) without starting anything."""
        found = self._listing(experiment_id)
        with self._lock:
            board = self.boards.get(experiment_id)
            running = board is not None and board.alive()
        return len({run for run, _ in found}), len(found), running

    def _download(self, board: Board, wanted: dict[tuple[int, str], tuple[int, str, str]]) -> None:
        for (run_id, path), (size, sha, folder) in sorted(wanted.items()):
            if board.files.get((run_id, path)) == (size, sha):
                continue
            base = (board.directory / folder).resolve()
            dest = (base / path[len(ARTIFACT_PREFIX):]).resolve()
            if base not in dest.parents:
                continue  # paths are cleaned on upload: nothing escapes, but never write outside
            dest.parent.mkdir(parents=True, exist_ok=True)
            part = dest.with_name(dest.name + ".part")
            try:
                with open(part, "wb") as out:
                    for chunk in self.artifacts.read_run_file(run_id, path):
                        out.write(chunk)
            except NotFound:
                part.unlink(missing_ok=True)
                continue
            # TensorBoard reads event files by name (*tfevents*): the .part never matches, the rename is atomic.
            os.replace(part, dest)
            board.files[(run_id, path)] = (size, sha)
            board.runs.add(run_id)

    def _start(self, board: Board) -> None:
        board.port = _free_port()
        safety = self.idle_s * 2  # the process's own idle exit: it outlives a killed server by at most this
        argv = [sys.executable, "-m", "runyard.server._tbserve", f"{safety:g}", "--logdir", str(board.directory),
                "--host", "127.0.0.1", "--port", str(board.port), "--reload_interval", "5"]
        board.directory.mkdir(parents=True, exist_ok=True)
        log_path = board.directory.parent / f"experiment-{board.experiment_id}.log"
        with open(log_path, "ab") as err:
            board.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                          start_new_session=True, env=_environment())
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if board.proc.poll() is not None:
                tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
                raise ServiceUnavailable(f"TensorBoard for experiment {board.experiment_id} exited with code "
                                         f"{board.proc.returncode}: {' / '.join(tail) or 'no message'}.",
                                         "Check that the server's Python has TensorBoard: pip install 'runyard[tensorboard]'.")
            if _answers(board.port):
                log.info("TensorBoard for experiment %s started (pid %s, port %s).", board.experiment_id,
                         board.proc.pid, board.port)
                board.last_used = time.monotonic()
                return
            time.sleep(0.1)
        raise ServiceUnavailable(f"TensorBoard for experiment {board.experiment_id} did not answer within "
                                 f"{START_TIMEOUT_S:g}s.", "Try again; the server's log says more.")

    def _make_room(self) -> None:
        """Called with the lock held: stop the least recently used process that is not busy, if all slots are taken."""
        live = [b for b in self.boards.values() if b.proc is None or b.alive()]  # starting ones count
        if len(live) < self.max_boards:
            return
        now = time.monotonic()
        idle = sorted((b for b in live if b.alive() and now - b.last_used >= BUSY_S), key=lambda b: b.last_used)
        if not idle:
            raise ServiceUnavailable(
                f"All {self.max_boards} TensorBoard processes of this server are in use (each had a request in the "
                f"last {BUSY_S:g} s).",
                "Close a TensorBoard tab you no longer need and try again in a minute, or ask the operator to raise "
                "RUNYARD_TENSORBOARD_MAX.")
        self._forget(idle[0])

    def _forget(self, board: Board) -> None:
        """Called with the lock held: stop the process (its own pid) and drop its files."""
        if self.boards.get(board.experiment_id) is board:
            del self.boards[board.experiment_id]
        _stop_process(board.proc)
        shutil.rmtree(board.directory, ignore_errors=True)
        board.files.clear()
        board.runs.clear()

    def _reap_loop(self) -> None:
        step = max(0.2, min(5.0, self.idle_s / 4))
        while not self._stop.wait(step):
            now = time.monotonic()
            with self._lock:
                for board in list(self.boards.values()):
                    if board.proc is None:
                        continue  # starting
                    if not board.alive() or now - board.last_used >= self.idle_s:
                        log.info("TensorBoard for experiment %s stopped: no request for %gs.", board.experiment_id,
                                 self.idle_s)
                        self._forget(board)


def _stop_process(proc: subprocess.Popen[bytes] | None) -> None:
    """Stop TensorBoard and its process group (its data server, when it starts one), by the pid we started."""
    if proc is None or proc.poll() is not None:
        return  # reaped: its pid (and group id) may belong to another process by now
    # Not reaped yet, so the group id (its pid: start_new_session) is still ours to signal.
    killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


_ENV_KEPT = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV")


def _environment() -> dict[str, str]:
    """What TensorBoard gets of the server's environment: no database URL, password, token or cloud credentials."""
    return {k: os.environ[k] for k in _ENV_KEPT if k in os.environ}


def _answers(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/data/environment")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name)[:80]
