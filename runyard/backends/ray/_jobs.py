"""What the Ray backend submits for one attempt: pure functions of the launch and the options.

One attempt is one Ray job, or with ``one_job_per_task`` one per task of a multi-task run:

| RunLaunch                     | Ray job (``JobSubmissionClient.submit_job``)                              |
| ----------------------------- | ------------------------------------------------------------------------- |
| run, attempt, task            | ``submission_id``: ``<name_prefix>-<run>-<attempt>-<role>-<rank>``        |
| resources.cpus / gpus         | ``entrypoint_num_cpus`` / ``entrypoint_num_gpus``                         |
| resources.memory_mb           | ``entrypoint_memory`` (bytes; 0: not reserved)                            |
| the backend's resources       | ``entrypoint_resources`` (custom resources), the run's options over them  |
| the launch (token included)   | ``.runyard/launch.json`` in the job's ``working_dir`` (uploaded by Ray)   |
| snapshot                      | fetched by the runner from the server (``snapshot: fetch``), or the files |
|                               | of ``working_dir`` themselves (``snapshot: working_dir``)                 |
| grace period                  | ``RAY_JOB_STOP_WAIT_TIME_S``: stop_job's SIGTERM, then SIGKILL after it   |

A distributed run with ``framework: ray`` runs only its ``job`` task, as the Ray job's
driver on the existing cluster: its ``head`` and ``worker`` tasks are the cluster
itself, so none is started. Ray sets ``RAY_ADDRESS`` in the driver's environment
(the cluster's GCS address), so ``ray.init()`` (or ``ray.init(address="auto")``) in the
user's command joins the cluster and its tasks run on the cluster's workers.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

from runyard.backends.base import Resources, RunLaunch, TaskSlot
from runyard.backends.kit import launch_reaching, runner_command
from runyard.backends.ray._options import RayBackendOptions

__all__ = ["LAUNCH_FILE", "JobSpec", "engine_job_id", "far_launch", "is_ray_driver_run", "job_ids_of", "job_slots",
           "job_specs", "python_of", "submission_id"]

#: Where the launch file is, relative to the job's working_dir.
LAUNCH_FILE = ".runyard/launch.json"
_RAY_JOB_ROLE = TaskSlot("job", 0)


@dataclasses.dataclass(frozen=True)
class JobSpec:
    """The arguments of one ``submit_job`` call."""

    submission_id: str
    slot: TaskSlot
    entrypoint: str
    resources: Resources
    entrypoint_resources: dict[str, float]
    runtime_env: dict[str, Any]
    metadata: dict[str, str]

    def submit_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``JobSubmissionClient.submit_job`` (``working_dir`` is added by the caller)."""
        kwargs: dict[str, Any] = {
            "entrypoint": self.entrypoint,
            "submission_id": self.submission_id,
            "runtime_env": dict(self.runtime_env),
            "metadata": dict(self.metadata),
            "entrypoint_num_cpus": self.resources.cpus,
            "entrypoint_num_gpus": self.resources.gpus,
        }
        if self.resources.memory_mb:
            kwargs["entrypoint_memory"] = int(self.resources.memory_mb) * 1024 * 1024
        if self.entrypoint_resources:
            kwargs["entrypoint_resources"] = dict(self.entrypoint_resources)
        return kwargs


def is_ray_driver_run(launch: RunLaunch) -> bool:
    """Whether ``launch`` is a distributed run with ``framework: ray`` (its driver runs on the existing cluster)."""
    return launch.distributed is not None and launch.distributed.get("framework") == "ray"


def job_slots(launch: RunLaunch) -> list[TaskSlot]:
    """The tasks that become Ray jobs: the ``job`` task of a Ray run, else every task."""
    if is_ray_driver_run(launch):
        return [_RAY_JOB_ROLE]
    return list(launch.tasks)


def submission_id(prefix: str, run_id: int, attempt: int, slot: TaskSlot) -> str:
    """``<prefix>-<run>-<attempt>-<role>-<rank>``: the same for the same attempt, so submitting twice adopts the first job."""
    return f"{prefix}-{run_id}-{attempt}-{slot.label}"


