"""The MLflow side of the benchmarks. Runs with the PEERS venv's python, never Runyard's.

    python _mlflow_peer.py ingest --uri URL [--single N] [--batch-points M]
    python _mlflow_peer.py seed   --db FILE --artifacts DIR [--runs R] [--history P]
    python _mlflow_peer.py query  --uri URL --experiment-id E --history-run RUN [--runs R] [--history P]

``ingest`` and ``query`` talk to an ``mlflow server`` that the calling benchmark started
(and stops); ``seed`` fills its SQLite file before that server starts.
Progress goes to stderr; the last line on stdout is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time


def log(msg: str) -> None:
    print(f"  [mlflow] {msg}", file=sys.stderr, flush=True)


def _client(uri: str):  # noqa: ANN202
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(uri)
    return mlflow, MlflowClient(tracking_uri=uri)


def ingest(args: argparse.Namespace) -> dict:
    mlflow, client = _client(args.uri)
    from mlflow.entities import Metric

    out: dict = {"mlflow_version": mlflow.__version__}
    exp_id = client.create_experiment(f"bench-ingest-{int(time.time() * 1000)}")

    # 1. mlflow.log_metric: one HTTP request (one commit) per point.
    mlflow.set_experiment(experiment_id=exp_id)
    with mlflow.start_run(run_name="log-metric") as run:
        mlflow.log_metric("loss", 1.0, step=0)  # warm the connection pool
        t0 = time.perf_counter()
        for i in range(1, args.single + 1):
            mlflow.log_metric("loss", 1.0 / i, step=i)
        dt = time.perf_counter() - t0
    n = len(client.get_metric_history(run.info.run_id, "loss"))
    if n != args.single + 1:
        raise SystemExit(f"log_metric: expected {args.single + 1} points, the server has {n}")
    out["mlflow_log_metric_points"] = args.single
    out["mlflow_log_metric_s"] = dt
    out["mlflow_log_metric_points_per_s"] = args.single / dt
    log(f"log_metric: {args.single} points in {dt:.2f}s")

    # 2. MlflowClient.log_batch with 1,000 metrics per call (MLflow's limit per request).
    run_id = client.create_run(exp_id, run_name="log-batch").info.run_id
    ts = int(time.time() * 1000)
    batches = []
    for lo in range(0, args.batch_points, args.batch_size):
        hi = min(lo + args.batch_size, args.batch_points)
        batches.append([Metric("loss", 1.0 / (i + 1), ts + i, i) for i in range(lo, hi)])
    t0 = time.perf_counter()
    for b in batches:
        client.log_batch(run_id, metrics=b, synchronous=True)
    dt = time.perf_counter() - t0
    client.set_terminated(run_id)
    out["mlflow_log_batch_points"] = args.batch_points
    out["mlflow_log_batch_s"] = dt
    out["mlflow_log_batch_points_per_s"] = args.batch_points / dt
    log(f"log_batch: {args.batch_points} points in {dt:.2f}s")
    return out


def metric_value(i: int, j: int) -> float:
    """Value of metric m<j> of run i: the same numbers on both sides, all distinct for j=0."""
    return ((i * 7919 + j * 104729) % 10007) / 10007


def seed(args: argparse.Namespace) -> dict:
    """Seed MLflow's SQLite file before its server starts, through MLflow's own store and tables.

    Creating runs through the API costs ~5-30 ms each here (PERF.md: 13-36 runs/s), so the
    runs, their params, tags, metrics and latest_metrics rows are bulk-inserted with MLflow's
    own SQLAlchemy table definitions, in the shape its ``create_run`` + ``log_batch`` +
    ``set_terminated`` would leave. The schema is created by MLflow's SqlAlchemyStore itself.
    """
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    import uuid

    import mlflow
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlParam, SqlRun, SqlTag
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    t0 = time.perf_counter()
    store = SqlAlchemyStore(f"sqlite:///{args.db}", args.artifacts)
    exp_id = store.create_experiment("bench-query")
    art = store.get_experiment(exp_id).artifact_location.rstrip("/")
    now = int(time.time() * 1000)
    runs, tags, params, metrics = [], [], [], []

    def add_run(name: str, start: int) -> str:
        rid = uuid.uuid4().hex
        runs.append({"run_uuid": rid, "name": name, "source_type": "UNKNOWN", "source_name": "", "entry_point_name": "",
                     "user_id": "bench", "status": "FINISHED", "start_time": start, "end_time": start + 1000,
                     "deleted_time": None, "source_version": "", "lifecycle_stage": "active",
                     "artifact_uri": f"{art}/{rid}/artifacts", "experiment_id": int(exp_id)})
        tags.append({"key": "mlflow.runName", "value": name, "run_uuid": rid})
        tags.append({"key": "mlflow.user", "value": "bench", "run_uuid": rid})
        return rid

    for i in range(args.runs):
        rid = add_run(f"run-{i}", now - (args.runs - i) * 1000)
        for j in range(5):
            params.append({"key": f"p{j}", "value": str((i + j) % 97), "run_uuid": rid})
            metrics.append({"key": f"m{j}", "value": metric_value(i, j), "timestamp": now, "step": 0, "is_nan": False,
                            "run_uuid": rid})
    hist = add_run("history", now)
    history = [{"key": "loss", "value": 1.0 / (s + 1), "timestamp": now + s, "step": s, "is_nan": False, "run_uuid": hist}
               for s in range(args.history)]
    with store.engine.begin() as conn:
        conn.execute(SqlRun.__table__.insert(), runs)
        conn.execute(SqlTag.__table__.insert(), tags)
        conn.execute(SqlParam.__table__.insert(), params)
        conn.execute(SqlMetric.__table__.insert(), metrics)
        conn.execute(SqlLatestMetric.__table__.insert(), metrics + [history[-1]])
        for lo in range(0, len(history), 50_000):
            conn.execute(SqlMetric.__table__.insert(), history[lo:lo + 50_000])
    store.engine.dispose()
    dt = time.perf_counter() - t0
    log(f"seeded {args.runs} runs + a {args.history}-point history into {args.db} in {dt:.1f}s")
    return {"mlflow_version": mlflow.__version__, "experiment_id": str(exp_id), "history_run": hist, "seed_s": dt}


def query(args: argparse.Namespace) -> dict:
    mlflow, client = _client(args.uri)
    exp_id = args.experiment_id
    out: dict = {"mlflow_version": mlflow.__version__}
    expected = [f"run-{i}" for i in sorted(range(args.runs), key=lambda i: metric_value(i, 0), reverse=True)[:10]]

    def top10() -> None:
        runs = client.search_runs([exp_id], order_by=["metrics.m0 DESC"], max_results=10)
        names = [r.info.run_name for r in runs]
        if names != expected:
            raise SystemExit(f"search_runs answered {names}, expected {expected}: the seed is not what MLflow sees")

    def page1000() -> None:
        runs = client.search_runs([exp_id], max_results=1000)
        if len(runs) != 1000:
            raise SystemExit(f"search_runs(max_results=1000) answered {len(runs)} runs")

    def history() -> None:
        pts = client.get_metric_history(args.history_run, "loss")
        if len(pts) != args.history:
            raise SystemExit(f"get_metric_history: expected {args.history} points, got {len(pts)}")

    # Creating runs first also opens the client's connections before anything is timed.
    out["mlflow_create_run_ms"], _ = _median_ms(lambda: client.create_run(exp_id), 10)
    log(f"create a run: median {out['mlflow_create_run_ms']:.0f} ms")
    out["mlflow_top10_by_metric_ms"], out["mlflow_top10_by_metric_ms_all"] = _median_ms(top10, args.repeat)
    log(f"top 10 by metric: median {out['mlflow_top10_by_metric_ms']:.0f} ms of {len(out['mlflow_top10_by_metric_ms_all'])}")
    out["mlflow_list_1000_runs_ms"], _ = _median_ms(page1000, args.repeat)
    log(f"first page of 1,000 runs: median {out['mlflow_list_1000_runs_ms']:.0f} ms")
    ms, out["mlflow_history_ms_all"] = _median_ms(history, args.repeat)
    out["mlflow_history_100k_s"] = ms / 1000
    log(f"history of {args.history:,} points: median {ms / 1000:.2f} s of {len(out['mlflow_history_ms_all'])}")
    return out


def _median_ms(fn, repeat: int, slow_s: float = 1.0) -> tuple[float, list[float]]:  # noqa: ANN001
    """Median wall time in ms: a first call, then ``repeat`` timed calls; or, when the first
    call alone took over ``slow_s``, that call as the only sample (keeps the run short;
    a multi-second figure gains little from repeats)."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    if first > slow_s:
        return first * 1000, [first * 1000]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), times


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    pi = sub.add_parser("ingest")
    pi.add_argument("--uri", required=True)
    pi.add_argument("--single", type=int, default=300)
    pi.add_argument("--batch-points", type=int, default=20_000)
    pi.add_argument("--batch-size", type=int, default=1000)
    ps = sub.add_parser("seed")
    ps.add_argument("--db", required=True)
    ps.add_argument("--artifacts", required=True)
    ps.add_argument("--runs", type=int, default=10_000)
    ps.add_argument("--history", type=int, default=100_000)
    pq = sub.add_parser("query")
    pq.add_argument("--uri", required=True)
    pq.add_argument("--experiment-id", required=True)
    pq.add_argument("--history-run", required=True)
    pq.add_argument("--runs", type=int, default=10_000)
    pq.add_argument("--history", type=int, default=100_000)
    pq.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    result = {"ingest": ingest, "seed": seed, "query": query}[args.cmd](args)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
