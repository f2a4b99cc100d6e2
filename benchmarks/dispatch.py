"""Dispatch: 200 trivial runs, 2 at a time — Runyard vs a plain subprocess pool vs Ray Tune, in one run;
then the same 20 trivial runs through each of Runyard's backends that can run here.

    .venv/bin/python benchmarks/dispatch.py [--json FILE] [--runs N] [--skip-ray] [--backend-runs N] [--skip-backends]

Figures (also written to ``--json FILE`` under these names):

- ``floor_s``: the same N processes (``python -c pass`` with Runyard's venv python,
  the interpreter a run's ``python`` resolves to) started by a plain pool of 2
  (``ThreadPoolExecutor(2)`` running ``subprocess.run``). Measured before and after
  the Runyard run; the figure is the mean of the two (the machine's load drifts).
- ``runyard_s``: a ``runyard.yml`` in a temp dir with a grid of N values of one param
  (``params: {i: [0, …, N-1]}``, ``search: {algorithm: grid, parallel: 2}``) and
  ``command: python -c pass``; timed from the start of the code snapshot (what
  ``runyard run DIR`` does first), through ``create_experiment``, to the experiment's
  ``ended_at`` (same machine, same clock; the client polls every 0.5 s only to notice
  the end, while ``runyard run --wait`` polls every second, which would add up to 1 s),
  on a local server this script started beforehand (server start-up excluded and
  stated). The server starts its local agent as it starts (``RUNYARD_WARM_AGENT``, on
  by default), as a user's long-lived local server does; the script waits for that
  agent to answer before the clock starts, so its start-up (~0.3 s) is part of the
  server's and not in the figure either (stated). Every run must have succeeded.
- ``ray_tune_s``: Ray Tune (its own venv, ``benchmarks/setup_ray.sh``) with N empty
  trials (a function trainable that reports once), ``reuse_actors=True``,
  ``max_concurrent_trials=2``, ``ray.init(num_cpus=2, include_dashboard=False)``;
  start-up (``import ray`` + ``ray.init``) included, and stated apart.
- ``ratio_floor`` = runyard_s / floor_s (target ≤ 1.5) and ``ratio_ray`` =
  ray_tune_s / runyard_s (target ≥ 3).
- ``server_start_s``: the embedded server's cold start, as the first ``runyard.init()``
  of the day meets it: from spawning ``python -m runyard.server`` on an existing database
  (no server running) to its first answer of ``GET /api/v1/health`` (polled every 10 ms;
  the SDK then creates its run). The median of 3 starts, after a first start on a fresh
  database (migrations applied; stated apart, as are the first run created and the local
  agent answering, both counted from the spawn). Target ≤ 1 s. Ray's start-up
  (``import ray`` + ``ray.init``) is printed next to it.

Per backend (``backend_<name>_s``, the table "Dispatch per backend"): ``--backend-runs`` (20)
runs of ``python -c pass`` (grid, ``parallel: 2``, ``resources: {cpus: 1}``) submitted to one
backend of a fresh server, timed as ``runyard_s`` is (snapshot → the experiment's ``ended_at``),
each by a function of its own in ``BACKEND_VARIANTS`` (name → function; a variant added there
gets its row):

- ``local``: the local backend (the server's agent warmed up first, as above);
- ``ray``: the Ray backend on a single-node Ray cluster this script starts (``ray start --head``
  on 127.0.0.1, 2 CPUs, token auth; its start-up is stated apart, not in the figure): each run is
  one Ray job (``JobSubmissionClient``), and a Ray job costs seconds (its supervisor actor, the
  working_dir upload, a fresh Python for the runner). Needs the ``ray`` extra in Runyard's venv
  (``pip install -e '.[ray]'``); skipped, and said so, without it.

Also reported (``_meta`` in the JSON): where Runyard's time per run goes, from the
runs' own records (``created_at`` and the status events of ``GET /api/v1/runs/{id}``):
a slot's cycle (one run's end to the next end in that slot: the next start, its process
and its end report), a run's time from its hand-over to the agent (``starting``) to its
end report; and the CPU seconds the server, the agent and the
runs' processes used, with ``cpu_ratio`` = all of Runyard's CPU over the floor
processes' CPU (CPU time drifts far less with the machine's load than wall time).

Everything this script starts is stopped by its pid: the server (its process group),
the local agent (``$RUNYARD_HOME/agent/agent.json``'s pid), and Ray's processes
(``ray.shutdown()`` in the peer, then any leftover pid of its session; never
``ray stop``, which would stop every Ray on the machine).

PASS/FAIL is printed; the exit code is 0 whatever the figures (a benchmark is not a
test) and 1 only when the benchmark itself could not run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BENCH_DIR,
    ROOT,
    fmt,
    load_note,
    print_table,
    runyard_server,
    say,
    verdict,
    write_json,
)

BACKEND_RUNS = 20  # runs per backend in the per-backend table
TARGET_FLOOR_RATIO = 1.5  # runyard_s / floor_s at most
TARGET_RAY_RATIO = 3.0  # ray_tune_s / runyard_s at least
TARGET_START_S = 1.0  # server_start_s at most
START_ROUNDS = 3  # cold starts on an existing database (after one on a fresh database)
PARALLEL = 2
RAY_PEER = BENCH_DIR / "_raytune_peer.py"
POLL_S = 0.5  # the end is the experiment's ended_at: polling only notices it (a poll costs the server ~9 ms of CPU)


def run_python() -> str:
    """The interpreter a run's ``python`` resolves to: the runner puts the directory of
    its own ``sys.executable`` (Runyard's venv) first on PATH."""
    return os.path.join(os.path.dirname(sys.executable), "python")


# -------------------------------------------------------------------------- floor
def floor(n: int, python: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the processes)."""
    import resource

    def one(_: int) -> None:
        subprocess.run([python, "-c", "pass"], check=True, stdin=subprocess.DEVNULL)

    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(PARALLEL) as pool:
        list(pool.map(one, range(n)))
    dt = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return dt, (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)


# ------------------------------------------------------------------------ runyard
def write_project(directory: Path, n: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    values = ", ".join(str(i) for i in range(n))
    (directory / "runyard.yml").write_text(
        "name: dispatch\n"
        "project: bench-dispatch\n"
        "command: python -c pass\n"
        f"params:\n  i: [{values}]\n"
        f"search:\n  algorithm: grid\n  parallel: {PARALLEL}\n"
    )


def _cpu_s(pid: int | None) -> tuple[float, float]:
    """(own CPU seconds, CPU seconds of its waited-for children) of a live process."""
    import psutil

    if not pid:
        return 0.0, 0.0
    try:
        t = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0, 0.0
    return t.user + t.system, t.children_user + t.children_system


def cold_starts(workdir: Path, rounds: int) -> dict[str, Any]:
    """The server's start from nothing running: one on a fresh database, then ``rounds`` on the
    existing one. Each: spawn → health answers, → a run created (the SDK's first request), → the
    local agent it starts answers a ping; then the agent and the server are stopped by their pids."""
    from runyard.client import Client

    home = workdir / "start-home"
    agent_dir = home / "agent"
    samples: list[dict[str, float | None]] = []
    for _ in range(rounds + 1):
        server, url = runyard_server(home, quiet=False)
        agent_pid = None
        try:
            with Client(url) as client:
                client.create_run("bench-start", status="succeeded")
            first_run = time.perf_counter() - server.spawned_at
            agent_pid = wait_agent(agent_dir, settle=False)
            agent = time.perf_counter() - server.spawned_at if agent_pid else None
        finally:
            stop_agent(agent_dir, agent_pid)
            server.stop()
        samples.append({"up_s": server.up_s, "up_cpu_s": server.up_cpu_s, "first_run_s": first_run, "agent_s": agent})
    warm = samples[1:]

    def med(key: str) -> float | None:
        vals = [x[key] for x in warm if x[key] is not None]
        return statistics.median(vals) if vals else None

    return {"server_start_s": med("up_s"), "server_first_run_s": med("first_run_s"), "agent_ready_s": med("agent_s"),
            "server_start_cpu_s": med("up_cpu_s"), "server_start_fresh_db_s": samples[0]["up_s"],
            "server_start_samples": samples}


def runyard_dispatch(workdir: Path, n: int) -> dict[str, Any]:
    home = workdir / "runyard-home"
    project = workdir / "project"
    write_project(project, n)
    server, url = runyard_server(home)
    out: dict[str, Any] = {"runyard_server_start_s": server.up_s,
                           "runyard_server_settled_s": time.perf_counter() - server.spawned_at}
    agent_dir = home / "agent"
    agent_pid: int | None = None
    try:
        # The server starts its local agent as it starts (RUNYARD_WARM_AGENT, on by default): part of
        # the server's start-up, which is not in the figure. Wait for it to answer and settle.
        t_agent = time.perf_counter()
        agent_pid = wait_agent(agent_dir)
        out["runyard_agent_warm"] = agent_pid is not None
        out["runyard_agent_wait_s"] = time.perf_counter() - t_agent
        os.environ["RUNYARD_SERVER"] = url
        os.environ["RUNYARD_HOME"] = str(workdir / "client-home")  # the client's own files, apart from the server's
        os.environ.pop("RUNYARD_TOKEN", None)
        from runyard.client import Client
        from runyard.snapshot import create_snapshot
        from runyard.spec import load_spec

        with Client(url) as client:
            spec = load_spec(project)
            config = spec.to_config()
            server_cpu0, _ = _cpu_s(server.pid)
            agent_cpu0 = _cpu_s(agent_pid) if agent_pid else (0.0, 0.0)
            t0, t0_wall = time.perf_counter(), time.time()
            snap = create_snapshot(client, project, spec.ignore)
            exp = client.create_experiment(spec.project, spec.name or spec.project, config, snapshot_id=snap.id)
            t_submitted = time.perf_counter()
            agent_cpu = (0.0, 0.0)
            while True:
                final = client.get_experiment(exp["id"])
                if final["status"] != "running":
                    break
                if agent_pid is None:
                    agent_pid = _agent_pid(agent_dir)
                else:
                    agent_cpu = _cpu_s(agent_pid)  # read while alive: it is stopped below
                time.sleep(POLL_S)
            t1 = time.perf_counter()
            server_cpu1, _ = _cpu_s(server.pid)
            agent_pid = agent_pid or _agent_pid(agent_dir)
            agent_cpu = max(agent_cpu, _cpu_s(agent_pid))
            counts = final["counts"]
            n_ok = counts.get("succeeded", 0)
            ended = final.get("ended_at")
            out.update({
                "runyard_s": (ended - t0_wall) if ended else t1 - t0,
                "runyard_client_seen_s": t1 - t0,
                "runyard_submit_s": t_submitted - t0,
                "runyard_status": final["status"],
                "runyard_counts": counts,
                "runyard_runs_ok": n_ok,
                "runyard_server_cpu_s": server_cpu1 - server_cpu0,
                "runyard_agent_cpu_s": agent_cpu[0] - agent_cpu0[0],
                "runyard_tasks_cpu_s": agent_cpu[1] - agent_cpu0[1],
            })
            if n_ok != n or final["status"] != "succeeded":
                raise RuntimeError(f"Runyard: the experiment ended {final['status']} with {counts}; expected {n} succeeded runs.")
            out.update(profile(client, final))
    finally:
        out["runyard_agent_stopped"] = stop_agent(agent_dir, agent_pid)
        server.stop()
    return out


def wait_agent(agent_dir: Path, timeout_s: float = 30.0, *, settle: bool = True) -> int | None:
    """The pid of the agent the server started, once it answers a ping and (``settle``) its import
    warm-up is done (its CPU settles); None if none came up (then its start-up is in the figure)."""
    from runyard.backends.local import AgentClient, agent_alive

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pid = _agent_pid(agent_dir)
        if pid and _pid_alive(pid) and agent_alive(agent_dir):
            client = AgentClient(agent_dir, start_timeout_s=5.0)
            try:
                client.call("ping")
            finally:
                client.close()
            if not settle:
                return pid
            before = sum(_cpu_s(pid))
            while time.monotonic() < deadline:
                time.sleep(0.5)
                now = sum(_cpu_s(pid))
                if now - before < 0.05:
                    return pid
                before = now
            return pid
        time.sleep(0.01)
    return None


def _agent_pid(agent_dir: Path) -> int | None:
    try:
        return int(json.loads((agent_dir / "agent.json").read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def stop_agent(agent_dir: Path, pid: int | None) -> bool:
    """Stop the local agent this benchmark's server started (SIGTERM by its pid, then SIGKILL)."""
    from runyard.backends.local import stop_agent as _stop

    with contextlib.suppress(Exception):
        _stop(agent_dir, timeout_s=20)
    pid = pid or _agent_pid(agent_dir)
    if pid and _pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
    return not (pid and _pid_alive(pid))


def _pid_alive(pid: int) -> bool:
    from runyard._proc import pid_alive

    return pid_alive(pid)


def profile(client: Any, exp: dict[str, Any]) -> dict[str, Any]:
    """Where the time per run went, from the runs' records (read after the clock stopped)."""
    runs: list[dict[str, Any]] = []
    while True:
        items = client.list_runs(experiment_id=exp["id"], limit=1000, offset=len(runs))["items"]
        runs += items
        if len(items) < 1000:
            break
    ids = sorted(r["id"] for r in runs)
    events: dict[int, dict[str, float]] = {}
    created: dict[int, float] = {}
    for rid in ids:
        run = client.get_run(rid)
        created[rid] = run["created_at"]
        ev: dict[str, float] = {}
        for e in run.get("events") or []:
            ev.setdefault(e["status"], e["ts"])
        events[rid] = ev

    def med_ms(values: list[float]) -> float | None:
        return statistics.median(values) * 1000 if values else None

    def phase(a: str, b: str) -> list[float]:
        return [events[r][b] - events[r][a] for r in ids if a in events[r] and b in events[r]]

    ends = sorted(ev.get("succeeded", ev.get("failed", 0.0)) for ev in events.values())
    order = sorted(ids, key=lambda r: created[r])
    # With `parallel` slots, the k-th end follows the (k - parallel)-th in the same slot: the time
    # between them is one slot's cycle (the next run's start, its process, its end report). The
    # local agent holds the next runs of a sweep (status starting) and starts one the moment a
    # slot frees, so a run's "starting" event is its hand-over, not its process start; a short
    # run reports its start and end in one request, so "running" and "succeeded" coincide.
    cycles = [ends[k] - ends[k - PARALLEL] for k in range(PARALLEL, len(ends))]
    first, last = order[0], order[-1]
    t_first = created[first]
    out = {
        "prof_exp_created_to_first_run_ms": (t_first - exp["created_at"]) * 1000,
        "prof_first_run_queued_to_starting_ms": (events[first].get("starting", t_first) - events[first].get("queued", t_first)) * 1000,
        "prof_last_run_end_to_exp_end_ms": ((exp.get("ended_at") or ends[-1]) - ends[-1]) * 1000,
        "prof_exp_server_s": (exp.get("ended_at") or ends[-1]) - exp["created_at"],
        "prof_slot_cycle_ms": med_ms(cycles),
        "prof_first_end_ms": (ends[0] - events[first].get("starting", t_first)) * 1000,
        "prof_run_lifetime_ms": med_ms([events[r]["succeeded"] - events[r]["starting"] for r in ids
                                        if "succeeded" in events[r] and "starting" in events[r]][1:]),
        "prof_last_run_id": last,
    }
    # Drift over the experiment: the same phases for the first and the last 20 runs.
    head, tail = ids[2:22], ids[-20:]
    for name, sel in (("head", head), ("tail", tail)):
        out[f"prof_{name}_lifetime_ms"] = med_ms([events[r]["succeeded"] - events[r]["starting"] for r in sel
                                                  if "succeeded" in events[r] and "starting" in events[r]])
    return out


# ---------------------------------------------------------------------------- ray
def ray_venv() -> Path:
    raw = os.environ.get("RAY_VENV") or str(ROOT / ".venv-ray")
    path = Path(raw)
    return path if path.is_absolute() else (ROOT / path)


def ray_tune(workdir: Path, n: int, timeout_s: float) -> dict[str, Any]:
    py = ray_venv() / "bin" / "python"
    if not py.exists():
        raise SystemExit(f"No Ray virtualenv at {ray_venv()}: run `bash benchmarks/setup_ray.sh` first (or set RAY_VENV), "
                         "or pass --skip-ray.")
    # Ray's session files (sockets, logs) in a short private dir: AF_UNIX paths are limited to 107 bytes.
    ray_tmp = Path(tempfile.mkdtemp(prefix="rybr-", dir="/tmp"))
    storage = workdir / "ray-results"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNYARD_", "RAY_"))}
    env.pop("VIRTUAL_ENV", None)
    env.update({"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "PYTHONWARNINGS": "ignore",
                "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1"})
    proc = subprocess.Popen([str(py), str(RAY_PEER), "--trials", str(n), "--concurrency", str(PARALLEL), "--storage",
                             str(storage), "--temp-dir", str(ray_tmp)],
                            env=env, cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=None, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except BaseException:
        _stop_session(proc.pid, [])
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        raise
    finally:
        import shutil

        shutil.rmtree(ray_tmp, ignore_errors=True)
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if not lines:
        _stop_session(proc.pid, [])
        raise RuntimeError(f"the Ray Tune peer exited with {proc.returncode} and printed no JSON; its errors are above")
    res = json.loads(lines[-1])
    left = _stop_session(proc.pid, res.get("ray_pids") or [])
    res["ray_pids_left_after_peer"] = left
    if proc.returncode != 0 or res.get("ray_trials_ok") != n:
        raise RuntimeError(f"Ray Tune ran {res.get('ray_trials_ok')} of {n} trials (exit {proc.returncode})")
    return res


def _stop_session(sid: int, pids: list[int]) -> list[int]:
    """Stop, by pid, what is left of the peer's processes: the pids it listed and any
    process of its session (it ran with start_new_session, so the session id is its pid)."""
    import psutil

    def leftovers() -> list[psutil.Process]:
        found: dict[int, psutil.Process] = {}
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                p = psutil.Process(pid)
                if p.status() != psutil.STATUS_ZOMBIE:
                    found[pid] = p
        for p in psutil.process_iter(["pid"]):
            with contextlib.suppress(psutil.Error):
                if p.pid != os.getpid() and os.getsid(p.pid) == sid and p.status() != psutil.STATUS_ZOMBIE:
                    found[p.pid] = p
        return list(found.values())

    left = leftovers()
    if left:
        say(f"Ray left {len(left)} process(es) running after ray.shutdown(): {[p.pid for p in left]}; stopping them by pid")
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not left:
            break
        for p in left:
            with contextlib.suppress(psutil.Error):
                p.send_signal(sig)
        psutil.wait_procs(left, timeout=5)
        left = leftovers()
    return [p.pid for p in left]


# ------------------------------------------------------------------ per backend
def write_backend_project(directory: Path, n: int, backend: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    values = ", ".join(str(i) for i in range(n))
    (directory / "runyard.yml").write_text(
        f"name: dispatch-{backend}\n"
        f"project: bench-dispatch-{backend}\n"
        "command: python -c pass\n"
        f"backend: {backend}\n"
        f"params:\n  i: [{values}]\n"
        f"search:\n  algorithm: grid\n  parallel: {PARALLEL}\n"
        "resources:\n  cpus: 1\n"
    )


def time_experiment(url: str, project: Path, client_home: Path) -> dict[str, Any]:
    """Snapshot + create the experiment of ``project`` on ``url``, wait for its end: wall seconds (to its
    ``ended_at``) and its counts. Raises when a run did not succeed."""
    from runyard.client import Client
    from runyard.snapshot import create_snapshot
    from runyard.spec import load_spec

    os.environ["RUNYARD_SERVER"] = url
    os.environ["RUNYARD_HOME"] = str(client_home)
    os.environ.pop("RUNYARD_TOKEN", None)
    with Client(url) as client:
        spec = load_spec(project)
        t0, t0_wall = time.perf_counter(), time.time()
        snap = create_snapshot(client, project, spec.ignore)
        exp = client.create_experiment(spec.project, spec.name or spec.project, spec.to_config(), snapshot_id=snap.id)
        while True:
            final = client.get_experiment(exp["id"])
            if final["status"] != "running":
                break
            time.sleep(POLL_S)
        t1 = time.perf_counter()
    counts = final["counts"]
    n = sum(counts.values())
    if final["status"] != "succeeded" or counts.get("succeeded", 0) != n:
        raise RuntimeError(f"the experiment on {url} ended {final['status']} with {counts}")
    ended = final.get("ended_at")
    return {"wall_s": (ended - t0_wall) if ended else t1 - t0, "runs_ok": counts.get("succeeded", 0)}


def backend_local(workdir: Path, n: int) -> dict[str, Any]:
    """``n`` trivial runs on the local backend of a fresh server (its agent warmed up before the clock starts)."""
    home = workdir / "backend-local-home"
    project = workdir / "backend-local-project"
    write_backend_project(project, n, "local")
    server, url = runyard_server(home)
    agent_dir = home / "agent"
    agent_pid = None
    try:
        agent_pid = wait_agent(agent_dir)
        res = time_experiment(url, project, workdir / "client-home")
        res["setup"] = "server and agent started before"
        return res
    finally:
        stop_agent(agent_dir, agent_pid)
        server.stop()


def backend_ray(workdir: Path, n: int) -> dict[str, Any]:
    """``n`` trivial runs on the Ray backend, against a single-node Ray cluster started (and stopped by its pids) here."""
    try:
        import ray.job_submission  # noqa: F401 - the Ray backend's client must be in Runyard's venv
    except ImportError:
        return {"skipped": "no Ray in Runyard's venv: `pip install -e '.[ray]'`"}
    import shutil

    import yaml

    from runyard.testing import RayCluster

    root = Path(tempfile.mkdtemp(prefix="rybd-", dir="/tmp"))  # Ray's socket paths must stay short
    cluster = RayCluster(root, num_cpus=PARALLEL, env={"PYTHONPATH": str(ROOT)})
    home = workdir / "backend-ray-home"
    home.mkdir(parents=True, exist_ok=True)
    project = workdir / "backend-ray-project"
    write_backend_project(project, n, "ray")
    t0 = time.perf_counter()
    cluster.start()
    cluster_start_s = time.perf_counter() - t0
    try:
        (home / "backends.yml").write_text(yaml.safe_dump({"ray": {
            "type": "ray", "address": cluster.dashboard_url, "token": cluster.token, "python": sys.executable}}))
        server, url = runyard_server(home)
        try:
            res = time_experiment(url, project, workdir / "client-home")
        finally:
            server.stop()
            stop_agent(home / "agent", None)  # the server warms its local agent as it starts, unused here
        res["setup"] = f"Ray cluster started before ({cluster_start_s:.1f} s)"
        res["cluster_start_s"] = cluster_start_s
        return res
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


#: One function per backend (or variant of one): name → function(workdir, n) → {"wall_s", "runs_ok", "setup"} or
#: {"skipped": why}. Each gets a row of the "Dispatch per backend" table and ``backend_<name>_s`` in the JSON.
BACKEND_VARIANTS: dict[str, Any] = {
    "local": backend_local,
    "ray": backend_ray,
}


def run_backends(workdir: Path, n: int) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for name, fn in BACKEND_VARIANTS.items():
        say(f"backend {name}: {n} runs of `python -c pass`, {PARALLEL} at a time …")
        try:
            results[name] = fn(workdir, n)
        except Exception as e:  # noqa: BLE001 - one backend failing leaves the others' figures
            results[name] = {"error": f"{type(e).__name__}: {e}"}
            say(f"backend {name} failed: {results[name]['error']}")
    return results


def report_backends(results: dict[str, dict[str, Any]], n: int) -> None:
    rows = []
    for name, res in results.items():
        wall = res.get("wall_s")
        rows.append([name, fmt(wall, "s"), "—" if wall is None else f"{wall / n:.2f} s",
                     res.get("setup") or res.get("skipped") or res.get("error") or ""])
    print_table(f"Dispatch per backend: {n} trivial runs (`python -c pass`), {PARALLEL} at a time",
                ["backend", "wall", "per run", "not in the figure / why none"], rows)


# --------------------------------------------------------------------------- main
def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", metavar="FILE", help="write the figures to FILE")
    p.add_argument("--runs", type=int, default=200, help="runs / processes / trials (default 200)")
    p.add_argument("--skip-ray", action="store_true", help="skip Ray Tune (no ray_tune_s, no ratio to it)")
    p.add_argument("--ray-timeout", type=float, default=600.0, help="give up on Ray Tune after this many seconds")
    p.add_argument("--backend-runs", type=int, default=BACKEND_RUNS, help=f"runs per backend (default {BACKEND_RUNS})")
    p.add_argument("--skip-backends", action="store_true", help="skip the per-backend table")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (server log and database)")
    args = p.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="runyard-bench-dispatch-"))
    figures: dict[str, float | None] = {"runyard_s": None, "floor_s": None, "ray_tune_s": None,
                                        "ratio_floor": None, "ratio_ray": None, "server_start_s": None}
    meta: dict[str, Any] = {"workdir": str(workdir), "runs": args.runs, "parallel": PARALLEL, "python": run_python()}
    started = time.perf_counter()
    n = args.runs
    try:
        py = run_python()
        say(f"floor: {n} × `{py} -c pass`, {PARALLEL} at a time …")
        floor_before, floor_cpu = floor(n, py)
        say(f"Runyard: the server's cold start, once on a fresh database and {START_ROUNDS} times on it again …")
        starts = cold_starts(workdir, START_ROUNDS)
        meta.update({k: v for k, v in starts.items() if k != "server_start_s"})
        figures["server_start_s"] = starts["server_start_s"]
        say(f"Runyard: server start, then {n} runs of `python -c pass` (grid, parallel {PARALLEL}) …")
        r = runyard_dispatch(workdir, n)
        meta.update(r)
        say("floor again …")
        floor_after, floor_cpu_after = floor(n, py)
        meta.update({"floor_before_s": floor_before, "floor_after_s": floor_after,
                     "floor_cpu_s": (floor_cpu + floor_cpu_after) / 2})
        figures["floor_s"] = (floor_before + floor_after) / 2
        figures["runyard_s"] = r["runyard_s"]
        figures["ratio_floor"] = figures["runyard_s"] / figures["floor_s"]
        if meta["floor_cpu_s"]:
            meta["cpu_ratio"] = (r["runyard_server_cpu_s"] + r["runyard_agent_cpu_s"] + r["runyard_tasks_cpu_s"]) / meta["floor_cpu_s"]
        if not args.skip_ray:
            say(f"Ray Tune: import + ray.init, {n} empty trials, reuse_actors=True, {PARALLEL} at a time …")
            res = ray_tune(workdir, n, args.ray_timeout)
            meta.update(res)
            figures["ray_tune_s"] = res["ray_tune_s"]
            figures["ratio_ray"] = figures["ray_tune_s"] / figures["runyard_s"]
        if not args.skip_backends:
            backends = run_backends(workdir, args.backend_runs)
            meta["backends"] = backends
            meta["backend_runs"] = args.backend_runs
            for name, res in backends.items():
                figures[f"backend_{name}_s"] = res.get("wall_s")
    except KeyboardInterrupt:
        say("interrupted; servers and agents stopped")
        return 130
    except Exception as e:  # noqa: BLE001
        say(f"benchmark failed: {type(e).__name__}: {e}")
        return 1
    finally:
        if not args.keep:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
    meta["elapsed_s"] = time.perf_counter() - started
    meta["load_note"] = load_note()
    report(figures, meta)
    if meta.get("backends"):
        report_backends(meta["backends"], meta["backend_runs"])
    write_json(args.json, figures, meta)
    return 0


def _ms(v: Any) -> str:
    return "—" if v is None else f"{v:,.0f} ms"


def report(f: dict[str, float | None], meta: dict[str, Any]) -> None:
    n = meta["runs"]
    ry, fl, rt = f.get("runyard_s"), f.get("floor_s"), f.get("ray_tune_s")

    def per_run(v: float | None) -> str:
        return "—" if v is None else f"{v / n * 1000:,.1f} ms"

    print_table(
        f"Dispatch: {n} trivial runs (`python -c pass`), {PARALLEL} at a time",
        ["system", "wall", "per run", "start-up in it"],
        [
            ["subprocess pool of 2 (the floor)", fmt(fl, "s"), per_run(fl), "—"],
            ["Runyard (local backend)", fmt(ry, "s"), per_run(ry),
             "no (server and agent started before)" if meta.get("runyard_agent_warm") else "agent (server: no)"],
            ["Ray Tune, reuse_actors=True", fmt(rt, "s"), per_run(rt),
             f"{meta.get('ray_import_s', 0) + meta.get('ray_init_s', 0):.1f} s" if rt is not None else "skipped"],
        ],
    )
    agent = (f"answering {meta.get('runyard_agent_wait_s', 0):.1f} s later" if meta.get("runyard_agent_warm")
             else "NOT started: its start-up is in the figure")
    print(f"floor: {meta.get('floor_before_s', 0):.2f} s before Runyard, {meta.get('floor_after_s', 0):.2f} s after (mean "
          f"taken). Runyard: server up {meta.get('runyard_server_start_s') or 0:.2f} s after its spawn, settled after "
          f"{meta.get('runyard_server_settled_s', 0):.1f} s (its local agent {agent}), "
          f"not in the figure; the "
          f"client saw the end {meta.get('runyard_client_seen_s', 0):.2f} s after the start."
          + (f" Ray: import {meta.get('ray_import_s', 0):.1f} s + ray.init {meta.get('ray_init_s', 0):.1f} s, in the figure."
             if rt is not None else ""))
    st = f.get("server_start_s")
    ray_start = (meta.get("ray_import_s", 0) + meta.get("ray_init_s", 0)) if rt is not None else None
    print_table(
        f"Start-up: what the first run waits for (Runyard: median of {START_ROUNDS} starts on an existing database)",
        ["step", "Runyard", "Ray Tune"],
        [
            ["server answering (spawn → first GET /health) / import ray + ray.init", fmt(st, "s"), fmt(ray_start, "s")],
            ["… CPU the server used by then (load-robust)", fmt(meta.get("server_start_cpu_s"), "s"), "—"],
            ["… the same on a fresh database (migrations applied)", fmt(meta.get("server_start_fresh_db_s"), "s"), "—"],
            ["spawn → first run created (the SDK's first request)", fmt(meta.get("server_first_run_s"), "s"), "—"],
            ["spawn → local agent answering (started by the server)", fmt(meta.get("agent_ready_s"), "s"), "—"],
        ],
    )
    rf, rr = f.get("ratio_floor"), f.get("ratio_ray")
    print_table(
        "Targets",
        ["target", "measured", "verdict"],
        [
            [f"runyard_s / floor_s ≤ {TARGET_FLOOR_RATIO}", f"{rf:.2f}×" if rf is not None else "—",
             verdict(rf <= TARGET_FLOOR_RATIO if rf is not None else None)],
            [f"ray_tune_s / runyard_s ≥ {TARGET_RAY_RATIO:.0f}", f"{rr:.1f}×" if rr is not None else "—",
             verdict(rr >= TARGET_RAY_RATIO if rr is not None else None)],
            [f"server_start_s ≤ {TARGET_START_S:.0f} s", fmt(st, "s"), verdict(st <= TARGET_START_S if st is not None else None)],
        ],
    )
    if ry is not None:
        print_table(
            "Where Runyard's time per run goes (medians from the runs' records)",
            ["step", "time"],
            [
                ["snapshot + create_experiment (client)", _ms(meta.get("runyard_submit_s", 0) * 1000)],
                ["experiment created → first run created", _ms(meta.get("prof_exp_created_to_first_run_ms"))],
                ["first run queued → starting", _ms(meta.get("prof_first_run_queued_to_starting_ms"))],
                ["first run handed to the agent → its end reported", _ms(meta.get("prof_first_end_ms"))],
                ["a slot's cycle: one end → the next end in that slot (median)", _ms(meta.get("prof_slot_cycle_ms"))],
                ["a run handed to the agent → its end reported (median)", _ms(meta.get("prof_run_lifetime_ms"))],
                ["handed over → ended, runs 3–22 / last 20", (f"{_ms(meta.get('prof_head_lifetime_ms'))} / "
                                                                   f"{_ms(meta.get('prof_tail_lifetime_ms'))}")],
                ["last run ended → experiment ended", _ms(meta.get("prof_last_run_end_to_exp_end_ms"))],
                ["CPU: the floor's processes", f"{meta.get('floor_cpu_s', 0):.1f} s"],
                ["CPU: Runyard's total / the floor's (load-robust)", f"{meta['cpu_ratio']:.1f}×" if meta.get("cpu_ratio") else "—"],
                ["CPU: server / agent / the runs' processes",
                 (f"{meta.get('runyard_server_cpu_s', 0):.1f} s / {meta.get('runyard_agent_cpu_s', 0):.1f} s / "
                  f"{meta.get('runyard_tasks_cpu_s', 0):.1f} s")],
            ],
        )
    if rt is not None:
        print(f"Ray: {meta.get('ray_trials_ok')} trials ok, fit {meta.get('ray_fit_s', 0):.1f} s; "
              f"{len(meta.get('ray_pids') or [])} Ray processes, all stopped: "
              f"{'yes' if not meta.get('ray_pids_left_after_peer') else 'NO: ' + str(meta['ray_pids_left_after_peer'])}.")
    print(f"Local agent stopped: {'yes' if meta.get('runyard_agent_stopped') else 'NO'}; "
          f"benchmark took {meta.get('elapsed_s', 0):.0f} s.")
    print(meta.get("load_note", ""))


if __name__ == "__main__":
    sys.exit(main())
