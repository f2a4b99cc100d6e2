"""Rendezvous through the server: tasks publish host:port, others wait for it; and distributed tasks
started apart with ``python -m runyard.runner exec`` (as SSH and Slurm start them) meet that way."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from runyard.backends.base import Resources, RunLaunch, TaskSlot
from runyard.client import Client
from runyard.errors import BackendError, NotFound
from runyard.launch import publish_endpoint, task_slots, wait_endpoints
from runyard.runner import write_launch_file
from runyard.testing import LiveServer


def _launch(server: LiveServer, client: Client, command: str, roles: dict[str, int], framework: str = "pytorch",
            status: str = "running") -> RunLaunch:
    run = client.create_run("rendezvous-tests", status=status)
    desc = {"framework": framework, "roles": {r: {"replicas": n} for r, n in roles.items()}}
    return RunLaunch(run_id=run["id"], attempt=1, project="rendezvous-tests", experiment_id=None, command=command,
                     snapshot_id=None, server_url=server.url, grace_period_s=2.0, resources=Resources(0.1),
                     tasks=task_slots(desc), distributed=desc)


def test_a_waiting_task_gets_the_address_as_soon_as_it_is_published(server: LiveServer, client: Client) -> None:
    launch = _launch(server, client, "true", {"master": 1, "worker": 1})
    got: list[dict] = []
    asked = threading.Event()

    class Watched(Client):
        def rendezvous(self, *args: object, **kwargs: object) -> dict:
            asked.set()  # the long poll is on its way
            return super().rendezvous(*args, **kwargs)  # type: ignore[arg-type]

    waiter = threading.Thread(target=lambda: got.append(wait_endpoints(Watched(server.url), launch, ["master-0"], 30)))
    waiter.start()
    assert asked.wait(30), "the waiting task never asked the server for the addresses"
    # No signal tells that the server parked the poll; the behaviour under test is that a parked poll wakes.
    time.sleep(0.3)
    assert not got  # still waiting: nothing published yet
    published = publish_endpoint(client, launch, TaskSlot("master", 0), host="node-a")
    waiter.join(10)
    assert got == [{"master-0": published}] and published[0] == "node-a"
    # The address is on the task record too.
    (task,) = client.get_run(launch.run_id)["tasks"]
    assert task["address"] == f"node-a:{published[1]}"


def test_addresses_are_per_attempt(server: LiveServer, client: Client) -> None:
    launch = _launch(server, client, "true", {"master": 1})
    publish_endpoint(client, launch, TaskSlot("master", 0), host="h")
    assert client.rendezvous(launch.run_id, 2, ["master-0"])["addresses"] == {}
    assert client.rendezvous(launch.run_id, 1, ["master-0"])["complete"]


def test_waiting_ends_when_the_run_ended_or_time_is_up(server: LiveServer, client: Client) -> None:
    launch = _launch(server, client, "true", {"master": 1})
    with pytest.raises(BackendError, match=r"did not publish their rendezvous address within 1 s"):
        wait_endpoints(client, launch, ["master-0"], timeout_s=1)
    client.update_run(launch.run_id, status="failed", message="x")
    started = time.monotonic()
    with pytest.raises(BackendError, match=rf"Run {launch.run_id} is failed before task\(s\) master-0 published"):
        wait_endpoints(client, launch, ["master-0"], timeout_s=60)
    assert time.monotonic() - started < 10


def test_bad_rendezvous_input(server: LiveServer, client: Client) -> None:
    launch = _launch(server, client, "true", {"master": 1})
    resp = httpx.put(f"{server.url}/api/v1/runs/{launch.run_id}/tasks/master/0", json={"address": "no-port"})
    assert resp.status_code == 400 and resp.json()["code"] == "invalid_input", resp.text
    assert "address" in resp.json()["message"]
    resp = httpx.get(f"{server.url}/api/v1/runs/{launch.run_id}/rendezvous", params={"attempt": 0})
    assert resp.status_code == 400 and "attempt" in resp.json()["message"]
    with pytest.raises(NotFound, match="No run with id 999999"):
        client.rendezvous(999999, 1, ["master-0"])


def test_tasks_started_apart_meet_through_the_server(server: LiveServer, client: Client, tmp_path: Path) -> None:
    launch = _launch(server, client, 'echo "rank=$RANK master=$MASTER_ADDR:$MASTER_PORT"', {"master": 1, "worker": 1},
                     status="starting")
    path = write_launch_file(launch, tmp_path / "launch.json")
    procs = [subprocess.Popen([sys.executable, "-m", "runyard.runner", "exec", "--launch", str(path), "--task", label,
                               "--workdir", str(tmp_path / label)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for label in ("worker-0", "master-0")]  # the worker first: it waits
    try:
        outs = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0, 0], outs
    master_addr = f"{socket.gethostname()}:"
    assert f"rank=1 master={master_addr}" in outs[0][0] and f"rank=0 master={master_addr}" in outs[1][0]
    assert outs[0][0].split("master=")[1].split()[0] == outs[1][0].split("master=")[1].split()[0]
    run = client.get_run(launch.run_id)
    # Success is the engine's to report once every task ended; no task claimed the run for itself.
    assert run["status"] == "running"
    assert {t["role"]: t["status"] for t in run["tasks"]} == {"master": "succeeded", "worker": "succeeded"}
    # `runyard info` shows the published address with the tasks.
    env = {**os.environ, "RUNYARD_SERVER": server.url, "RUNYARD_HOME": str(tmp_path / "cli-home"), "COLUMNS": "200"}
    info = subprocess.run([sys.executable, "-m", "runyard.cli", "info", str(launch.run_id)], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert info.returncode == 0 and "ADDRESS" in info.stdout and master_addr in info.stdout, info.stdout + info.stderr


def test_a_task_failing_apart_fails_the_run_and_stops_its_siblings(server: LiveServer, client: Client,
                                                                    tmp_path: Path) -> None:
    launch = _launch(server, client, 'if [ "$RANK" = 1 ]; then echo "worker gives up"; exit 4; fi; exec sleep 120',
                     {"master": 1, "worker": 1}, status="starting")
    path = write_launch_file(launch, tmp_path / "launch.json")
    procs = {label: subprocess.Popen([sys.executable, "-m", "runyard.runner", "exec", "--launch", str(path), "--task",
                                      label, "--workdir", str(tmp_path / label)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
             for label in ("master-0", "worker-0")}
    try:
        codes = {label: p.wait(timeout=60) for label, p in procs.items()}
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
    assert codes["worker-0"] == 4 and codes["master-0"] != 0
    run = client.get_run(launch.run_id)
    assert run["status"] == "failed"
    assert run["status_message"] == "task worker-0 (role worker, rank 0) failed: exit code 4\nworker gives up"
    assert {t["role"]: t["status"] for t in run["tasks"]} == {"master": "canceled", "worker": "failed"}


def test_a_service_started_apart_stops_as_succeeded_once_the_others_did(server: LiveServer, client: Client,
                                                                         tmp_path: Path) -> None:
    # A parameter server never exits by itself; under an engine that waits for every task (Slurm's
    # srun), it must stop once the worker succeeded, and exit 0 so that the job completes.
    launch = _launch(server, client, 'if [ "$RUNYARD_TASK_ROLE" = ps ]; then exec sleep 120; fi; echo trained',
                     {"chief": 0, "worker": 1, "ps": 1}, framework="tensorflow", status="starting")
    path = write_launch_file(launch, tmp_path / "launch.json")
    procs = {label: subprocess.Popen([sys.executable, "-m", "runyard.runner", "exec", "--launch", str(path), "--task",
                                      label, "--workdir", str(tmp_path / label)], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
             for label in ("worker-0", "ps-0")}
    try:
        outs = {label: p.communicate(timeout=60) for label, p in procs.items()}
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
    assert {label: p.returncode for label, p in procs.items()} == {"worker-0": 0, "ps-0": 0}, outs
    assert "task ps-0 of run" in outs["ps-0"][1] and "stopped: the run's other tasks finished" in outs["ps-0"][1]
    run = client.get_run(launch.run_id)
    assert {t["role"]: t["status"] for t in run["tasks"]} == {"worker": "succeeded", "ps": "succeeded"}
    assert run["status"] == "running"  # the engine reports the run's success once its job ended
