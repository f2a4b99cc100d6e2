"""``python -m runyard.launch``: the small programs Runyard runs inside distributed tasks.

- ``wait-port HOST:PORT [--what TEXT] [--timeout-s N]``: wait until something
  listens there (a worker waiting for its tracker or head); exit 3 on time-out.
- ``xgboost-tracker --host-ip H --port P --n-workers N``: run XGBoost's
  ``RabitTracker`` (the xgboost master task) until every worker finished.
- ``ray-worker -- ARGS``: ``ray start ARGS`` for a worker node on the head's
  machine that keeps every address on 127.0.0.1 (the local backend).
- ``ray-wait --address H:P --nodes N [--timeout-s N]``: connect to the Ray
  cluster and wait until N nodes are alive, logging each change (the job task,
  before the user's command); exit 3 on time-out.

argparse, not Typer: these start inside every task and must import fast.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time


def _log(text: str) -> None:
    print(f"[runyard.launch] {text}", flush=True)


def wait_port(address: str, what: str, timeout_s: float) -> int:
    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + timeout_s
    _log(f"waiting for {what} at {address}")
    delay = 0.05
    while True:
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=2.0):
                _log(f"{what} is up at {address}")
                return 0
        except OSError as e:
            if time.monotonic() > deadline:
                print(f"[runyard.launch] {what} did not listen at {address} within {timeout_s:g} s ({e}). "
                      "See that task's log: `runyard logs RUN --task LABEL`.", file=sys.stderr, flush=True)
                return 3
        time.sleep(delay)
        delay = min(1.0, delay * 1.5)


def xgboost_tracker(host_ip: str, port: int, n_workers: int) -> int:
    from xgboost.tracker import RabitTracker

    tracker = RabitTracker(n_workers=n_workers, host_ip=host_ip, port=port)
    tracker.start()
    _log(f"XGBoost tracker listening on {host_ip}:{port} for {n_workers} worker(s)")
    tracker.wait_for()
    _log("every XGBoost worker finished")
    return 0


def ray_wait(address: str, n_nodes: int, timeout_s: float) -> int:
    import ray

    ray.init(address=address, logging_level="WARNING", log_to_driver=False)
    try:
        deadline = time.monotonic() + timeout_s
        last = -1
        while True:
            alive = sum(1 for n in ray.nodes() if n.get("Alive"))
            if alive != last:
                _log(f"{alive} of {n_nodes} Ray node(s) joined")
                last = alive
            if alive >= n_nodes:
                return 0
            if time.monotonic() > deadline:
                print(f"[runyard.launch] only {alive} of {n_nodes} Ray nodes joined {address} within {timeout_s:g} s. "
                      "See the worker tasks' logs: `runyard logs RUN --task worker-0`.", file=sys.stderr, flush=True)
                return 3
            time.sleep(0.5)
    finally:
        ray.shutdown()


def ray_worker(ray_args: list[str]) -> int:
    """``ray start ARGS`` for a worker node on the head's machine, all on the loopback address.

    Ray (2.x) on Linux replaces a loopback ``--node-ip-address`` by the machine's
    routable address unless ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, and with that
    setting ``ray start --address`` refuses to start a worker node. Here the refusal
    is lifted and loopback addresses are kept as given, for this process only; the
    node's own processes inherit the variable and stay on 127.0.0.1.
    """
    import ray._private.ray_constants as ray_constants
    import ray._private.services as services
    from ray.scripts.scripts import main as ray_main

    ray_constants.ENABLE_RAY_CLUSTER = True
    services.resolve_ip_for_localhost = lambda host: host
    sys.argv = ["ray", "start", *ray_args]
    ray_main()  # a click command in standalone mode: it ends the process itself (SystemExit with ray's exit code)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runyard.launch", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    wp = sub.add_parser("wait-port", help="wait until HOST:PORT accepts connections")
    wp.add_argument("address")
    wp.add_argument("--what", default="the rendezvous endpoint")
    wp.add_argument("--timeout-s", type=float, default=600.0)
    xt = sub.add_parser("xgboost-tracker", help="run XGBoost's RabitTracker until the workers finished")
    xt.add_argument("--host-ip", required=True)
    xt.add_argument("--port", type=int, required=True)
    xt.add_argument("--n-workers", type=int, required=True)
    rw = sub.add_parser("ray-wait", help="wait until N Ray nodes joined the cluster")
    rw.add_argument("--address", required=True)
    rw.add_argument("--nodes", type=int, required=True)
    rw.add_argument("--timeout-s", type=float, default=600.0)
    rk = sub.add_parser("ray-worker", help="`ray start ARGS` for a worker node on the head's machine (loopback only)")
    rk.add_argument("ray_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command == "ray-worker":
        return ray_worker(args.ray_args[1:] if args.ray_args[:1] == ["--"] else args.ray_args)
    if args.command == "wait-port":
        return wait_port(args.address, args.what, args.timeout_s)
    if args.command == "xgboost-tracker":
        return xgboost_tracker(args.host_ip, args.port, args.n_workers)
    return ray_wait(args.address, args.nodes, args.timeout_s)


if __name__ == "__main__":
    sys.exit(main())
