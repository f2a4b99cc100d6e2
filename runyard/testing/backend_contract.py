"""The backend contract: what every backend must do, as a pytest plugin with one class of tests to subclass.

A backend's tests load the plugin and subclass :class:`BackendContract`::

    # conftest.py (the top-level one of the test suite)
    pytest_plugins = ["runyard.testing.backend_contract"]

    # test_mybackend_contract.py
    @pytest.fixture
    def backend(tmp_path):
        b = MyBackend({"work_dir": str(tmp_path)})
        yield b
        b.close()  # and stop, by their ids, whatever jobs it left running

    @pytest.fixture
    def unknown_job_id():
        return "999999.1"  # a job id in the backend's own format that names no job

    class TestMyBackendContract(BackendContract):
        pass

The plugin provides ``server`` (a live Runyard server in a subprocess, one per test
module), ``client`` (a :class:`~runyard.client.Client` of it) and ``make_launch``
(a queued run on that server and a ``RunLaunch`` of it). Everything runs for real:
the backend starts the real runner, which reports to the real server; the tests read
the server through its REST API only.

The rules:

- a trivial run succeeds through poll, and the server has its status and output;
- a failing command ends FAILED with its exit code, on the server too;
- poll of an unknown job says LOST, never raises; poll of an empty list is ``{}``;
- one poll of several ids answers for each of them, and only for them;
- cancel stops a running job, is idempotent, and the job ends CANCELED; cancelling an
  ended or unknown job is a no-op;
- a second attempt of a run (a restart after a failure) gets its own job and runs to its own end;
- a backend with a capacity reports a ``Resources``; a running job lowers it; it comes back after;
- a launch the backend cannot run gets a reason from ``unsupported`` and a ``SubmitError``
  from ``submit``, never another exception;
- ``close`` is idempotent and the jobs keep running (a new backend object follows them to their end);
- the tasks of a multi-task run all start and each reports its end (skipped where
  ``unsupported`` says MULTI_TASK, with its reason);
- a run over its ``time_limit`` ends TIMEOUT (or FAILED), failed on the server.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from runyard.client import Client
from runyard.errors import SubmitError
from runyard.records.compute import (
    EngineState,
    EngineStatus,
    Feature,
    Resources,
    RunLaunch,
    TaskSlot,
)
from runyard.testing._server import LiveServer
from runyard.testing._wait import wait_for

__all__ = ["TIMEOUT_S", "BackendContract", "canceling_submitted", "client", "make_launch", "server", "stdout_of",
           "wait_state", "wait_terminal"]

TIMEOUT_S = 90.0  # generous: a loaded 2-core machine, and remote backends start a fresh interpreter
PROJECT = "backend-tests"


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A live Runyard server (SQLite, local mode) in a subprocess, stopped by its pid after the module."""
    srv = LiveServer(tmp_path_factory.mktemp("server-home"))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def client(server: LiveServer) -> Iterator[Client]:
    """A client of ``server``."""
    with Client(server.url) as c:
        yield c


@pytest.fixture
def make_launch(server: LiveServer, client: Client) -> Callable[..., RunLaunch]:
    """``make_launch(command, **fields)``: a queued run on ``server`` and a launch of it.

    Keyword arguments are ``RunLaunch`` fields (``resources``, ``tasks``, ``time_limit_s`` …);
    ``server_url`` creates the run through that URL instead.
    """

    def make(command: str, **kwargs: Any) -> RunLaunch:
        url = kwargs.pop("server_url", server.url)
        if url == server.url:
            run = client.create_run(PROJECT, status="queued")
        else:
            with Client(url) as other:
                run = other.create_run(PROJECT, status="queued")
        fields: dict[str, Any] = {"run_id": run["id"], "attempt": 1, "project": PROJECT, "experiment_id": None,
                                  "command": command, "snapshot_id": None, "server_url": url, "grace_period_s": 2.0}
        fields.update(kwargs)
        return RunLaunch(**fields)

    return make


# ------------------------------------------------------------------- helpers
@contextlib.contextmanager
def canceling_submitted(backend: Any, cancel: Callable[[str], Any] | None = None) -> Iterator[list[str]]:
    """Record the job ids ``backend.submit`` returns while the block runs; afterwards cancel each (with
    ``cancel``, default the backend's own) and close the backend. Yields the list of ids so far.

    A backend fixture: ``with canceling_submitted(b): yield b`` leaves no job of the test running."""
    submitted: list[str] = []
    real_submit = backend.submit

    def submit(launch: RunLaunch, **kwargs: Any) -> str:
        job_id = real_submit(launch, **kwargs)
        submitted.append(job_id)
        return job_id

    backend.submit = submit
    try:
        yield submitted
    finally:
        for job_id in submitted:
            (cancel or backend.cancel)(job_id)
        backend.close()


