"""The Slurm backend on the real single-node Slurm: batching and backoff of polls, multi-task
runs through srun, idempotent submission, sbatch refusals, bad options.

The command runner is the real LocalCommands, wrapped only to count the commands it runs.
Jobs a test submitted are cancelled by their Slurm job ids afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runyard.backends.base import EngineStatus, Resources, TaskSlot
from runyard.backends.slurm import SlurmBackend
from runyard.backends.slurm._commands import LocalCommands
from runyard.errors import BackendError, SpecError, SubmitError
from runyard.testing.backend_contract import stdout_of, wait_terminal


class CountingCommands(LocalCommands):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def run(self, argv, timeout_s: float = 60.0):  # noqa: ANN001, ANN201
        self.calls.append(Path(argv[0]).name)
        return super().run(argv, timeout_s)


@pytest.fixture
def counting() -> CountingCommands:
    return CountingCommands()


@pytest.fixture
def make_backend(slurm_cluster: str, tmp_path: Path, counting: CountingCommands) -> Iterator:
    made: list[SlurmBackend] = []
    jobs: list[str] = []

    def make(**options) -> SlurmBackend:
        clock = options.pop("clock", time.monotonic)
        opts = {"partition": slurm_cluster, "work_dir": str(tmp_path / "work"), "poll_min_s": 0.2, "poll_max_s": 1.6,
                **options}
        b = SlurmBackend(opts, home=tmp_path / "home", commands=counting, clock=clock)
        real = b.submit

        def submit(launch):  # noqa: ANN001, ANN202
            job_id = real(launch)
            jobs.append(job_id)
            return job_id

        b.submit = submit  # type: ignore[method-assign]
        made.append(b)
        return b

    try:
        yield make
    finally:
        for b in made:
            for job_id in jobs:
                b.cancel(job_id)
            b.close()


pytestmark = pytest.mark.slow


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_one_squeue_call_polls_every_job_and_polls_back_off(make_backend, make_launch, counting) -> None:
    clock = FakeClock()
    backend = make_backend(clock=clock)
    job_ids = [backend.submit(make_launch("sleep 300", resources=Resources(cpus=1))) for _ in range(3)]
    counting.calls.clear()
    states = backend.poll(job_ids)
    assert set(states) == set(job_ids)
    assert counting.calls == ["squeue"]  # one call for all jobs
    deadline = time.monotonic() + 60
    while any(s.status is not EngineStatus.RUNNING for s in backend.poll(job_ids).values()):
        assert time.monotonic() < deadline, backend.poll(job_ids)
        clock.now += 0.2
        time.sleep(0.1)
    # Nothing changes: polled every 50 ms (of the injected clock) for 2.9 s, the engine is asked
    # 0.2, 0.4, 0.8, then 1.6 s (poll_max_s) apart.
    counting.calls.clear()
    start = clock.now
    while clock.now < start + 2.9:
        assert all(s.status is EngineStatus.RUNNING for s in backend.poll(job_ids).values())
        clock.now += 0.05
    assert counting.calls == ["squeue"] * 3, counting.calls
    backend.cancel(job_ids[0])  # a cancel makes the next poll ask at once
    counting.calls.clear()
    backend.poll(job_ids)
    assert counting.calls[0] == "squeue"


def test_an_engine_that_is_down_raises_a_backend_error(make_backend, make_launch) -> None:
    backend = make_backend()
    job_id = backend.submit(make_launch("sleep 300"))
    broken = make_backend(squeue="/bin/false")
    with pytest.raises(BackendError, match="squeue on this machine failed") as e:
        broken.poll([job_id])
    assert "scontrol ping" in (e.value.hint or "")


def test_a_multi_task_run_starts_one_runner_per_task(make_backend, make_launch, client) -> None:
    backend = make_backend()
    launch = make_launch('echo "task $RUNYARD_TASK_ROLE-$RUNYARD_TASK_RANK of run $RUNYARD_RUN_ID"',
                         tasks=(TaskSlot("worker", 0), TaskSlot("worker", 1)), resources=Resources(cpus=1))
    job_id = backend.submit(launch)
    assert wait_terminal(backend, job_id).status is EngineStatus.SUCCEEDED
    lines = sorted(stdout_of(client, launch.run_id))
    assert lines == [f"task worker-0 of run {launch.run_id}", f"task worker-1 of run {launch.run_id}"]
    run = client.get_run(launch.run_id)
    assert sorted((t["role"], t["rank"], t["status"]) for t in run["tasks"]) == [("worker", 0, "succeeded"),
                                                                               ("worker", 1, "succeeded")]


def test_submit_is_idempotent_per_attempt(make_backend, make_launch, counting) -> None:
    backend = make_backend()
    launch = make_launch("echo once")
    first = backend.submit(launch)
    counting.calls.clear()
    assert backend.submit(launch) == first
    assert "sbatch" not in counting.calls
    assert wait_terminal(backend, first).status is EngineStatus.SUCCEEDED


def test_sbatch_refusals_fail_the_submit_with_slurms_message(make_backend, make_launch, tmp_path: Path) -> None:
    backend = make_backend(partition="no-such-partition")
    with pytest.raises(SubmitError) as e:
        backend.submit(make_launch("true"))
    assert "sbatch on this machine refused run" in e.value.message and "partition" in e.value.message.lower()
    assert "job.sbatch" in (e.value.hint or "")
    backend = make_backend(sbatch=str(tmp_path / "nowhere" / "sbatch"), work_dir=str(tmp_path / "w2"))
    with pytest.raises(SubmitError) as e:
        backend.submit(make_launch("true"))
    assert "command not found" in e.value.message and "sbatch option" in (e.value.hint or "")


def test_a_job_slurm_never_heard_of_is_lost(make_backend) -> None:
    backend = make_backend()
    state = backend.poll(["99999997"])["99999997"]
    assert state.status is EngineStatus.LOST and "99999997" in state.reason


def test_bad_options_are_refused_when_built() -> None:
    with pytest.raises(SpecError) as e:
        SlurmBackend({"partion": "debug"})
    assert "slurm.partion is not an option" in e.value.message and "Did you mean 'partition'?" in e.value.message
    with pytest.raises(SpecError, match="login_host needs work_dir"):
        SlurmBackend({"login_host": "login01"})


def test_a_job_whose_runner_stopped_first_on_cancel_polls_canceled(make_backend, make_launch, client) -> None:
    """The run is canceled on the server; the runner sees it on its heartbeat and ends the job before scancel."""
    import subprocess

    from runyard.testing import wait_for
    from runyard.testing.backend_contract import wait_state

    backend = make_backend()
    launch = make_launch("echo started; sleep 300", grace_period_s=1.0)
    job_id = backend.submit(launch)
    wait_state(backend, job_id, lambda s: s.status is EngineStatus.RUNNING, what="RUNNING")
    client.cancel_run(launch.run_id)

    def ended_in_slurm() -> bool:
        out = subprocess.run(["sacct", "-n", "-P", "-X", "-j", job_id, "-o", "State"], capture_output=True, text=True).stdout
        return out.strip() not in ("", "RUNNING", "PENDING", "COMPLETING")

    wait_for(ended_in_slurm, timeout_s=60, what="the runner to end the job by itself")
    backend.cancel(job_id)  # the scheduler's cancel arrives late: scancel finds nothing to do
    state = wait_terminal(backend, job_id)
    assert state.status is EngineStatus.CANCELED, state
    assert state.reason.startswith("canceled (Slurm ended it FAILED")
    backend.cancel(job_id)
    assert backend.poll([job_id])[job_id].status is EngineStatus.CANCELED


def test_cancelling_a_job_that_already_failed_changes_nothing(make_backend, make_launch) -> None:
    backend = make_backend()
    job_id = backend.submit(make_launch("exit 5"))
    assert wait_terminal(backend, job_id).exit_code == 5
    backend.cancel(job_id)
    state = backend.poll([job_id])[job_id]
    assert (state.status, state.exit_code) == (EngineStatus.FAILED, 5)
