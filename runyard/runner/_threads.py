"""Threads follow ``resources.cpus``: the thread-pool variables and the CPU cores of a task.

Numerical libraries size their thread pools by the machine's cores, not by what the run asked for:
four runs of ``cpus: 1`` on a busy two-core machine then fight over the cores with dozens of threads
each (a grid measured at 323 s instead of 17–21 s). :func:`thread_env` sets each library's variable
to the task's CPUs (an integer, at least 1) unless the user's ``env:`` sets it; PyTorch reads
``OMP_NUM_THREADS`` for its intra-op pool. :func:`pinned` starts processes on given cores: the local
agent hands each running job its own cores (``RUNYARD_CPU_CORES``).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Mapping

__all__ = ["THREAD_VARIABLES", "parse_cores", "pinned", "thread_env"]

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS")


def thread_env(cpus: float, user_env: Mapping[str, str]) -> dict[str, str]:
    """The thread variables for a task of ``cpus`` CPUs, leaving out those ``user_env`` sets."""
    n = str(max(1, math.floor(cpus + 1e-9)))
    return {name: n for name in THREAD_VARIABLES if name not in user_env}


def parse_cores(text: str | None) -> list[int]:
    """``"0,2,3"`` → ``[0, 2, 3]``; ``[]`` for none or a malformed value."""
    if not text:
        return []
    try:
        return [int(c) for c in text.split(",")]
    except ValueError:
        return []


@contextlib.contextmanager
def pinned(cores: list[int]) -> Iterator[None]:
    """Within the block, processes this thread starts run on ``cores`` (they inherit the thread's CPU set).

    Linux's ``sched_setaffinity(0)`` sets the calling thread's set only, so other threads of this
    process (other jobs of the local agent) are not touched; the set is restored on exit. Where the
    call is missing or refused (cores outside the agent's own set), nothing is pinned.
    """
    if not cores or not hasattr(os, "sched_setaffinity"):
        yield
        return
    try:
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, cores)
    except OSError:
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, before)
