"""The local backend: runs tasks on this machine through a long-lived local agent.

Modules, along the agent's seams:

- ``_backend``: :class:`LocalBackend`, what the scheduler calls;
- ``_client``: :class:`AgentClient`, the backend's connection to the agent (starts,
  replaces and stops it);
- ``_protocol``: the socket's messages, the agent's files, job ids, the code fingerprint;
- ``_server``: :class:`Agent`, the agent process (``python -m runyard.backends.local agent``);
- ``_jobs``: a job in the agent's memory and its record file;
- ``_admission``: what jobs hold, GPU assignment, starting queued jobs.

Imports are lazy: the agent process starts through this package and needs no pydantic.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "NO_RECORD",
    "Agent",
    "AgentClient",
    "LocalBackend",
    "LocalBackendOptions",
    "agent_alive",
    "agent_dir",
    "code_fingerprint",
    "read_job_records",
    "stop_agent",
]

_WHERE = {
    "Agent": "_server",
    "AgentClient": "_client",
    "LocalBackend": "_backend",
    "LocalBackendOptions": "_backend",
    "NO_RECORD": "_protocol",
    "agent_alive": "_protocol",
    "agent_dir": "_protocol",
    "code_fingerprint": "_protocol",
    "read_job_records": "_jobs",
    "stop_agent": "_client",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'runyard.backends.local' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"runyard.backends.local.{module}"), name)


def __dir__() -> list[str]:
    return sorted(__all__)
