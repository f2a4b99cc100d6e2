"""The replica groups of each framework: which roles exist, how many of each, and what they do.

One table, read by the ``distributed:`` section of ``runyard.yml`` (to validate it)
and by :mod:`runyard.launch._plan` (to give each task its command and environment).
:func:`distributed_launch` turns a run's requested roles into the description its
launch carries (every role, with replicas and full resources).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["FRAMEWORKS", "RoleRequest", "RoleRule", "TaskResources", "distributed_launch", "replicas_of", "roles_of"]


@dataclass(frozen=True)
class RoleRule:
    """One replica group of a framework.

    Attributes:
        name: the role word (the task label is ``<name>-<rank>``).
        min_replicas / max_replicas: allowed counts (``None``: no upper bound).
        default_replicas: the count when the role is left out (``None``: required).
        runs_command: the task runs the user's command (otherwise Runyard's own
            command: the XGBoost tracker, ``ray start``).
        service: the run does not wait for it to exit; it is stopped once every
            non-service task succeeded (parameter servers, Ray nodes, the tracker).
        endpoint: the task listens on an address the others are given (rendezvous).
        purpose: one line for the docs and error messages.
    """

    name: str
    min_replicas: int
    max_replicas: int | None
    default_replicas: int | None
    runs_command: bool
    service: bool
    endpoint: bool
    purpose: str

    def allowed(self) -> str:
        if self.max_replicas == self.min_replicas:
            return f"exactly {self.min_replicas}"
        if self.max_replicas is None:
            return f"at least {self.min_replicas}"
        return f"{self.min_replicas} to {self.max_replicas}"


# Order matters: tasks are listed, ranked and started in this order.
FRAMEWORKS: dict[str, tuple[RoleRule, ...]] = {
    "pytorch": (
        RoleRule("master", 1, 1, 1, True, False, True, "rank 0; hosts the rendezvous (MASTER_ADDR:MASTER_PORT)"),
        RoleRule("worker", 0, None, 0, True, False, False, "ranks 1..N"),
    ),
    "tensorflow": (
        RoleRule("chief", 0, 1, 1, True, False, True, "the chief worker (TF_CONFIG task type chief)"),
        RoleRule("worker", 0, None, 0, True, False, True, "workers (TF_CONFIG task type worker)"),
        RoleRule("ps", 0, None, 0, True, True, True, "parameter servers; stopped when chief and workers are done"),
    ),
    "xgboost": (
        RoleRule("master", 1, 1, 1, False, True, True, "runs Runyard's XGBoost tracker, xgboost.tracker.RabitTracker"),
        RoleRule("worker", 1, None, None, True, False, False, "train through xgboost.collective"),
    ),
    "jax": (
        RoleRule("worker", 1, None, None, True, False, True, "JAX processes; worker-0 hosts the coordinator"),
    ),
    "ray": (
        RoleRule("head", 1, 1, 1, False, True, True, "`ray start --head`"),
        RoleRule("worker", 0, None, 0, False, True, False, "`ray start --address=<head>`"),
        RoleRule("job", 1, 1, 1, True, False, False, "waits until every node joined, then runs the command"),
    ),
}


def roles_of(framework: str) -> tuple[RoleRule, ...]:
    """The replica groups of ``framework`` (a key of :data:`FRAMEWORKS`).

    Raises:
        KeyError: unknown framework (the spec validates it before anything calls this).
    """
    return FRAMEWORKS[framework]


@dataclass(frozen=True)
class TaskResources:
    """What one task needs: CPU cores, memory in MB (0: the backend's default) and GPUs."""

    cpus: float
    memory_mb: int
    gpus: int


@dataclass(frozen=True)
class RoleRequest:
    """One role as a run asks for it; a field left ``None`` takes the default (the framework's or the run's)."""

    replicas: int | None = None
    cpus: float | None = None
    memory_mb: int | None = None
    gpus: int | None = None


def replicas_of(framework: str, role: str, requested: int | None = None) -> int:
    """Tasks of ``role``: ``requested`` when given, else the framework's default (0 for a role it lacks)."""
    if requested is not None:
        return requested
    rule = next((r for r in roles_of(framework) if r.name == role), None)
    return (rule.default_replicas or 0) if rule is not None else 0


def distributed_launch(framework: str, roles: Mapping[str, RoleRequest], run: TaskResources) -> dict[str, Any]:
    """The description a run's launch carries: every role of ``framework`` with its replicas and full resources.

    Roles left out of ``roles`` get the framework's default count; resources left unset
    in a request take the run's (``run``).

    Raises:
        KeyError: unknown framework (the spec validates it before anything calls this).
    """
    described: dict[str, Any] = {}
    for rule in roles_of(framework):
        request = roles.get(rule.name) or RoleRequest()
        described[rule.name] = {
            "replicas": replicas_of(framework, rule.name, request.replicas),
            "resources": {
                "cpus": request.cpus if request.cpus is not None else run.cpus,
                "memory_mb": request.memory_mb if request.memory_mb is not None else run.memory_mb,
                "gpus": request.gpus if request.gpus is not None else run.gpus,
            },
        }
    return {"framework": framework, "roles": described}
