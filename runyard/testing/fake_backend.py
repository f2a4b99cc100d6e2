"""An in-memory backend and a hand-wound clock, so scheduler tests script an engine and never sleep."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from runyard.backends.base import (
    BaseBackend,
    EngineState,
    EngineStatus,
    Feature,
    Resources,
    RunLaunch,
)
from runyard.errors import SubmitError

__all__ = ["FakeBackend", "FakeClock", "FakeJob"]


class FakeClock:
    """Time that moves only when told: ``advance(s)``; ``wait`` never blocks.

    ``time()`` starts at the machine's wall clock, so it compares with the store's
    timestamps (which keep using the real one); ``monotonic()`` starts at 1000.
    """

    def __init__(self, start: float | None = None) -> None:
        self._offset = 0.0
        self._wall0 = time.time() if start is None else start
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        return 1000.0 + self._offset

    def time(self) -> float:
        return self._wall0 + self._offset

    def advance(self, seconds: float) -> None:
        """Move both clocks forward by ``seconds``."""
        with self._lock:
            self._offset += seconds

    def wait(self, event: threading.Event, timeout_s: float) -> bool:
        """True at once if ``event`` is set; otherwise the clock moves ``timeout_s`` on and it reports the event."""
        if event.is_set():
            return True
        self.advance(timeout_s)
        return event.is_set()


@dataclass
class FakeJob:
    """One submitted attempt as the fake engine holds it."""

    job_id: str
    launch: RunLaunch
    state: EngineState = field(default_factory=lambda: EngineState(EngineStatus.PENDING, raw="PENDING"))

    @property
    def run_id(self) -> int:
        return self.launch.run_id

    @property
    def attempt(self) -> int:
        return self.launch.attempt


class FakeBackend(BaseBackend):
    """A backend whose engine is a dictionary the test drives.

    Submitted jobs wait ``PENDING`` until the test calls ``start``; ``finish`` ends one
    with an exit code, ``lose`` makes the engine forget it (``LOST``), ``refuse`` makes
    the next submits raise ``SubmitError``. ``submits`` counts submits per
    ``(run id, attempt)``; ``canceled`` lists canceled job ids in order.

    Args:
        capacity: free resources when nothing runs (``None``: the engine queues, no limit);
            a job neither ended nor lost holds its launch's ``resources`` once per task.
        unsupported: what ``unsupported()`` answers for every launch.
    """

    name: ClassVar[str] = "fake"

    def __init__(self, capacity: Resources | None = None, *, unsupported: Mapping[Feature, str] | None = None) -> None:
        super().__init__()
        self.total = capacity
        self.jobs: dict[str, FakeJob] = {}
        self.submits: Counter[tuple[int, int]] = Counter()
        self.canceled: list[str] = []
        self.closed = False
        self._unsupported = dict(unsupported or {})
        self._refusals: list[str] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    # ------------------------------------------------------------- protocol
    def unsupported(self, launch: RunLaunch) -> dict[Feature, str]:
        return dict(self._unsupported)

    def capacity(self) -> Resources | None:
        if self.total is None:
            return None
        with self._lock:
            held = Resources(0.0, 0, 0)
            for job in self.jobs.values():
                if not job.state.status.terminal:
                    held = held + job.launch.resources.times(len(job.launch.tasks))
        return self.total - held

    def submit(self, launch: RunLaunch, *, at_most: int | None = None) -> str:
        with self._lock:
            self.submits[(launch.run_id, launch.attempt)] += 1
            if self._refusals:
                raise SubmitError(self._refusals.pop(0), "The fake engine was told to refuse this submit.")
            job_id = f"fake-{next(self._ids)}"
            self.jobs[job_id] = FakeJob(job_id, launch)
            return job_id

    def poll(self, job_ids: Sequence[str], wait_s: float = 0.0) -> dict[str, EngineState]:
        with self._lock:
            out = {}
            for job_id in job_ids:
                job = self.jobs.get(job_id)
                out[job_id] = job.state if job is not None else EngineState(
                    EngineStatus.LOST, reason="the fake engine has no record of this job", raw="")
            return out

    def cancel(self, job_id: str) -> None:
        with self._lock:
            self.canceled.append(job_id)
            job = self.jobs.get(job_id)
            if job is not None and not job.state.status.terminal:
                job.state = EngineState(EngineStatus.CANCELED, reason="canceled", raw="CANCELLED")

    def close(self) -> None:
        self.closed = True

    # ------------------------------------------------------------ scripting
    def job(self, run_id: int, attempt: int | None = None) -> FakeJob:
        """The job of the run's ``attempt`` (default: its latest submitted attempt)."""
        with self._lock:
            found = [j for j in self.jobs.values() if j.run_id == run_id and (attempt is None or j.attempt == attempt)]
        if not found:
            raise KeyError(f"no job of run {run_id}" + (f" attempt {attempt}" if attempt is not None else ""))
        return max(found, key=lambda j: (j.attempt, j.job_id))

    def start(self, run_id: int, attempt: int | None = None) -> FakeJob:
        """The engine starts the run's job: ``RUNNING``."""
        return self._set(run_id, attempt, EngineState(EngineStatus.RUNNING, raw="RUNNING"))

    def finish(self, run_id: int, exit_code: int = 0, attempt: int | None = None) -> FakeJob:
        """The job ends with ``exit_code``: ``SUCCEEDED`` for 0, ``FAILED`` otherwise."""
        status = EngineStatus.SUCCEEDED if exit_code == 0 else EngineStatus.FAILED
        return self._set(run_id, attempt, EngineState(status, exit_code=exit_code, raw=status.name))

    def lose(self, run_id: int, attempt: int | None = None) -> FakeJob:
        """The engine forgets the job: polls answer ``LOST`` and it holds no capacity."""
        job = self.job(run_id, attempt)
        with self._lock:
            del self.jobs[job.job_id]
        return job

    def refuse(self, message: str = "the engine refused the job", times: int = 1) -> None:
        """The next ``times`` submits raise ``SubmitError(message)`` (each is still counted)."""
        with self._lock:
            self._refusals.extend([message] * times)

    def submit_count(self, run_id: int, attempt: int | None = None) -> int:
        """Submits of the run (of one attempt, or all of them)."""
        with self._lock:
            return sum(n for (rid, att), n in self.submits.items() if rid == run_id and (attempt is None or att == attempt))

    def active(self) -> list[FakeJob]:
        """Jobs pending or running, in submission order."""
        with self._lock:
            return [j for j in self.jobs.values() if not j.state.status.terminal]

    def _set(self, run_id: int, attempt: int | None, state: EngineState) -> FakeJob:
        job = self.job(run_id, attempt)
        with self._lock:
            job.state = state
        return job
