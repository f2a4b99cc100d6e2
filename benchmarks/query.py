"""Queries over a large tracking database: Runyard's HTTP API (and MLflow's, with --with-mlflow).

    .venv/bin/python benchmarks/query.py [--with-mlflow] [--json FILE] [--runs N]

Seeds a fresh Runyard database with 10,000 runs of 5 params and 5 metrics each, one
run with a 100,000-point metric and one with a 1,000,000-point metric, starts a
server on it (127.0.0.1, free port), and times through its HTTP API:

- ``top10_by_metric_ms``: ``GET /runs?order_by=metrics.m0.last desc&limit=10``, median of 16.
- ``history_100k_s``: the full history of the 100,000-point metric, median of 6.
- ``history_1m_downsampled_ms``: the 1,000,000-point metric with ``max_points=1000``, median of 10.
- ``create_run_ms``: ``POST /runs`` in the 10,000-run project with params and tags (the round
  trip behind ``runyard.init()``, to a warm server), median of 10 (20 with ``--with-mlflow``).

Times are end to end from the client: request, server, JSON decoding into Python.
Targets: < 50 ms, < 0.2 s, < 100 ms, ≤ 2 ms.

With ``--with-mlflow``, MLflow gets the same shape at the same scale (seeded into its
SQLite file through its own store and tables before its server starts; creating 10,000
runs through its API would take minutes), both servers run side by side, and each query
is timed on Runyard, then on MLflow, then on Runyard again, so both see the same machine
load (the idle MLflow server's ~0.25 core counts against Runyard). The same client-side timings of
``search_runs(order_by=["metrics.m0 DESC"], max_results=10)`` and
``get_metric_history`` give ``mlflow_top10_by_metric_ms`` and ``mlflow_history_100k_s``, and
``MlflowClient.create_run`` with the same tags gives ``mlflow_create_run_ms`` (its params
would take one more request, not counted).
An extra on both sides (no target): the first page of 1,000 runs.
"""

from __future__ import annotations

import argparse
import json
import shutil
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
    run_peer,
    runyard_server,
    say,
    stop_on_sigterm,
    verdict,
    wait_mlflow,
    write_json,
)

TARGET_TOP10_MS = 50.0
TARGET_HISTORY_100K_S = 0.2
TARGET_HISTORY_1M_DS_MS = 100.0
TARGET_CREATE_RUN_MS = 2.0
PROJECT = "bench"
CHUNK = 100_000


def metric_value(i: int, j: int) -> float:
    """Value of metric m<j> of run i (the same on the MLflow side); all distinct for j = 0."""
    return ((i * 7919 + j * 104729) % 10007) / 10007


def seed_runyard(home: Path, n_runs: int, n_100k: int, n_1m: int) -> dict[str, object]:
    """Fill ``home/runyard.db`` before the server starts.

    Runs and their params are bulk-inserted through the store's own table definitions
    (one ``Store.create_run`` each would be 10,000 transactions, a minute on a loaded machine);
    every metric point goes through ``Store.ingest_metrics``, so
    summaries and downsampling blocks are Runyard's own.
    """
    from sqlalchemy import insert, select

    from runyard.store import Store
    from runyard.store import _models as m

    home.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    store = Store.open(f"sqlite:///{home / 'runyard.db'}")
    try:
        project = store.ensure_project(PROJECT)
        now = time.time()
        rows = [{"project_id": project.id, "number": i, "name": f"run-{i}", "status": "succeeded",
                 "created_at": now - (n_runs - i), "started_at": now - (n_runs - i), "ended_at": now - (n_runs - i) + 1,
                 "heartbeat_at": now - (n_runs - i) + 1} for i in range(n_runs)]
        with store.engine.begin() as conn:
            conn.execute(insert(m.SqlRun), rows)
            ids = list(conn.execute(select(m.SqlRun.id).where(m.SqlRun.project_id == project.id).order_by(m.SqlRun.id)).scalars())
            assert len(ids) == n_runs, (len(ids), n_runs)
            conn.execute(insert(m.SqlRunEvent), [{"run_id": rid, "status": "succeeded", "attempt": 1, "message": "", "ts": now}
                                                 for rid in ids])
            conn.execute(insert(m.SqlParam), [{"run_id": rid, "key": f"p{j}", "value": json.dumps((i + j) % 97), "num": float((i + j) % 97)}
                                              for i, rid in enumerate(ids) for j in range(5)])
        t_runs = time.perf_counter()
        keys = [f"m{j}" for j in range(5)]
        for i, rid in enumerate(ids):
            store.ingest_metrics(rid, keys, [0] * 5, [metric_value(i, j) for j in range(5)], [now] * 5)
        t_metrics = time.perf_counter()
        long_runs = {}
        for name, n in (("history-100k", n_100k), ("history-1m", n_1m)):
            run = store.create_run(PROJECT, name=name, status="succeeded")
            for lo in range(0, n, CHUNK):
                steps = list(range(lo, min(lo + CHUNK, n)))
                store.ingest_metrics(run.id, ["loss"] * len(steps), steps, [1.0 / (s + 1) for s in steps],
                                     [now + s * 1e-3 for s in steps])
            long_runs[name] = run.id
        t_long = time.perf_counter()
    finally:
        store.close()
    say(f"  seeded {n_runs:,} runs in {t_runs - t0:.1f} s, their metrics in {t_metrics - t_runs:.1f} s, "
        f"{n_100k + n_1m:,} history points in {t_long - t_metrics:.1f} s")
    expected = [f"run-{i}" for i in sorted(range(n_runs), key=lambda i: metric_value(i, 0), reverse=True)[:10]]
    return {"runs_s": t_runs - t0, "metrics_s": t_metrics - t_runs, "history_s": t_long - t_metrics,
            "run_100k": long_runs["history-100k"], "run_1m": long_runs["history-1m"], "expected_top10": expected}


