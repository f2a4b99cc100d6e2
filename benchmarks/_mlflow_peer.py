"""The MLflow side of the benchmarks. Runs with the PEERS venv's python, never Runyard's.

    python _mlflow_peer.py seed  --db FILE --artifacts DIR [--runs R] [--history P]
    python _mlflow_peer.py serve --uri URL

``seed`` fills an MLflow SQLite file before its server starts and prints one JSON line.
``serve`` imports MLflow once, then answers commands, one JSON object per line on stdin,
with one JSON line on stdout each, so the calling benchmark can interleave MLflow's
measurements with Runyard's (same machine load for both). MLflow's own prints go to
stderr. Commands (``op``):

- ``log_metric`` (``n``): a new run, then ``mlflow.log_metric`` once per point; ``{"s": seconds}``.
- ``log_batch`` (``n``): a new run, then ``MlflowClient.log_batch`` with 1,000 metrics a call.
- ``create_run`` / ``top10`` / ``page1000`` / ``history``: one timed query of the seeded data.
- ``hello`` (MLflow's version), ``warmup`` (untimed requests that pay for lazy set-up).
- ``quit``.

Every command checks its answer (points stored, run order, history length) so a
figure never comes from a request that silently failed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time


def log(msg: str) -> None:
    print(f"  [mlflow] {msg}", file=sys.stderr, flush=True)


def metric_value(i: int, j: int) -> float:
    """Value of metric m<j> of run i: the same numbers on both sides, all distinct for j=0."""
    return ((i * 7919 + j * 104729) % 10007) / 10007


def seed(args: argparse.Namespace) -> dict:
    """Seed MLflow's SQLite file before its server starts, through MLflow's own store and tables.

    Creating runs through the API costs 30-1000 ms each here (13-36 runs/s measured on a 2-core machine), so
    the runs, their params, tags, metrics and latest_metrics rows are bulk-inserted with
    MLflow's own SQLAlchemy table definitions, in the shape its ``create_run`` +
    ``log_batch`` + ``set_terminated`` leave. The schema is made by MLflow's SqlAlchemyStore.
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
    log(f"seeded {args.runs:,} runs + a {args.history:,}-point history in {dt:.1f} s")
    return {"mlflow_version": mlflow.__version__, "experiment_id": str(exp_id), "history_run": hist, "seed_s": dt}


class Peer:
    """MLflow's client, imported once, answering timed commands."""

    def __init__(self, uri: str) -> None:
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
        logging.getLogger("mlflow").setLevel(logging.ERROR)
        import mlflow
        from mlflow.entities import Metric
        from mlflow.tracking import MlflowClient

        mlflow.set_tracking_uri(uri)
        self.mlflow = mlflow
        self.Metric = Metric
        self.client = MlflowClient(tracking_uri=uri)
        self.ingest_exp: str | None = None
        self.n = 0

    def _ingest_experiment(self) -> str:
        if self.ingest_exp is None:
            self.ingest_exp = self.client.create_experiment(f"bench-ingest-{int(time.time() * 1000)}")
        return self.ingest_exp

    def do(self, cmd: dict) -> dict:
        op = cmd["op"]
        if op == "hello":
            return {"mlflow_version": self.mlflow.__version__}
        if op == "warmup":
            # The first requests a worker serves pay for its lazy set-up (seconds here): not a figure.
            for _ in range(3):
                self.client.search_experiments(max_results=1)
            if cmd.get("experiment_id"):
                self.client.create_run(cmd["experiment_id"])
            return {}
        if op == "log_metric":
            return self.log_metric(int(cmd["n"]))
        if op == "log_batch":
            return self.log_batch(int(cmd["n"]))
        if op in ("create_run", "top10", "page1000", "history"):
            return self.query(op, cmd)
        raise ValueError(f"unknown op {op!r}")

    def log_metric(self, n: int) -> dict:
        """``mlflow.log_metric``: one HTTP request (one commit) per point."""
        mlflow = self.mlflow
        self.n += 1
        run = mlflow.start_run(experiment_id=self._ingest_experiment(), run_name=f"log-metric-{self.n}")
        try:
            mlflow.log_metric("loss", 1.0, step=0)  # opens the connection; not timed, not counted
            t0 = time.perf_counter()
            for i in range(1, n + 1):
                mlflow.log_metric("loss", 1.0 / i, step=i)
            dt = time.perf_counter() - t0
        finally:
            mlflow.end_run()
        stored = len(self.client.get_metric_history(run.info.run_id, "loss"))
        if stored != n + 1:
            raise RuntimeError(f"log_metric: {n + 1} points sent, the server has {stored}")
        return {"points": n, "s": dt}

    def log_batch(self, n: int) -> dict:
        """``MlflowClient.log_batch`` with 1,000 metrics a call (MLflow's limit per request)."""
        self.n += 1
        run_id = self.client.create_run(self._ingest_experiment(), run_name=f"log-batch-{self.n}").info.run_id
        ts = int(time.time() * 1000)
        batches = [[self.Metric("loss", 1.0 / (i + 1), ts + i, i) for i in range(lo, min(lo + 1000, n))]
                   for lo in range(0, n, 1000)]
        t0 = time.perf_counter()
        for b in batches:
            self.client.log_batch(run_id, metrics=b, synchronous=True)
        dt = time.perf_counter() - t0
        self.client.set_terminated(run_id)
        return {"points": n, "s": dt}

    def query(self, op: str, cmd: dict) -> dict:
        client, exp_id = self.client, cmd["experiment_id"]
        t0 = time.perf_counter()
        if op == "create_run":
            client.create_run(exp_id, tags=cmd.get("tags"))  # params would be one more request (log_batch)
            dt = time.perf_counter() - t0
        elif op == "top10":
            runs = client.search_runs([exp_id], order_by=["metrics.m0 DESC"], max_results=10)
            dt = time.perf_counter() - t0
            names = [r.info.run_name for r in runs]
            if names != cmd["expected"]:
                raise RuntimeError(f"search_runs answered {names}, expected {cmd['expected']}")
        elif op == "page1000":
            runs = client.search_runs([exp_id], max_results=1000)
            dt = time.perf_counter() - t0
            if len(runs) != 1000:
                raise RuntimeError(f"search_runs(max_results=1000) answered {len(runs)} runs")
        else:
            pts = client.get_metric_history(cmd["run"], "loss")
            dt = time.perf_counter() - t0
            if len(pts) != cmd["n"]:
                raise RuntimeError(f"get_metric_history: expected {cmd['n']} points, got {len(pts)}")
        return {"s": dt}


def serve(args: argparse.Namespace) -> None:
    out = sys.stdout
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - MLflow's prints ("View run ...") must not mix with the answers
    peer = Peer(args.uri)
    print(json.dumps({"ready": True}), file=out, flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        if cmd.get("op") == "quit":
            break
        try:
            answer = peer.do(cmd)
        except Exception as e:  # noqa: BLE001 - reported to the benchmark, which stops
            answer = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(answer), file=out, flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    ps = sub.add_parser("seed")
    ps.add_argument("--db", required=True)
    ps.add_argument("--artifacts", required=True)
    ps.add_argument("--runs", type=int, default=10_000)
    ps.add_argument("--history", type=int, default=100_000)
    pv = sub.add_parser("serve")
    pv.add_argument("--uri", required=True)
    args = p.parse_args()
    if args.cmd == "seed":
        print(json.dumps(seed(args)), flush=True)
    else:
        serve(args)


if __name__ == "__main__":
    main()
