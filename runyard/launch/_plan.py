"""What each task of a distributed run runs, and the environment its framework reads.

Pure functions of the launch, the rendezvous endpoints and the node each task is
on, so every backend renders the same thing and tests pin it without processes:

- :func:`task_slots` lists the tasks of a ``distributed`` description, in start order;
- :func:`task_resources` / :func:`total_resources`: what a task / the whole run needs;
- :func:`endpoint_labels`: the tasks that listen on an address the others need;
- :func:`local_endpoints`: those addresses on this machine (127.0.0.1 and free ports),
  for the local backend; a backend that knows its nodes (Slurm's node list) builds
  the mapping itself, from the node's host name and a port of its choice;
- :func:`plan_task`: the command and environment of one task.

The ``distributed`` description (``RunLaunch.distributed``) is plain JSON, written
by ``scheduler/_dispatch.py::build_launch`` from the ``distributed:`` section::

    {"framework": "pytorch",
     "roles": {"master": {"replicas": 1, "resources": {"cpus": 1.0, "memory_mb": 0, "gpus": 0}},
               "worker": {"replicas": 2, "resources": {...}}}}
"""

from __future__ import annotations

import json
import math
import shlex
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from runyard.errors import InvalidInput
from runyard.launch._frameworks import FRAMEWORKS, RoleRule
from runyard.records.compute import Resources, RunLaunch, TaskSlot

__all__ = [
    "Endpoint",
    "TaskPlan",
    "endpoint_labels",
    "local_endpoints",
    "plan_task",
    "service_labels",
    "task_resources",
    "task_slots",
    "tf_config",
    "total_resources",
]

Endpoint = tuple[str, int]  # (host, port)

WAIT_PORT_TIMEOUT_S = 600  # how long a task waits for the endpoint it needs (a busy head can take minutes)


@dataclass(frozen=True)
class TaskPlan:
    """One task's command (a ``bash -c`` script) and the variables its framework reads."""

    command: str
    env: dict[str, str] = field(default_factory=dict)
    service: bool = False  # the run does not wait for it; stopped once the other tasks succeeded


def _framework(distributed: Mapping[str, Any]) -> tuple[str, tuple[RoleRule, ...]]:
    framework = distributed.get("framework")
    if framework not in FRAMEWORKS:
        raise InvalidInput(f"Unknown distributed framework {framework!r}; known: {', '.join(FRAMEWORKS)}.",
                           "Set distributed.framework in runyard.yml to one of them.")
    return framework, FRAMEWORKS[framework]


def _replicas(distributed: Mapping[str, Any]) -> dict[str, int]:
    _, rules = _framework(distributed)
    roles = distributed.get("roles") or {}
    counts = {}
    for rule in rules:
        n = (roles.get(rule.name) or {}).get("replicas", rule.default_replicas or 0)
        counts[rule.name] = int(n)
    return counts


def task_slots(distributed: Mapping[str, Any]) -> tuple[TaskSlot, ...]:
    """The tasks of a distributed run in start order: role by role as the framework lists them.

    Raises:
        InvalidInput: the framework is unknown.
    """
    return tuple(TaskSlot(role, rank) for role, n in _replicas(distributed).items() for rank in range(n))


def task_resources(launch: RunLaunch, slot: TaskSlot) -> Resources:
    """What one task needs: its role's resources, else the run's."""
    if launch.distributed is None:
        return launch.resources
    res = ((launch.distributed.get("roles") or {}).get(slot.role) or {}).get("resources")
    if not res:
        return launch.resources
    return Resources(float(res.get("cpus", launch.resources.cpus)), int(res.get("memory_mb", launch.resources.memory_mb)),
                     int(res.get("gpus", launch.resources.gpus)))


def total_resources(launch: RunLaunch) -> Resources:
    """What the whole run needs: the sum over its tasks (one task: ``launch.resources``)."""
    if len(launch.tasks) <= 1 and launch.distributed is None:
        return launch.resources
    total = Resources(0.0, 0, 0)
    for slot in launch.tasks:
        total = total + task_resources(launch, slot)
    return total


