"""Metric ingest: Runyard's SDK into a Runyard server vs MLflow vs bare SQLite, in one run.

    .venv/bin/python benchmarks/ingest.py [--json FILE] [--points N] [--rounds R] [--no-mlflow]

Both servers run side by side on 127.0.0.1 and every measurement is split into R
interleaved rounds (default 5): SQLite, Runyard, MLflow log_batch, MLflow log_metric,
then again. Figures are medians over the rounds; each ratio is the median of the
per-round ratios, so a change of machine load between phases moves both sides alike.
Both servers stay up throughout: an idle ``mlflow server`` keeps using ~0.25 core (its
job consumers poll), which counts against Runyard, so the ratios are conservative.
(Pausing it with SIGSTOP is not an option: uvicorn's supervisor then kills its workers.)

Figures (also written to ``--json FILE`` under these names):

- ``runyard_points_per_s``: metric points stored per second from one SDK client
  (``runyard.log({"loss": v}, step=i)``, one point per call) into a Runyard server
  this script starts on 127.0.0.1 with a fresh RUNYARD_HOME; timed from the first
  ``log()`` to ``finish()`` returning, i.e. until every point was acknowledged as
  stored. The count is checked afterwards through the API's metric summaries.
- ``mlflow_log_metric_points_per_s``: ``mlflow.log_metric``, one call per point (200 in
  all), against an ``mlflow server`` (SQLite backend, default workers) this script starts
  with the peers venv's binary; the client runs in the peers venv (``_mlflow_peer.py``).
- ``mlflow_log_batch_points_per_s``: ``MlflowClient.log_batch`` with 1,000 metrics a call
  (10,000 points in all).
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
    PeerSession,
    fmt,
    load_note,
    mlflow_server,
    print_table,
    runyard_server,
    say,
    stop_on_sigterm,
    verdict,
    wait_mlflow,
    write_json,
)

TARGET_VS_LOG_BATCH = 35.0
TARGET_VS_SQLITE = 0.3
TARGET_LOG_CALL_US = 5.0
SQLITE_CHUNK = 20_000


class Ceiling:
    """Bare executemany of the same rows into Runyard's metrics layout, one file for all rounds."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("CREATE TABLE metrics (run_id INTEGER NOT NULL, key_id INTEGER NOT NULL, step INTEGER NOT NULL, "
                          "value REAL, ts REAL NOT NULL)")
        self.conn.execute("CREATE INDEX ix_metrics_run_key_step ON metrics (run_id, key_id, step)")
        self.runs = 0

    def round(self, n: int) -> float:
        """Rows per second for ``n`` rows of a new run."""
        self.runs += 1
        now = time.time()
        rows = [(self.runs, 1, i, 1.0 / (i + 1), now + i * 1e-4) for i in range(n)]
        t0 = time.perf_counter()
        for lo in range(0, n, SQLITE_CHUNK):
            self.conn.execute("BEGIN")
            self.conn.executemany("INSERT INTO metrics (run_id, key_id, step, value, ts) VALUES (?, ?, ?, ?, ?)",
                                  rows[lo:lo + SQLITE_CHUNK])
            self.conn.execute("COMMIT")
        dt = time.perf_counter() - t0
        (count,) = self.conn.execute("SELECT count(*) FROM metrics WHERE run_id = ?", (self.runs,)).fetchone()
        assert count == n, (count, n)
        return n / dt

    def close(self) -> None:
        self.conn.close()