def python_of(options: RayBackendOptions) -> str:
    """The Python a job's entrypoint runs: the option, else ``python`` inside a pip/uv/conda runtime
    environment (Ray puts the environment's first on PATH), else ``python3``."""
    if options.python:
        return options.python
    env = options.runtime_env
    return "python" if (env.pip or env.uv or env.conda) else "python3"


def far_launch(launch: RunLaunch, options: RayBackendOptions) -> RunLaunch:
    """The launch the runner on the cluster reads.

    Its server URL is ``server_url`` when set. A Ray run becomes its ``job`` task alone,
    a single task with the job role's resources (the runner then runs the user's command as
    it is, in the Ray job, where Ray set ``RAY_ADDRESS``). With ``snapshot: working_dir`` the
    code is already in the job's directory: the runner fetches nothing.
    """
    far = launch_reaching(launch, options.server_url)
    if is_ray_driver_run(far):
        from runyard.launch import task_resources

        env = dict(far.env)
        env["RUNYARD_FRAMEWORK"] = "ray"
        far = dataclasses.replace(far, tasks=(_RAY_JOB_ROLE,), distributed=None,
                                  resources=task_resources(far, _RAY_JOB_ROLE), env=env)
    if options.snapshot == "working_dir":
        far = dataclasses.replace(far, snapshot_id=None)
    return far


def _task_resources(launch: RunLaunch, slot: TaskSlot) -> Resources:
    if launch.distributed is None:
        return launch.resources
    from runyard.launch import task_resources

    return task_resources(launch, slot)


def job_specs(launch: RunLaunch, options: RayBackendOptions) -> list[JobSpec]:
    """One :class:`JobSpec` per Ray job of the attempt (no I/O; same input, same output).

    Args:
        launch: the attempt as the scheduler built it (``far_launch`` is applied here for the
            task list; the launch file itself is the caller's to write).
        options: the backend's options with the run's own laid over them.
    """
    python = python_of(options)
    slots = job_slots(launch)
    several = len(slots) > 1
    grace = max(1, math.ceil(launch.grace_period_s))
    stop_wait = math.ceil(options.stop_wait_s) if options.stop_wait_s else grace + 5
    runtime_env = options.runtime_env.to_ray()
    env_vars = dict(runtime_env.get("env_vars") or {})
    # Ray's stop_job sends SIGTERM, then SIGKILL after this: the runner needs its grace period in between.
    env_vars["RAY_JOB_STOP_WAIT_TIME_S"] = str(stop_wait)
    runtime_env["env_vars"] = env_vars
    specs = []
    for index, slot in enumerate(slots):
        workdir = '"$PWD"' if options.snapshot == "working_dir" else f'"$PWD/work-{slot.label}"'
        args = f"--workdir {workdir}"
        if several:
            args += f" --task-index {index}"
        # The launch file holds the run's token: readable by the job's account only, before anything else runs.
        entrypoint = f"chmod 600 {LAUNCH_FILE} && exec " + runner_command(python, LAUNCH_FILE, shell_args=args)
        res = _task_resources(launch, slot)
        specs.append(JobSpec(
            submission_id=submission_id(options.name_prefix, launch.run_id, launch.attempt, slot),
            slot=slot,
            entrypoint=entrypoint,
            resources=res,
            entrypoint_resources=dict(options.entrypoint_resources),
            runtime_env=runtime_env,
            metadata={"runyard_run": str(launch.run_id), "runyard_attempt": str(launch.attempt),
                      "runyard_project": launch.project, "runyard_task": slot.label,
                      # What it reserves: a restarted server counts it in the capacity it adopts it with.
                      "runyard_cpus": f"{res.cpus:g}", "runyard_gpus": str(res.gpus), "runyard_memory_mb": str(res.memory_mb)},
        ))
    return specs


def job_ids_of(engine_job_id: str) -> list[str]:
    """The submission ids an engine job id names (one, or several joined by ``,`` with one_job_per_task)."""
    return [part for part in engine_job_id.split(",") if part]


def engine_job_id(specs: Sequence[JobSpec]) -> str:
    """The engine job id of an attempt: its submission ids joined by ``,``."""
    return ",".join(s.submission_id for s in specs)
