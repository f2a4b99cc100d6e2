"""The optional backend methods the scheduler uses when a backend has them, each looked up in one place."""

from __future__ import annotations

from typing import Any

from runyard.backends.base import Backend, RunLaunch

__all__ = ["queues", "stop_if_idle", "submit", "warm"]


def queues(backend: Backend, spec: Any) -> bool:
    """Whether ``backend`` holds ``spec``'s runs in a queue of its own until they can start
    (``submit(launch, at_most=parallel)``): the local backend, for single-task runs without GPUs."""
    return (getattr(backend, "can_queue", None) is not None and spec.distributed is None
            and not spec.resources.gpus)


def submit(backend: Backend, launch: RunLaunch, at_most: int | None) -> str:
    """Submit one attempt; ``at_most`` (a backend that queues) caps how many of its experiment run at once."""
    if at_most is None:
        return backend.submit(launch)
    return backend.submit(launch, at_most=at_most)  # type: ignore[call-arg]


def warm(backend: Backend) -> None:
    """Start what the backend runs on now (the local agent), if it has such a step."""
    hook = getattr(backend, "warm", None)
    if hook is not None:
        hook()


def stop_if_idle(backend: Backend) -> bool:
    """Stop what the backend runs on if it holds no job (the local agent); true when it stopped."""
    hook = getattr(backend, "stop_if_idle", None)
    return bool(hook is not None and hook())
