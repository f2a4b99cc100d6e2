"""runyard.launch: task lists, resources, and each framework's command and environment, as pure functions."""

from __future__ import annotations

import json
import socket

import pytest

from runyard.backends.base import Resources, RunLaunch, TaskSlot
from runyard.errors import InvalidInput
from runyard.launch import (
    endpoint_labels,
    local_endpoints,
    plan_task,
    task_resources,
    task_slots,
    tf_config,
    total_resources,
)


def _launch(framework: str, roles: dict[str, int], *, cpus: float = 1.0, role_resources: dict | None = None,
            command: str = "python train.py") -> RunLaunch:
    desc = {"framework": framework,
            "roles": {r: {"replicas": n, "resources": (role_resources or {}).get(r, {"cpus": cpus, "memory_mb": 0, "gpus": 0})}
                      for r, n in roles.items()}}
    return RunLaunch(run_id=7, attempt=1, project="p", experiment_id=1, command=command, snapshot_id=None,
                     server_url="http://127.0.0.1:1", resources=Resources(cpus=cpus), tasks=task_slots(desc),
                     distributed=desc)


def test_task_slots_follow_the_frameworks_role_order() -> None:
    assert [s.label for s in task_slots({"framework": "pytorch", "roles": {"worker": {"replicas": 2}}})] == \
        ["master-0", "worker-0", "worker-1"]
    assert [s.label for s in task_slots({"framework": "ray", "roles": {"worker": {"replicas": 1}}})] == \
        ["head-0", "worker-0", "job-0"]
    with pytest.raises(InvalidInput, match="Unknown distributed framework 'mpi'"):
        task_slots({"framework": "mpi", "roles": {}})


def test_resources_per_role_and_in_total() -> None:
    launch = _launch("xgboost", {"master": 1, "worker": 2},
                     role_resources={"master": {"cpus": 0.1, "memory_mb": 0, "gpus": 0},
                                     "worker": {"cpus": 1.0, "memory_mb": 512, "gpus": 1}})
    assert task_resources(launch, TaskSlot("master", 0)) == Resources(0.1, 0, 0)
    assert task_resources(launch, TaskSlot("worker", 1)) == Resources(1.0, 512, 1)
    total = total_resources(launch)
    assert total.cpus == pytest.approx(2.1) and (total.memory_mb, total.gpus) == (1024, 2)


def test_pytorch_env_is_what_init_process_group_env_reads() -> None:
    launch = _launch("pytorch", {"master": 1, "worker": 3})
    endpoints = {"master-0": ("10.0.0.5", 29500)}
    assert endpoint_labels(launch) == ["master-0"]
    envs = {s.label: plan_task(launch, s, endpoints).env for s in launch.tasks}
    assert envs["master-0"] == {"RUNYARD_FRAMEWORK": "pytorch", "MASTER_ADDR": "10.0.0.5", "MASTER_PORT": "29500",
                                "WORLD_SIZE": "4", "RANK": "0", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "4",
                                "NODE_RANK": "0"}
    assert [envs[f"worker-{i}"]["RANK"] for i in range(3)] == ["1", "2", "3"]
    # The user's command runs unchanged in every task.
    assert {plan_task(launch, s, endpoints).command for s in launch.tasks} == {"python train.py"}


def test_pytorch_local_ranks_count_tasks_on_the_same_node() -> None:
    # Two nodes, as a backend with a node list (Slurm) places them.
    launch = _launch("pytorch", {"master": 1, "worker": 3})
    nodes = {"master-0": 0, "worker-0": 0, "worker-1": 1, "worker-2": 1}
    env = {s.label: plan_task(launch, s, {"master-0": ("n0", 1234)}, nodes).env for s in launch.tasks}
    assert [(env[k]["RANK"], env[k]["LOCAL_RANK"], env[k]["LOCAL_WORLD_SIZE"], env[k]["NODE_RANK"]) for k in nodes] == \
        [("0", "0", "2", "0"), ("1", "1", "2", "0"), ("2", "0", "2", "1"), ("3", "1", "2", "1")]


def test_jax_env_names_the_coordinator_process_count_and_id() -> None:
    launch = _launch("jax", {"worker": 2})
    env = plan_task(launch, TaskSlot("worker", 1), {"worker-0": ("127.0.0.1", 5000)}).env
    assert env["JAX_COORDINATOR_ADDRESS"] == "127.0.0.1:5000"
    assert (env["JAX_NUM_PROCESSES"], env["JAX_PROCESS_ID"]) == ("2", "1")


