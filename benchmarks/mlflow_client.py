"""MLflow's own client, one workload, against MLflow's tracking server and Runyard's MLflow-compatible API.

    .venv/bin/python benchmarks/mlflow_client.py [--quick] [--json FILE] [--runs N] [--rounds R] [--keep]

Both servers run side by side on 127.0.0.1: ``mlflow server`` (SQLite backend, default
workers, the peers venv's binary) and a Runyard server (fresh RUNYARD_HOME, local mode:
no sign-in), whose MLflow-compatible API answers under ``/api/2.0/mlflow/``. The client
is MLflow's own ``MlflowClient``, run by the peers venv's python
(``_mlflow_client_workload.py``), the same script for both sides with only
``MLFLOW_TRACKING_URI`` changed (``MLFLOW_TRACKING_TOKEN`` too with ``--runyard-token``).
Timers are inside that script, around the MLflow calls only: end to end from the client
(request, server, decoding into MLflow's entities). Every answer is checked.

Figures (also written to ``--json FILE`` under these names):

- ``runyard_log_batch_points_per_s`` / ``mlflow_log_batch_points_per_s``: ``MlflowClient.log_batch``
  with 1,000 metrics a call (5 keys × 200 steps), 2 runs × 10 calls a round (``--quick``:
  1 × 3), ``synchronous=True``; an uncounted warm-up round, then R interleaved rounds (default 5;
  ``--quick`` 3), the side that goes first alternating; medians. ``log_batch_ratio`` is the median of the per-round ratios.
  ``_meta.client_build_ms``: what MLflow's client alone spends building one such request (no
  server), the floor under both sides' call times.
- ``runyard_populate_runs_per_s``: the 10,000 runs of the search phase created through
  Runyard's MLflow API, each a ``create_run`` and a ``log_batch`` of one ``loss`` point, on 4
  client threads. ``mlflow_populate_runs_per_s``: the same calls for the first 200 of them on
  MLflow (50 with ``--quick``); the others are bulk-inserted into its SQLite file through its
  own store and tables before its server starts (``mlflow_seed_s``), its fastest route: 10,000
  runs through its API would take 5-15 minutes here.
- ``runyard_top10_ms`` / ``mlflow_top10_ms``: ``search_runs([experiment],
  order_by=["metrics.loss ASC"], max_results=10)`` over the 10,000 runs (one ``loss`` each);
  medians. Runyard: a warm-up, then up to 20 samples before MLflow's and up to 20 after.
  MLflow: up to 3 samples within 30 s (a call slower than that is one sample), no warm-up
  (one query takes seconds to a minute). ``top10_ratio`` = MLflow's median / Runyard's.
- ``runyard_filter_ms`` / ``mlflow_filter_ms``: ``search_runs`` with
  ``filter_string="metrics.loss < X"`` (15 runs pass), the same order, ``max_results=100``.

Targets: Runyard ≥ 10× MLflow on log_batch, ≥ 100× on the top-10 search.
PASS/FAIL is printed; the exit code is 0 whatever the figures (a benchmark is not a
test) and 1 only when the benchmark itself could not run. When the Runyard server has no
MLflow-compatible API, only MLflow's side is measured and every target reads "—".
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    BENCH_DIR,
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

from runyard._http import Session, TransportError  # noqa: E402

TARGET_LOG_BATCH_X = 10.0
TARGET_TOP10_X = 100.0
WORKLOAD = BENCH_DIR / "_mlflow_client_workload.py"
MLFLOW_API = "/api/2.0/mlflow"

FULL = {"runs": 10_000, "mlflow_api_runs": 200, "rounds": 5, "lb_runs": 2, "lb_batches": 10, "repeat": 20}
QUICK = {"runs": 1_000, "mlflow_api_runs": 50, "rounds": 3, "lb_runs": 1, "lb_batches": 3, "repeat": 5}


class Side:
    """One tracking server as the MLflow client sees it: a URL and, for Runyard with sign-in on, a token."""

    def __init__(self, name: str, url: str, token: str | None = None) -> None:
        self.name, self.url, self.token = name, url, token

    def run(self, phase: str, *args: str | int, timeout_s: float = 1800) -> dict[str, Any]:
        env = {"MLFLOW_TRACKING_URI": self.url, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
               "MLFLOW_HTTP_REQUEST_TIMEOUT": "900"}  # MLflow's top-10 over 10,000 runs can take a minute here
        if self.token:
            env["MLFLOW_TRACKING_TOKEN"] = self.token
        try:
            return run_peer([phase, *map(str, args)], timeout_s, script=WORKLOAD, env_extra=env)
        except RuntimeError as e:
            raise RuntimeError(f"{self.name}: {e}") from e


def runyard_has_mlflow_api(url: str, token: str | None) -> str | None:
    """None when ``url`` answers MLflow's experiments search; else why not (the status and the start of the body)."""
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    try:
        with Session(url, timeout_s=10) as http:
            r = http.request("POST", f"{MLFLOW_API}/experiments/search", content=b'{"max_results": 1}', headers=headers)
    except TransportError as e:
        return f"POST {MLFLOW_API}/experiments/search failed: {e}"
    if r.status_code == 200:
        return None
    return f"POST {MLFLOW_API}/experiments/search answered {r.status_code}: {r.text[:200]}"