class RunyardQueries:
    """One timed call of each query through Runyard's HTTP client, each answer checked."""

    def __init__(self, url: str, seed: dict, n_100k: int, n_1m: int) -> None:
        from runyard.client import Client

        self.c = Client(url)
        self.seed, self.n_100k, self.n_1m = seed, n_100k, n_1m

    def close(self) -> None:
        self.c.close()

    def call(self, op: str) -> float:
        c, seed = self.c, self.seed
        t0 = time.perf_counter()
        if op == "top10":
            page = c.list_runs(project=PROJECT, order_by="metrics.m0.last desc", limit=10)
            dt = time.perf_counter() - t0
            names = [r["name"] for r in page["items"]]
            if names != seed["expected_top10"]:
                raise RuntimeError(f"top 10 answered {names}, expected {seed['expected_top10']}")
        elif op == "history":
            h = c.metric_history(seed["run_100k"], "loss")
            dt = time.perf_counter() - t0
            if len(h["steps"]) != self.n_100k or h["downsampled"]:
                raise RuntimeError(f"history answered {len(h['steps'])} points (downsampled={h['downsampled']}), expected {self.n_100k}")
        elif op == "downsampled":
            h = c.metric_history(seed["run_1m"], "loss", max_points=1000)
            dt = time.perf_counter() - t0
            if not (0 < len(h["steps"]) <= 1000) or h["total"] != self.n_1m:
                raise RuntimeError(f"downsampled history answered {len(h['steps'])} points of total {h['total']}")
        elif op == "page1000":
            page = c.list_runs(project=PROJECT, limit=1000)
            dt = time.perf_counter() - t0
            if len(page["items"]) != 1000:
                raise RuntimeError(f"list_runs(limit=1000) answered {len(page['items'])} runs")
        elif op == "create_run":
            run = c.create_run(PROJECT, status="succeeded", params=CREATE_PARAMS, tags=CREATE_TAGS)
            dt = time.perf_counter() - t0
            if run["params"] != CREATE_PARAMS or run["tags"] != CREATE_TAGS or not run["name"]:
                raise RuntimeError(f"create_run answered {run}")
        else:
            raise ValueError(op)
        return dt


CREATE_PARAMS = {"lr": 0.001, "batch_size": 64, "optimizer": "adam"}  # what a typical init(params=…) sends
CREATE_TAGS = {"stage": "bench"}

# (query, Runyard samples before and after MLflow's, MLflow op)
PLAN = [
    ("create_run", 10, "create_run"),
    ("top10", 8, "top10"),
    ("history", 3, "history"),
    ("downsampled", 10, None),
    ("page1000", 3, "page1000"),
]