class RunyardSide:
    """One SDK client in this process, logging into the Runyard server the benchmark started."""

    def __init__(self, url: str, client_home: Path) -> None:
        os.environ["RUNYARD_SERVER"] = url
        os.environ["RUNYARD_HOME"] = str(client_home)  # the SDK's spool, apart from the server's state
        os.environ.pop("RUNYARD_TOKEN", None)
        import runyard
        from runyard.client import Client

        self.runyard = runyard
        self.client = Client(url)
        self.rounds = 0

    def round(self, n: int) -> dict[str, float]:
        """Points per second from the first log() to finish() returning, every point acknowledged."""
        runyard = self.runyard
        self.rounds += 1
        run = runyard.init(project="bench", name=f"ingest-{self.rounds}")
        run_id = _run_id(run)
        log = runyard.log
        t0 = time.perf_counter()
        for i in range(n):
            log({"loss": 1.0 / (i + 1)}, step=i)
        t_logged = time.perf_counter()
        runyard.finish()
        t1 = time.perf_counter()
        summary = self.client.metric_summaries(run_id)["loss"]
        stored = summary["count"] if isinstance(summary, dict) else summary.count
        if stored != n:
            raise RuntimeError(f"Runyard stored {stored} points of {n}: the throughput figure would be wrong.")
        return {"rate": n / (t1 - t0), "loop_s": t_logged - t0, "finish_s": t1 - t_logged}

    def log_call_cost(self, n_calls: int, sample_every: int) -> dict[str, float]:
        """Per-call perf_counter_ns of every ``sample_every``-th log() call, the sender running meanwhile."""
        runyard = self.runyard
        runyard.init(project="bench", name="log-call-cost")
        log = runyard.log
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
        samples.sort()
        return {
            "log_call_median_us": statistics.median(samples) / 1000,
            "log_call_p99_us": samples[int(len(samples) * 0.99)] / 1000,
            "log_call_loop_mean_us": loop_s / n_calls * 1e6,
            "log_call_samples": len(samples),
            "timer_overhead_us": statistics.median(overhead) / 1000,
        }

    def close(self) -> None:
        self.client.close()


def _run_id(run: object) -> int:
    for attr in ("id", "run_id"):
        value = getattr(run, attr, None)
        if isinstance(value, int):
            return value
    raise RuntimeError(f"runyard.init() returned {run!r}; cannot find its run id")


def _batches(db: Path) -> dict[str, float]:
    """How the SDK cut the throughput rounds into requests (read from the server's database)."""
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        rows = conn.execute("SELECT r.name, count(*), avg(b.n_points), max(b.n_points) FROM metric_batches b "
                            "JOIN runs r ON r.id = b.run_id WHERE r.name LIKE 'ingest-%' GROUP BY r.id").fetchall()
        conn.close()
    except sqlite3.Error as e:
        return {"error": str(e)}  # type: ignore[dict-item]
    if not rows:
        return {}
    return {"requests_per_round": statistics.median(r[1] for r in rows),
            "points_per_request": statistics.median(r[2] for r in rows),
            "largest_request": max(r[3] for r in rows)}


