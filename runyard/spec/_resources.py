"""The resources: and distributed: sections of runyard.yml: what each task needs, and the replica groups."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from runyard.spec._image import ImageField
from runyard.spec._rules import Model, Relative, Rule, at_most, bad_many
from runyard.spec._values import parse_memory, parse_time_limit

if TYPE_CHECKING:
    from runyard.launch import RoleRequest

MAX_CPUS = 100_000
MAX_GPUS = 1024
MAX_REPLICAS = 10_000
_CPUS_FIX = "Set how many CPU cores one task needs, e.g. 2 or 0.5."
_GPUS_FIX = "Set how many GPUs one task needs, e.g. 1."

ROLES = ("master", "worker", "chief", "ps", "head", "job")
"""Every role word of any framework, in the order the fields are declared."""

class ResourcesSpec(Model):
    """``resources:`` of each task. ``memory`` is stored in MB, ``time_limit`` in seconds."""

    cpus: Annotated[
        float,
        Field(gt=0),
        at_most(MAX_CPUS, _CPUS_FIX),
        Rule("a number > 0", "Set how many CPU cores a task needs, e.g. 2 or 0.5."),
    ] = 1.0
    memory: Annotated[
        int,
        BeforeValidator(parse_memory),
        Rule(
            "a size like 512M, 4G or 1.5GiB, or a whole number of MB",
            "Write the memory a task needs, e.g. `memory: 4G`.",
        ),
    ] = 0
    gpus: Annotated[
        int,
        Field(ge=0),
        at_most(MAX_GPUS, _GPUS_FIX),
        Rule("an integer ≥ 0", "Set it to 0 for CPU-only runs."),
    ] = 0
    time_limit: Annotated[
        int | None,
        BeforeValidator(parse_time_limit),
        Rule(
            "a duration like 90s, 30m, 2h, 1h30m or 01:30:00, or a whole number of seconds",
            "Write e.g. `time_limit: 2h`, or remove it for no limit.",
        ),
    ] = None

    @property
    def memory_mb(self) -> int:
        """Memory per task in MB (MiB); 0 means none requested, so the backend's default applies."""
        return self.memory

    @property
    def time_limit_s(self) -> int | None:
        """Wall-clock limit per run in seconds; None means no limit."""
        return self.time_limit


def _role_shorthand(value: Any) -> Any:
    """``worker: 2`` means ``worker: {replicas: 2}``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return {"replicas": value}
    return value


class RoleResourcesSpec(Model):
    """``resources:`` of one replica group; a field left out takes the run's ``resources:`` value."""

    cpus: Annotated[
        Annotated[float, Field(gt=0), at_most(MAX_CPUS, _CPUS_FIX)] | None,
        Rule("a number > 0", "Set how many CPU cores each task of this role needs, e.g. 1 or 0.5."),
    ] = None
    memory: Annotated[
        Annotated[int, BeforeValidator(parse_memory)] | None,
        Rule(
            "a size like 512M, 4G or 1.5GiB, or a whole number of MB",
            "Write the memory each task of this role needs, e.g. `memory: 4G`.",
        ),
    ] = None
    gpus: Annotated[
        Annotated[int, Field(ge=0), at_most(MAX_GPUS, _GPUS_FIX)] | None,
        Rule("an integer ≥ 0", "Set it to 0 for CPU-only tasks."),
    ] = None


class RoleSpec(Model):
    """One replica group of a distributed run: how many tasks, and what each needs."""

    replicas: Annotated[
        int,
        Field(ge=0),
        at_most(MAX_REPLICAS, "Start fewer tasks of this role."),
        Rule("an integer ≥ 0", "Set how many tasks of this role to start, e.g. `replicas: 2`."),
    ] = 1
    resources: RoleResourcesSpec = Field(default_factory=RoleResourcesSpec)
    image: ImageField = None


