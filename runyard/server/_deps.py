"""Request dependencies shared by the routers."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from runyard.store import Store

__all__ = ["backend_entries", "get_store", "wake_scheduler"]


def backend_entries(request: Request) -> dict[str, Any]:
    """The server's configured backends, name → ``BackendEntry``: the scheduler's (reloaded when
    ``backends.yml`` changes), else read from the file (a server without a scheduler)."""
    scheduler = getattr(request.app.state, "scheduler", None)
    if scheduler is not None:
        return scheduler.backends.entries()
    from runyard.backends.config import load_backends

    return load_backends()


async def get_store(request: Request) -> Store:
    """The app's store (async: a sync dependency would cost a thread hand-off per request)."""
    return request.app.state.store


def wake_scheduler(request: Request) -> None:
    """Tell the scheduler something changed (a status, a new experiment); cheap and thread-safe."""
    scheduler = getattr(request.app.state, "scheduler", None)
    if scheduler is not None:
        scheduler.wake()
