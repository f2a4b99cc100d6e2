"""One MLflow-client workload, run against any MLflow tracking server. Runs with the PEERS venv's python only.

    MLFLOW_TRACKING_URI=http://127.0.0.1:PORT python _mlflow_client_workload.py PHASE [options]

The same code, the same calls and the same timers serve both sides of
``mlflow_client.py``: MLflow's own ``mlflow server`` and Runyard's MLflow-compatible
API (``/api/2.0/mlflow/...`` on a Runyard server). Only ``MLFLOW_TRACKING_URI`` (and
``MLFLOW_TRACKING_TOKEN`` where the server wants one) differ. Every phase prints one
JSON object as its last stdout line; progress and MLflow's own output go to stderr.
Every phase checks its answers (points stored, run order, the runs a filter selects),
so no figure comes from a request that silently failed. Phases:

- ``log_batch``: ``--runs`` new runs, each ``--batches`` calls of
  ``MlflowClient.log_batch(run_id, metrics=[1,000 Metric], synchronous=True)`` over
  ``--keys`` metric keys; timed from the first call to the last answer; run creation
  and one warm-up batch into a run of its own untimed. ``{"points", "s", "calls_ms", "client_ms"}``:
  ``client_ms`` is what the client alone spends building one request (:func:`client_cost_ms`).
- ``populate``: runs ``run-<i>`` for i in ``[--first, --first + --runs)``, each a
  ``create_run`` and a ``log_batch`` of one ``loss`` point, on ``--threads`` client
  threads. ``{"runs", "s", "requests"}``.
- ``seed`` (MLflow only, before its server starts): the same runs bulk-inserted into
  MLflow's SQLite file through its own store and table definitions, MLflow's fastest
  route to 10,000 runs (its API creates 10-40 runs a second here). ``{"runs", "s"}``.
- ``search``: ``search_runs([experiment], order_by=["metrics.loss ASC"], max_results=10)``
  and a filter query (``metrics.loss < X`` that 15 runs pass, ordered, ``max_results=100``), each repeated up to
  ``--repeat`` times within ``--budget-s``; latencies in seconds, each answer checked.

The value of ``loss`` for run ``i`` is :func:`loss_value`, the same on both sides.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

BATCH = 1000  # metrics a log_batch call: MLflow's limit per request
FILTER_MATCHES = 15  # runs the filter query selects


def log(msg: str) -> None:
    print(f"  [mlflow client] {msg}", file=sys.stderr, flush=True)


def loss_value(i: int) -> float:
    """``loss`` of run i: k / 10007 for a k that differs for every i < 10007, so the order is unique."""
    return ((i * 7919) % 10007 + 1) / 10007


def filter_threshold(runs: int) -> float:
    """X in ``metrics.loss < X`` such that the lowest ``FILTER_MATCHES`` losses of ``runs`` runs pass, halfway
    to the next one (the values are k / 10007)."""
    return sorted(loss_value(i) for i in range(runs))[min(FILTER_MATCHES, runs) - 1] + 0.5 / 10007


def expected_top(runs: int, n: int, below: float | None = None) -> list[str]:
    """Names of the ``n`` runs with the lowest loss (only those with loss < ``below``, if given)."""
    order = sorted(range(runs), key=loss_value)
    if below is not None:
        order = [i for i in order if loss_value(i) < below]
    return [f"run-{i}" for i in order[:n]]


def client() -> Any:  # an MlflowClient: mlflow exists only in the peers venv
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    from mlflow.tracking import MlflowClient

    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise SystemExit("Set MLFLOW_TRACKING_URI to the server to measure, e.g. http://127.0.0.1:5000.")
    return MlflowClient(tracking_uri=uri)


def experiment_id(c: Any, name: str) -> str:
    exp = c.get_experiment_by_name(name)
    return exp.experiment_id if exp is not None else c.create_experiment(name)


def run_name(run: Any) -> str:
    return run.info.run_name or run.data.tags.get("mlflow.runName", "")


def phase_log_batch(args: argparse.Namespace) -> dict:
    from mlflow.entities import Metric

    c = client()
    exp = experiment_id(c, args.experiment)
    run_ids = [c.create_run(exp, run_name=f"{args.tag}-{r}").info.run_id for r in range(args.runs)]
    keys = [f"m{k}" for k in range(args.keys)]
    per_key = BATCH // len(keys)
    ts = int(time.time() * 1000)
    # Batch b of a run holds steps [b * per_key, (b + 1) * per_key) of every key: as a training loop flushes.
    batches = [[Metric(key, 1.0 / (s + 1), ts + s, s) for s in range(b * per_key, (b + 1) * per_key) for key in keys]
               for b in range(args.batches)]
    # A server worker's first requests pay for its lazy set-up (a second or more on MLflow's): one untimed batch
    # on this connection first, into a run of its own.
    c.log_batch(c.create_run(exp, run_name=f"{args.tag}-warmup").info.run_id, metrics=batches[0], synchronous=True)
    calls: list[float] = []
    waits = timed_requests()
    t0 = time.perf_counter()
    for rid in run_ids:
        for batch in batches:
            a = time.perf_counter()
            c.log_batch(rid, metrics=batch, synchronous=True)
            calls.append(time.perf_counter() - a)
    dt = time.perf_counter() - t0
    server = list(waits)
    waits.clear()
    points = args.runs * args.batches * per_key * len(keys)
    # Check what the server kept: every point of every key of the last run, and the other runs' last values.
    for key in keys:
        stored = len(c.get_metric_history(run_ids[-1], key))
        if stored != args.batches * per_key:
            raise RuntimeError(f"log_batch: run {run_ids[-1]} has {stored} points of {key!r}, "
                               f"{args.batches * per_key} were sent")
    for rid in run_ids:
        last = c.get_run(rid).data.metrics
        want = 1.0 / (args.batches * per_key)
        if set(last) != set(keys) or any(abs(v - want) > 1e-12 for v in last.values()):
            raise RuntimeError(f"log_batch: run {rid} reports latest metrics {last}, expected {want} for each of {keys}")
        c.set_terminated(rid)
    return {"points": points, "s": dt, "calls_ms": [round(x * 1000, 3) for x in calls],
            "server_ms": [round(x * 1000, 3) for x in server] if len(server) == len(calls) else None,
            "client_ms": client_cost_ms(batches)}


def timed_requests() -> list[float]:
    """From now on, the seconds each of MLflow's REST calls waits for its server's answer (request sent, answer
    read: MLflow's ``rest_utils.http_request``), appended to the list returned; the client's own work (entities
    to protobuf to JSON, and parsing the answer) is outside it. The same wrap on both sides."""
    from mlflow.utils import rest_utils

    waits: list[float] = []
    real = rest_utils.http_request

    def http_request(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            waits.append(time.perf_counter() - t0)

    rest_utils.http_request = http_request
    return waits


def client_cost_ms(batches: list) -> float | None:
    """Median time MLflow's client takes to turn one batch into its request body, no server involved: the
    entities to protobuf, protobuf to JSON, as its REST store does before each log_batch request. A floor
    under every server's call time. None if this MLflow keeps those functions elsewhere."""
    try:
        from mlflow.protos.service_pb2 import LogBatch
        from mlflow.utils.proto_json_utils import message_to_json
    except ImportError:
        return None
    samples = []
    for batch in batches:
        t0 = time.perf_counter()
        message_to_json(LogBatch(run_id="0" * 32, metrics=[m.to_proto() for m in batch], params=[], tags=[]))
        samples.append(time.perf_counter() - t0)
    return sorted(samples)[len(samples) // 2] * 1000


def phase_populate(args: argparse.Namespace) -> dict:
    from mlflow.entities import Metric

    c = client()
    exp = experiment_id(c, args.experiment)
    c.search_experiments(max_results=1)
    ts = int(time.time() * 1000)
    done = 0
    lock = threading.Lock()
    t_report = [time.perf_counter()]

    def one(i: int) -> None:
        nonlocal done
        rid = c.create_run(exp, run_name=f"run-{i}").info.run_id
        c.log_batch(rid, metrics=[Metric("loss", loss_value(i), ts, 0)], synchronous=True)
        with lock:
            done += 1
            now = time.perf_counter()
            if now - t_report[0] > 10:
                t_report[0] = now
                log(f"populate: {done:,} of {args.runs:,} runs")

    t0 = time.perf_counter()
    with ThreadPoolExecutor(args.threads) as pool:
        for _ in pool.map(one, range(args.first, args.first + args.runs)):
            pass
    dt = time.perf_counter() - t0
    return {"runs": args.runs, "s": dt, "requests": 2 * args.runs, "threads": args.threads}


def phase_seed(args: argparse.Namespace) -> dict:
    """Bulk-insert runs into MLflow's SQLite file in the shape ``create_run`` + ``log_batch`` +
    ``set_terminated`` leave, through MLflow's own SqlAlchemyStore (which makes the schema) and tables."""
    import uuid

    import mlflow
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlRun, SqlTag
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    logging.getLogger("mlflow").setLevel(logging.ERROR)  # after the import, which sets it up
    t0 = time.perf_counter()
    store = SqlAlchemyStore(f"sqlite:///{args.db}", args.artifacts)
    exp = store.get_experiment_by_name(args.experiment)
    exp_id = exp.experiment_id if exp is not None else store.create_experiment(args.experiment)
    art = store.get_experiment(exp_id).artifact_location.rstrip("/")
    now = int(time.time() * 1000)
    runs, tags, metrics = [], [], []
    for i in range(args.first, args.first + args.runs):
        rid = uuid.uuid4().hex
        name = f"run-{i}"
        runs.append({"run_uuid": rid, "name": name, "source_type": "UNKNOWN", "source_name": "", "entry_point_name": "",
                     "user_id": "bench", "status": "FINISHED", "start_time": now, "end_time": now + 1000,
                     "deleted_time": None, "source_version": "", "lifecycle_stage": "active",
                     "artifact_uri": f"{art}/{rid}/artifacts", "experiment_id": int(exp_id)})
        tags += [{"key": "mlflow.runName", "value": name, "run_uuid": rid},
                 {"key": "mlflow.user", "value": "bench", "run_uuid": rid}]
        metrics.append({"key": "loss", "value": loss_value(i), "timestamp": now, "step": 0, "is_nan": False, "run_uuid": rid})
    with store.engine.begin() as conn:
        conn.execute(SqlRun.__table__.insert(), runs)
        conn.execute(SqlTag.__table__.insert(), tags)
        conn.execute(SqlMetric.__table__.insert(), metrics)
        conn.execute(SqlLatestMetric.__table__.insert(), metrics)
    store.engine.dispose()
    return {"runs": args.runs, "s": time.perf_counter() - t0, "mlflow_version": mlflow.__version__, "experiment_id": str(exp_id)}


def phase_search(args: argparse.Namespace) -> dict:
    c = client()
    exp = c.get_experiment_by_name(args.experiment)
    if exp is None:
        raise RuntimeError(f"search: no experiment {args.experiment!r} on the server; populate it first")
    exp_id = exp.experiment_id
    for _ in range(3):  # a worker's first requests pay for its lazy set-up: not a figure
        c.search_experiments(max_results=1)
    top_want = expected_top(args.total_runs, 10)
    below = filter_threshold(args.total_runs)
    filter_string = f"metrics.loss < {below:.6g}"  # halfway between two values 1e-4 apart: 6 digits do
    filter_want = expected_top(args.total_runs, 100, below=below)

    def top10() -> float:
        t0 = time.perf_counter()
        runs = c.search_runs([exp_id], order_by=["metrics.loss ASC"], max_results=10)
        dt = time.perf_counter() - t0
        got = [run_name(r) for r in runs]
        if got != top_want:
            raise RuntimeError(f"search_runs top 10 by metrics.loss ASC answered {got}, expected {top_want}")
        return dt

    def filtered() -> float:
        t0 = time.perf_counter()
        runs = c.search_runs([exp_id], filter_string=filter_string, order_by=["metrics.loss ASC"], max_results=100)
        dt = time.perf_counter() - t0
        got = [run_name(r) for r in runs]
        if got != filter_want:
            raise RuntimeError(f"search_runs({filter_string!r}) answered {got}, expected {filter_want}")
        return dt

    out: dict[str, object] = {"filter_string": filter_string, "filter_matches": len(filter_want)}
    for name, fn in (("top10_s", top10), ("filter_s", filtered)):
        if args.warmup:
            fn()
        samples: list[float] = []
        t_start = time.perf_counter()
        while len(samples) < args.repeat and (not samples or time.perf_counter() - t_start < args.budget_s):
            samples.append(fn())
        out[name] = samples
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="phase", required=True)
    pb = sub.add_parser("log_batch")
    pb.add_argument("--experiment", default="bench-log-batch")
    pb.add_argument("--runs", type=int, default=2)
    pb.add_argument("--batches", type=int, default=10, help=f"log_batch calls a run, {BATCH} metrics each")
    pb.add_argument("--keys", type=int, default=5, help=f"metric keys (a divisor of {BATCH})")
    pb.add_argument("--tag", default="log-batch", help="prefix of the runs' names")
    pp = sub.add_parser("populate")
    pp.add_argument("--experiment", default="bench-search")
    pp.add_argument("--runs", type=int, required=True)
    pp.add_argument("--first", type=int, default=0)
    pp.add_argument("--threads", type=int, default=4)
    pd = sub.add_parser("seed")
    pd.add_argument("--db", required=True)
    pd.add_argument("--artifacts", required=True)
    pd.add_argument("--experiment", default="bench-search")
    pd.add_argument("--runs", type=int, required=True)
    pd.add_argument("--first", type=int, default=0)
    ps = sub.add_parser("search")
    ps.add_argument("--experiment", default="bench-search")
    ps.add_argument("--total-runs", type=int, required=True, help="runs run-0 … run-(N-1) in the experiment")
    ps.add_argument("--repeat", type=int, default=20)
    ps.add_argument("--budget-s", type=float, default=30.0, help="stop repeating a query after this long (one sample at least)")
    ps.add_argument("--warmup", action="store_true", help="one untimed call of each query first")
    args = p.parse_args()
    if args.phase == "log_batch" and BATCH % args.keys:
        p.error(f"--keys must divide {BATCH}, got --keys={args.keys}")
    out = sys.stdout
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - MLflow's own prints ("View run ...") must not mix with the answer
    result = {"log_batch": phase_log_batch, "populate": phase_populate, "seed": phase_seed, "search": phase_search}[args.phase](args)
    print(json.dumps(result), file=out, flush=True)


if __name__ == "__main__":
    main()
