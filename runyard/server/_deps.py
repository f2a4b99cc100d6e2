"""Request dependencies shared by the routers."""

from __future__ import annotations

from fastapi import Request

from runyard.store import Store

__all__ = ["get_store", "wake_scheduler"]


async def get_store(request: Request) -> Store:
    """The app's store (async: a sync dependency would cost a thread hand-off per request)."""
    return request.app.state.store


def wake_scheduler(request: Request) -> None:
    """Tell the scheduler something changed (a status, a new experiment); cheap and thread-safe."""
    scheduler = getattr(request.app.state, "scheduler", None)
    if scheduler is not None:
        scheduler.wake()
