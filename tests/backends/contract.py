"""The backend contract: what every backend must do, as one class of tests to subclass.

A backend's test module subclasses :class:`BackendContract` and provides two fixtures:

- ``backend``: a ready backend (closed, and everything it started stopped by pid, afterwards);
- ``unknown_job_id``: a job id in the backend's own format that names no job.

The tests also use ``make_launch``, ``client`` and ``server`` from ``tests/backends/conftest.py``
(a live server per module; launches of queued runs on it). Everything runs for real: the
backend starts the real runner, which reports to the real server.

The rules:

- a trivial run succeeds through poll, and the server has its status and output;
- a failing command ends FAILED with its exit code, on the server too;
- poll of an unknown job says LOST (the engine no longer knows it), never raises;
- poll of an empty list is an empty dict;
- cancel stops a running job, is idempotent, and the job ends CANCELED; cancelling an
  ended or unknown job is a no-op;
- a second attempt of a run (the scheduler's restart after a failure) gets its own job
  and runs to its own end.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runyard.backends.base import EngineState, EngineStatus
from runyard.client import Client
from runyard.store import Store, make_engine
from runyard.testing import LiveServer, wait_for

__all__ = ["BackendContract", "wait_state"]

TIMEOUT_S = 90.0  # generous: a loaded 2-core machine, and remote backends start a fresh interpreter


def wait_state(backend: Any, job_id: str, until: Callable[[EngineState], bool], timeout_s: float = TIMEOUT_S,
               what: str = "a state") -> EngineState:
    """Poll (plainly, the way the scheduler does) until ``until(state)``; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    state = None
    while time.monotonic() < deadline:
        state = backend.poll([job_id])[job_id]
        if until(state):
            return state
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not reach {what} within {timeout_s:g}s; last state {state}")


def wait_terminal(backend: Any, job_id: str, timeout_s: float = TIMEOUT_S) -> EngineState:
    return wait_state(backend, job_id, lambda s: s.status.terminal, timeout_s, "a terminal state")


def stdout_of(client: Client, run_id: int) -> list[str]:
    return [ln["text"] for ln in client.read_logs(run_id, limit=10000)["lines"] if ln["stream"] == "stdout"]


class BackendContract:
    """Subclass in ``test_<backend>_contract.py`` with ``backend`` and ``unknown_job_id`` fixtures."""

    def test_a_trivial_run_succeeds_through_poll(self, backend: Any, make_launch: Callable, client: Client) -> None:
        launch = make_launch("echo hello from $RUNYARD_RUN_ID")
        job_id = backend.submit(launch)
        assert isinstance(job_id, str) and job_id

        state = wait_terminal(backend, job_id)
        assert state.status is EngineStatus.SUCCEEDED, state
        assert state.exit_code in (0, None)
        # Terminal in poll means the runner's final reports are stored.
        run = client.get_run(launch.run_id)
        assert run["status"] == "succeeded"
        assert stdout_of(client, launch.run_id) == [f"hello from {launch.run_id}"]
        # A terminal job stays terminal.
        assert backend.poll([job_id])[job_id].status is EngineStatus.SUCCEEDED

    def test_a_failing_command_reports_its_exit_code(self, backend: Any, make_launch: Callable, client: Client) -> None:
        launch = make_launch("echo oops; exit 3")
        job_id = backend.submit(launch)

        state = wait_terminal(backend, job_id)
        assert (state.status, state.exit_code) == (EngineStatus.FAILED, 3), state
        assert "exit code 3" in state.reason
        run = client.get_run(launch.run_id)
        assert (run["status"], run["exit_code"], run["status_message"]) == ("failed", 3, "exit code 3\noops")

    def test_poll_of_an_unknown_job_is_lost(self, backend: Any, unknown_job_id: str) -> None:
        state = backend.poll([unknown_job_id])[unknown_job_id]
        assert state.status is EngineStatus.LOST
        assert backend.poll([]) == {}

    def test_cancel_is_idempotent_and_the_job_ends_canceled(self, backend: Any, make_launch: Callable, client: Client,
                                                         unknown_job_id: str) -> None:
        launch = make_launch("echo started; sleep 300", grace_period_s=2.0)
        job_id = backend.submit(launch)
        wait_for(lambda: "started" in stdout_of(client, launch.run_id), timeout_s=TIMEOUT_S, what="the task's output")
        assert backend.poll([job_id])[job_id].status is EngineStatus.RUNNING

        # As the scheduler does it: the run is canceled on the server, then the backend stops the job.
        client.cancel_run(launch.run_id)
        backend.cancel(job_id)
        backend.cancel(job_id)
        state = wait_terminal(backend, job_id, timeout_s=30.0)
        assert state.status is EngineStatus.CANCELED, state
        assert client.get_run(launch.run_id)["status"] == "canceled"
        backend.cancel(job_id)  # ended: no-op
        backend.cancel(unknown_job_id)  # unknown: no-op
        assert backend.poll([job_id])[job_id].status is EngineStatus.CANCELED

    def test_a_second_attempt_after_a_failure_runs_as_its_own_job(self, backend: Any, make_launch: Callable,
                                                                 client: Client, server: LiveServer) -> None:
        command = 'if [ "$RUNYARD_ATTEMPT" = 1 ]; then echo first; exit 4; fi; echo "second try"'
        first = make_launch(command)
        first_job = backend.submit(first)
        assert wait_terminal(backend, first_job).exit_code == 4
        assert client.get_run(first.run_id)["status"] == "failed"

        # The scheduler's restart: same run id, attempt + 1, queued again.
        store = Store(make_engine(f"sqlite:///{Path(server.home) / 'runyard.db'}"))
        try:
            restarted = store.restart_run(first.run_id, "restarted by the contract test")
        finally:
            store.close()
        assert restarted.attempt == 2
        second = make_launch(command, run_id=first.run_id, attempt=2)
        second_job = backend.submit(second)
        assert second_job != first_job

        state = wait_terminal(backend, second_job)
        assert state.status is EngineStatus.SUCCEEDED, state
        run = client.get_run(first.run_id)
        assert (run["status"], run["attempt"]) == ("succeeded", 2)
        assert stdout_of(client, first.run_id)[-1] == "second try"
        # The first attempt's job keeps its own end.
        assert backend.poll([first_job])[first_job].status is EngineStatus.FAILED
