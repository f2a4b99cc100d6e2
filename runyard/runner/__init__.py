"""The task runner: runs a run's task where the work happens and reports it to the server.

Every backend starts the same runner, so logs, metrics and statuses behave the
same on every compute target:

- :class:`TaskExecution` runs one task (snapshot, setup, command, logs,
  heartbeats, system metrics, cancel/prune/time limit, exit status);
- ``python -m runyard.runner exec --launch FILE --task ROLE-RANK`` runs one in the
  foreground (SSH, Slurm);
- ``python -m runyard.runner agent`` hosts many for the local backend
  (:class:`AgentClient` talks to it; see ``runyard.runner._agent`` for why).

Imports are lazy: ``exec`` starts inside every remote task.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "NO_RECORD",
    "AgentClient",
    "TaskExecution",
    "TaskResult",
    "agent_dir",
    "launch_from_dict",
    "launch_to_dict",
    "read_launch_file",
    "stop_agent",
    "write_launch_file",
]

_WHERE = {
    "AgentClient": "_agent",
    "NO_RECORD": "_agent",
    "agent_dir": "_agent",
    "stop_agent": "_agent",
    "TaskExecution": "_task",
    "TaskResult": "_task",
    "launch_from_dict": "_wire",
    "launch_to_dict": "_wire",
    "read_launch_file": "_wire",
    "write_launch_file": "_wire",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'runyard.runner' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"runyard.runner.{module}"), name)


def __dir__() -> list[str]:
    return sorted(__all__)