def measure_log_batch(sides: list[Side], experiment: str, rounds: int, lb_runs: int, lb_batches: int) -> list[dict[str, float]]:
    """A warm-up round (not counted), then R rounds; in each, every side logs the same batches; who goes
    first alternates. (MLflow's server answered its first round 3-10× slower than the next ones, warm-up
    batch or not.)"""
    out: list[dict[str, float]] = []
    for r in range(rounds + 1):
        row: dict[str, float] = {}
        for side in sides if r % 2 == 0 else sides[::-1]:
            res = side.run("log_batch", "--experiment", experiment, "--runs", lb_runs, "--batches", lb_batches,
                           "--tag", f"round-{r}")
            row[side.name] = res["points"] / res["s"]
            row[f"{side.name}_call_ms"] = statistics.median(res["calls_ms"])
            if res.get("client_ms") is not None:
                row[f"{side.name}_client_ms"] = res["client_ms"]
            if res.get("server_ms"):
                row[f"{side.name}_server_ms"] = statistics.median(res["server_ms"])
            row["points"] = res["points"]
        say(f"  {f'round {r}' if r else 'warm-up round'}: " + ", ".join(
            f"{s.name} {row[s.name]:,.0f} points/s (median call {row[f'{s.name}_call_ms']:,.1f} ms)" for s in sides))
        if r:
            out.append(row)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="smaller sizes: 1,000 runs to search, 3 rounds of 3,000 log_batch points, 5 samples (about 2 minutes)")
    p.add_argument("--json", metavar="FILE", help="write the figures to FILE")
    p.add_argument("--runs", type=int, help=f"runs to search over (default {FULL['runs']:,}; --quick {QUICK['runs']:,})")
    p.add_argument("--rounds", type=int, help="interleaved log_batch rounds (default 5; --quick 3)")
    p.add_argument("--mlflow-api-runs", type=int,
                   help="runs created through MLflow's API to time its populating (default 200; --quick 50)")
    p.add_argument("--threads", type=int, default=4, help="client threads that populate (default 4)")
    p.add_argument("--runyard-token", help="a Runyard token, sent as MLFLOW_TRACKING_TOKEN (needed only with sign-in on)")
    p.add_argument("--runyard-url", metavar="URL",
                   help="measure this running Runyard server (its state as it is, e.g. started under a profiler) "
                        "instead of starting a fresh one")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (server logs, databases)")
    args = p.parse_args()
    size = dict(QUICK if args.quick else FULL)
    for key in ("runs", "rounds", "mlflow_api_runs"):
        if getattr(args, key) is not None:
            size[key] = getattr(args, key)
    if size["runs"] < 10 or size["mlflow_api_runs"] > size["runs"] or size["rounds"] < 1:
        p.error(f"need --runs ≥ 10, --mlflow-api-runs ≤ --runs and --rounds ≥ 1, got {size}")
    stop_on_sigterm()

    workdir = Path(tempfile.mkdtemp(prefix="runyard-bench-mlflow-client-"))
    meta: dict[str, Any] = {"workdir": str(workdir), "quick": args.quick, **size, "threads": args.threads}
    started = time.perf_counter()
    ry_server = ml_server = None
    lb_rounds: list[dict[str, float]] = []
    search: dict[str, dict[str, list[float]]] = {}
    populate: dict[str, dict[str, Any]] = {}
    n_runs, n_api = size["runs"], size["mlflow_api_runs"]
    stamp = time.strftime("%Y%m%d-%H%M%S")  # a server given by --runyard-url may hold earlier runs' experiments
    exp_search, exp_lb = f"bench-search-{stamp}", f"bench-log-batch-{stamp}"
    try:
        mdir = workdir / "mlflow"
        mdir.mkdir()
        say(f"MLflow: seeding runs run-{n_api} … run-{n_runs - 1} ({n_runs - n_api:,}) into its SQLite file, "
            "through its own store and tables …")
        seed = run_peer(["seed", "--db", str(mdir / "mlflow.db"), "--artifacts", str(mdir / "mlartifacts"),
                         "--experiment", exp_search, "--runs", str(n_runs - n_api), "--first", str(n_api)], script=WORKLOAD)
        meta["mlflow_version"], meta["mlflow_seed_s"] = seed["mlflow_version"], seed["s"]
        say(f"  seeded in {seed['s']:.1f} s; starting its server (default workers) …")
        ml_server, ml_url = mlflow_server(mdir, wait=False)
        if args.runyard_url:
            ry_url = args.runyard_url.rstrip("/")
            say(f"Runyard: the server at {ry_url}")
        else:
            say("Runyard: starting its server …")
            ry_server, ry_url = runyard_server(workdir / "runyard-home")
        missing = runyard_has_mlflow_api(ry_url, args.runyard_token)
        if missing:
            meta["runyard_missing"] = missing
            say(f"Runyard: no MLflow-compatible API on this server ({missing}); measuring MLflow's side only")
        wait_mlflow(ml_server, ml_url)
        ml = Side("MLflow", ml_url)
        ry = None if missing else Side("Runyard", ry_url, args.runyard_token)
        sides = [ml] if ry is None else [ry, ml]

        say(f"log_batch: {size['rounds']} interleaved rounds of {size['lb_runs']} run(s) × {size['lb_batches']} calls "
            "× 1,000 metrics on each side …")
        lb_rounds = measure_log_batch(sides, exp_lb, size["rounds"], size["lb_runs"], size["lb_batches"])

        say(f"MLflow: populating runs run-0 … run-{n_api - 1} through its API ({args.threads} client threads) …")
        populate["MLflow"] = ml.run("populate", "--experiment", exp_search, "--runs", n_api, "--threads", args.threads)
        say(f"  {populate['MLflow']['runs'] / populate['MLflow']['s']:,.1f} runs/s")
        if ry is not None:
            say(f"Runyard: populating {n_runs:,} runs through its MLflow API ({args.threads} client threads) …")
            populate["Runyard"] = ry.run("populate", "--experiment", exp_search, "--runs", n_runs, "--threads", args.threads)
            say(f"  {populate['Runyard']['runs'] / populate['Runyard']['s']:,.1f} runs/s")

        say(f"search_runs over {n_runs:,} runs: Runyard, then MLflow, then Runyard again …")
        ry_args = ("--experiment", exp_search, "--total-runs", n_runs, "--repeat", size["repeat"], "--budget-s", 30)
        search = {"Runyard": {"top10_s": [], "filter_s": []}, "MLflow": {}}
        if ry is not None:
            first = ry.run("search", *ry_args, "--warmup")
            meta["filter_string"] = first["filter_string"]
        res = ml.run("search", "--experiment", exp_search, "--total-runs", n_runs, "--repeat", 3, "--budget-s", 30)
        meta["filter_string"] = res["filter_string"]
        search["MLflow"] = {k: res[k] for k in ("top10_s", "filter_s")}
        say(f"  MLflow: top 10 {statistics.median(res['top10_s']):,.2f} s ({len(res['top10_s'])} samples), "
            f"filter {statistics.median(res['filter_s']):,.2f} s ({len(res['filter_s'])})")
        if ry is not None:
            second = ry.run("search", *ry_args)
            search["Runyard"] = {k: first[k] + second[k] for k in ("top10_s", "filter_s")}
            say(f"  Runyard: top 10 {statistics.median(search['Runyard']['top10_s']) * 1000:,.1f} ms, "
                f"filter {statistics.median(search['Runyard']['filter_s']) * 1000:,.1f} ms "
                f"({len(search['Runyard']['top10_s'])} samples each)")
    except KeyboardInterrupt:
        say("interrupted; servers stopped")
        return 130
    except Exception as e:  # noqa: BLE001
        say(f"benchmark failed: {type(e).__name__}: {e}")
        if ry_server is not None:
            print(f"Runyard server log (tail):\n{ry_server.log_tail(2000)}")
        return 1
    finally:
        if ml_server is not None:
            ml_server.stop(timeout_s=5)  # its CLI process ignores SIGTERM for ~15 s; the data is throwaway
        if ry_server is not None:
            ry_server.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    figures, meta2 = summarize(lb_rounds, populate, search)
    meta.update(meta2)
    meta["elapsed_s"] = time.perf_counter() - started
    meta["load_note"] = load_note()
    report(figures, meta)
    write_json(args.json, figures, meta)
    return 0


