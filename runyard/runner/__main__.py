"""``python -m runyard.runner``: the local agent, or one task in the foreground.

- ``python -m runyard.runner agent [--dir DIR] [--idle-exit-s N]``: serve the
  local backend's agent (started by ``LocalBackend``; see ``runyard.runner._agent``).
- ``python -m runyard.runner exec --launch FILE [--task ROLE-RANK] [--workdir DIR]``:
  run one task of a launch file (``runyard.runner.write_launch_file``) in the
  foreground, echoing its output, and exit with its exit code. The SSH and Slurm
  backends start this on their hosts. SIGTERM, SIGINT or SIGHUP stop the task
  like a cancel (SIGTERM to its group, SIGKILL after the grace period) and fail
  the run with "stopped: the runner received SIGTERM".

argparse, not Typer: this starts inside every remote task and must import fast.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runyard.runner", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    agent = sub.add_parser("agent", help="serve the local backend's agent")
    agent.add_argument("--dir", type=Path, default=None, help="agent directory (default: $RUNYARD_HOME/agent)")
    agent.add_argument("--idle-exit-s", type=float, default=600.0, help="exit after this long without jobs (0: never)")
    ex = sub.add_parser("exec", help="run one task of a launch file in the foreground")
    ex.add_argument("--launch", type=Path, required=True, help="launch JSON written by write_launch_file()")
    ex.add_argument("--task", default=None, help="ROLE-RANK of the task, e.g. main-0 or worker-3 (default: the first)")
    ex.add_argument("--workdir", type=Path, default=None, help="working directory (default: the current one)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request would drown the agent's log
    if args.command == "agent":
        from runyard.runner._agent import Agent, agent_dir

        return Agent(args.dir or agent_dir(), idle_exit_s=args.idle_exit_s).serve()
    return _exec(args.launch, args.task, args.workdir)


def _exec(launch_path: Path, task: str | None, workdir: Path | None) -> int:
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
    except InvalidInput as e:
        print(f"runyard.runner exec: {e}", file=sys.stderr)
        return 2
    client = Client(launch.server_url, launch.token, timeout_s=10.0)
    options: dict = {}
    if launch.distributed is not None:
        from runyard.errors import RunyardError
        from runyard.launch import plan_task, server_endpoints

        try:  # tasks started apart meet through the server (runyard/launch/_rendezvous.py)
            plan = plan_task(launch, slot, server_endpoints(client, launch, slot))
        except RunyardError as e:
            print(f"runyard.runner exec: task {slot.label}: {e}", file=sys.stderr)
            client.close()
            return 1
        options = {"command": plan.command, "extra_env": plan.env, "run_outcome": _distributed_outcome(slot)}
    execution = TaskExecution(launch, slot, client, workdir or Path.cwd(), echo=True, **options)

    def stop(signum: int, _frame: object) -> None:
        # The task runs in its own session, so the engine's signal reaches only us: pass it on.
        # From a thread: the handler may interrupt this thread while it holds the execution's lock.
        message = f"stopped: the runner received {signal.Signals(signum).name}"
        threading.Thread(target=execution.cancel, kwargs={"message": message, "run_status": "failed"}, daemon=True).start()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)
    try:
        result = execution.run()
    finally:
        client.close()
    print(f"[runyard] task {slot.label} of run {launch.run_id}: {result.reason}", file=sys.stderr)
    if result.exit_code is None:
        return 1
    return result.exit_code if result.exit_code < 256 else 1


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
