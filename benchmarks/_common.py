"""Shared plumbing for the benchmarks: ports, child processes stopped by their pid,
the peers' virtualenv, tables, ratios and the ``--json`` output.

Every server a benchmark starts listens on 127.0.0.1 on a free port, runs in its
own process group, and is stopped through that group (SIGTERM, then SIGKILL) in a
``finally`` — also on Ctrl-C and on errors.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runyard._http import Session, TransportError

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(__file__).resolve().parent
PEER_SCRIPT = BENCH_DIR / "_mlflow_peer.py"


# ---------------------------------------------------------------------- processes
def stop_on_sigterm() -> None:
    """Turn SIGTERM (and SIGHUP) into KeyboardInterrupt, so ``finally`` blocks stop our servers."""
    def handler(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peers_venv() -> Path:
    """The peers' own virtualenv (env PEERS_VENV, default ``.venv-peers`` at the repo root)."""
    raw = os.environ.get("PEERS_VENV") or str(ROOT / ".venv-peers")
    path = Path(raw)
    return path if path.is_absolute() else (ROOT / path)


def peers_python() -> Path:
    py = peers_venv() / "bin" / "python"
    if not py.exists():
        raise SystemExit(f"No peers virtualenv at {peers_venv()}: run `bash benchmarks/setup_peers.sh` first (or set PEERS_VENV).")
    return py


class Child:
    """A child process in its own session/process group, stopped by its pid's group.

    Servers such as ``mlflow server`` fork workers; signalling the group we created
    (whose id is our child's pid) stops exactly those and nothing else.
    """

    def __init__(self, argv: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
                 log_path: Path | None = None) -> None:
        self.argv = list(argv)
        self.env = env
        self.cwd = cwd
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.spawned_at = 0.0  # perf_counter() at the spawn
        self.up_s: float | None = None  # spawn → first healthy answer (runyard_server)
        self.up_cpu_s: float | None = None  # CPU seconds the server had used by then

    def start(self) -> Child:
        with open(self.log_path, "ab") if self.log_path else contextlib.nullcontext(subprocess.DEVNULL) as out:
            self.spawned_at = time.perf_counter()
            self.proc = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = 3000) -> str:
        if self.log_path and self.log_path.exists():
            return self.log_path.read_text(errors="replace")[-n:]
        return ""

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session=True: the child leads its own group
        for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait_s)
            except subprocess.TimeoutExpired:
                continue
            # The leader is gone; give its workers (same group) a moment, then make sure.
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline and _group_alive(pgid):
                time.sleep(0.05)
            if not _group_alive(pgid):
                break
        if self.proc.poll() is None:
            self.proc.wait(5)

    def __enter__(self) -> Child:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def group_cpu_s(pgid: int) -> float:
    """CPU seconds used so far by the live processes of process group ``pgid`` (Linux /proc)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after the command: state, ppid, pgrp, ..., utime (11), stime (12)
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def wait_quiet(child: Child, what: str, *, max_cores: float = 0.5, window_s: float = 2.0, timeout_s: float = 60.0) -> float:
    """Wait until a server's process group settles below ``max_cores`` (its workers done
    importing), so that start-up is not measured as steady state. Returns the seconds waited.
    (An idle ``mlflow server`` keeps using ~0.25 core here: its job consumers poll.)"""
    if not os.path.isdir("/proc"):
        return 0.0
    t0 = time.monotonic()
    before = group_cpu_s(child.pid)
    while time.monotonic() - t0 < timeout_s:
        time.sleep(window_s)
        now = group_cpu_s(child.pid)
        if (now - before) / window_s < max_cores:
            return time.monotonic() - t0
        before = now
    say(f"  ({what} still busy after {timeout_s:.0f} s; measuring anyway)")
    return time.monotonic() - t0


def wait_http(url: str, child: Child, timeout_s: float, what: str, *, poll_s: float = 0.1) -> None:
    deadline = time.monotonic() + timeout_s
    with Session(url, timeout_s=2) as http:
        while time.monotonic() < deadline:
            if not child.alive():
                raise RuntimeError(f"{what} exited with {child.proc.returncode if child.proc else '?'}:\n{child.log_tail()}")
            try:
                if http.request("GET", "").status_code == 200:
                    return
            except TransportError:
                pass
            time.sleep(poll_s)
    raise RuntimeError(f"{what} did not answer at {url} within {timeout_s:.0f}s:\n{child.log_tail()}")


def runyard_server(home: Path, port: int | None = None, *, quiet: bool = True) -> tuple[Child, str]:
    """A Runyard server (``python -m runyard.server``) on 127.0.0.1 with RUNYARD_HOME=home; started and healthy.

    ``child.up_s`` is the time from the spawn to the first answer of ``GET /api/v1/health``
    (polled every 10 ms): what the SDK's ``start_server`` waits for before it creates a run.
    With ``quiet`` (the default) it then waits for the server's CPU to settle as well.
    """
    home.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    env = {**os.environ, "RUNYARD_HOME": str(home)}
    for var in ("RUNYARD_SERVER", "RUNYARD_DATABASE_URL", "RUNYARD_ARTIFACTS_URL", "RUNYARD_TOKEN"):
        env.pop(var, None)
    child = Child([sys.executable, "-m", "runyard.server", "--host", "127.0.0.1", "--port", str(port)],
                  env=env, cwd=ROOT, log_path=home / "server.log").start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/api/v1/health", child, 60, "the Runyard server", poll_s=0.01)
        child.up_s = time.perf_counter() - child.spawned_at
        child.up_cpu_s = group_cpu_s(child.pid)
        if quiet:
            wait_quiet(child, "the Runyard server", timeout_s=20)
    except BaseException:
        child.stop()
        raise
    return child, url


def mlflow_server(workdir: Path, port: int | None = None, *, wait: bool = True) -> tuple[Child, str]:
    """``mlflow server`` (the peers venv's binary, default workers) with a SQLite backend in ``workdir``.

    With ``wait=False`` it returns at once (start it early, do other work, then call
    :func:`wait_mlflow`): its start-up costs ~35 s of CPU on 2 cores.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    mlflow_bin = peers_venv() / "bin" / "mlflow"
    if not mlflow_bin.exists():
        raise SystemExit(f"No mlflow in {peers_venv()}: run `bash benchmarks/setup_peers.sh` first.")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RUNYARD_"))}
    env["PATH"] = f"{peers_venv() / 'bin'}:{env.get('PATH', '')}"
    env.pop("VIRTUAL_ENV", None)
    child = Child([str(mlflow_bin), "server", "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
                   "--artifacts-destination", str(workdir / "mlartifacts"), "--host", "127.0.0.1", "--port", str(port)],
                  env=env, cwd=workdir, log_path=workdir / "mlflow-server.log").start()
    child.started_at = time.monotonic()  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{port}"
    if wait:
        wait_mlflow(child, url)
    return child, url


def wait_mlflow(child: Child, url: str) -> None:
    """Wait for an ``mlflow server`` to answer and for its workers to settle; stops it on failure."""
    try:
        wait_http(url + "/health", child, 300, "the MLflow server")
        up = time.monotonic() - child.started_at  # type: ignore[attr-defined]
        quiet = wait_quiet(child, "the MLflow server")
        say(f"  MLflow server up {up:.0f} s after its start, its workers settled {quiet:.0f} s later")
    except BaseException:
        child.stop(timeout_s=5)
        raise


class PeerSession:
    """``_mlflow_peer.py serve`` in the peers venv: MLflow imported once, one command at a time."""

    def __init__(self, uri: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
        env.pop("VIRTUAL_ENV", None)
        env["PYTHONWARNINGS"] = "ignore"
        # stderr is inherited: the peer's progress and errors show as they happen.
        self.proc = subprocess.Popen([str(peers_python()), str(PEER_SCRIPT), "serve", "--uri", uri], env=env, cwd=BENCH_DIR,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
        try:
            self._read()
        except BaseException:
            self.close()
            raise

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the MLflow peer exited ({self.proc.wait(5)}); its errors are above")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"the MLflow peer failed: {answer['error']}")
        return answer

    def ask(self, op: str, **kwargs: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **kwargs}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write('{"op": "quit"}\n')
                self.proc.stdin.close()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(5)

    def __enter__(self) -> PeerSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_peer(args: Sequence[str], timeout_s: float = 600, *, script: Path = PEER_SCRIPT,
             env_extra: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``script ARGS`` (default ``_mlflow_peer.py``) with the peers venv's python and ``env_extra``
    added to the environment (no ``RUNYARD_*``, no ``MLFLOW_*`` but those); it prints one JSON object last."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNYARD_", "MLFLOW_"))}
    env.pop("VIRTUAL_ENV", None)
    env["PYTHONWARNINGS"] = "ignore"
    env.update(env_extra or {})
    # stderr is inherited: the peer's progress lines show as they happen.
    proc = subprocess.Popen([str(peers_python()), str(script), *args], env=env, cwd=BENCH_DIR,
                            stdout=subprocess.PIPE, stderr=None, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except BaseException:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(5)
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"{script.name} {args[0] if args else ''} failed ({proc.returncode}); its errors are above")
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"{script.name} printed no JSON:\n{out[-2000:]}")
    return json.loads(lines[-1])