def measure(ry: RunyardQueries, peer: PeerSession | None, ml_args: dict) -> dict[str, dict]:
    """Each query: Runyard samples, then MLflow's, then Runyard's again, so both sides see
    the same machine load."""
    out: dict[str, dict] = {}
    for op, k, ml_op in PLAN:
        ry.call(op)  # warm-up
        times = [ry.call(op) for _ in range(k)]
        ml_times: list[float] = []
        if peer is not None and ml_op is not None:
            first = peer.ask(ml_op, **ml_args.get(ml_op, {}), **ml_args["common"])["s"]
            # A multi-second call is its own sample; a fast one gets a warm-up and 3 samples.
            ml_times = [first] if first > 1.0 else [peer.ask(ml_op, **ml_args.get(ml_op, {}), **ml_args["common"])["s"]
                                                    for _ in range(3)]
            times += [ry.call(op) for _ in range(k)]
        out[op] = {"runyard": times, "mlflow": ml_times}
        ry_med = statistics.median(times)
        msg = f"  {op}: Runyard median {ry_med * 1000:,.1f} ms of {len(times)}"
        if ml_times:
            msg += f", MLflow {statistics.median(ml_times) * 1000:,.0f} ms of {len(ml_times)}"
        say(msg)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", metavar="FILE", help="write the figures to FILE")
    p.add_argument("--with-mlflow", action="store_true", help="also measure MLflow (peers venv) on the same shape")
    p.add_argument("--runs", type=int, default=10_000, help="runs with 5 params and 5 metrics (default 10,000)")
    p.add_argument("--mlflow-runs", type=int, default=None,
                   help="runs seeded into MLflow (default: the same as --runs); its top-10 query grows with runs² on SQLite")
    p.add_argument("--history-100k", type=int, default=100_000, help=argparse.SUPPRESS)
    p.add_argument("--history-1m", type=int, default=1_000_000, help=argparse.SUPPRESS)
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (server logs, databases)")
    args = p.parse_args()
    stop_on_sigterm()

    workdir = Path(tempfile.mkdtemp(prefix="runyard-bench-query-"))
    meta: dict[str, object] = {"workdir": str(workdir), "runs": args.runs, "history_points": args.history_100k,
                               "long_history_points": args.history_1m}
    started = time.perf_counter()
    ry_server = ml_server = None
    peer: PeerSession | None = None
    ry: RunyardQueries | None = None
    m_runs = args.mlflow_runs or args.runs
    try:
        ml_args: dict = {}
        if args.with_mlflow:
            meta["mlflow_runs"] = m_runs
            say(f"MLflow: seeding {m_runs:,} runs × (5 params, 5 metrics) and a {args.history_100k:,}-point history "
                "into its SQLite file …")
            mdir = workdir / "mlflow"
            mdir.mkdir()
            s = run_peer(["seed", "--db", str(mdir / "mlflow.db"), "--artifacts", str(mdir / "mlartifacts"),
                          "--runs", str(m_runs), "--history", str(args.history_100k)])
            meta["mlflow_seed_s"] = s["seed_s"]
            meta["mlflow_version"] = s["mlflow_version"]
            say("MLflow: starting its server (default workers) while Runyard is seeded …")
            ml_server, ml_url = mlflow_server(mdir, wait=False)
            expected = [f"run-{i}" for i in sorted(range(m_runs), key=lambda i: metric_value(i, 0), reverse=True)[:10]]
            ml_args = {"common": {"experiment_id": s["experiment_id"]}, "top10": {"expected": expected},
                       "create_run": {"tags": CREATE_TAGS},
                       "history": {"run": s["history_run"], "n": args.history_100k}}
        say(f"Runyard: seeding {args.runs:,} runs × (5 params, 5 metrics) + {args.history_100k:,}- and "
            f"{args.history_1m:,}-point metrics …")
        home = workdir / "runyard-home"
        seed = seed_runyard(home, args.runs, args.history_100k, args.history_1m)
        meta["runyard_seed"] = {k: v for k, v in seed.items() if k != "expected_top10"}
        ry_server, ry_url = runyard_server(home)
        say(f"Runyard: server at {ry_url}")
        ry = RunyardQueries(ry_url, seed, args.history_100k, args.history_1m)
        if ml_server is not None:
            wait_mlflow(ml_server, ml_url)
            peer = PeerSession(ml_url)
            peer.ask("warmup", experiment_id=ml_args["common"]["experiment_id"])
        say("Measuring" + (": each query on Runyard, then MLflow, then Runyard again" if peer else " …"))
        results = measure(ry, peer, ml_args)
    except KeyboardInterrupt:
        say("interrupted; servers stopped")
        return 130
    except Exception as e:  # noqa: BLE001
        say(f"benchmark failed: {type(e).__name__}: {e}")
        return 1
    finally:
        for closer in (peer, ry):
            if closer is not None:
                closer.close()
        if ml_server is not None:
            ml_server.stop(timeout_s=5)  # its CLI process ignores SIGTERM for ~15 s; the data is throwaway
        if ry_server is not None:
            ry_server.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    def med(op: str, side: str) -> float | None:
        vals = results[op][side]
        return statistics.median(vals) if vals else None

    figures: dict[str, float | None] = {
        "top10_by_metric_ms": med("top10", "runyard") * 1000,  # type: ignore[operator]
        "history_100k_s": med("history", "runyard"),
        "history_1m_downsampled_ms": med("downsampled", "runyard") * 1000,  # type: ignore[operator]
    }
    if peer is not None:
        figures["mlflow_top10_by_metric_ms"] = med("top10", "mlflow") * 1000  # type: ignore[operator]
        figures["mlflow_history_100k_s"] = med("history", "mlflow")
        figures["mlflow_create_run_ms"] = med("create_run", "mlflow") * 1000  # type: ignore[operator]
        meta["mlflow_list_1000_runs_ms"] = med("page1000", "mlflow") * 1000  # type: ignore[operator]
    figures["create_run_ms"] = med("create_run", "runyard") * 1000  # type: ignore[operator]
    meta["list_1000_runs_ms"] = med("page1000", "runyard") * 1000  # type: ignore[operator]
    meta["samples_s"] = results
    meta["elapsed_s"] = time.perf_counter() - started
    meta["load_note"] = load_note()
    report(figures, meta, args)
    write_json(args.json, figures, meta)
    return 0


