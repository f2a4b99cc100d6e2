"""The sbatch script of one run attempt: a pure function of the launch, the options and the paths.

Golden files under ``tests/backends/golden/`` pin its output; change them only on
purpose (``RUNYARD_UPDATE_GOLDEN=1 pytest tests/backends/test_slurm_script.py``).

Resources map to sbatch options per task:

| RunLaunch                 | single task            | several tasks (N)                               |
| ------------------------- | ---------------------- | ----------------------------------------------- |
| resources.cpus            | --cpus-per-task        | --cpus-per-task                                 |
|                           | srun --cpu-bind=cores (the ``cpu_bind`` option) | the same                      |
| resources.memory_mb       | --mem=<MB>M            | --mem-per-cpu (memory / cpus, rounded up)       |
| resources.gpus            | --gres=gpu:N           | --gpus-per-task=N                               |
| time_limit_s              | --time (+ time_margin_s; the runner stops the task at the limit itself)  |
| tasks                     | --ntasks=1             | --ntasks=N, --nodes=ceil(N / tasks_per_node)    |

A distributed run's roles may ask for different resources (``distributed.<role>.resources``),
but ``--cpus-per-task`` & co. are one value for every task of the job: each takes the
largest any task needs (``runyard.launch.task_resources``), so no task gets less than it asked for.

Then the backend's ``partition``, ``account``, ``qos`` and ``sbatch_lines``; the
body loads ``modules``, runs ``env_setup``, and starts one runner per task with
``srun``: ``python -m runyard.runner exec --launch FILE --task-index $SLURM_PROCID``.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass

from runyard.backends.base import Resources, RunLaunch
from runyard.backends.kit import runner_command
from runyard.backends.slurm._options import SlurmBackendOptions

__all__ = ["JobPaths", "render_sbatch", "slurm_time"]


@dataclass(frozen=True)
class JobPaths:
    """Where one attempt's files live on the cluster's shared file system."""

    job_dir: str  # <work_dir>/runs/<run_id>.<attempt>
    launch_file: str  # <job_dir>/launch.json
    output: str  # <job_dir>/slurm-%j.out
    spool: str | None = None  # <job_dir>/spool when reach_server is false
    blob_cache: str | None = None  # <work_dir>/blobs when reach_server is false

    @classmethod
    def under(cls, work_dir: str, run_id: int, attempt: int, *, spool: bool) -> JobPaths:
        job_dir = f"{work_dir.rstrip('/')}/runs/{run_id}.{attempt}"
        return cls(job_dir=job_dir, launch_file=f"{job_dir}/launch.json", output=f"{job_dir}/slurm-%j.out",
                   spool=f"{job_dir}/spool" if spool else None,
                   blob_cache=f"{work_dir.rstrip('/')}/blobs" if spool else None)


def slurm_time(seconds: int) -> str:
    """Seconds as Slurm's ``days-hours:minutes:seconds`` (``--time``)."""
    days, rest = divmod(max(1, int(seconds)), 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return f"{days}-{h:02d}:{m:02d}:{s:02d}" if days else f"{h:02d}:{m:02d}:{s:02d}"


def _job_name(launch: RunLaunch) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in launch.project)[:40]
    return f"runyard-{safe}-{launch.run_id}"


def _per_task(launch: RunLaunch) -> Resources:
    """What each task of the job gets: the most any of its tasks needs (the run's resources for one task)."""
    if launch.distributed is None:
        return launch.resources
    from runyard.launch import task_resources

    each = [task_resources(launch, slot) for slot in launch.tasks] or [launch.resources]
    return Resources(max(r.cpus for r in each), max(r.memory_mb for r in each), max(r.gpus for r in each))


def render_sbatch(launch: RunLaunch, options: SlurmBackendOptions, paths: JobPaths, python: str) -> str:
    """The whole sbatch script for ``launch`` (no I/O; same input, same text)."""
    res = _per_task(launch)
    n_tasks = len(launch.tasks)
    cpus = max(1, math.ceil(res.cpus))
    lines = ["#!/bin/bash", f"# Runyard run {launch.run_id}, attempt {launch.attempt}, project {launch.project}."]
    sb = [f"--job-name={_job_name(launch)}", f"--output={paths.output}", f"--chdir={paths.job_dir}",
          f"--ntasks={n_tasks}", f"--cpus-per-task={cpus}"]
    if n_tasks > 1 and options.tasks_per_node:
        sb.append(f"--nodes={math.ceil(n_tasks / options.tasks_per_node)}")
    if res.memory_mb:
        if n_tasks > 1:
            sb.append(f"--mem-per-cpu={math.ceil(res.memory_mb / cpus)}M")
        else:
            sb.append(f"--mem={res.memory_mb}M")
    if res.gpus:
        sb.append(f"--gpus-per-task={res.gpus}" if n_tasks > 1 else f"--gres=gpu:{res.gpus}")
    if launch.time_limit_s:
        sb.append(f"--time={slurm_time(launch.time_limit_s + options.time_margin_s)}")
    if options.partition:
        sb.append(f"--partition={options.partition}")
    if options.account:
        sb.append(f"--account={options.account}")
    if options.qos:
        sb.append(f"--qos={options.qos}")
    # Restarts belong to Runyard (max_restarts, a new attempt with its own job): Slurm must not requeue.
    sb.append("--no-requeue")
    sb += list(options.sbatch_lines)
    lines += [f"#SBATCH {o}" for o in sb]
    # Submitted through SSH, the job inherits SSH_CLIENT & co., and bash then reads ~/.bashrc even when not
    # interactive: a profile that puts another Python first on PATH would hide the task's environment.
    lines += ["", "set -eo pipefail", "unset SSH_CLIENT SSH_CONNECTION SSH2_CLIENT SSH_TTY"]
    if options.modules:
        lines.append("module load " + " ".join(shlex.quote(m) for m in options.modules))
    lines += list(options.env_setup)
    workdir = shlex.quote(f"{paths.job_dir}/work") + '/task-"$SLURM_PROCID"'
    runner = runner_command(python, paths.launch_file, spool=paths.spool, blob_cache=paths.blob_cache,
                            shell_args=f'--task-index "$SLURM_PROCID" --workdir {workdir}')
    # One runner per task; srun gives each its SLURM_PROCID, which picks the task (role, rank).
    # Each task pinned to its cores (a cluster whose TaskPlugin lacks affinity says so in the job's output and runs on).
    bind = f" --cpu-bind={options.cpu_bind}" if options.cpu_bind else ""
    lines += ["", f"exec srun --cpus-per-task={cpus}{bind} bash -c " + shlex.quote(f"exec {runner}"), ""]
    return "\n".join(lines)
