"""Reads beside writes: how fast a run page answers while 16 clients ingest metrics.

    .venv/bin/python benchmarks/reads_beside_writes.py [--writers 16] [--seconds 20] [--stores sqlite,postgresql] [--json FILE]

For each store (SQLite, and PostgreSQL when one answers at RUNYARD_TEST_POSTGRES,
default postgresql+psycopg://postgres@127.0.0.1:5432/test), starts a Runyard server on
a fresh database (127.0.0.1, free port), creates one run per writer, and measures
``GET /api/v1/runs/N`` (the run page's request) from one reader, every 20 ms:

- ``idle``: with nothing else going on (the baseline);
- ``busy``: while ``--writers`` writer processes each post metric batches (``--batch``
  points, default 2,000, of 4 metrics) to their own run as fast as the server takes them,
  the way training loops with the SDK do.

Reported: p50 and p99 of the reader's latency in each phase and the points/s ingested.
Target: busy p99 < 100 ms. Writers and reader are separate processes, so a client's GIL
does not time the server. The writers share the machine's cores with the server, as
they do when training runs on the server's own machine (the local backend); ``--nice 10``
lowers their priority, as if they ran on other machines. Prints PASS or FAIL; exits 0 either way (1 if it could not run).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    ROOT,
    Child,
    fmt,
    free_port,
    load_note,
    print_table,
    runyard_server,
    say,
    stop_on_sigterm,
    verdict,
    wait_http,
    wait_quiet,
    write_json,
)

TARGET_P99_MS = 100.0
READ_EVERY_S = 0.02
BATCH_KEYS = 4


def writer(url: str, run_id: int, until: float, out: Path, batch: int) -> None:
    """One writer process: post batches to ``run_id`` until ``until`` (time.time()); write how many points."""
    from runyard.client import Client

    keys = [f"m{i}" for i in range(BATCH_KEYS)]
    per_key = max(1, batch // BATCH_KEYS)
    step = 0
    n = 0
    with Client(url) as client:
        while time.time() < until:
            steps = [s for s in range(step, step + per_key) for _ in keys]
            ks = keys * per_key
            client.log_metrics(run_id, ks, steps, [float(s % 97) for s in steps], [time.time()] * len(steps))
            step += per_key
            n += len(steps)
    out.write_text(str(n))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _read_for(client, run_id: int, seconds: float) -> list[float]:  # noqa: ANN001
    """GET /runs/N every READ_EVERY_S for ``seconds``: latencies in ms."""
    out = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        client.get_run(run_id)
        dt = time.perf_counter() - t0
        out.append(dt * 1000)
        time.sleep(max(0.0, READ_EVERY_S - dt))
    return out


def measure(url: str, workdir: Path, writers: int, seconds: float, batch: int, nice: int) -> dict[str, float]:
    from runyard.client import Client

    with Client(url) as client:
        client.create_project("rbw")
        runs = [client.create_run("rbw", name=f"writer-{i}")["id"] for i in range(writers)]
        reader_run = runs[0]  # the page of a run being written
        client.log_metrics(reader_run, ["m0"], [0], [0.0], [time.time()])
        _read_for(client, reader_run, 1.0)  # warm up
        idle = _read_for(client, reader_run, 4.0)
        start_at = time.time() + 3.0  # writers start together, once imported
        until = start_at + seconds
        procs = []
        outs = []
        try:
            for i, rid in enumerate(runs):
                out = workdir / f"writer-{i}.txt"
                outs.append(out)
                procs.append(subprocess.Popen(
                    [sys.executable, __file__, "--writer", url, str(rid), str(start_at), str(until), str(out), str(batch), str(nice)],
                    cwd=ROOT, start_new_session=True))
            time.sleep(max(0.0, start_at - time.time()) + 1.0)  # one second of ramp-up
            busy = _read_for(client, reader_run, max(1.0, until - time.time() - 0.5))
            for p in procs:
                p.wait(timeout=120)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        points = sum(int(o.read_text()) for o in outs if o.exists())
    return {
        "idle_p50_ms": statistics.median(idle), "idle_p99_ms": _percentile(idle, 0.99),
        "busy_p50_ms": statistics.median(busy), "busy_p99_ms": _percentile(busy, 0.99),
        "busy_max_ms": max(busy), "reads": float(len(busy)), "points_per_s": points / seconds,
    }


def _postgres_database() -> tuple[str, str] | None:
    try:
        from runyard.testing._postgres import postgres_url
        return postgres_url()
    except Exception as e:  # noqa: BLE001 - no PostgreSQL here: SQLite alone
        say(f"PostgreSQL skipped: {e}")
        return None


def _pg_server(home: Path, database_url: str) -> tuple[Child, str]:
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**os.environ, "RUNYARD_HOME": str(home), "RUNYARD_DATABASE_URL": database_url}
    for var in ("RUNYARD_SERVER", "RUNYARD_ARTIFACTS_URL", "RUNYARD_TOKEN"):
        env.pop(var, None)
    child = Child([sys.executable, "-m", "runyard.server", "--host", "127.0.0.1", "--port", str(port)],
                  env=env, cwd=ROOT, log_path=home / "server.log").start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/api/v1/health", child, 60, "the Runyard server (PostgreSQL)")
        wait_quiet(child, "the Runyard server (PostgreSQL)", timeout_s=20)
    except BaseException:
        child.stop()
        raise
    return child, url


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--writer":
        url, rid, start_at, until, out, batch, nice = sys.argv[2:9]
        os.nice(int(nice))
        time.sleep(max(0.0, float(start_at) - time.time()))
        writer(url, int(rid), float(until), Path(out), int(batch))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the writers write")
    parser.add_argument("--nice", type=int, default=0,
                        help="the writers' nice value (10: as if they ran on other machines, as training loops do)")
    parser.add_argument("--batch", type=int, default=2000, help="points per batch (the SDK sends up to 20,000)")
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    stop_on_sigterm()
    workdir = Path(tempfile.mkdtemp(prefix="runyard-rbw-"))
    figures: dict[str, float] = {}
    try:
        for store in args.stores.split(","):
            store = store.strip()
            say(f"{store}: starting a server, {args.writers} writers for {args.seconds:.0f} s")
            dropped = None
            if store == "postgresql":
                db = _postgres_database()
                if db is None:
                    continue
                child, url = _pg_server(workdir / "pg-home", db[0])
                dropped = db[1]
            elif store == "sqlite":
                child, url = runyard_server(workdir / "sqlite-home")
            else:
                raise SystemExit(f"Unknown store {store!r}: use sqlite and/or postgresql.")
            try:
                (workdir / store).mkdir()
                got = measure(url, workdir / store, args.writers, args.seconds, args.batch, args.nice)
            finally:
                child.stop()
                if dropped:
                    from runyard.testing._postgres import drop_database
                    drop_database(dropped)
            figures.update({f"{store}_{k}": v for k, v in got.items()})
            say(f"{store}: busy p99 {got['busy_p99_ms']:.1f} ms (idle {got['idle_p99_ms']:.1f} ms), "
                f"{got['points_per_s']:,.0f} points/s")
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    rows = []
    for store in ("sqlite", "postgresql"):
        if f"{store}_busy_p99_ms" not in figures:
            continue
        p99 = figures[f"{store}_busy_p99_ms"]
        rows.append([store, fmt(figures[f"{store}_idle_p99_ms"], " ms"), fmt(figures[f"{store}_busy_p50_ms"], " ms"),
                     fmt(p99, " ms"), f"< {TARGET_P99_MS:.0f} ms", verdict(p99 < TARGET_P99_MS),
                     f"{figures[f'{store}_points_per_s']:,.0f}"])
    print_table(f"GET /runs/N beside {args.writers} writers", ["store", "idle p99", "busy p50", "busy p99", "target", "",
                                                                "points/s ingested"], rows)
    print(load_note())
    write_json(args.json, figures, {"writers": args.writers, "seconds": args.seconds, "batch": args.batch, "nice": args.nice,
                                    "target_p99_ms": TARGET_P99_MS})
    return 0


if __name__ == "__main__":
    sys.exit(main())
