"""Metric ingest: Runyard's SDK into a Runyard server vs MLflow vs bare SQLite, in one run.

    .venv/bin/python benchmarks/ingest.py [--json FILE] [--points N] [--no-mlflow]

Figures (also written to ``--json FILE`` under these names):

- ``runyard_points_per_s``: metric points stored per second from one SDK client
  (``runyard.log({"loss": v}, step=i)``, one point per call) into a Runyard server
  this script starts on 127.0.0.1 with a fresh RUNYARD_HOME; timed from the first
  ``log()`` to ``finish()`` returning, i.e. until every point was acknowledged as
  stored. The count is checked afterwards through the API's metric summaries.
- ``mlflow_log_metric_points_per_s``: ``mlflow.log_metric``, one call per point,
  against an ``mlflow server`` (SQLite backend, default workers) this script starts.
- ``mlflow_log_batch_points_per_s``: ``MlflowClient.log_batch`` with 1,000 metrics a call.
- ``sqlite_ceiling_rows_per_s``: the same rows written with a bare ``executemany``
  into a fresh SQLite file (WAL, synchronous=NORMAL), Runyard's layout
  ``(run_id int, key_id int, step int, value real, ts real)`` + index on
  ``(run_id, key_id, step)``, one transaction per 20,000 rows (the SDK's largest batch).
- ``log_call_median_us``: median cost of one ``runyard.log()`` call in the training
  thread (per-call ``perf_counter_ns`` of every 20th call of a 200,000-call loop,
  timer cost included), with the sender thread running.

Targets: runyard ≥ 35× MLflow log_batch, ≥ 0.3 of the SQLite ceiling, log() < 5 µs.
PASS/FAIL is printed; the exit code is 0 whatever the figures (a benchmark is not a
test) and 1 only when the benchmark itself could not run.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    fmt,
    load_note,
    mlflow_server,
    print_table,
    run_peer,
    runyard_server,
    say,
    verdict,
    write_json,
)

TARGET_VS_LOG_BATCH = 35.0
TARGET_VS_SQLITE = 0.3
TARGET_LOG_CALL_US = 5.0
SQLITE_CHUNK = 20_000


def sqlite_ceiling(workdir: Path, n: int) -> dict[str, float]:
    """Bare executemany of the same rows into Runyard's metrics layout."""
    path = workdir / "ceiling.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE metrics (run_id INTEGER NOT NULL, key_id INTEGER NOT NULL, step INTEGER NOT NULL, "
                 "value REAL, ts REAL NOT NULL)")
    conn.execute("CREATE INDEX ix_metrics_run_key_step ON metrics (run_id, key_id, step)")
    now = time.time()
    rows = [(1, 1, i, 1.0 / (i + 1), now + i * 1e-4) for i in range(n)]
    t0 = time.perf_counter()
    for lo in range(0, n, SQLITE_CHUNK):
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO metrics (run_id, key_id, step, value, ts) VALUES (?, ?, ?, ?, ?)", rows[lo:lo + SQLITE_CHUNK])
        conn.execute("COMMIT")
    dt = time.perf_counter() - t0
    (count,) = conn.execute("SELECT count(*) FROM metrics").fetchone()
    conn.close()
    assert count == n, (count, n)
    return {"sqlite_ceiling_rows_per_s": n / dt, "sqlite_ceiling_s": dt}


def runyard_ingest(workdir: Path, n: int, n_calls: int, sample_every: int) -> dict[str, float]:
    """One SDK client in this process logging into a fresh Runyard server."""
    server, url = runyard_server(workdir / "server-home")
    try:
        os.environ["RUNYARD_SERVER"] = url
        os.environ["RUNYARD_HOME"] = str(workdir / "client-home")  # the SDK's spool, apart from the server's state
        os.environ.pop("RUNYARD_TOKEN", None)
        import runyard
        from runyard.client import Client

        # 1. Throughput: first log() to finish() returning (every point acknowledged).
        run = runyard.init(project="bench", name="ingest-throughput")
        run_id = _run_id(run)
        log = runyard.log
        t0 = time.perf_counter()
        for i in range(n):
            log({"loss": 1.0 / (i + 1)}, step=i)
        t_logged = time.perf_counter()
        runyard.finish()
        t1 = time.perf_counter()
        with Client(url) as client:
            summary = client.metric_summaries(run_id)["loss"]
        stored = summary["count"] if isinstance(summary, dict) else summary.count
        if stored != n:
            raise RuntimeError(f"Runyard stored {stored} points of {n}: the throughput figure would be wrong.")
        out = {
            "runyard_points_per_s": n / (t1 - t0),
            "runyard_points": n,
            "runyard_total_s": t1 - t0,
            "runyard_log_loop_s": t_logged - t0,
            "runyard_finish_wait_s": t1 - t_logged,
        }

        # 2. Cost of one log() call in the training thread, the sender running meanwhile.
        runyard.init(project="bench", name="log-call-cost")
        clock = time.perf_counter_ns
        samples: list[int] = []
        append = samples.append
        t0 = time.perf_counter()
        for i in range(n_calls):
            if i % sample_every:
                log({"loss": 0.5}, step=i)
            else:
                a = clock()
                log({"loss": 0.5}, step=i)
                append(clock() - a)
        loop_s = time.perf_counter() - t0
        runyard.finish()
        overhead = [0] * 1000
        for j in range(1000):
            a = clock()
            overhead[j] = clock() - a
        out.update({
            "log_call_median_us": statistics.median(samples) / 1000,
            "log_call_p99_us": sorted(samples)[int(len(samples) * 0.99)] / 1000,
            "log_call_loop_mean_us": loop_s / n_calls * 1e6,
            "log_call_samples": len(samples),
            "timer_overhead_us": statistics.median(overhead) / 1000,
        })
        return out
    finally:
        server.stop()


