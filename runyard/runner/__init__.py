"""The task runner: runs a run's task where the work happens and reports it to the server.

Every backend starts the same runner, so logs, metrics and statuses behave the
same on every compute target:

- :class:`TaskExecution` runs one task (snapshot, setup, command, logs,
  heartbeats, system metrics, cancel/prune/time limit, exit status);
- ``python -m runyard.runner exec --launch FILE --task ROLE-RANK`` runs one in the
  foreground (SSH, Slurm);
- :class:`TaskGroup` runs every task of a distributed run on one host, fail-fast;
- the local backend's agent (``runyard.backends.local``) hosts many executions in
  one long-lived process, through this same API (:func:`preload` warms its imports).

Imports are lazy: ``exec`` starts inside every remote task.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "SudoAccount",
    "TaskExecution",
    "TaskGroup",
    "TaskResult",
    "launch_from_dict",
    "launch_to_dict",
    "preload",
    "read_launch_file",
    "sudo_kill_all",
    "sudo_kill_group",
    "sudo_remove",
    "sudo_works",
    "write_launch_file",
]

_WHERE = {
    "SudoAccount": "_sudo",
    "sudo_kill_all": "_sudo",
    "sudo_kill_group": "_sudo",
    "sudo_remove": "_sudo",
    "sudo_works": "_sudo",
    "TaskExecution": "_task",
    "TaskGroup": "_group",
    "TaskResult": "_task",
    "launch_from_dict": "_wire",
    "launch_to_dict": "_wire",
    "read_launch_file": "_wire",
    "write_launch_file": "_wire",
}


def preload() -> None:
    """Import every module a task execution uses (a host running many calls this once, in the background)."""
    import importlib

    for module in ("_group", "_reporter", "_sudo", "_sysmetrics", "_task", "_wire"):
        importlib.import_module(f"runyard.runner.{module}")
    import psutil  # noqa: F401  (system metrics)

    import runyard.client  # noqa: F401


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'runyard.runner' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"runyard.runner.{module}"), name)


def __dir__() -> list[str]:
    return sorted(__all__)
