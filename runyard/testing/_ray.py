"""A real single-node Ray cluster for tests: ``ray start --head --block`` on 127.0.0.1, stopped by its pids.

``RayCluster(root).start()`` starts a head with its own temp directory, free ports for
every listener (so two clusters, or a run's own Ray, never collide), the dashboard on
127.0.0.1 and Ray's token authentication with a token of its own. ``stop()`` ends the
``ray start`` process (which stops the processes it started) and then, by pid, every
process still running that belongs to this cluster (found by its temp directory).
Never ``ray stop``: it ends every Ray process of the machine by name.

Facts that shaped it (docs/backends.md, "Ray"): on Linux Ray swaps 127.0.0.1 for the
machine's routable address unless ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``; a job's
``python`` is whatever is on ``PATH`` when ``ray start`` ran, so entrypoints use absolute
paths; a head takes 10-15 s to start on two busy cores.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["RayCluster"]

_WORKER_PORTS = 200  # the range of ports Ray's worker processes listen on


class _EarlyExit(RuntimeError):
    """``ray start`` exited before the head answered (a port taken meanwhile, usually)."""


def _ports(n: int, avoid: set[int] | None = None) -> list[int]:
    """``n`` distinct free ports on 127.0.0.1 (held open together while found, so none repeats)."""
    import socket

    avoid = set(avoid or ())
    socks: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < n:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            port = s.getsockname()[1]
            if port not in avoid:
                ports.append(port)
    finally:
        for s in socks:
            s.close()
    return ports


def _worker_range(taken: set[int]) -> int:
    """The first port of a range of ``_WORKER_PORTS`` ports that are free now and not in ``taken``."""
    import random
    import socket

    for _ in range(50):
        low = random.randrange(20000, 30000 - _WORKER_PORTS)  # below Linux's ephemeral range (32768-60999)
        if any(low <= p < low + _WORKER_PORTS for p in taken):
            continue
        free = True
        for port in range(low, low + _WORKER_PORTS, 20):  # a sample: a range in use by another cluster shows
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    free = False
                    break
        if free:
            return low
    raise RuntimeError("no free range of ports for Ray's workers between 20000 and 30000")


def _ray_command() -> str:
    """The ``ray`` script next to this interpreter (the venv's), else on PATH."""
    beside = Path(sys.executable).with_name("ray")
    if beside.exists():
        return str(beside)
    found = shutil.which("ray")
    if found is None:
        raise RuntimeError("No `ray` command: install Ray (`pip install 'runyard[ray]'`).")
    return found


class RayCluster:
    """One Ray head node on 127.0.0.1.

    Args:
        root: a directory of its own (Ray's temp dir and the head's log go there). Ray's
            Unix socket paths must stay short (107 bytes): keep ``root`` short.
        num_cpus: the CPUs the node offers (logical: Ray does not enforce them).
        env: extra environment for the head (and so for every job it runs).
        token: the cluster's token (``RAY_AUTH_TOKEN``); default: a fresh random one.
    """

    def __init__(self, root: Path, *, num_cpus: int = 2, env: dict[str, str] | None = None,
                 token: str | None = None) -> None:
        self.root = Path(root)
        self.temp_dir = self.root / "t"
        self.num_cpus = num_cpus
        self.token = token or secrets.token_hex(24)
        self.dashboard_port, self.gcs_port = _ports(2)
        self.dashboard_url = f"http://127.0.0.1:{self.dashboard_port}"
        self.address = f"127.0.0.1:{self.gcs_port}"
        self.extra_env = dict(env or {})
        self.proc: subprocess.Popen | None = None
        self.log_path = self.root / "ray-head.log"

    @property
    def headers(self) -> dict[str, str]:
        """The HTTP headers of a client of this cluster's dashboard."""
        return {"Authorization": f"Bearer {self.token}"}

    def environment(self) -> dict[str, str]:
        env = {**os.environ, **self.extra_env}
        env.update({
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # every listener on 127.0.0.1 (single node)
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": self.token,
        })
        for var in ("RAY_ADDRESS", "RUNYARD_SERVER", "RUNYARD_TOKEN", "RUNYARD_RUN_ID"):
            env.pop(var, None)
        return env

    def start(self, timeout_s: float = 120.0, attempts: int = 3) -> RayCluster:
        """Start the head and wait until its Jobs API answers.

        A port found free can be taken before Ray binds it (Ray then exits at once): the head is
        started again with other ports, up to ``attempts`` times.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, attempts + 1):
            try:
                return self._start_once(timeout_s)
            except _EarlyExit:
                if attempt == attempts:
                    raise
                self.dashboard_port, self.gcs_port = _ports(2)
                self.dashboard_url = f"http://127.0.0.1:{self.dashboard_port}"
                self.address = f"127.0.0.1:{self.gcs_port}"
        raise AssertionError("unreachable")

    def _start_once(self, timeout_s: float) -> RayCluster:
        others = _ports(9, avoid={self.dashboard_port, self.gcs_port})
        taken = {self.dashboard_port, self.gcs_port, *others}
        low = _worker_range(taken)
        argv = [
            _ray_command(), "start", "--head", "--block", "--disable-usage-stats",
            "--node-ip-address=127.0.0.1", f"--port={self.gcs_port}", f"--temp-dir={self.temp_dir}",
            f"--num-cpus={self.num_cpus}", "--num-gpus=0",
            "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard_port}",
            f"--ray-client-server-port={others[0]}", f"--dashboard-agent-listen-port={others[1]}",
            f"--dashboard-agent-grpc-port={others[2]}", f"--metrics-export-port={others[3]}",
            f"--runtime-env-agent-port={others[4]}", f"--node-manager-port={others[5]}",
            f"--object-manager-port={others[6]}",
            f"--min-worker-port={low}", f"--max-worker-port={low + _WORKER_PORTS - 1}",
            "--object-store-memory=100000000",
        ]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, env=self.environment(), stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True, cwd=str(self.root))
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise _EarlyExit(f"ray start exited with {self.proc.returncode}:\n{self.log_path.read_text()[-4000:]}")
                if self._dashboard_answers():
                    return self
                time.sleep(0.5)
        except BaseException:
            self.stop()
            raise
        self.stop()
        raise RuntimeError(f"the Ray head did not answer on {self.dashboard_url} within {timeout_s:g}s:\n"
                           f"{self.log_path.read_text()[-4000:]}")

    def _dashboard_answers(self) -> bool:
        """Whether the Jobs API answers and the state API lists the head as alive (the last parts to come up)."""
        from runyard._http import Session, TransportError

        try:
            with Session(self.dashboard_url, timeout_s=2.0) as http:
                if http.request("GET", "/api/jobs/", headers=self.headers).status_code != 200:
                    return False
                nodes = http.request("GET", "/api/v0/nodes?limit=10", headers=self.headers)
                if nodes.status_code != 200:
                    return False
                rows = ((nodes.json().get("data") or {}).get("result") or {}).get("result") or []
                return any(r.get("state") == "ALIVE" for r in rows)
        except (TransportError, OSError, ValueError, AttributeError):
            return False

    def pids(self) -> list[int]:
        """The processes of this cluster still running: ``ray start`` and those whose command line names its temp dir."""
        import psutil

        marker = str(self.temp_dir)
        me = psutil.Process()
        mine = {me.pid, *(p.pid for p in me.parents())}  # a shell whose command line names the directory is not Ray
        found: list[int] = []
        if self.proc is not None and self.proc.poll() is None:
            found.append(self.proc.pid)
        for proc in psutil.process_iter(["cmdline"]):
            with contextlib.suppress(psutil.Error):
                if proc.pid not in mine and any(marker in part for part in proc.info["cmdline"] or ()):
                    found.append(proc.pid)
        return sorted(set(found))

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop ``ray start`` (it stops what it started), then whatever of this cluster is left, by pid."""
        import psutil

        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        procs = []
        for pid in self.pids():
            with contextlib.suppress(psutil.Error):
                procs.append(psutil.Process(pid))
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.terminate()
        _, alive = psutil.wait_procs(procs, timeout=10)
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(alive, timeout=10)