def endpoint_labels(launch: RunLaunch) -> list[str]:
    """Labels of the tasks that listen on an address the other tasks are given."""
    if launch.distributed is None:
        return []
    _, rules = _framework(launch.distributed)
    listening = {r.name for r in rules if r.endpoint}
    labels = [s.label for s in launch.tasks if s.role in listening]
    if launch.distributed["framework"] in ("pytorch", "jax"):
        labels = labels[:1]  # one rendezvous: master-0 / worker-0
    return labels


def service_labels(launch: RunLaunch) -> list[str]:
    """Labels of the tasks the run does not wait for (Ray nodes, the XGBoost tracker, TF parameter
    servers): they are stopped, as succeeded, once every other task succeeded."""
    if launch.distributed is None:
        return []
    _, rules = _framework(launch.distributed)
    services = {r.name for r in rules if r.service}
    return [s.label for s in launch.tasks if s.role in services]


def local_endpoints(launch: RunLaunch, host: str = "127.0.0.1") -> dict[str, Endpoint]:
    """Free ports on this machine for :func:`endpoint_labels`, for a backend whose tasks all run here.

    The ports are found by binding port 0 and closing it; another process could take
    one before the task binds it (a narrow race; the run then fails and may restart).
    """
    ports: list[int] = []
    socks = []
    try:
        for _ in endpoint_labels(launch):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)  # held until all are found, so no two tasks get the same port
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return dict(zip(endpoint_labels(launch), ((host, p) for p in ports), strict=True))


def tf_config(slots: Sequence[TaskSlot], endpoints: Mapping[str, Endpoint], slot: TaskSlot) -> str:
    """``TF_CONFIG`` for ``slot``: every task's address by role, and this task's type and index."""
    cluster: dict[str, list[str]] = {}
    for s in slots:
        host, port = endpoints[s.label]
        cluster.setdefault(s.role, []).append(f"{host}:{port}")
    return json.dumps({"cluster": cluster, "task": {"type": slot.role, "index": slot.rank}}, sort_keys=True)


def _need(endpoints: Mapping[str, Endpoint], label: str) -> Endpoint:
    try:
        return endpoints[label]
    except KeyError:
        raise InvalidInput(f"No rendezvous address for task {label}; got addresses for {', '.join(endpoints) or 'none'}.",
                           "The backend must give every task of endpoint_labels(launch) a (host, port).") from None


def _wait_then(endpoint: Endpoint, what: str, command: str) -> str:
    host, port = endpoint
    return (f"python -m runyard.launch wait-port {shlex.quote(f'{host}:{port}')} --what {shlex.quote(what)} "
            f"--timeout-s {WAIT_PORT_TIMEOUT_S} || exit $?\n{command}")


def ray_token(launch: RunLaunch) -> str:
    """The Ray cluster token of one attempt: derived from the run's Runyard token, which every task
    of the attempt holds and nobody outside the run does (without one, from the run and attempt)."""
    import hashlib

    seed = f"runyard-ray:{launch.token or ''}:{launch.run_id}:{launch.attempt}"
    return hashlib.sha256(seed.encode()).hexdigest()


