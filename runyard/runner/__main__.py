"""``python -m runyard.runner``: one task in the foreground.

- ``python -m runyard.runner exec --launch FILE [--task ROLE-RANK | --task-index N]
  [--workdir DIR] [--spool DIR --blob-cache DIR]``: run one task of a launch file (``runyard.runner.write_launch_file``) in the
  foreground, echoing its output, and exit with its exit code. The SSH and Slurm
  backends start this on their hosts. SIGTERM, SIGINT or SIGHUP stop the task
  like a cancel (the stop signal to its group: SIGINT, then SIGTERM, or ``stop_signal:``; SIGKILL
  after the grace period) and fail
  the run with "stopped: the runner received SIGTERM", unless the run had already
  ended (Runyard stops the job of a run that ended): the task is then canceled.
  A service task of a distributed run (a Ray node, a TF parameter server) is
  stopped, as succeeded, once every other task of its attempt succeeded, and
  exits 0, so that the engine's job completes. ``--task-index`` picks the
  launch's N-th task (Slurm's srun passes ``$SLURM_PROCID``). With ``--spool`` the
  runner and the SDK in the task write everything to that directory instead of
  calling the server (``runyard.spool``; the backend carries it back), and
  the snapshot comes from ``--blob-cache``.

argparse, not Typer: this starts inside every remote task and must import fast.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runyard.runner", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("exec", help="run one task of a launch file in the foreground")
    ex.add_argument("--launch", type=Path, required=True, help="launch JSON written by write_launch_file()")
    ex.add_argument("--task", default=None, help="ROLE-RANK of the task, e.g. main-0 or worker-3 (default: the first)")
    ex.add_argument("--task-index", type=int, default=None, help="the N-th task of the launch (e.g. $SLURM_PROCID)")
    ex.add_argument("--workdir", type=Path, default=None, help="working directory (default: the current one)")
    ex.add_argument("--spool", type=Path, default=None, help="write to this spool directory instead of the server")
    ex.add_argument("--blob-cache", type=Path, default=None, help="snapshot blob cache (needed with --spool)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    return _exec(args.launch, args.task, args.workdir, task_index=args.task_index, spool=args.spool,
                 blob_cache=args.blob_cache)


def _exec(launch_path: Path, task: str | None, workdir: Path | None, *, task_index: int | None = None,
          spool: Path | None = None, blob_cache: Path | None = None) -> int:
    from runyard.client import Client
    from runyard.errors import InvalidInput
    from runyard.runner._task import TaskExecution
    from runyard.runner._wire import read_launch_file

    try:
        launch = read_launch_file(launch_path)
        slot = launch.tasks[0]
        if task is not None:
            by_label = {t.label: t for t in launch.tasks}
            if task not in by_label:
                raise InvalidInput(f"The launch has no task {task!r}; its tasks are {', '.join(by_label)}.",
                                   "Pass --task ROLE-RANK as listed.")
            slot = by_label[task]
        elif task_index is not None:
            if not 0 <= task_index < len(launch.tasks):
                raise InvalidInput(f"The launch has {len(launch.tasks)} task(s); --task-index {task_index} is out of range.",
                                   f"Pass an index from 0 to {len(launch.tasks) - 1}.")
            slot = launch.tasks[task_index]
    except InvalidInput as e:
        print(f"runyard.runner exec: {e}", file=sys.stderr)
        return 2
    extra_env: dict[str, str] = {}
    if spool is not None:
        from runyard.spool import BLOB_CACHE_ENV, SPOOL_ENV, SpoolClient

        client: Any = SpoolClient(spool, f"runner-{slot.label}", blob_cache=blob_cache)
        extra_env[SPOOL_ENV] = str(spool)
        if blob_cache is not None:
            extra_env[BLOB_CACHE_ENV] = str(blob_cache)
    else:
        client = Client(launch.server_url, launch.token, timeout_s=10.0)
    options: dict = {}
    service = False
    if launch.distributed is not None:
        from runyard.errors import RunyardError
        from runyard.launch import plan_task, server_endpoints

        try:  # tasks started apart meet through the server (runyard/launch/_rendezvous.py)
            # RUNYARD_TASK_HOST: the address other tasks reach this one at, when the host name is not it
            # (a Kubernetes pod: its IP, from the downward API).
            host = os.environ.get("RUNYARD_TASK_HOST") or None
            plan = plan_task(launch, slot, server_endpoints(client, launch, slot, host))
        except RunyardError as e:
            print(f"runyard.runner exec: task {slot.label}: {e}", file=sys.stderr)
            client.close()
            return 1
        extra_env.update(plan.env)
        options = {"command": plan.command, "run_outcome": _distributed_outcome(slot)}
        service = plan.service and spool is None
    signalled: list[str] = []  # the engine's stop signals, by name
    execution = TaskExecution(launch, slot, client, workdir or Path.cwd(), extra_env, echo=True, cache_dir=blob_cache,
                              settle=lambda result: _settle(result, launch, signalled, ask_server=spool is None),
                              **options)

    def stop(signum: int, _frame: object) -> None:
        # The task runs in its own session, but the engine may signal its processes too (Slurm
        # signals every process of the step): stop it now, whatever got there first.
        # From a thread: the handler may interrupt this thread while it holds the execution's lock.
        name = signal.Signals(signum).name
        signalled.append(name)
        threading.Thread(target=execution.cancel, kwargs={"message": f"stopped: the runner received {name}",
                                                          "run_status": "failed"}, daemon=True).start()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)
    finished = threading.Event()  # the task ended: the service watch ends too
    others_done = threading.Event()
    if service:
        threading.Thread(target=_stop_service_when_done, args=(execution, client, launch, finished, others_done),
                         daemon=True, name=f"runyard-service-watch-{slot.label}").start()
    try:
        result = execution.run()
    finally:
        finished.set()
        client.close()
    print(f"[runyard] task {slot.label} of run {launch.run_id}: {result.reason}", file=sys.stderr)
    if others_done.is_set() and result.task_status == "succeeded":
        return 0  # a service stopped because the run's work is done: the job must end as completed
    if result.exit_code is None:
        return 1
    return result.exit_code if result.exit_code < 256 else 1


def _stop_service_when_done(execution, client, launch, finished, others_done) -> None:  # noqa: ANN001
    """A service task (a Ray node, a TF parameter server) started apart never ends by itself: stop it,
    as succeeded, once every other task of the attempt succeeded, so that the engine's job ends."""
    from runyard.launch import wait_others_succeeded

    if wait_others_succeeded(client, launch, finished):
        others_done.set()
        execution.cancel(message="stopped: the run's other tasks finished", run_status=None, task_status="succeeded")


