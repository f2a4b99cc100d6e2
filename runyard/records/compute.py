"""Plain data types of compute: resources, task slots, launches, features, engine states, check results."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CheckResult",
    "EngineState",
    "EngineStatus",
    "Feature",
    "Resources",
    "RunLaunch",
    "TaskSlot",
]


@dataclass(frozen=True)
class Resources:
    """An amount of compute: what a task asks for, or what a backend has free."""

    cpus: float = 1.0
    memory_mb: int = 0  # 0: not accounted
    gpus: int = 0

    def fits_in(self, free: Resources) -> bool:
        return (
            self.cpus <= free.cpus + 1e-9
            and (self.memory_mb == 0 or self.memory_mb <= free.memory_mb)
            and self.gpus <= free.gpus
        )

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.cpus + other.cpus, self.memory_mb + other.memory_mb, self.gpus + other.gpus)

    def __sub__(self, other: Resources) -> Resources:
        return Resources(self.cpus - other.cpus, self.memory_mb - other.memory_mb, self.gpus - other.gpus)

    def times(self, n: int) -> Resources:
        return Resources(self.cpus * n, self.memory_mb * n, self.gpus * n)


@dataclass(frozen=True)
class TaskSlot:
    """One process of a run: its role and rank (``main``/0 for a single-task run)."""

    role: str = "main"
    rank: int = 0

    @property
    def label(self) -> str:
        return f"{self.role}-{self.rank}"


@dataclass(frozen=True)
class RunLaunch:
    """Everything a backend needs to start one attempt of a run.

    ``command`` is already rendered with the run's params; ``env`` holds the user's
    ``env:`` plus Runyard's variables (RUNYARD_RUN_ID, RUNYARD_SERVER, RUNYARD_TOKEN,
    RUNYARD_PARAMS, RUNYARD_PROJECT); the backend adds placement variables
    (e.g. CUDA_VISIBLE_DEVICES) of its own.
    """

    run_id: int
    attempt: int
    project: str
    experiment_id: int | None
    command: str
    snapshot_id: str | None
    server_url: str
    token: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    setup: Sequence[str] = ()
    resources: Resources = Resources()
    time_limit_s: int | None = None
    grace_period_s: float = 10.0
    tasks: Sequence[TaskSlot] = (TaskSlot(),)
    options: Mapping[str, Any] = field(default_factory=dict)  # backend-specific settings from the spec
    # The ``distributed:`` section as ``runyard.launch`` reads it (framework, roles with replicas and
    # resources); ``None`` for a single-task run. ``tasks`` then lists every role and rank.
    distributed: Mapping[str, Any] | None = None
    # The run's image (``image:``/``build:`` in runyard.yml), as ``runyard.runner``'s container
    # support reads it: ``image`` (a reference, an id or a path), ``roles`` (a distributed run's
    # per-role images), ``build`` (``runyard.containers.BuildSpec.to_dict()``), ``pin`` (the image id
    # a rerun must use); the backend adds its runtime settings (``runtime``, ``image_dir``, ...).
    # ``None``: the run's commands run on the machine's own software, outside any container.
    container: Mapping[str, Any] | None = None
    # ``tensorboard:`` in runyard.yml: ``logdir`` (relative to the working directory) whose event files'
    # scalars the runner logs as the run's metrics, and ``serve`` (keep the files as artifacts). ``None``: none.
    tensorboard: Mapping[str, Any] | None = None
    # What the runner does around the command, from runyard.yml (``Spec.task_io``): ``output_metrics``
    # (``[{regex}|{preset}]``), ``outputs`` (globs, ``!`` excludes), ``outputs_every_s``, ``stop_signal``,
    # ``stop_grace_s``, ``mounts`` (working-directory path → backend path). Empty: none of them.
    task_io: Mapping[str, Any] = field(default_factory=dict)
    # ``datasets:`` in runyard.yml as resolved at submission: name → ``{project, dataset, version, content_id,
    # snapshot_id, refs}`` (``refs``: ``[[uri, sha256, size, mtime], ...]``). The runner materialises each
    # read-only at ``<workdir>/datasets/<name>/`` and sets ``RUNYARD_DATASET_<NAME>``. Empty: none.
    datasets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


class Feature(enum.Enum):
    GPUS = "gpus"
    MULTI_TASK = "multi_task"
    TIME_LIMIT = "time_limit"
    MEMORY_LIMIT = "memory_limit"


class EngineStatus(enum.Enum):
    PENDING = "pending"  # accepted, not started (queued by the engine)
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    TIMEOUT = "timeout"
    LOST = "lost"  # the engine no longer knows the job (process gone without a record)
    UNKNOWN = "unknown"  # the engine said something we do not map; see ``raw``

    @property
    def terminal(self) -> bool:
        return self in (EngineStatus.SUCCEEDED, EngineStatus.FAILED, EngineStatus.CANCELED, EngineStatus.TIMEOUT, EngineStatus.LOST)


@dataclass(frozen=True)
class EngineState:
    status: EngineStatus
    exit_code: int | None = None
    reason: str = ""  # e.g. "pending: Resources", "killed by signal 9"
    raw: str = ""  # the engine's own word for it
    # LOST because the engine never recorded the job: it never started (a local agent that died
    # while the job waited in its queue). The scheduler queues such a run again, same attempt.
    no_record: bool = False


@dataclass(frozen=True)
class CheckResult:
    """One check of ``Backend.check()``: ``ok`` or not, what was found, and the fix when not."""

    name: str  # short, e.g. "sbatch", "ssh connection", "python on the far side"
    ok: bool
    detail: str  # what was found: "sbatch 22.05.8 at /usr/bin/sbatch", "no sbatch on PATH"
    hint: str = ""  # the fix when not ok, ideally a command