def _run_id(run: object) -> int:
    for attr in ("id", "run_id"):
        value = getattr(run, attr, None)
        if isinstance(value, int):
            return value
    raise RuntimeError(f"runyard.init() returned {run!r}; cannot find its run id")


def mlflow_ingest(workdir: Path, single: int, batch_points: int) -> dict[str, float]:
    server, url = mlflow_server(workdir / "mlflow")
    try:
        return run_peer(["ingest", "--uri", url, "--single", str(single), "--batch-points", str(batch_points)])
    finally:
        server.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", metavar="FILE", help="write the figures to FILE")
    p.add_argument("--points", type=int, default=500_000, help="points the Runyard SDK logs (default 500,000)")
    p.add_argument("--log-calls", type=int, default=200_000, help="log() calls for the per-call cost (default 200,000)")
    p.add_argument("--mlflow-single", type=int, default=200, help="points sent with mlflow.log_metric (default 200)")
    p.add_argument("--mlflow-batch-points", type=int, default=10_000, help="points sent with log_batch (default 10,000)")
    p.add_argument("--no-mlflow", action="store_true", help="skip the MLflow side (no ratios to it)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (server logs, databases)")
    args = p.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="runyard-bench-ingest-"))
    figures: dict[str, float | None] = {}
    meta: dict[str, object] = {"workdir": str(workdir)}
    started = time.perf_counter()
    try:
        say(f"SQLite ceiling: {args.points:,} rows, executemany in WAL …")
        c = sqlite_ceiling(workdir, args.points)
        meta.update(c)
        figures["sqlite_ceiling_rows_per_s"] = c["sqlite_ceiling_rows_per_s"]

        say(f"Runyard: SDK → server, {args.points:,} points, then {args.log_calls:,} timed log() calls …")
        r = runyard_ingest(workdir, args.points, args.log_calls, sample_every=20)
        meta.update(r)
        figures["runyard_points_per_s"] = r["runyard_points_per_s"]
        figures["log_call_median_us"] = r["log_call_median_us"]

        if not args.no_mlflow:
            say(f"MLflow: server start, {args.mlflow_single} × log_metric, {args.mlflow_batch_points:,} points with log_batch …")
            mres = mlflow_ingest(workdir, args.mlflow_single, args.mlflow_batch_points)
            meta.update(mres)
            figures["mlflow_log_metric_points_per_s"] = mres["mlflow_log_metric_points_per_s"]
            figures["mlflow_log_batch_points_per_s"] = mres["mlflow_log_batch_points_per_s"]
    except KeyboardInterrupt:
        say("interrupted; servers stopped")
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
    write_json(args.json, figures, meta)
    return 0


def report(f: dict[str, float | None], meta: dict[str, object]) -> None:
    ry = f.get("runyard_points_per_s")
    lb = f.get("mlflow_log_batch_points_per_s")
    lm = f.get("mlflow_log_metric_points_per_s")
    sq = f.get("sqlite_ceiling_rows_per_s")
    lc = f.get("log_call_median_us")
    print_table(
        "Metric ingest (one client, one metric, 127.0.0.1)",
        ["system", "points", "points/s", "Runyard is"],
        [
            ["Runyard SDK → server (log to finish)", f"{meta.get('runyard_points', 0):,}", fmt(ry), "—"],
            ["MLflow log_metric (1 call/point)", f"{meta.get('mlflow_log_metric_points', 0):,}" if lm else "—", fmt(lm),
             f"{ry / lm:,.0f}× faster" if ry and lm else "—"],
            ["MLflow log_batch (1,000/call)", f"{meta.get('mlflow_log_batch_points', 0):,}" if lb else "—", fmt(lb),
             f"{ry / lb:,.1f}× faster" if ry and lb else "—"],
            ["bare SQLite executemany (ceiling)", f"{meta.get('runyard_points', 0):,}", fmt(sq),
             f"{ry / sq:.2f} of it" if ry and sq else "—"],
        ],
    )
    print_table(
        "Targets",
        ["target", "measured", "verdict"],
        [
            [f"Runyard ≥ {TARGET_VS_LOG_BATCH:.0f}× MLflow log_batch", f"{ry / lb:,.1f}×" if ry and lb else "—",
             verdict(ry / lb >= TARGET_VS_LOG_BATCH if ry and lb else None)],
            [f"Runyard ≥ {TARGET_VS_SQLITE} of the SQLite ceiling", f"{ry / sq:.2f}" if ry and sq else "—",
             verdict(ry / sq >= TARGET_VS_SQLITE if ry and sq else None)],
            [f"runyard.log() median < {TARGET_LOG_CALL_US:.0f} µs", f"{lc:.2f} µs" if lc is not None else "—",
             verdict(lc < TARGET_LOG_CALL_US if lc is not None else None)],
        ],
    )
    print(f"Runyard: log loop {meta.get('runyard_log_loop_s', 0):.2f} s + finish() wait {meta.get('runyard_finish_wait_s', 0):.2f} s; "
          f"log() p99 {meta.get('log_call_p99_us', 0):.2f} µs, loop mean {meta.get('log_call_loop_mean_us', 0):.2f} µs "
          f"(timer cost {meta.get('timer_overhead_us', 0):.2f} µs included); benchmark took {meta.get('elapsed_s', 0):.0f} s.")
    print(meta.get("load_note", ""))


if __name__ == "__main__":
    sys.exit(main())
