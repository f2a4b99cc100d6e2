"""TaskGroup: the tasks of a distributed run on this machine, against a live server, with real processes.

The commands are plain bash reading the variables Runyard set, so no framework is needed:
these pin the fail-fast rules (docs/distributed.md) that the framework tests rely on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runyard.backends.base import EngineStatus, Resources, RunLaunch
from runyard.client import Client
from runyard.launch import local_endpoints, task_slots
from runyard.runner._group import GroupResult, TaskGroup
from runyard.testing import LiveServer, wait_for


@pytest.fixture
def make_launch(server: LiveServer, client: Client) -> Callable[..., RunLaunch]:
    def make(command: str, framework: str, roles: dict[str, int], **kwargs: Any) -> RunLaunch:
        run = client.create_run("group-tests", status="queued")
        desc = {"framework": framework, "roles": {r: {"replicas": n} for r, n in roles.items()}}
        return RunLaunch(run_id=run["id"], attempt=1, project="group-tests", experiment_id=None, command=command,
                         snapshot_id=None, server_url=server.url, grace_period_s=2.0, resources=Resources(0.1),
                         tasks=task_slots(desc), distributed=desc, **kwargs)

    return make


def _group(launch: RunLaunch, client: Client, tmp_path: Path, exits: list[GroupResult] | None = None) -> TaskGroup:
    return TaskGroup(launch, client, tmp_path / "work", local_endpoints(launch), single_host=True,
                     on_exit=(exits.append if exits is not None else None),
                     execution_options={"heartbeat_s": 0.2, "finish_timeout_s": 30.0})


def _lines(client: Client, run_id: int, task: str) -> list[str]:
    return [ln["text"] for ln in client.read_logs(run_id, 0, task=task, limit=10000)["lines"]]


def test_every_task_gets_its_rank_and_the_run_succeeds_once_all_did(client: Client, make_launch,
                                                                    tmp_path: Path) -> None:
    launch = make_launch('echo "rank=$RANK world=$WORLD_SIZE master=$MASTER_ADDR:$MASTER_PORT"', "pytorch",
                         {"master": 1, "worker": 2})
    exits: list[GroupResult] = []
    result = _group(launch, client, tmp_path, exits).run()
    assert result == GroupResult(EngineStatus.SUCCEEDED, 0, "exit code 0") and exits == [result]
    run = client.get_run(launch.run_id)
    assert run["status"] == "succeeded"
    assert sorted((t["role"], t["rank"], t["status"]) for t in run["tasks"]) == [
        ("master", 0, "succeeded"), ("worker", 0, "succeeded"), ("worker", 1, "succeeded")]
    port = _lines(client, launch.run_id, "master-0")[0].rsplit(":", 1)[1]
    # Each task's log is its own, and names its rank.
    assert _lines(client, launch.run_id, "worker-1") == [f"rank=2 world=3 master=127.0.0.1:{port}"]
    assert _lines(client, launch.run_id, "master-0") == [f"rank=0 world=3 master=127.0.0.1:{port}"]


def test_a_failing_task_fails_the_run_with_its_role_rank_and_last_lines(client: Client, make_launch,
                                                                         tmp_path: Path) -> None:
    launch = make_launch('if [ "$RANK" = 2 ]; then echo "about to fail"; sleep 0.5; exit 3; fi; exec sleep 120',
                         "pytorch", {"master": 1, "worker": 2})
    started = time.monotonic()
    result = _group(launch, client, tmp_path).run()
    # The others were stopped at once (SIGTERM), not left to their two minutes.
    assert time.monotonic() - started < 30
    assert result.status is EngineStatus.FAILED and result.exit_code == 3
    assert result.reason == "task worker-1 failed: exit code 3"
    run = client.get_run(launch.run_id)
    assert run["status"] == "failed" and run["exit_code"] == 3
    assert run["status_message"] == "task worker-1 (role worker, rank 1) failed: exit code 3\nabout to fail"
    tasks = {f"{t['role']}-{t['rank']}": t for t in run["tasks"]}
    assert tasks["worker-1"]["status"] == "failed" and tasks["worker-1"]["exit_code"] == 3
    assert tasks["master-0"]["status"] == tasks["worker-0"]["status"] == "canceled"
    assert any("stopped: task worker-1 failed (exit code 3)" in t for t in _lines(client, launch.run_id, "master-0"))


def test_services_are_stopped_when_the_other_tasks_succeeded(client: Client, make_launch, tmp_path: Path) -> None:
    # TensorFlow parameter servers never exit by themselves; chief and workers do.
    launch = make_launch('if [ "$RUNYARD_TASK_ROLE" = ps ]; then exec sleep 120; fi; echo "$TF_CONFIG"',
                         "tensorflow", {"chief": 1, "worker": 1, "ps": 1})
    started = time.monotonic()
    result = _group(launch, client, tmp_path).run()
    assert result.status is EngineStatus.SUCCEEDED and time.monotonic() - started < 30
    run = client.get_run(launch.run_id)
    assert run["status"] == "succeeded"
    assert {t["role"]: t["status"] for t in run["tasks"]} == {"chief": "succeeded", "worker": "succeeded",
                                                             "ps": "succeeded"}
    assert '"task": {"index": 0, "type": "worker"}' in _lines(client, launch.run_id, "worker-0")[0]


def test_a_failing_service_fails_the_run(client: Client, make_launch, tmp_path: Path) -> None:
    launch = make_launch('if [ "$RUNYARD_TASK_ROLE" = ps ]; then exit 7; fi; exec sleep 120', "tensorflow",
                         {"chief": 1, "ps": 1})
    result = _group(launch, client, tmp_path).run()
    assert result.status is EngineStatus.FAILED and result.reason == "task ps-0 failed: exit code 7"
    assert client.get_run(launch.run_id)["status_message"].startswith("task ps-0 (role ps, rank 0) failed: exit code 7")


def test_cancel_stops_every_task_and_reports_once(client: Client, make_launch, tmp_path: Path) -> None:
    launch = make_launch("exec sleep 120", "jax", {"worker": 3})
    group = _group(launch, client, tmp_path)
    done: list[GroupResult] = []
    thread = threading.Thread(target=lambda: done.append(group.run()))
    thread.start()
    wait_for(lambda: len([t for t in client.get_run(launch.run_id)["tasks"] if t["status"] == "running"]) == 3,
             timeout_s=30)
    group.cancel(message="the local agent stopped", run_status="failed")
    thread.join(30)
    assert done and done[0].status is EngineStatus.CANCELED
    run = client.get_run(launch.run_id)
    assert run["status"] == "failed" and run["status_message"] == "the local agent stopped"


def test_a_run_canceled_on_the_server_stops_every_task(client: Client, make_launch, tmp_path: Path) -> None:
    launch = make_launch("exec sleep 120", "pytorch", {"master": 1, "worker": 1})
    group = _group(launch, client, tmp_path)
    done: list[GroupResult] = []
    thread = threading.Thread(target=lambda: done.append(group.run()))
    thread.start()
    wait_for(lambda: client.get_run(launch.run_id)["status"] == "running", timeout_s=30)
    client.cancel_run(launch.run_id)
    thread.join(30)
    assert done and done[0].status is EngineStatus.CANCELED
    run = client.get_run(launch.run_id)
    assert run["status"] == "canceled"
    assert {t["status"] for t in run["tasks"]} == {"canceled"}
