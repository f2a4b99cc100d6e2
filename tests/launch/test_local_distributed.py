"""Distributed jobs of the local backend's agent: resources held for every task, and a job orphaned by
a killed agent is still followed and cancelled as a whole (every task's processes)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from runyard.backends.base import EngineStatus, Resources, RunLaunch
from runyard.backends.local import LocalBackend, agent_dir, stop_agent
from runyard.client import Client
from runyard.launch import task_slots
from runyard.testing import LiveServer, pid_alive, wait_for


@pytest.fixture
def local_backend(runyard_home: Path) -> Iterator[LocalBackend]:
    backend = LocalBackend({"cpus": 4})
    try:
        yield backend
    finally:
        backend.close()
        stop_agent(agent_dir(runyard_home))


def _launch(server: LiveServer, client: Client, command: str, workers: int) -> RunLaunch:
    run = client.create_run("local-dist-tests", status="queued")
    desc = {"framework": "pytorch",
            "roles": {"master": {"replicas": 1, "resources": {"cpus": 0.5, "memory_mb": 0, "gpus": 0}},
                      "worker": {"replicas": workers, "resources": {"cpus": 1.0, "memory_mb": 0, "gpus": 0}}}}
    return RunLaunch(run_id=run["id"], attempt=1, project="local-dist-tests", experiment_id=None, command=command,
                     snapshot_id=None, server_url=server.url, grace_period_s=1.0, resources=Resources(1.0),
                     tasks=task_slots(desc), distributed=desc)


def _pids(client: Client, run_id: int, n: int) -> dict[str, int]:
    def running() -> dict[str, int] | None:
        tasks = client.get_run(run_id)["tasks"]
        pids = {f"{t['role']}-{t['rank']}": t["pid"] for t in tasks if t.get("pid") and t["status"] == "running"}
        return pids if len(pids) == n else None

    return wait_for(running, timeout_s=30, what=f"{n} running tasks")


def test_the_job_holds_every_tasks_resources(server: LiveServer, client: Client, local_backend: LocalBackend) -> None:
    launch = _launch(server, client, "exec sleep 60", workers=2)
    job_id = local_backend.submit(launch)
    _pids(client, launch.run_id, 3)
    assert local_backend.capacity().cpus == pytest.approx(4 - 2.5)
    local_backend.cancel(job_id)
    wait_for(lambda: local_backend.poll([job_id])[job_id].status.terminal, timeout_s=30, what="the job to end")
    assert local_backend.poll([job_id])[job_id].status is EngineStatus.CANCELED
    assert client.get_run(launch.run_id)["status"] == "canceled"
    assert local_backend.capacity().cpus == 4


def test_an_orphaned_group_is_followed_and_cancelled_as_a_whole(server: LiveServer, client: Client,
                                                               local_backend: LocalBackend) -> None:
    launch = _launch(server, client, "exec sleep 300", workers=2)
    job_id = local_backend.submit(launch)
    pids = _pids(client, launch.run_id, 3)
    old_agent = local_backend.agent_pid
    try:
        os.kill(old_agent, signal.SIGKILL)
        wait_for(lambda: not pid_alive(old_agent), what="the agent to die")
        os.killpg(pids["master-0"], signal.SIGKILL)  # the first task dies while no agent watches
        wait_for(lambda: not pid_alive(pids["master-0"]), what="master-0 to die")
        # The workers still run: the job is an orphan, RUNNING, and still holds its resources.
        state = local_backend.poll([job_id])[job_id]
        assert local_backend.agent_pid != old_agent
        assert state.status is EngineStatus.RUNNING, state
        assert local_backend.capacity().cpus == pytest.approx(4 - 2.5)
        local_backend.cancel(job_id)
        wait_for(lambda: local_backend.poll([job_id])[job_id].status.terminal, timeout_s=30, what="the job to end")
        for label in ("worker-0", "worker-1"):
            wait_for(lambda p=pids[label]: not pid_alive(p), timeout_s=10, what=f"{label} to be stopped")
        assert local_backend.capacity().cpus == 4
    finally:
        for pid in pids.values():
            if pid_alive(pid):
                os.killpg(pid, signal.SIGKILL)
