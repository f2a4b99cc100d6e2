"""The Ray Tune side of the dispatch benchmark. Runs with the RAY venv's python, never Runyard's.

    python _raytune_peer.py --trials N --concurrency C --storage DIR [--temp-dir DIR]

N empty trials (a function trainable that reports once) through ``Tuner.fit()`` at
Ray Tune's fastest setting: ``reuse_actors=True``, ``max_concurrent_trials=C``, a
local Ray started with ``ray.init(num_cpus=C, include_dashboard=False)``. The clock
starts before ``import ray``: start-up (import + ``ray.init``) is included, and
reported apart too. ``ray.shutdown()`` always runs; the pids of every process Ray
started under this one are reported, with those still alive after the shutdown
(the caller stops leftovers by pid; never ``ray stop``, which stops every Ray on
the machine).

Progress goes to stderr; the last line on stdout is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

T_START = time.perf_counter()


def log(msg: str) -> None:
    print(f"  [ray] {msg}", file=sys.stderr, flush=True)


def _descendants(root: int) -> set[int]:
    """Pids of every live process below ``root`` (from /proc: no psutil in this venv)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()  # after "pid (comm) "
        children.setdefault(int(fields[1]), []).append(int(entry))
    out: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
    except OSError:
        return False
    return stat[stat.rfind(")") + 2:].split()[0] != "Z"  # a zombie has ended


def trainable(config: dict) -> None:
    from ray import tune

    tune.report({"score": float(config["i"])})


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=200)
    p.add_argument("--concurrency", type=int, default=2)
    p.add_argument("--storage", required=True, help="Tune's storage directory (a temp dir of the caller)")
    p.add_argument("--temp-dir", default=None, help="Ray's session directory (default: Ray's, /tmp/ray)")
    args = p.parse_args()

    import ray
    from ray import tune

    t_import = time.perf_counter()
    out: dict = {"ray_version": ray.__version__, "trials": args.trials, "concurrency": args.concurrency}
    ray_pids: set[int] = set()
    try:
        ray.init(num_cpus=args.concurrency, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
                 _temp_dir=args.temp_dir)
        t_init = time.perf_counter()
        ray_pids |= _descendants(os.getpid())
        log(f"import {t_import - T_START:.1f}s, ray.init {t_init - t_import:.1f}s; running {args.trials} trials, "
            f"{args.concurrency} at a time, reuse_actors=True …")
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": 1}),
            param_space={"i": tune.grid_search(list(range(args.trials)))},
            tune_config=tune.TuneConfig(max_concurrent_trials=args.concurrency, reuse_actors=True),
            run_config=tune.RunConfig(storage_path=os.path.abspath(args.storage), name="dispatch", verbose=0),
        )
        t_fit0 = time.perf_counter()
        results = tuner.fit()
        t_fit1 = time.perf_counter()
        ray_pids |= _descendants(os.getpid())
        n_ok = sum(1 for r in results if r.error is None and r.metrics and "score" in r.metrics)
        out.update({
            "ray_tune_s": t_fit1 - T_START,
            "ray_import_s": t_import - T_START,
            "ray_init_s": t_init - t_import,
            "ray_fit_s": t_fit1 - t_fit0,
            "ray_trials_ok": n_ok,
            "ray_trials_errors": results.num_errors,
        })
        log(f"fit {t_fit1 - t_fit0:.1f}s; {n_ok} of {args.trials} trials reported")
    finally:
        ray_pids |= _descendants(os.getpid())
        t_sd = time.perf_counter()
        ray.shutdown()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(_alive(pid) for pid in ray_pids):
            time.sleep(0.1)
        left = sorted(pid for pid in ray_pids if _alive(pid))
        out.update({"ray_pids": sorted(ray_pids), "ray_pids_left": left, "ray_shutdown_s": time.perf_counter() - t_sd})
        log(f"ray.shutdown() {out['ray_shutdown_s']:.1f}s; {len(ray_pids)} Ray processes, {len(left)} still alive")
    print(json.dumps(out), flush=True)
    return 0 if out.get("ray_trials_ok") == args.trials else 3


if __name__ == "__main__":
    sys.exit(main())
