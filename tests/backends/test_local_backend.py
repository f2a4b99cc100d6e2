"""LocalBackend with its agent, real processes and a real server: statuses, GPU accounting, cancel, crashes."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from backend_helpers import pid_alive, wait_for, wait_terminal

from runyard.backends.base import EngineStatus, Feature, Resources, RunLaunch, TaskSlot
from runyard.backends.local import LocalBackend, agent_dir, stop_agent
from runyard.client import Client
from runyard.errors import SpecError, SubmitError
from runyard.testing import LiveServer, free_port


def _stdout(client: Client, run_id: int) -> list[str]:
    return [ln["text"] for ln in client.read_logs(run_id, limit=10000)["lines"] if ln["stream"] == "stdout"]


def _gated(gate: Path, before: str = "") -> str:
    """A command that prints its GPUs and runs until ``gate`` exists."""
    return f'{before}echo "cvd=[$CUDA_VISIBLE_DEVICES]"; while [ ! -e {gate} ]; do sleep 0.05; done'


def test_runs_end_with_their_status_on_the_server(local_backend: LocalBackend, make_launch: Callable, client: Client) -> None:
    ok, bad = make_launch("echo hello"), make_launch("echo oops; exit 3")
    ok_id, bad_id = local_backend.submit(ok), local_backend.submit(bad)
    assert ok_id == f"{ok.run_id}.1"

    assert wait_terminal(local_backend, ok_id).status is EngineStatus.SUCCEEDED
    state = wait_terminal(local_backend, bad_id)
    assert (state.status, state.exit_code, state.reason) == (EngineStatus.FAILED, 3, "exit code 3")
    # Terminal in poll means the runner's reports are stored.
    assert client.get_run(ok.run_id)["status"] == "succeeded"
    assert _stdout(client, ok.run_id) == ["hello"]
    run = client.get_run(bad.run_id)
    assert (run["status"], run["status_message"]) == ("failed", "exit code 3\noops")
    assert local_backend.poll([ok_id, bad_id]) == {ok_id: local_backend.poll([ok_id])[ok_id],
                                                   bad_id: local_backend.poll([bad_id])[bad_id]}


def test_submit_is_idempotent_per_attempt(local_backend: LocalBackend, make_launch: Callable, client: Client) -> None:
    launch = make_launch("echo once")
    assert local_backend.submit(launch) == local_backend.submit(launch)
    wait_terminal(local_backend, f"{launch.run_id}.1")
    assert _stdout(client, launch.run_id) == ["once"]


def test_gpu_accounting_with_an_injected_inventory(local_backend: LocalBackend, make_launch: Callable, client: Client,
                                                   tmp_path: Path) -> None:
    assert local_backend.capacity().gpus == 2
    gates = [tmp_path / f"gate-{i}" for i in range(3)]
    launches = [make_launch(_gated(g), resources=Resources(cpus=0.5, gpus=1)) for g in gates]
    first = [local_backend.submit(launch) for launch in launches[:2]]

    assert local_backend.capacity().gpus == 0
    with pytest.raises(SubmitError, match="needs 1 GPU"):
        local_backend.submit(launches[2])  # only two run at once
    seen = [wait_for(lambda r=launch.run_id: [x for x in _stdout(client, r) if x.startswith("cvd=")], what="cvd")[0]
            for launch in launches[:2]]
    assert sorted(seen) == ["cvd=[0]", "cvd=[1]"]

    gates[0].touch()
    wait_terminal(local_backend, first[0])
    assert local_backend.capacity().gpus == 1  # freed when the job ended
    third = local_backend.submit(launches[2])
    third_seen = wait_for(lambda: [x for x in _stdout(client, launches[2].run_id) if x.startswith("cvd=")], what="cvd")[0]
    assert third_seen == seen[0]  # it got the GPU the first run released

    gates[1].touch()
    gates[2].touch()
    for job_id in (first[1], third):
        assert wait_terminal(local_backend, job_id).status is EngineStatus.SUCCEEDED
    assert local_backend.capacity() == local_backend.total()


def test_cpu_only_runs_see_no_gpus(local_backend: LocalBackend, make_launch: Callable, client: Client) -> None:
    launch = make_launch('echo "cvd=[$CUDA_VISIBLE_DEVICES]"')
    wait_terminal(local_backend, local_backend.submit(launch))
    assert _stdout(client, launch.run_id) == ["cvd=[]"]


def test_capacity_counts_what_active_jobs_hold(local_backend: LocalBackend, make_launch: Callable, tmp_path: Path) -> None:
    total = local_backend.total()
    gate = tmp_path / "gate"
    job_id = local_backend.submit(make_launch(_gated(gate), resources=Resources(cpus=1.5, memory_mb=100)))
    free = local_backend.capacity()
    assert (free.cpus, free.memory_mb, free.gpus) == (total.cpus - 1.5, total.memory_mb - 100, 2)
    gate.touch()
    wait_terminal(local_backend, job_id)
    assert local_backend.capacity() == total


def test_gpu_inventory_from_the_environment(monkeypatch: pytest.MonkeyPatch, runyard_home: Path) -> None:
    monkeypatch.setenv("RUNYARD_LOCAL_GPUS", "3,1")
    backend = LocalBackend()
    assert backend.gpu_inventory == [1, 3]
    assert backend.total().gpus == 2
    monkeypatch.setenv("RUNYARD_LOCAL_GPUS", "")
    assert LocalBackend().gpu_inventory == []


def test_cancel_stops_the_job_and_is_idempotent(local_backend: LocalBackend, make_launch: Callable, client: Client,
                                               tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    launch = make_launch(f"sleep 300 & echo $! > {pid_file}; wait", grace_period_s=1.0)
    job_id = local_backend.submit(launch)
    child = int(wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), what="the child pid"))

    local_backend.cancel(job_id)
    local_backend.cancel(job_id)
    state = wait_terminal(local_backend, job_id, timeout_s=10)
    assert state.status is EngineStatus.CANCELED
    assert not pid_alive(child)
    assert client.get_run(launch.run_id)["status"] == "canceled"
    local_backend.cancel(job_id)  # a finished job: no-op
    local_backend.cancel("12345.1")  # unknown: no-op


def test_unknown_jobs_are_lost(local_backend: LocalBackend) -> None:
    state = local_backend.poll(["999999.1"])["999999.1"]
    assert state.status is EngineStatus.LOST


def test_several_tasks_without_a_distributed_description_are_unsupported(local_backend: LocalBackend,
                                                                          make_launch: Callable) -> None:
    launch = make_launch("true", tasks=(TaskSlot("master", 0), TaskSlot("worker", 0)))
    assert set(local_backend.unsupported(launch)) == {Feature.MULTI_TASK}
    assert "distributed" in local_backend.unsupported(launch)[Feature.MULTI_TASK]
    assert local_backend.unsupported(make_launch("true")) == {}
    with pytest.raises(SubmitError, match="multi_task"):
        local_backend.submit(launch)


def test_more_gpus_than_the_machine_has_are_unsupported(local_backend: LocalBackend, make_launch: Callable) -> None:
    launch = make_launch("true", resources=Resources(gpus=3))
    assert Feature.GPUS in local_backend.unsupported(launch)


def test_unknown_options_list_the_valid_ones() -> None:
    with pytest.raises(SpecError, match=r"local\.cpu is not an option of the local backend\. Did you mean 'cpus'\? "
                                        r"Valid options: cpus \(default: os\.cpu_count\(\)\), memory_mb"):
        LocalBackend({"cpu": 2})
    with pytest.raises(SpecError, match="cpus"):
        LocalBackend({"cpus": -1})


def test_agent_killed_poll_answers_from_job_records(local_backend: LocalBackend, make_launch: Callable,
                                                    client: Client) -> None:
    done = make_launch("echo done")
    done_id = local_backend.submit(done)
    wait_terminal(local_backend, done_id)
    dies, lives = make_launch("sleep 300"), make_launch("sleep 300", grace_period_s=1.0)
    dies_id, lives_id = local_backend.submit(dies), local_backend.submit(lives)
    pids = {}
    for launch in (dies, lives):
        pids[launch.run_id] = wait_for(lambda r=launch.run_id: (client.get_run(r)["tasks"] or [{}])[0].get("pid"),
                                       what="the task's pid")
    old_agent = local_backend.agent_pid
    try:
        os.kill(old_agent, signal.SIGKILL)
        wait_for(lambda: not pid_alive(old_agent), what="the agent to die")
        os.killpg(pids[dies.run_id], signal.SIGKILL)  # died while no agent watched
        wait_for(lambda: not pid_alive(pids[dies.run_id]), what="the task to die")

        states = local_backend.poll([done_id, dies_id, lives_id, "424242.1"])  # starts a new agent
        assert local_backend.agent_pid != old_agent
        assert states[done_id].status is EngineStatus.SUCCEEDED
        assert states[dies_id].status is EngineStatus.LOST
        assert states[lives_id].status is EngineStatus.RUNNING  # an orphan, still alive
        assert states["424242.1"].status is EngineStatus.LOST
        assert local_backend.capacity().cpus == local_backend.total().cpus - 1  # the orphan still holds its CPU

        local_backend.cancel(lives_id)
        assert wait_terminal(local_backend, lives_id, timeout_s=10).status is EngineStatus.CANCELED
        assert not pid_alive(pids[lives.run_id])
        assert local_backend.capacity() == local_backend.total()
    finally:
        for pid in pids.values():
            if pid_alive(pid):
                os.killpg(pid, signal.SIGKILL)


def test_tasks_of_a_killed_agent_end_with_their_own_exit_codes(local_backend: LocalBackend, make_launch: Callable,
                                                              client: Client, tmp_path: Path) -> None:
    """Output goes to files and a wrapper writes the exit code: the tasks outlive the agent (printing
    on), and the new agent ends each with its true status and reports it to the server."""
    gate = tmp_path / "gate"
    ok = make_launch(f"while [ ! -e {gate} ]; do echo tick; sleep 0.05; done; echo after")
    bad = make_launch(f"while [ ! -e {gate} ]; do sleep 0.05; done; exit 3")
    ok_id, bad_id = local_backend.submit(ok), local_backend.submit(bad)
    for launch in (ok, bad):
        wait_for(lambda r=launch.run_id: client.get_run(r)["status"] == "running", what="the run to run")
    old_agent = local_backend.agent_pid
    os.kill(old_agent, signal.SIGKILL)
    wait_for(lambda: not pid_alive(old_agent), what="the agent to die")
    time.sleep(0.3)  # the printing task prints on with no agent reading
    gate.touch()
    states = {}
    for job_id in (ok_id, bad_id):
        states[job_id] = wait_terminal(local_backend, job_id, timeout_s=20)  # a new agent adopts them
    assert local_backend.agent_pid != old_agent
    assert states[ok_id].status is EngineStatus.SUCCEEDED and states[ok_id].exit_code == 0
    assert states[bad_id].status is EngineStatus.FAILED and states[bad_id].exit_code == 3
    ok_run, bad_run = client.get_run(ok.run_id), client.get_run(bad.run_id)  # reported by the new agent at once
    assert ok_run["status"] == "succeeded" and bad_run["status"] == "failed" and bad_run["exit_code"] == 3
    out = local_backend._agent_dir / "work" / ok_id / ".runyard"
    printed = [ln for f in out.glob("*/stdout") for ln in f.read_text().splitlines()]
    assert printed[-1] == "after" and printed.count("tick") >= 3
    assert not list(out.glob("report.json"))  # the token it reported with is gone


def test_agent_restarts_after_stop(local_backend: LocalBackend, make_launch: Callable, runyard_home: Path) -> None:
    wait_terminal(local_backend, local_backend.submit(make_launch("true")))
    first = local_backend.agent_pid
    assert stop_agent(agent_dir(runyard_home))
    assert not pid_alive(first)
    assert wait_terminal(local_backend, local_backend.submit(make_launch("true"))).status is EngineStatus.SUCCEEDED
    assert local_backend.agent_pid not in (None, first)


def test_agent_shutdown_stops_running_tasks(local_backend: LocalBackend, make_launch: Callable, client: Client,
                                            runyard_home: Path) -> None:
    launch = make_launch("sleep 300", grace_period_s=1.0)
    job_id = local_backend.submit(launch)
    pid = wait_for(lambda: (client.get_run(launch.run_id)["tasks"] or [{}])[0].get("pid"), what="the pid")
    assert stop_agent(agent_dir(runyard_home))
    assert not pid_alive(pid)
    run = client.get_run(launch.run_id)
    assert (run["status"], run["status_message"].split(" (")[0]) == ("failed", "the local agent stopped")
    assert local_backend.poll([job_id])[job_id].status is EngineStatus.CANCELED


@pytest.mark.slow
def test_tasks_survive_the_server_being_killed_and_restarted(local_backend: LocalBackend, tmp_path: Path) -> None:
    port = free_port()
    home = tmp_path / "crash-server"
    server = LiveServer(home, port=port).start()
    try:
        with Client(server.url) as client:
            run = client.create_run("crash", status="queued")
            launch = RunLaunch(run_id=run["id"], attempt=1, project="crash", experiment_id=None, snapshot_id=None,
                               server_url=server.url, command="for i in $(seq 1 40); do echo tick-$i; sleep 0.1; done")
            job_id = local_backend.submit(launch)
            wait_for(lambda: "tick-3" in _stdout(client, run["id"]), what="the first lines")
        server.kill()
        assert local_backend.poll([job_id])[job_id].status is EngineStatus.RUNNING
        time.sleep(1.5)  # lines and the exit happen while the server is down
        server = LiveServer(home, port=port).start()
        state = wait_terminal(local_backend, job_id, timeout_s=30)
        assert state.status is EngineStatus.SUCCEEDED
        with Client(server.url) as client:
            run = client.get_run(run["id"])
            assert (run["status"], run["exit_code"]) == ("succeeded", 0)
            ticks = _stdout(client, run["id"])
        # Nothing is lost, reordered or stored twice (a batch in flight when the server died is
        # sent again with its id).
        assert ticks == [f"tick-{i}" for i in range(1, 41)]
    finally:
        server.stop()


def test_an_idle_agent_running_other_code_is_replaced(local_backend: LocalBackend, make_launch: Callable,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import runyard.backends.local._protocol as protocol

    wait_terminal(local_backend, local_backend.submit(make_launch("true")))
    old = local_backend.agent_pid
    local_backend.close()
    monkeypatch.setattr(protocol, "code_fingerprint", lambda: "upgraded")  # as if Runyard changed on disk
    assert local_backend.capacity() == local_backend.total()
    assert local_backend.agent_pid != old
    wait_for(lambda: not pid_alive(old), what="the old agent to exit")


def test_concurrent_backends_start_one_agent(runyard_home: Path) -> None:
    import threading

    backends = [LocalBackend({"gpus": []}) for _ in range(4)]
    errors: list[BaseException] = []

    def first_call(backend: LocalBackend) -> None:
        try:
            backend.capacity()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=first_call, args=(b,)) for b in backends]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors
        import psutil

        agents = [p for p in psutil.Process().children() if "agent" in p.cmdline() and str(runyard_home) in " ".join(p.cmdline())]
        assert [p.pid for p in agents] == [backends[0].agent_pid]
    finally:
        for b in backends:
            b.close()
        stop_agent(agent_dir(runyard_home))


def test_a_waiting_poll_does_not_hold_up_submit(local_backend: LocalBackend, make_launch: Callable, tmp_path: Path) -> None:
    import threading

    gate = tmp_path / "gate"
    waiting = local_backend.submit(make_launch(_gated(gate)))
    answers: list = []
    poller = threading.Thread(target=lambda: answers.append(local_backend.poll([waiting], wait_s=30)))
    poller.start()
    time.sleep(0.3)  # the poll is now blocked in the agent
    t0 = time.monotonic()
    quick = local_backend.submit(make_launch("true"))
    assert wait_terminal(local_backend, quick).status is EngineStatus.SUCCEEDED
    assert time.monotonic() - t0 < 10
    gate.touch()
    poller.join(30)
    assert answers[0][waiting].status is EngineStatus.SUCCEEDED


def test_queued_runs_wait_in_the_agent_and_start_as_slots_free(local_backend: LocalBackend, make_launch: Callable,
                                                               client: Client, tmp_path: Path) -> None:
    # Three runs of one experiment, at most two at a time: the third waits in the agent (pending,
    # with its reason) and starts by itself when a slot frees, without another submit.
    gates = [tmp_path / f"gate-{i}" for i in range(3)]
    launches = [make_launch(_gated(g), experiment_id=7, resources=Resources(cpus=0.1)) for g in gates]
    jobs = [local_backend.submit(launch, at_most=2) for launch in launches]
    wait_for(lambda: all(_stdout(client, launch.run_id) for launch in launches[:2]), what="the first two running")
    state = local_backend.poll([jobs[2]])[jobs[2]]
    assert (state.status, state.reason) == (EngineStatus.PENDING,
                                            "pending: waiting for a free slot (its experiment runs 2 at a time)")
    assert local_backend.capacity().cpus == pytest.approx(local_backend.total().cpus - 0.3)  # queued runs hold theirs
    assert _stdout(client, launches[2].run_id) == []

    gates[0].touch()
    assert wait_terminal(local_backend, jobs[0]).status is EngineStatus.SUCCEEDED
    wait_for(lambda: _stdout(client, launches[2].run_id), what="the third run started by the agent")
    gates[1].touch()
    gates[2].touch()
    for job_id in jobs[1:]:
        assert wait_terminal(local_backend, job_id).status is EngineStatus.SUCCEEDED
    assert local_backend.capacity() == local_backend.total()


def test_queued_runs_keep_submission_order_across_experiments_and_wait_for_cpus(
        local_backend: LocalBackend, make_launch: Callable, client: Client, tmp_path: Path) -> None:
    total = local_backend.total().cpus
    gate = tmp_path / "gate"
    big = make_launch(_gated(gate), experiment_id=1, resources=Resources(cpus=total * 0.6))
    second = make_launch(_gated(gate), experiment_id=2, resources=Resources(cpus=total * 0.6))
    small = make_launch("echo small", experiment_id=3, resources=Resources(cpus=0.1))
    jobs = [local_backend.submit(launch, at_most=5) for launch in (big, second, small)]
    wait_for(lambda: _stdout(client, big.run_id), what="the first run started")
    states = local_backend.poll(jobs[1:])
    # The second does not fit beside the first; the small one, submitted later, does not pass it.
    assert [states[j].status for j in jobs[1:]] == [EngineStatus.PENDING, EngineStatus.PENDING]
    assert states[jobs[1]].reason == "pending: waiting for CPUs or memory on this machine"
    gate.touch()
    for job_id in jobs:
        assert wait_terminal(local_backend, job_id).status is EngineStatus.SUCCEEDED
    assert _stdout(client, small.run_id) == ["small"]


def test_a_queued_run_canceled_before_it_starts_never_runs(local_backend: LocalBackend, make_launch: Callable,
                                                          client: Client, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    first = make_launch(_gated(gate), experiment_id=9, resources=Resources(cpus=0.1))
    waiting = make_launch("echo should-not-run", experiment_id=9, resources=Resources(cpus=0.1))
    jobs = [local_backend.submit(launch, at_most=1) for launch in (first, waiting)]
    local_backend.cancel(jobs[1])
    state = wait_terminal(local_backend, jobs[1])
    assert (state.status, state.reason) == (EngineStatus.CANCELED, "canceled before it started")
    gate.touch()
    assert wait_terminal(local_backend, jobs[0]).status is EngineStatus.SUCCEEDED
    assert _stdout(client, waiting.run_id) == []
    assert local_backend.capacity() == local_backend.total()


def test_only_single_task_runs_without_gpus_can_queue(local_backend: LocalBackend, make_launch: Callable) -> None:
    gpu = make_launch("true", resources=Resources(cpus=0.1, gpus=1))
    assert not local_backend.can_queue(gpu.resources, distributed=False)
    assert not local_backend.can_queue(Resources(cpus=0.1), distributed=True)
    assert local_backend.can_queue(Resources(cpus=0.1), distributed=False)
    with pytest.raises(SubmitError, match="Only single-task runs without GPUs can wait"):
        local_backend.submit(gpu, at_most=1)


def _agent_pid_of(home: Path) -> int | None:
    import json

    try:
        return int(json.loads((agent_dir(home) / "agent.json").read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return None


def test_the_server_starts_its_agent_and_an_idle_one_stops_with_it(tmp_path: Path) -> None:
    home = tmp_path / "warm"
    server = LiveServer(home, env={"RUNYARD_WARM_AGENT": "1"}).start()
    pid = None
    try:
        pid = wait_for(lambda: _agent_pid_of(home), what="the agent the server starts with itself")
        assert pid_alive(pid)
    finally:
        server.stop()
        try:
            wait_for(lambda: pid is None or not pid_alive(pid), timeout_s=15, what="the idle agent to stop with the server")
        finally:
            stop_agent(agent_dir(home), timeout_s=10)  # whatever happened, no agent outlives the test


def test_an_agent_with_a_running_job_outlives_the_servers_stop(tmp_path: Path) -> None:
    home = tmp_path / "busy"
    server = LiveServer(home, env={"RUNYARD_WARM_AGENT": "1"}).start()  # its scheduler holds the local backend
    try:
        with Client(server.url) as client:
            run = client.create_run("busy", status="queued")
            launch = RunLaunch(run_id=run["id"], attempt=1, project="busy", experiment_id=None, snapshot_id=None,
                               server_url=server.url, command="sleep 300", grace_period_s=1.0)
            backend = LocalBackend({"gpus": []}, home=home)
            job_id = backend.submit(launch)
            wait_for(lambda: backend.poll([job_id])[job_id].status is EngineStatus.RUNNING, what="the job to run")
            pid = backend.agent_pid
        server.stop()
        time.sleep(1.0)
        assert pid_alive(pid), "the agent must keep a running job's task alive when its server stops"
        assert backend.poll([job_id])[job_id].status is EngineStatus.RUNNING
    finally:
        server.stop()
        stop_agent(agent_dir(home), timeout_s=20)


def test_working_directories_of_long_ended_jobs_are_removed(tmp_path: Path) -> None:
    from runyard.backends.local import Agent

    agent = Agent(tmp_path / "agent")
    week_and_a_day = time.time() - 8 * 24 * 3600
    for name, old, record in (("1.1", True, False), ("2.1", False, False), ("3.1", True, True)):
        work = agent.work_dir / name / "main-0"
        work.mkdir(parents=True)
        (work / "out.txt").write_text("result")
        pool_home = tmp_path / "jobs" / name  # a run_as pool job's directory outside the home
        pool_home.mkdir(parents=True)
        (work.parent / ".runyard").mkdir()
        (work.parent / ".runyard" / "home").write_text(str(pool_home))
        if old:
            os.utime(work.parent, (week_and_a_day, week_and_a_day))
        if record:  # a job an agent still knows (running, or ended within the week)
            agent.jobs_dir.mkdir(exist_ok=True)
            (agent.jobs_dir / f"{name}.json").write_text("{}")

    assert agent.clean_work() == ["1.1"]
    assert sorted(p.name for p in agent.work_dir.iterdir()) == ["2.1", "3.1"]
    assert sorted(p.name for p in (tmp_path / "jobs").iterdir()) == ["2.1", "3.1"]
