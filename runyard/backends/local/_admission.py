"""The local agent's admission: what jobs hold, GPU assignment, and starting queued jobs as room frees.

Every method runs with the agent's lock held; ``start`` (the agent's) starts a
job's thread, ``claim`` gives a run_as pool job its account (or says why it waits).
Jobs an earlier agent started and this one adopted count like its own (``adopt``):
they hold their resources and their experiment's slots until they end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from runyard.backends.base import EngineStatus
from runyard.backends.local._jobs import Job
from runyard.errors import SubmitError


class Admission:
    """The agent's queue of jobs waiting for room, and the accounting of what started jobs hold.

    Args:
        start: starts a job's thread with its launch (the agent's).
    """

    def __init__(self, start: Callable[[Job, Any], None], claim: Callable[[Job], str] | None = None) -> None:
        self._start = start
        self._claim = claim  # gives a job what else it needs to start (its account); "" or why it waits
        self.queue: list[Job] = []  # queued jobs not started yet, in submission order
        # The jobs started here that (may) still hold their resources, kept apart from the agent's
        # jobs, which also hold every job that ended a while ago: scanning those made admission O(jobs).
        self._started: dict[str, Job] = {}
        self._machine: tuple[float, int] = (0.0, 0)  # (cpus, memory_mb) queued jobs must fit in, from their submits

    def start(self, job: Job, launch: Any) -> None:
        """Start ``job`` now (it was admitted by its submit or by the queue)."""
        job.launch = None
        self._started[job.job_id] = job
        self._start(job, launch)

    def adopt(self, job: Job) -> None:
        """Count an earlier agent's job that still runs (it holds its resources and its group's slot)."""
        if job.holding:
            self._started[job.job_id] = job

    def assign_gpus(self, jobs: Iterable[Job], n_gpus: int, inventory: list[int], run_id: int) -> list[int]:
        """``n_gpus`` of ``inventory`` that no job holds; ``SubmitError`` when too few are free."""
        if not n_gpus:
            return []
        held = {g for j in jobs if j.holding for g in j.gpus}
        free = [int(g) for g in inventory if int(g) not in held]
        if n_gpus > len(free):
            raise SubmitError(
                f"Run {run_id} needs {n_gpus} GPU(s), but only {len(free)} of this machine's "
                f"{len(inventory)} are free (in use: {sorted(held) or 'none'}).",
                "Wait for capacity() to show free GPUs before submitting.")
        return free[:n_gpus]

    def enqueue(self, job: Job, launch: Any, queue: dict[str, Any]) -> None:
        """Queue ``job`` (its ``queue`` argument of the submit) and start what may start."""
        job.group, job.at_most, job.launch = str(queue.get("group") or job.job_id), int(queue.get("at_most") or 1), launch
        self._machine = (float(queue.get("cpus") or 0.0), int(queue.get("memory_mb") or 0))
        self.queue.append(job)
        self.start_queued()

    def start_queued(self, stopping: bool = False) -> None:
        """Start the queued jobs that may run now, in submission order.

        A job waits while ``at_most`` jobs of its group run (later jobs of other groups
        may pass it), or while its CPUs or memory do not fit beside the started jobs
        (then nothing after it starts either: submission order).
        """
        if not self.queue or stopping:
            return
        self._started = {k: j for k, j in self._started.items() if j.holding}
        started = list(self._started.values())
        cpus = sum(j.resources.cpus for j in started)
        memory = sum(j.resources.memory_mb for j in started)
        running: dict[str, int] = {}
        for j in started:
            if j.group:
                running[j.group] = running.get(j.group, 0) + 1
        total_cpus, total_memory = self._machine
        for job in list(self.queue):
            if job.cancel_requested:
                self.queue.remove(job)
                job.status, job.reason, job.holding, job.launch = EngineStatus.CANCELED, "canceled before it started", False, None
                continue
            if running.get(job.group, 0) >= job.at_most:
                job.reason = f"pending: waiting for a free slot (its experiment runs {job.at_most} at a time)"
                continue
            need = job.resources
            if (cpus + need.cpus > total_cpus + 1e-9 and started) or (need.memory_mb and total_memory
                                                                      and memory + need.memory_mb > total_memory and started):
                job.reason = "pending: waiting for CPUs or memory on this machine"
                break
            if self._claim is not None:
                waiting = self._claim(job)
                if waiting:
                    job.reason = waiting
                    continue
            self.queue.remove(job)
            job.reason = ""
            running[job.group] = running.get(job.group, 0) + 1
            cpus += need.cpus
            memory += need.memory_mb
            started.append(job)
            self.start(job, job.launch)

    @staticmethod
    def usage(jobs: Iterable[Job]) -> dict[str, Any]:
        """What the jobs holding resources hold together (the ``usage`` answer)."""
        holding = [j for j in jobs if j.holding]
        return {"cpus": sum(j.resources.cpus for j in holding), "memory_mb": sum(j.resources.memory_mb for j in holding),
                "gpus": sorted(g for j in holding for g in j.gpus), "n_jobs": len(holding)}