def report(f: dict[str, float | None], meta: dict[str, object], args: argparse.Namespace) -> None:
    def ratio(ours: float | None, theirs: float | None) -> str:
        return f"{theirs / ours:,.0f}× faster" if ours and theirs else "—"

    top, mtop = f.get("top10_by_metric_ms"), f.get("mlflow_top10_by_metric_ms")
    h, mh = f.get("history_100k_s"), f.get("mlflow_history_100k_s")
    ds = f.get("history_1m_downsampled_ms")
    lst, mlst = meta.get("list_1000_runs_ms"), meta.get("mlflow_list_1000_runs_ms")
    cr, mcr = f.get("create_run_ms"), f.get("mlflow_create_run_ms")
    n = f"{args.runs:,}"
    print_table(
        f"Queries over {n} runs (5 params, 5 metrics each), HTTP API on 127.0.0.1, client-side time",
        ["query", "Runyard", "MLflow" + (f" {meta['mlflow_version']}" if meta.get("mlflow_version") else ""), "Runyard is"],
        [
            [f"top 10 of {n} runs by a metric", fmt(top, "ms"), fmt(mtop, "ms"), ratio(top, mtop)],
            [f"full history, {args.history_100k:,} points", fmt(h, "s"), fmt(mh, "s"), ratio(h, mh)],
            [f"{args.history_1m:,}-point history, max_points=1000", fmt(ds, "ms"), "— (not measured)", "—"],
            ["first page of 1,000 runs", fmt(lst, "ms"), fmt(mlst, "ms"), ratio(lst, mlst)],  # type: ignore[arg-type]
            [f"create a run (params, tags) in the {n}-run project", fmt(cr, "ms"), fmt(mcr, "ms"), ratio(cr, mcr)],
        ],
    )
    if args.with_mlflow:
        m_runs = int(meta.get("mlflow_runs", args.runs))  # type: ignore[arg-type]
        scale = "the same" if m_runs == args.runs else f"a SMALLER scale: {m_runs:,}"
        print(f"MLflow scale: {scale} runs and a {args.history_100k:,}-point history, seeded through its own tables "
              f"in {meta.get('mlflow_seed_s', 0):.0f} s before its server started. An MLflow query taking over a second "
              f"is one sample; faster ones the median of 3 after a warm-up. Runyard: the median of its samples "
              f"taken just before and just after MLflow's.")
    print_table(
        "Targets",
        ["target", "measured", "verdict"],
        [
            [f"top 10 by metric < {TARGET_TOP10_MS:.0f} ms", fmt(top, "ms"), verdict(top < TARGET_TOP10_MS if top is not None else None)],
            [f"history of 100k points < {TARGET_HISTORY_100K_S} s", fmt(h, "s"),
             verdict(h < TARGET_HISTORY_100K_S if h is not None else None)],
            [f"1M points downsampled < {TARGET_HISTORY_1M_DS_MS:.0f} ms", fmt(ds, "ms"),
             verdict(ds < TARGET_HISTORY_1M_DS_MS if ds is not None else None)],
            [f"create a run ≤ {TARGET_CREATE_RUN_MS:.0f} ms", fmt(cr, "ms"),
             verdict(cr <= TARGET_CREATE_RUN_MS if cr is not None else None)],
        ],
    )
    print(f"benchmark took {meta.get('elapsed_s', 0):.0f} s; {meta.get('load_note', '')}")


if __name__ == "__main__":
    sys.exit(main())