def wait_state(backend: Any, job_id: str, until: Callable[[EngineState], bool], timeout_s: float = TIMEOUT_S,
               what: str = "a state") -> EngineState:
    """Poll (plainly, the way the scheduler does) until ``until(state)``; AssertionError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    state = None
    while time.monotonic() < deadline:
        state = backend.poll([job_id])[job_id]
        if until(state):
            return state
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not reach {what} within {timeout_s:g}s; last state {state}")


def wait_terminal(backend: Any, job_id: str, timeout_s: float = TIMEOUT_S) -> EngineState:
    """The job's terminal state, polling until it has one."""
    return wait_state(backend, job_id, lambda s: s.status.terminal, timeout_s, "a terminal state")


def stdout_of(client: Client, run_id: int) -> list[str]:
    """The run's stdout lines as the server stored them."""
    return [ln["text"] for ln in client.read_logs(run_id, limit=10000)["lines"] if ln["stream"] == "stdout"]


def _pytorch(cpus: float) -> dict[str, Any]:
    each = {"cpus": cpus, "memory_mb": 0, "gpus": 0}
    return {"framework": "pytorch", "roles": {"master": {"replicas": 1, "resources": each},
                                              "worker": {"replicas": 1, "resources": each}}}


# ------------------------------------------------------------------ contract
class BackendContract:
    """Subclass with ``backend`` and ``unknown_job_id`` fixtures; override :meth:`reopen` when the defaults do not fit."""

    def reopen(self, backend: Any) -> Any:
        """A new backend object on the same engine, as a restarted server builds it (default: same class, same options)."""
        return type(backend)(backend.options)

    def unsupported_probes(self, make_launch: Callable[..., RunLaunch]) -> list[RunLaunch]:
        """Launches a backend may not be able to run (more GPUs than any machine has, several tasks without a plan)."""
        return [make_launch("true", resources=Resources(cpus=1.0, gpus=4096)),
                make_launch("true", tasks=(TaskSlot("master", 0), TaskSlot("worker", 0)))]

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

    def test_one_poll_answers_for_many_jobs(self, backend: Any, make_launch: Callable, client: Client,
                                           unknown_job_id: str) -> None:
        each = Resources(cpus=0.5)
        cap = backend.capacity()
        n = 3 if cap is None else max(1, min(3, int(cap.cpus / each.cpus + 1e-9)))
        launches = [make_launch(f"echo job {i}", resources=each) for i in range(n)]
        job_ids = [backend.submit(launch) for launch in launches]
        assert len(set(job_ids)) == n

        asked = [*job_ids, unknown_job_id]
        states = backend.poll(asked)
        assert set(states) == set(asked), states
        assert states[unknown_job_id].status is EngineStatus.LOST

        def all_ended() -> dict[str, EngineState] | None:
            answer = backend.poll(job_ids)
            assert set(answer) == set(job_ids), answer
            return answer if all(s.status.terminal for s in answer.values()) else None

        ended = wait_for(all_ended, timeout_s=TIMEOUT_S, what=f"{n} jobs polled together to end")
        assert all(s.status is EngineStatus.SUCCEEDED for s in ended.values()), ended
        for i, launch in enumerate(launches):
            assert stdout_of(client, launch.run_id) == [f"job {i}"]

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
                                                                 client: Client) -> None:
        command = 'if [ "$RUNYARD_ATTEMPT" = 1 ]; then echo first; exit 4; fi; echo "second try"'
        first = make_launch(command)
        first_job = backend.submit(first)
        assert wait_terminal(backend, first_job).exit_code == 4
        assert client.get_run(first.run_id)["status"] == "failed"

        # The scheduler's restart: same run id, attempt + 1, queued again.
        assert client.restart_run(first.run_id)["attempt"] == 2
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

    def test_capacity_goes_down_while_a_job_holds_resources_and_back_after(self, backend: Any, make_launch: Callable,
                                                                           client: Client) -> None:
        before = backend.capacity()
        if before is None:
            pytest.skip("capacity() is None: the engine queues runs itself")
        assert isinstance(before, Resources), before
        need = Resources(cpus=1.0)
        if not need.fits_in(before):
            pytest.skip(f"no room for a 1-CPU job now ({before})")
        launch = make_launch("echo holding; sleep 300", resources=need, grace_period_s=1.0)
        job_id = backend.submit(launch)
        wait_for(lambda: "holding" in stdout_of(client, launch.run_id), timeout_s=TIMEOUT_S, what="the task's output")
        wait_for(lambda: backend.capacity().cpus <= before.cpus - need.cpus + 1e-9, timeout_s=30.0,
                 what=f"capacity to go down by {need.cpus:g} CPU from {before}")

        client.cancel_run(launch.run_id)
        backend.cancel(job_id)
        wait_terminal(backend, job_id, timeout_s=30.0)
        wait_for(lambda: backend.capacity().cpus >= before.cpus - 1e-9, timeout_s=30.0,
                 what=f"capacity to come back to {before}")

    def test_a_launch_it_cannot_run_gets_a_reason(self, backend: Any, make_launch: Callable) -> None:
        refused = 0
        for launch in self.unsupported_probes(make_launch):
            problems = backend.unsupported(launch)
            assert isinstance(problems, dict), problems
            for feature, reason in problems.items():
                assert isinstance(feature, Feature) and isinstance(reason, str) and reason.strip(), problems
            if not problems:
                continue
            refused += 1
            with pytest.raises(SubmitError) as e:
                backend.submit(launch)
            assert all(f.value in e.value.message for f in problems), e.value.message
        if not refused:
            pytest.skip("the backend can run every probe launch (its engine refuses at submission what it cannot place)")

    def test_close_is_idempotent_and_jobs_keep_running(self, backend: Any, make_launch: Callable,
                                                      client: Client) -> None:
        launch = make_launch("echo started; sleep 4; echo still here")
        job_id = backend.submit(launch)
        wait_for(lambda: "started" in stdout_of(client, launch.run_id), timeout_s=TIMEOUT_S, what="the task's output")
        backend.close()
        backend.close()

        again = self.reopen(backend)
        try:
            state = wait_terminal(again, job_id)
        finally:
            again.close()
        assert state.status is EngineStatus.SUCCEEDED, state
        assert stdout_of(client, launch.run_id) == ["started", "still here"]
        assert client.get_run(launch.run_id)["status"] == "succeeded"

    def test_every_task_of_a_multi_task_run_starts(self, backend: Any, make_launch: Callable, client: Client) -> None:
        from runyard.launch import task_slots

        desc = _pytorch(0.5)
        launch = make_launch('echo "task $RUNYARD_TASK_ROLE-$RUNYARD_TASK_RANK"', resources=Resources(cpus=0.5),
                             tasks=task_slots(desc), distributed=desc)
        problems = backend.unsupported(launch)
        if Feature.MULTI_TASK in problems:
            pytest.skip(f"multi-task runs are unsupported: {problems[Feature.MULTI_TASK]}")
        job_id = backend.submit(launch)
        state = wait_terminal(backend, job_id)
        assert state.status is EngineStatus.SUCCEEDED, state
        # Every task reported its own end; the run's success is the engine's to say when tasks run apart
        # (the scheduler records it from this poll), so only the tasks are checked here.
        run = client.get_run(launch.run_id)
        tasks = {f"{t['role']}-{t['rank']}": t["status"] for t in run["tasks"] if t["attempt"] == 1}
        assert tasks == {"master-0": "succeeded", "worker-0": "succeeded"}, run["tasks"]
        assert sorted(stdout_of(client, launch.run_id)) == ["task master-0", "task worker-0"]
        assert run["status"] in ("running", "succeeded"), run

    def test_a_run_over_its_time_limit_ends_timeout(self, backend: Any, make_launch: Callable, client: Client) -> None:
        launch = make_launch("echo started; sleep 300", time_limit_s=3, grace_period_s=1.0)
        problems = backend.unsupported(launch)
        if Feature.TIME_LIMIT in problems:
            pytest.skip(f"time limits are unsupported: {problems[Feature.TIME_LIMIT]}")
        job_id = backend.submit(launch)
        state = wait_terminal(backend, job_id)
        assert state.status in (EngineStatus.TIMEOUT, EngineStatus.FAILED), state
        run = client.get_run(launch.run_id)
        assert run["status"] == "failed", run
        assert "TIMEOUT" in (run["status_message"] or "") + state.reason + state.raw, (run, state)