def _settle(result, launch, signalled: list[str], *, ask_server: bool):  # noqa: ANN001, ANN202
    """A stop by the engine (Slurm's SIGTERM) fails the run, unless the run had ended already.

    Runyard itself has the engine stop the job of a run that ended (canceled, pruned, or failed by
    another of its tasks), and that signal usually arrives before the task's next heartbeat would
    have told it so: such a task was stopped, it did not fail. The server is asked once the task
    ended, with a short time-out (an unreachable server delays the final report by 2 s at most).
    """
    import dataclasses

    from runyard.client import Client
    from runyard.errors import RunyardError
    from runyard.records.compute import EngineStatus
    from runyard.records.status import TERMINAL

    if not signalled or not ask_server or result.run_status != "failed":
        return result  # not stopped by the engine, or not about to fail the run
    try:
        with Client(launch.server_url, launch.token, timeout_s=2.0) as client:
            status = client.heartbeat(launch.run_id)
    except RunyardError:
        return result
    if status not in TERMINAL:
        return result
    reason = f"stopped: the run had ended ({status}) when the engine sent {signalled[0]}"
    return dataclasses.replace(result, status=EngineStatus.CANCELED, reason=reason, message=reason, run_status=None,
                               task_status="pruned" if status == "pruned" else "canceled")


def _distributed_outcome(slot):  # noqa: ANN001, ANN202
    """A task run apart from its siblings fails the run, naming itself; its success leaves the
    run's status to the engine (the job ends once every task did)."""

    def outcome(result):  # noqa: ANN001, ANN202
        if result.run_status == "failed":
            return "failed", f"task {slot.label} (role {slot.role}, rank {slot.rank}) failed: {result.message}", result.exit_code
        return None, "", None

    return outcome


if __name__ == "__main__":
    sys.exit(main())