def _split(total: int, rounds: int) -> list[int]:
    return [total // rounds + (1 if i < total % rounds else 0) for i in range(rounds)]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", metavar="FILE", help="write the figures to FILE")
    p.add_argument("--points", type=int, default=500_000, help="points the Runyard SDK logs, over all rounds (default 500,000)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds of every measurement (default 5)")
    p.add_argument("--log-calls", type=int, default=200_000, help="log() calls for the per-call cost (default 200,000)")
    p.add_argument("--mlflow-single", type=int, default=200, help="points sent with mlflow.log_metric, over all rounds (default 200)")
    p.add_argument("--mlflow-batch-points", type=int, default=10_000,
                   help="points sent with log_batch, over all rounds (default 10,000)")
    p.add_argument("--no-mlflow", action="store_true", help="skip the MLflow side (no ratios to it)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (server logs, databases)")
    args = p.parse_args()
    stop_on_sigterm()

    workdir = Path(tempfile.mkdtemp(prefix="runyard-bench-ingest-"))
    meta: dict[str, object] = {"workdir": str(workdir), "rounds": args.rounds}
    started = time.perf_counter()
    ry_server = ml_server = None
    peer: PeerSession | None = None
    side: RunyardSide | None = None
    ceiling: Ceiling | None = None
    rounds: list[dict[str, float]] = []
    try:
        if not args.no_mlflow:
            say("MLflow: starting its server (default workers) …")
            ml_server, ml_url = mlflow_server(workdir / "mlflow", wait=False)
        say("Runyard: starting its server …")
        ry_server, ry_url = runyard_server(workdir / "server-home")
        side = RunyardSide(ry_url, workdir / "client-home")
        ceiling = Ceiling(workdir / "ceiling.db")
        if ml_server is not None:
            wait_mlflow(ml_server, ml_url)
            peer = PeerSession(ml_url)
            meta["mlflow_version"] = peer.ask("hello")["mlflow_version"]
            peer.ask("warmup")
        ry_n, b_n, m_n = (_split(x, args.rounds) for x in (args.points, args.mlflow_batch_points, args.mlflow_single))
        say(f"{args.rounds} interleaved rounds: Runyard {ry_n[0]:,} points, SQLite {ry_n[0]:,} rows"
            + ("" if peer is None else f", MLflow log_batch {b_n[0]:,} points, log_metric {m_n[0]} points") + " each")
        for i in range(args.rounds):
            row: dict[str, float] = {}
            row["sqlite"] = ceiling.round(ry_n[i])
            r = side.round(ry_n[i])
            row.update({"runyard": r["rate"], "runyard_loop_s": r["loop_s"], "runyard_finish_s": r["finish_s"]})
            if peer is not None:
                b = peer.ask("log_batch", n=b_n[i])
                m = peer.ask("log_metric", n=m_n[i])
                row["log_batch"] = b["points"] / b["s"]
                row["log_metric"] = m["points"] / m["s"]
            rounds.append(row)
            say(f"  round {i + 1}: Runyard {row['runyard']:,.0f}/s, SQLite {row['sqlite']:,.0f}/s"
                + ("" if "log_batch" not in row else f", MLflow log_batch {row['log_batch']:,.0f}/s, "
                   f"log_metric {row['log_metric']:.1f}/s"))
        say(f"Runyard: {args.log_calls:,} log() calls, every 20th timed …")
        meta.update(side.log_call_cost(args.log_calls, sample_every=20))
        meta["runyard_batches"] = _batches(workdir / "server-home" / "runyard.db")
    except KeyboardInterrupt:
        say("interrupted; servers stopped")
        return 130
    except Exception as e:  # noqa: BLE001
        say(f"benchmark failed: {type(e).__name__}: {e}")
        return 1
    finally:
        for closer in (peer, side, ceiling):
            if closer is not None:
                closer.close()
        if ml_server is not None:
            ml_server.stop(timeout_s=5)  # its CLI process ignores SIGTERM for ~15 s; the data is throwaway
        if ry_server is not None:
            ry_server.stop()
        if not args.keep:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)

    def med(key: str) -> float | None:
        vals = [r[key] for r in rounds if key in r]
        return statistics.median(vals) if vals else None

    def med_ratio(a: str, b: str) -> float | None:
        vals = [r[a] / r[b] for r in rounds if a in r and b in r]
        return statistics.median(vals) if vals else None

    figures: dict[str, float | None] = {
        "runyard_points_per_s": med("runyard"),
        "mlflow_log_metric_points_per_s": med("log_metric"),
        "mlflow_log_batch_points_per_s": med("log_batch"),
        "sqlite_ceiling_rows_per_s": med("sqlite"),
        "log_call_median_us": meta["log_call_median_us"],  # type: ignore[dict-item]
    }
    if args.no_mlflow:
        for k in ("mlflow_log_metric_points_per_s", "mlflow_log_batch_points_per_s"):
            figures.pop(k)
    meta.update({
        "rounds_detail": rounds,
        "ratio_vs_log_batch": med_ratio("runyard", "log_batch"),
        "ratio_vs_log_metric": med_ratio("runyard", "log_metric"),
        "ratio_vs_sqlite": med_ratio("runyard", "sqlite"),
        "runyard_points": args.points,
        "runyard_points_per_round": args.points // args.rounds,
        "mlflow_log_metric_points": args.mlflow_single,
        "mlflow_log_batch_points": args.mlflow_batch_points,
        "elapsed_s": time.perf_counter() - started,
        "load_note": load_note(),
    })
    report(figures, meta)
    write_json(args.json, figures, meta)
    return 0


