"""Request dependencies shared by the routers."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread
from anyio import CapacityLimiter
from fastapi import Request

from runyard.store import Store

__all__ = ["backend_entries", "get_store", "ingest_threads", "run_ingest", "wake_scheduler"]


def backend_entries(request: Request) -> dict[str, Any]:
    """The server's configured backends, name → ``BackendEntry``: the scheduler's (reloaded when
    ``backends.yml`` changes), else read from the file (a server without a scheduler)."""
    scheduler = getattr(request.app.state, "scheduler", None)
    if scheduler is not None:
        return scheduler.backends.entries()
    from runyard.backends.config import load_backends

    return load_backends()


T = TypeVar("T")


def ingest_threads(dialect: str) -> int:
    """How many ingest writes (metric batches, log lines) run at once: RUNYARD_INGEST_THREADS, else 1 on
    SQLite (its writers are serial anyway: more threads only wait for the lock) and 2 on PostgreSQL."""
    raw = os.environ.get("RUNYARD_INGEST_THREADS", "")
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    return 1 if dialect == "sqlite" else 2


async def run_ingest(request: Request, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run an ingest write in a worker thread, at most ``ingest_threads`` of them at a time.

    Sixteen training loops posting batches would otherwise hold sixteen of the threadpool's
    threads, all wanting the GIL (and on SQLite the one write lock) at once: every read then
    waits behind them for the GIL at each step (p99 of ``GET /runs/N`` went from ~10 ms to
    over a second). Writers beyond the limit wait on the event loop, which costs nothing;
    reads keep the rest of the pool and find the GIL nearly free.
    """
    limiter = getattr(request.app.state, "ingest_limiter", None)
    if limiter is None:
        store: Store = request.app.state.store
        limiter = request.app.state.ingest_limiter = CapacityLimiter(ingest_threads(store.engine.dialect.name))
    return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs), limiter=limiter)


async def get_store(request: Request) -> Store:
    """The app's store (async: a sync dependency would cost a thread hand-off per request)."""
    return request.app.state.store


def wake_scheduler(request: Request) -> None:
    """Tell the scheduler something changed (a status, a new experiment); cheap and thread-safe."""
    scheduler = getattr(request.app.state, "scheduler", None)
    if scheduler is not None:
        scheduler.wake()
