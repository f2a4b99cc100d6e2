"""The scheduler's calls into a backend's optional hooks (each declared with its default on BaseBackend)."""

from __future__ import annotations

from typing import Any

from runyard.backends.base import BaseBackend, RunLaunch

__all__ = ["queues", "started_roles", "stop_if_idle", "submit", "warm"]


def queues(backend: BaseBackend, spec: Any) -> bool:
    """Whether ``backend`` holds ``spec``'s runs in a queue of its own until they can start
    (``submit(launch, at_most=parallel)``): the local backend, for single-task runs without GPUs."""
    res = spec.resources
    from runyard.records.compute import Resources

    return backend.can_queue(Resources(res.cpus, res.memory_mb, res.gpus), spec.distributed is not None)


def started_roles(backend: Any, framework: str) -> frozenset[str] | None:
    """The roles of a ``framework`` run whose tasks ``backend`` starts (``None``: all; backends given as
    instances without the hook start all)."""
    hook = getattr(backend, "started_roles", None)
    return hook(framework) if hook is not None else None


def submit(backend: BaseBackend, launch: RunLaunch, at_most: int | None) -> str:
    """Submit one attempt; ``at_most`` (a backend that queues) caps how many of its experiment run at once."""
    return backend.submit(launch, at_most=at_most)


def warm(backend: BaseBackend) -> None:
    """Start what the backend runs on now (the local agent); a no-op for most backends."""
    backend.warm()


def stop_if_idle(backend: BaseBackend) -> bool:
    """Stop what the backend runs on if it holds no job (the local agent); true when it stopped."""
    return backend.stop_if_idle()