def report(f: dict[str, float | None], meta: dict[str, object]) -> None:
    rounds: list[dict[str, float]] = meta["rounds_detail"]  # type: ignore[assignment]

    def spread(key: str) -> str:
        vals = [r[key] for r in rounds if key in r]
        return f"{fmt(min(vals))}–{fmt(max(vals))}" if vals else "—"

    ry, lb, lm, sq = (f.get(k) for k in ("runyard_points_per_s", "mlflow_log_batch_points_per_s",
                                          "mlflow_log_metric_points_per_s", "sqlite_ceiling_rows_per_s"))
    r_lb, r_lm, r_sq = meta.get("ratio_vs_log_batch"), meta.get("ratio_vs_log_metric"), meta.get("ratio_vs_sqlite")
    lc = f.get("log_call_median_us")
    n_rounds = len(rounds)
    print_table(
        f"Metric ingest, one client, one metric, 127.0.0.1 — medians of {n_rounds} interleaved rounds",
        ["system", "points", "points/s", "rounds", "Runyard is"],
        [
            ["Runyard SDK → server (log to finish)", f"{meta['runyard_points']:,}", fmt(ry), spread("runyard"), "—"],
            ["MLflow log_metric (1 call/point)", f"{meta['mlflow_log_metric_points']:,}" if lm else "—", fmt(lm),
             spread("log_metric"), f"{r_lm:,.0f}× faster" if r_lm else "—"],
            ["MLflow log_batch (1,000/call)", f"{meta['mlflow_log_batch_points']:,}" if lb else "—", fmt(lb),
             spread("log_batch"), f"{r_lb:,.1f}× faster" if r_lb else "—"],
            ["bare SQLite executemany (ceiling)", f"{meta['runyard_points']:,}", fmt(sq), spread("sqlite"),
             f"{r_sq:.2f} of it" if r_sq else "—"],
        ],
    )
    print_table(
        "Targets (ratios: median of the per-round ratios)",
        ["target", "measured", "verdict"],
        [
            [f"Runyard ≥ {TARGET_VS_LOG_BATCH:.0f}× MLflow log_batch", f"{r_lb:,.1f}×" if r_lb else "—",
             verdict(r_lb >= TARGET_VS_LOG_BATCH if r_lb else None)],  # type: ignore[operator]
            [f"Runyard ≥ {TARGET_VS_SQLITE} of the SQLite ceiling", f"{r_sq:.2f}" if r_sq else "—",
             verdict(r_sq >= TARGET_VS_SQLITE if r_sq else None)],  # type: ignore[operator]
            [f"runyard.log() median < {TARGET_LOG_CALL_US:.0f} µs", f"{lc:.2f} µs" if lc is not None else "—",
             verdict(lc < TARGET_LOG_CALL_US if lc is not None else None)],
        ],
    )
    loop = statistics.median([r["runyard_loop_s"] for r in rounds])
    wait = statistics.median([r["runyard_finish_s"] for r in rounds])
    print(f"Runyard per round: log loop {loop:.2f} s + finish() wait {wait:.2f} s (medians); log() p99 "
          f"{meta.get('log_call_p99_us', 0):.2f} µs, loop mean {meta.get('log_call_loop_mean_us', 0):.2f} µs "
          f"(timer cost {meta.get('timer_overhead_us', 0):.2f} µs included); benchmark took {meta.get('elapsed_s', 0):.0f} s.")
    b = meta.get("runyard_batches") or {}
    if b.get("requests_per_round"):  # type: ignore[union-attr]
        print(f"The SDK sent each {meta['runyard_points_per_round']:,}-point round in {b['requests_per_round']:.0f} requests of "  # type: ignore[index]
              f"{b['points_per_request']:,.0f} points on average (largest {b['largest_request']:,}).")  # type: ignore[index]
    print(meta.get("load_note", ""))


if __name__ == "__main__":
    sys.exit(main())