def _median(vals: list[float]) -> float | None:
    return statistics.median(vals) if vals else None


def summarize(lb_rounds: list[dict[str, float]], populate: dict[str, dict[str, Any]],
              search: dict[str, dict[str, list[float]]]) -> tuple[dict[str, float | None], dict[str, Any]]:
    def ms(side: str, key: str) -> float | None:
        m = _median(search.get(side, {}).get(key, []))
        return None if m is None else m * 1000

    def rate(side: str) -> float | None:
        got = populate.get(side)
        return got["runs"] / got["s"] if got else None

    f: dict[str, float | None] = {
        "runyard_log_batch_points_per_s": _median([r["Runyard"] for r in lb_rounds if "Runyard" in r]),
        "mlflow_log_batch_points_per_s": _median([r["MLflow"] for r in lb_rounds if "MLflow" in r]),
        "log_batch_ratio": _median([r["Runyard"] / r["MLflow"] for r in lb_rounds if "Runyard" in r and "MLflow" in r]),
        "runyard_log_batch_server_ms": _median([r["Runyard_server_ms"] for r in lb_rounds if "Runyard_server_ms" in r]),
        "mlflow_log_batch_server_ms": _median([r["MLflow_server_ms"] for r in lb_rounds if "MLflow_server_ms" in r]),
        "log_batch_server_ratio": _median([r["MLflow_server_ms"] / r["Runyard_server_ms"] for r in lb_rounds
                                           if "Runyard_server_ms" in r and "MLflow_server_ms" in r]),
        "runyard_top10_ms": ms("Runyard", "top10_s"),
        "mlflow_top10_ms": ms("MLflow", "top10_s"),
        "runyard_filter_ms": ms("Runyard", "filter_s"),
        "mlflow_filter_ms": ms("MLflow", "filter_s"),
        "runyard_populate_runs_per_s": rate("Runyard"),
        "mlflow_populate_runs_per_s": rate("MLflow"),
    }
    f["top10_ratio"] = f["mlflow_top10_ms"] / f["runyard_top10_ms"] if f["runyard_top10_ms"] and f["mlflow_top10_ms"] else None
    f["filter_ratio"] = f["mlflow_filter_ms"] / f["runyard_filter_ms"] if f["runyard_filter_ms"] and f["mlflow_filter_ms"] else None
    meta = {"log_batch_rounds": lb_rounds, "populate": populate, "search_samples_s": search,
            "runyard_log_batch_call_ms": _median([r["Runyard_call_ms"] for r in lb_rounds if "Runyard_call_ms" in r]),
            "mlflow_log_batch_call_ms": _median([r["MLflow_call_ms"] for r in lb_rounds if "MLflow_call_ms" in r]),
            "client_build_ms": _median([r[k] for r in lb_rounds for k in ("Runyard_client_ms", "MLflow_client_ms") if k in r])}
    return f, meta