def test_tf_config_lists_every_task_and_names_this_one() -> None:
    launch = _launch("tensorflow", {"chief": 1, "worker": 2, "ps": 1})
    assert endpoint_labels(launch) == ["chief-0", "worker-0", "worker-1", "ps-0"]
    endpoints = {"chief-0": ("h0", 2000), "worker-0": ("h1", 2001), "worker-1": ("h2", 2002), "ps-0": ("h3", 2003)}
    config = json.loads(plan_task(launch, TaskSlot("worker", 1), endpoints).env["TF_CONFIG"])
    assert config == {"cluster": {"chief": ["h0:2000"], "worker": ["h1:2001", "h2:2002"], "ps": ["h3:2003"]},
                      "task": {"type": "worker", "index": 1}}
    assert json.loads(tf_config(launch.tasks, endpoints, TaskSlot("ps", 0)))["task"] == {"type": "ps", "index": 0}
    # Parameter servers are services: the run does not wait for them to exit.
    assert plan_task(launch, TaskSlot("ps", 0), endpoints).service
    assert not plan_task(launch, TaskSlot("chief", 0), endpoints).service
    with pytest.raises(InvalidInput, match="No rendezvous address for task ps-0"):
        plan_task(launch, TaskSlot("chief", 0), {k: v for k, v in endpoints.items() if k != "ps-0"})


def test_xgboost_master_runs_the_tracker_and_workers_wait_for_it() -> None:
    launch = _launch("xgboost", {"master": 1, "worker": 2})
    endpoints = {"master-0": ("127.0.0.1", 9091)}
    master = plan_task(launch, TaskSlot("master", 0), endpoints)
    assert master.command == "python -m runyard.launch xgboost-tracker --host-ip 127.0.0.1 --port 9091 --n-workers 2"
    assert master.service
    worker = plan_task(launch, TaskSlot("worker", 1), endpoints)
    assert worker.env["DMLC_TRACKER_URI"] == "127.0.0.1" and worker.env["DMLC_TRACKER_PORT"] == "9091"
    assert (worker.env["DMLC_NUM_WORKER"], worker.env["DMLC_TASK_ID"]) == ("2", "1")
    assert worker.command.startswith("python -m runyard.launch wait-port 127.0.0.1:9091 ")
    assert worker.command.endswith("\npython train.py")


def test_ray_head_workers_and_job() -> None:
    launch = _launch("ray", {"head": 1, "worker": 2, "job": 1}, cpus=2.0)
    endpoints = {"head-0": ("10.1.1.1", 6379)}
    head = plan_task(launch, TaskSlot("head", 0), endpoints)
    assert head.command.startswith("exec ray start --head --port=6379 --num-cpus=2 --num-gpus=0")
    assert head.service and "--block" in head.command
    worker = plan_task(launch, TaskSlot("worker", 0), endpoints)
    assert "exec ray start --address=10.1.1.1:6379 --num-cpus=2" in worker.command and worker.service
    job = plan_task(launch, TaskSlot("job", 0), endpoints)
    assert job.env["RAY_ADDRESS"] == "10.1.1.1:6379" and not job.service
    assert job.command == ("python -m runyard.launch ray-wait --address 10.1.1.1:6379 --nodes 3 --timeout-s 600 "
                           "|| exit $?\npython train.py")
    # On one machine everything stays on the loopback address.
    local = plan_task(launch, TaskSlot("worker", 0), {"head-0": ("127.0.0.1", 6379)}, single_host=True)
    assert "python -m runyard.launch ray-worker -- --address=127.0.0.1:6379 --node-ip-address=127.0.0.1" in local.command
    assert local.env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0"
    # One Ray token per attempt, shared by every node and the job (never a stale ~/.ray/auth_token).
    assert head.env["RAY_AUTH_MODE"] == worker.env["RAY_AUTH_MODE"] == job.env["RAY_AUTH_MODE"] == "token"
    assert len({head.env["RAY_AUTH_TOKEN"], worker.env["RAY_AUTH_TOKEN"], job.env["RAY_AUTH_TOKEN"]}) == 1
    import dataclasses

    retry = plan_task(dataclasses.replace(launch, attempt=2), TaskSlot("head", 0), endpoints)
    assert retry.env["RAY_AUTH_TOKEN"] != head.env["RAY_AUTH_TOKEN"]


def test_local_endpoints_are_distinct_free_loopback_ports() -> None:
    launch = _launch("tensorflow", {"chief": 1, "worker": 3})
    endpoints = local_endpoints(launch)
    assert list(endpoints) == ["chief-0", "worker-0", "worker-1", "worker-2"]
    ports = [p for _, p in endpoints.values()]
    assert len(set(ports)) == 4 and {h for h, _ in endpoints.values()} == {"127.0.0.1"}
    for port in ports:  # free: each can be bound
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_plan_task_needs_a_distributed_launch() -> None:
    launch = RunLaunch(run_id=1, attempt=1, project="p", experiment_id=None, command="true", snapshot_id=None,
                       server_url="http://x")
    with pytest.raises(InvalidInput, match="distributed description"):
        plan_task(launch, TaskSlot(), {})
    assert total_resources(launch) == launch.resources and endpoint_labels(launch) == []


def test_the_public_surface_is_all_and_documented() -> None:
    import runyard.launch as launch_module

    modules = {n for n in dir(launch_module) if not n.startswith("_") and type(getattr(launch_module, n)).__name__ == "module"}
    public = {n for n in dir(launch_module) if not n.startswith("_")} - modules
    assert set(launch_module.__all__) == public
    for name in launch_module.__all__:
        obj = getattr(launch_module, name)
        if callable(obj) and not isinstance(obj, type):
            assert obj.__doc__, f"runyard.launch.{name} has no docstring"
