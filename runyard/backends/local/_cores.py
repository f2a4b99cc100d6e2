"""CPU cores for the local agent's jobs: each running job is pinned to its own cores when there are enough.

A job asking for ``cpus: 2`` gets two cores of the agent's own CPU set (``os.sched_getaffinity``),
chosen among those no running job holds; when too few are free (the machine is oversubscribed,
or ``cpus`` is fractional on a busy machine), the least used cores are shared. A job asking for
as many cores as the machine has, or more, is not pinned. The runner pins the job's processes
(``RUNYARD_CPU_CORES`` in its environment, read by ``runyard.runner``).
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterable, Sequence

__all__ = ["assign_cores"]


def assign_cores(cpus: float, held: Iterable[Sequence[int]], available: Sequence[int] | None = None) -> list[int]:
    """The cores a job of ``cpus`` CPUs is pinned to: ``[]`` for no pinning.

    Args:
        cpus: what the job asks for (rounded up to whole cores, at least 1).
        held: the cores of each running job.
        available: the cores to choose from (default: this process's CPU set).
    """
    cores = sorted(os.sched_getaffinity(0) if available is None else available)
    n = max(1, math.ceil(cpus))
    if n >= len(cores):
        return []
    use = Counter(c for job in held for c in job)
    return sorted(sorted(cores, key=lambda c: (use[c], c))[:n])