def report(f: dict[str, float | None], meta: dict[str, Any]) -> None:
    def x(ratio: float | None) -> str:
        return f"{ratio:,.{0 if ratio >= 10 else 2 if ratio < 1 else 1}f}× faster" if ratio else "—"

    def spread(side: str) -> str:
        vals = [r[side] for r in meta["log_batch_rounds"] if side in r]
        return f"{fmt(min(vals))}–{fmt(max(vals))}" if vals else "—"

    n = f"{meta['runs']:,}"
    rounds = meta["log_batch_rounds"]
    ml_name = "MLflow" + (f" {meta['mlflow_version']}" if meta.get("mlflow_version") else "")
    print_table(
        f"MlflowClient.log_batch, 1,000 metrics a call, {meta['lb_runs']} run(s) × {meta['lb_batches']} calls "
        f"({rounds[0]['points'] if rounds else 0:,} points) a round; medians of {len(rounds)} interleaved rounds",
        ["server", "points/s", "rounds", "median call", "Runyard is"],
        [
            ["Runyard (MLflow API)", fmt(f["runyard_log_batch_points_per_s"]), spread("Runyard"),
             fmt(meta.get("runyard_log_batch_call_ms"), "ms"), "—"],
            [ml_name, fmt(f["mlflow_log_batch_points_per_s"]), spread("MLflow"),
             fmt(meta.get("mlflow_log_batch_call_ms"), "ms"), x(f["log_batch_ratio"])],
        ],
    )
    floor, ml_call = meta.get("client_build_ms"), meta.get("mlflow_log_batch_call_ms")
    if floor:
        print(f"MLflow's client alone spends {floor:,.1f} ms building each 1,000-metric request (entities → protobuf → "
              f"JSON, no server): through it no server passes {1000 / floor * 1000:,.0f} points/s"
              + (f", and no server beats this MLflow server by more than {ml_call / floor:,.1f}× on log_batch." if ml_call else "."))
    if f.get("log_batch_server_ratio"):
        print(f"Each log_batch call waited {fmt(f['runyard_log_batch_server_ms'], 'ms')} for Runyard's answer and "
              f"{fmt(f['mlflow_log_batch_server_ms'], 'ms')} for MLflow's (median; request sent to answer read, the "
              f"client's own work left out): Runyard's server answers {x(f['log_batch_server_ratio'])}.")
    pop = meta["populate"]
    ry_pop, ml_pop = pop.get("Runyard"), pop.get("MLflow")
    print_table(
        f"Populating {n} runs (create_run + log_batch of one point each, {meta['threads']} client threads)",
        ["server", "route", "runs", "time", "runs/s"],
        [
            ["Runyard (MLflow API)", "its MLflow API", f"{ry_pop['runs']:,}" if ry_pop else "—",
             fmt(ry_pop["s"], "s") if ry_pop else "—", fmt(f["runyard_populate_runs_per_s"])],
            [ml_name, "its API", f"{ml_pop['runs']:,}" if ml_pop else "—", fmt(ml_pop["s"], "s") if ml_pop else "—",
             fmt(f["mlflow_populate_runs_per_s"])],
            [ml_name, "bulk insert into its tables", f"{meta['runs'] - meta['mlflow_api_runs']:,}",
             fmt(meta.get("mlflow_seed_s"), "s"), "—"],
        ],
    )
    if f["mlflow_populate_runs_per_s"]:
        print(f"All {n} runs through MLflow's API would take ~{meta['runs'] / f['mlflow_populate_runs_per_s']:,.0f} s "
              f"at its measured rate.")
    n_ry = len(meta["search_samples_s"].get("Runyard", {}).get("top10_s", []))
    n_ml = len(meta["search_samples_s"].get("MLflow", {}).get("top10_s", []))
    print_table(
        f"search_runs over {n} runs (one metric each), client-side; medians of {n_ry} (Runyard) and {n_ml} (MLflow) samples",
        ["query", "Runyard (MLflow API)", ml_name, "Runyard is"],
        [
            ['top 10, order_by=["metrics.loss ASC"]', fmt(f["runyard_top10_ms"], "ms"), fmt(f["mlflow_top10_ms"], "ms"),
             x(f["top10_ratio"])],
            [f"filter {meta.get('filter_string', '')!r}, same order, max 100", fmt(f["runyard_filter_ms"], "ms"),
             fmt(f["mlflow_filter_ms"], "ms"), x(f["filter_ratio"])],
        ],
    )
    lb, top, lbs = f["log_batch_ratio"], f["top10_ratio"], f.get("log_batch_server_ratio")
    print_table(
        "Targets (one run; log_batch: median of the per-round ratios)",
        ["target", "measured", "verdict"],
        [
            [f"log_batch: Runyard's server answers ≥ {TARGET_LOG_BATCH_X:.0f}× faster than MLflow's",
             f"{lbs:,.1f}× ({fmt(f['runyard_log_batch_server_ms'], 'ms')} vs "
             f"{fmt(f['mlflow_log_batch_server_ms'], 'ms')} a call)" if lbs else "—",
             verdict(lbs >= TARGET_LOG_BATCH_X if lbs else None)],
            ["log_batch end to end through MLflow's client (for reference: its own request building is a floor "
             "under both)",
             f"{lb:,.1f}× ({fmt(f['runyard_log_batch_points_per_s'])} vs {fmt(f['mlflow_log_batch_points_per_s'])} points/s)"
             if lb else "—", "—"],
            [f"search_runs top 10 of {n}: Runyard ≥ {TARGET_TOP10_X:.0f}× MLflow",
             f"{top:,.0f}× ({fmt(f['runyard_top10_ms'], 'ms')} vs {fmt(f['mlflow_top10_ms'], 'ms')})" if top else "—",
             verdict(top >= TARGET_TOP10_X if top else None)],
        ],
    )
    if meta["runs"] != FULL["runs"]:
        print(f"The search target is set for {FULL['runs']:,} runs: MLflow's query grows faster than linearly with the "
              f"runs, so at {n} runs its verdict is only indicative.")
    if meta.get("runyard_missing"):
        print(f"Runyard's side was not measured: {meta['runyard_missing']}")
    print(f"benchmark took {meta['elapsed_s']:.0f} s; {meta['load_note']}")


if __name__ == "__main__":
    sys.exit(main())