def plan_task(launch: RunLaunch, slot: TaskSlot, endpoints: Mapping[str, Endpoint],
              node_ranks: Mapping[str, int] | None = None, *, single_host: bool = False) -> TaskPlan:
    """The command and framework environment of ``slot``.

    Args:
        launch: the attempt; ``launch.distributed`` must be set.
        slot: one of ``launch.tasks``.
        endpoints: ``(host, port)`` for every label of :func:`endpoint_labels`.
        node_ranks: the node each task runs on (label → 0..n-1); default: all on node 0.
            LOCAL_RANK / LOCAL_WORLD_SIZE count the tasks on the same node.
        single_host: every task runs on this machine (the local backend): Ray keeps
            its listeners on the loopback address.

    Raises:
        InvalidInput: no ``distributed`` description, or an endpoint is missing.
    """
    if launch.distributed is None:
        raise InvalidInput("plan_task needs a launch with a distributed description.",
                           "Single-task runs use launch.command as it is.")
    framework, rules = _framework(launch.distributed)
    rule = next(r for r in rules if r.name == slot.role)
    node_ranks = dict(node_ranks or {})
    slots = list(launch.tasks)
    command = launch.command
    env: dict[str, str] = {"RUNYARD_FRAMEWORK": framework}
    res = task_resources(launch, slot)

    if framework == "pytorch":
        host, port = _need(endpoints, "master-0")
        ranked = [s for s in slots if s.role in ("master", "worker")]
        rank = ranked.index(slot)
        node = node_ranks.get(slot.label, 0)
        same_node = [s for s in ranked if node_ranks.get(s.label, 0) == node]
        env.update({"MASTER_ADDR": host, "MASTER_PORT": str(port), "WORLD_SIZE": str(len(ranked)), "RANK": str(rank),
                    "LOCAL_RANK": str(same_node.index(slot)), "LOCAL_WORLD_SIZE": str(len(same_node)),
                    "NODE_RANK": str(node)})
    elif framework == "jax":
        host, port = _need(endpoints, "worker-0")
        env.update({"JAX_COORDINATOR_ADDRESS": f"{host}:{port}", "JAX_NUM_PROCESSES": str(len(slots)),
                    "JAX_PROCESS_ID": str(slot.rank)})
    elif framework == "tensorflow":
        for s in slots:
            _need(endpoints, s.label)
        env["TF_CONFIG"] = tf_config(slots, endpoints, slot)
    elif framework == "xgboost":
        host, port = _need(endpoints, "master-0")
        n_workers = sum(1 for s in slots if s.role == "worker")
        if slot.role == "master":
            command = (f"python -m runyard.launch xgboost-tracker --host-ip {shlex.quote(host)} --port {port} "
                       f"--n-workers {n_workers}")
        else:
            env.update({"DMLC_TRACKER_URI": host, "DMLC_TRACKER_PORT": str(port), "DMLC_NUM_WORKER": str(n_workers),
                        "DMLC_TASK_ID": str(slot.rank)})
            command = _wait_then((host, port), "the XGBoost tracker (task master-0)", command)
    elif framework == "ray":
        host, port = _need(endpoints, "head-0")
        address = f"{host}:{port}"
        env["RAY_USAGE_STATS_ENABLED"] = "0"
        # Ray's token authentication (on by default for local clusters since Ray 2.59), with one
        # token per attempt that every node and the job share: otherwise each node falls back to
        # its own ~/.ray/auth_token, which another Ray session on the machine may have written.
        env["RAY_AUTH_MODE"] = "token"
        env["RAY_AUTH_TOKEN"] = ray_token(launch)
        if single_host:
            # With this at 0 Ray keeps every listener on 127.0.0.1 (on Linux it otherwise swaps
            # 127.0.0.1 for the machine's routable address), but refuses `ray start --address`:
            # worker nodes start through `runyard.launch ray-worker`, which lets them join anyway.
            env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        node_ip = f" --node-ip-address={shlex.quote(host)}" if single_host else ""
        ray_res = f" --num-cpus={max(1, math.ceil(res.cpus))} --num-gpus={res.gpus}"
        if slot.role == "head":
            command = (f"exec ray start --head --port={port}{node_ip}{ray_res} --include-dashboard=false "
                       "--disable-usage-stats --block")
        elif slot.role == "worker":
            start = "python -m runyard.launch ray-worker --" if single_host else "ray start"
            command = _wait_then((host, port), "the Ray head (task head-0)",
                                 f"exec {start} --address={shlex.quote(address)}{node_ip}{ray_res} --block")
        else:
            n_nodes = sum(1 for s in slots if s.role in ("head", "worker"))
            env["RAY_ADDRESS"] = address
            command = (f"python -m runyard.launch ray-wait --address {shlex.quote(address)} --nodes {n_nodes} "
                       f"--timeout-s {WAIT_PORT_TIMEOUT_S} || exit $?\n{command}")
    return TaskPlan(command=command, env=env, service=rule.service)