_RoleField = Annotated[
    RoleSpec | None,
    BeforeValidator(_role_shorthand),
    Rule(
        "a number of replicas or a mapping with replicas, resources and image",
        "Write e.g. `worker: 2` or `worker: {replicas: 2, resources: {cpus: 1}, image: python:3.11-slim}`.",
    ),
]


class DistributedSpec(Model):
    """``distributed:``: the framework and its replica groups (:data:`runyard.launch.FRAMEWORKS`)."""

    framework: Annotated[
        Literal["pytorch", "tensorflow", "xgboost", "jax", "ray"],
        Rule(
            "one of pytorch, tensorflow, xgboost, jax, ray",
            "Name the framework whose environment the tasks need, e.g. `framework: pytorch`.",
            missing="Add the framework, e.g. `framework: pytorch`.",
        ),
    ]
    master: _RoleField = None
    worker: _RoleField = None
    chief: _RoleField = None
    ps: _RoleField = None
    head: _RoleField = None
    job: _RoleField = None

    @model_validator(mode="after")
    def _check_roles(self) -> DistributedSpec:
        from runyard.launch import roles_of

        rules = {r.name: r for r in roles_of(self.framework)}
        valid = ", ".join(rules)
        problems: list[Relative] = []
        for role in ROLES:
            value = getattr(self, role)
            rule = rules.get(role)
            if value is None:
                if rule is not None and rule.default_replicas is None:
                    problems.append(((role,), f"is required for framework {self.framework} ({rule.purpose}). "
                                     f"Add e.g. `{role}: {max(2, rule.min_replicas)}`.", ("distributed", "framework")))
                continue
            if rule is None:
                problems.append(((role,), f"is not a role of framework {self.framework}, whose roles are {valid}, "
                                 f"but got {role}. Remove it or use one of those roles."))
                continue
            n = value.replicas
            if n < rule.min_replicas or (rule.max_replicas is not None and n > rule.max_replicas):
                problems.append(((role, "replicas") if "replicas" in value.model_fields_set else (role,),
                                 f"must be {rule.allowed()} for framework {self.framework} ({rule.purpose}), "
                                 f"but got {n}. Set it to {rule.min_replicas if n < rule.min_replicas else rule.max_replicas}."))
        if self.framework == "tensorflow" and not problems and self.replicas("chief") + self.replicas("worker") == 0:
            problems.append((("worker",), "needs at least one chief or worker task for framework tensorflow, but got none. "
                             "Add `chief: 1` or `worker: 2`.", ("distributed", "framework")))
        if problems:
            raise bad_many(problems)
        return self

    def replicas(self, role: str) -> int:
        """Tasks of ``role``: as written, else the framework's default (0 for roles it lacks)."""
        from runyard.launch import replicas_of

        value = getattr(self, role, None)
        return replicas_of(self.framework, role, value.replicas if isinstance(value, RoleSpec) else None)

    def n_tasks(self) -> int:
        from runyard.launch import roles_of

        return sum(self.replicas(r.name) for r in roles_of(self.framework))

    def role_requests(self) -> dict[str, RoleRequest]:
        """The roles as written, for :func:`runyard.launch.distributed_launch` (left-out roles are absent)."""
        from runyard.launch import RoleRequest

        out: dict[str, RoleRequest] = {}
        for role in ROLES:
            value = getattr(self, role)
            if isinstance(value, RoleSpec):
                res = value.resources
                out[role] = RoleRequest(value.replicas, res.cpus, res.memory, res.gpus)
        return out

    def to_launch(self, run_resources: ResourcesSpec) -> dict[str, Any]:
        """The description ``RunLaunch.distributed`` carries (:func:`runyard.launch.distributed_launch`)."""
        from runyard.launch import TaskResources, distributed_launch

        run = TaskResources(run_resources.cpus, run_resources.memory_mb, run_resources.gpus)
        return distributed_launch(self.framework, self.role_requests(), run)