# ------------------------------------------------------------------------ figures
def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "loadavg_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    if value >= 100:
        text = f"{value:,.0f}"
    elif value >= 10:
        text = f"{value:,.1f}"
    else:
        text = f"{value:,.3g}" if value < 1 else f"{value:,.2f}"
    return f"{text} {unit}".strip()


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # plain text fallback
        print(f"\n{title}")
        widths = [max(len(str(c)), *(len(str(r[i])) for r in rows)) for i, c in enumerate(columns)]
        print("  ".join(str(c).ljust(w) for c, w in zip(columns, widths, strict=True)))
        for r in rows:
            print("  ".join(str(x).ljust(w) for x, w in zip(r, widths, strict=True)))
        return
    table = Table(title=title, title_justify="left")
    for i, c in enumerate(columns):
        table.add_column(c, justify="left" if i == 0 else "right")
    for r in rows:
        table.add_row(*[str(x) for x in r])
    Console().print(table)


def verdict(ok: bool | None) -> str:
    return "—" if ok is None else ("PASS" if ok else "FAIL")


def write_json(path: str | None, figures: dict[str, Any], extra: dict[str, Any]) -> None:
    if not path:
        return
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**figures, "_meta": {**extra, "machine": machine()}}, indent=2) + "\n")
    print(f"figures written to {out}")


_T0 = time.perf_counter()


def load_note() -> str:
    one, five, _ = os.getloadavg()
    return (f"load average {one:.1f} (1 min) / {five:.1f} (5 min) on {os.cpu_count()} cores: absolute figures drift "
            "with other work on the machine; the ratios, measured in the same run, are the figures to compare.")


def say(msg: str) -> None:
    """A progress line, stamped with the seconds since the benchmark started."""
    print(f"[{time.perf_counter() - _T0:5.0f}s] {msg}", flush=True)
