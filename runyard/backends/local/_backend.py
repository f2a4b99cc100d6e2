"""The local backend's class: runs tasks on this machine, through a long-lived local agent.

Concept map:

| Runyard           | here                                                                  |
| ----------------- | --------------------------------------------------------------------- |
| run attempt       | a job of the local agent, id ``"<run_id>.<attempt>"``                 |
| task              | a ``bash -c`` process group started by the agent's ``TaskExecution``  |
| job state         | the agent's memory, and ``$RUNYARD_HOME/agent/jobs/journal.jsonl``    |
| cancel            | SIGTERM to the task's process group, SIGKILL after the grace period   |
| GPU placement     | ``CUDA_VISIBLE_DEVICES`` of the indices assigned (one task per GPU)   |

Why an agent rather than a runner process per task: a fresh interpreter per task costs Python's
start-up and Runyard's imports on every run, and a runner that is the server's
child is lost with it. The agent (``python -m runyard.backends.local agent``) is started
on demand, detached into its own session, and reused: it pays imports once,
keeps one HTTP client, and keeps every task running and reporting while the
server is SIGKILLed and restarted. Inside it runs the same ``TaskExecution`` that
``python -m runyard.runner exec`` runs for SSH and Slurm. Details and the socket
protocol: ``_server.py`` and ``_protocol.py`` beside this module.

Operational traps:

- Resources are reservations, not limits: nothing stops a task from using more
  CPUs or memory than it asked for (no cgroups). GPUs are exclusive by
  assignment, through ``CUDA_VISIBLE_DEVICES`` only.
- The agent is per ``RUNYARD_HOME``; two servers with different homes on one
  machine each count the whole machine as theirs.
- Killing the agent with SIGKILL orphans its tasks: they keep running and printing
  (their output goes to files, not through the agent), a new agent adopts them (poll
  says RUNNING, cancel works, they count toward ``at_most``), and reads each one's exit
  code from the file its wrapper writes when it ends: SUCCEEDED or FAILED, never rerun.
  Their output after the agent died stays in ``agent/work/<job>/.runyard/<task>/`` and
  is not shipped to the server. Only a task killed with its wrapper (SIGKILL to the
  group) ends LOST.
- ``run_as: shared`` (the default): jobs run as the server's account and can read each
  other's environment and files. ``run_as: {pool, size}`` runs them as separate accounts
  (``_accounts.py``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from runyard.backends._images import ContainerOptions, container_checks, with_container
from runyard.backends.base import (
    BaseBackend,
    CheckResult,
    EngineState,
    EngineStatus,
    Feature,
    Resources,
    RunLaunch,
)
from runyard.backends.local._client import AgentClient
from runyard.backends.local._protocol import NO_RECORD, agent_alive, agent_dir
from runyard.errors import RunyardError, SpecError, SubmitError

__all__ = ["LocalBackend", "LocalBackendOptions"]

log = logging.getLogger("runyard.backends")


class RunAsPool(BaseModel):
    """``run_as: {pool: runyard-job, size: 4}``: jobs run as the accounts ``runyard-job-1`` .. ``runyard-job-4``."""

    model_config = ConfigDict(extra="forbid")

    pool: str = Field(..., pattern=r"^[a-z_][a-z0-9_-]{0,24}$", description="the accounts' name before '-N'",
                      json_schema_extra={"rule": "an account name prefix, e.g. runyard-job"})
    size: int = Field(..., ge=1, le=1000, description="how many accounts: <pool>-1 .. <pool>-<size>")

    def accounts(self) -> list[str]:
        return [f"{self.pool}-{i}" for i in range(1, self.size + 1)]


class _LocalBackendOptionsOwn(BaseModel):
    """Settings of the local backend (the server's backend entry)."""

    model_config = ConfigDict(extra="forbid")

    cpus: float | None = Field(None, gt=0, description="CPUs to hand out (default: os.cpu_count())")
    memory_mb: int | None = Field(None, ge=0, description="memory to hand out in MB (default: the machine's total)")
    gpus: list[int] | None = Field(None, description="GPU indices to hand out (default: RUNYARD_LOCAL_GPUS, else NVML, "
                                                     "else nvidia-smi, else none)")
    agent_start_timeout_s: float = Field(30.0, gt=0, description="how long to wait for the agent to start")
    env: dict[str, str] = Field(default_factory=dict, description="variables every job of this backend gets",
                                json_schema_extra={"rule": "a mapping of variable names to strings",
                                                   "fix": "Write e.g. env: {HF_HOME: /data/hf}."})
    run_as: Literal["shared"] | RunAsPool = Field(
        "shared", description="whose account jobs run as: 'shared' (the server's; jobs can see each other) or "
                              "{pool: runyard-job, size: N} (one account per project at a time)",
        json_schema_extra={"rule": "'shared' or {pool: NAME, size: N}",
                           "fix": "Write run_as: shared, or run_as: {pool: runyard-job, size: 4} after "
                                  "`scripts/setup-job-accounts.sh 4` (see docs/operating.md)."})
    jobs_dir: str | None = Field(None, description="with a run_as pool: where the jobs' working directories go, "
                                                   "outside the server's home (default: /var/tmp/runyard-jobs-<id>)")

    @field_validator("env")
    @classmethod
    def _check_env(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not key or not (key[0].isalpha() or key[0] == "_") or not all(c.isalnum() or c == "_" for c in key):
                raise ValueError(f"{key!r} is not a variable name")
        return value

class LocalBackendOptions(ContainerOptions, _LocalBackendOptionsOwn):
    """Settings of the local backend (the server's backend entry).

    The container settings (docs/containers.md) come last; the default ``container_runtime``
    here is podman."""

    model_config = ConfigDict(extra="forbid")


class LocalBackend(BaseBackend):
    """Runs tasks on this machine through the local agent. Thread-safe.

    Args:
        options: a mapping validated as :class:`LocalBackendOptions` by the backends' one
            options parser (a misspelt key names the closest valid one and lists them all).
        home: the Runyard home whose agent to use (default: ``RUNYARD_HOME``).
    """

    name: ClassVar[str] = "local"
    options_model: ClassVar[type[BaseModel]] = LocalBackendOptions

    def __init__(self, options: Mapping[str, Any] | LocalBackendOptions | None = None, *, home: Any = None) -> None:
        super().__init__(options)
        self._agent_dir = agent_dir(home)
        self._agent = AgentClient(self._agent_dir, start_timeout_s=self.options.agent_start_timeout_s)
        # Polls that wait get connections of their own, so they never hold up submit, cancel or each other.
        self._idle_waiters: list[AgentClient] = []
        self._all_waiters: list[AgentClient] = []
        self._lock = threading.Lock()
        self._total: Resources | None = None
        self._gpu_inventory: list[int] | None = None

    # ------------------------------------------------------------ inventory
    @property
    def gpu_inventory(self) -> list[int]:
        """The GPU indices this backend hands out (option, RUNYARD_LOCAL_GPUS, NVML, nvidia-smi)."""
        with self._lock:
            if self._gpu_inventory is None:
                self._gpu_inventory = _detect_gpus(self.options.gpus)
            return list(self._gpu_inventory)

    def total(self) -> Resources:
        """This machine's resources as configured, before what jobs hold."""
        if self._total is None:
            import psutil

            gpus = self.gpu_inventory
            cpus = self.options.cpus if self.options.cpus is not None else float(os.cpu_count() or 1)
            mem = self.options.memory_mb if self.options.memory_mb is not None else psutil.virtual_memory().total // (1024 * 1024)
            self._total = Resources(cpus=cpus, memory_mb=int(mem), gpus=len(gpus))
        return self._total

    # ------------------------------------------------------------- interface
    def unsupported(self, launch: RunLaunch) -> dict[Feature, str]:
        """``{}`` unless the run (all its tasks together) asks for more GPUs than this machine has.

        A distributed run's tasks all run here, on 127.0.0.1, started and stopped together
        by the agent (``runyard/runner/_group.py``).
        """
        problems: dict[Feature, str] = {}
        n = len(self.gpu_inventory)
        if len(launch.tasks) > 1 and launch.distributed is None:
            problems[Feature.MULTI_TASK] = ("a run of several tasks needs a distributed description (the "
                                            "`distributed:` section) saying what each task runs")
        elif launch.distributed is not None:
            from runyard.launch import total_resources

            need, have = total_resources(launch), self.total()
            if need.gpus > n:
                problems[Feature.GPUS] = (f"the run's {len(launch.tasks)} tasks ask for {need.gpus} GPU(s) together "
                                          f"but this machine has {n}")
            elif need.cpus > have.cpus + 1e-9 or (need.memory_mb and need.memory_mb > have.memory_mb):
                problems[Feature.MULTI_TASK] = (
                    f"the run's {len(launch.tasks)} tasks need {need.cpus:g} CPU(s) and {need.memory_mb} MB together, "
                    f"but this backend hands out {have.cpus:g} CPU(s) and {have.memory_mb} MB in all")
        if launch.resources.gpus > n:
            problems[Feature.GPUS] = (f"the run asks for {launch.resources.gpus} GPU(s) per task but this machine has {n}"
                                      + ("" if n else " (set RUNYARD_LOCAL_GPUS or the backend's gpus option if NVML cannot see them)"))
        return problems

    def capacity(self) -> Resources:
        """Free resources now: this machine's minus what the agent's active jobs hold (one agent call)."""
        total = self.total()
        usage = self._agent.call("usage")
        held_gpus = set(usage["gpus"])
        return Resources(
            cpus=max(0.0, total.cpus - float(usage["cpus"])),
            memory_mb=max(0, total.memory_mb - int(usage["memory_mb"])),
            gpus=sum(1 for g in self.gpu_inventory if g not in held_gpus),
        )

    def nodes(self) -> list[Resources]:
        """This machine, as configured (CPUs, memory, GPUs of RUNYARD_LOCAL_GPUS or the ``gpus`` option): one node."""
        return [self.total()]

    def warm(self) -> None:
        """Start the local agent now if none runs (the server calls this as it starts).

        An agent left idle exits after its ``idle_exit_s``; the next run starts a new one.
        """
        self._agent.call("ping")

    def stop_if_idle(self) -> bool:
        """Stop the local agent if it runs and has no active job (the server calls this as it stops).

        An agent with jobs keeps them running and reporting; it exits by itself once idle
        for its ``idle_exit_s``. Returns whether an agent was asked to stop.
        """
        if not agent_alive(self._agent_dir):
            return False  # never start one just to stop it
        return bool(self._agent.call("shutdown", if_idle=True, timeout_s=5.0).get("stopping"))

    def can_queue(self, resources: Resources, distributed: bool) -> bool:
        """Single-task runs without GPUs wait in the agent's queue (see ``submit``)."""
        return not distributed and not resources.gpus

    def submit(self, launch: RunLaunch, *, at_most: int | None = None) -> str:
        """Hand the attempt to the agent; returns ``"<run_id>.<attempt>"``. Idempotent per attempt.

        Args:
            at_most: local-backend extra, for runs ``can_queue`` accepts: the agent holds
                the run (PENDING) until fewer than ``at_most`` runs of its experiment run
                and its CPUs and memory are free, then starts it at once, in submission
                order. The scheduler hands over a sweep's next runs this way, so a freed
                slot is refilled without a round trip through the server.

        Raises:
            SubmitError: the run needs a feature this backend lacks, or its GPUs are not free.
        """
        problems = self.unsupported(launch)
        if problems:
            raise SubmitError("The local backend cannot run this: " + "; ".join(f"{f.value}: {r}" for f, r in problems.items()) + ".",
                              "Use a backend that supports it, or change the run's resources.")
        from runyard.runner import launch_to_dict

        job_id = f"{launch.run_id}.{launch.attempt}"
        queue = None
        if at_most is not None:
            if len(launch.tasks) != 1 or not self.can_queue(launch.resources, launch.distributed is not None):
                raise SubmitError("Only single-task runs without GPUs can wait in the local agent's queue.",
                                  "Submit it without at_most once capacity() shows room for it.")
            total = self.total()
            queue = {"group": f"experiment-{launch.experiment_id or launch.run_id}", "at_most": max(1, at_most),
                     "cpus": total.cpus, "memory_mb": total.memory_mb}
        launch = with_container(launch, self.options, default_runtime="podman", backend="local")
        run_as = self._run_as()
        if self.options.env:
            launch = dataclasses.replace(launch, env={**self.options.env, **launch.env})
        self._agent.call("submit", job_id=job_id, launch=launch_to_dict(launch), gpu_inventory=self.gpu_inventory,
                         queue=queue, run_as=run_as)
        return job_id

    def _run_as(self) -> dict[str, Any] | None:
        """The submit's ``run_as``: ``None`` (shared) or the pool, its accounts and jobs directory.

        The backend's own options only: a run's options cannot pick another account.

        Raises:
            SubmitError: the pool cannot be used here (the agent is not root, accounts are missing).
        """
        run_as = self.options.run_as
        if run_as == "shared":
            return None
        from runyard.backends.local._accounts import default_jobs_dir, pool_problem

        problem = pool_problem(run_as.accounts())
        if problem is not None:
            raise SubmitError(problem[0], problem[1])
        return {"pool": run_as.pool, "accounts": run_as.accounts(),
                "jobs_dir": self.options.jobs_dir or default_jobs_dir(self._agent_dir)}

    def poll(self, job_ids: Sequence[str], wait_s: float = 0.0) -> dict[str, EngineState]:
        """States of ``job_ids`` in one agent call (answered from the agent's memory and job files).

        Args:
            wait_s: local-backend extra: block up to this long until one of the jobs is
                terminal (an event-driven scheduler needs no sleep).
        """
        if not job_ids:
            return {}
        if wait_s > 0:
            agent = self._borrow_waiter()
            try:
                resp = agent.call("poll", job_ids=list(job_ids), wait_s=wait_s, timeout_s=wait_s + 30.0)
            finally:
                with self._lock:
                    self._idle_waiters.append(agent)
        else:
            resp = self._agent.call("poll", job_ids=list(job_ids))
        states: dict[str, EngineState] = {}
        for job_id in job_ids:
            s = resp["states"].get(job_id)
            if s is None:
                states[job_id] = EngineState(EngineStatus.UNKNOWN, reason="the agent did not answer for this job")
                continue
            try:
                status = EngineStatus(s["status"])
            except ValueError:
                status = EngineStatus.UNKNOWN
            raw = s.get("raw") or s["status"]
            states[job_id] = EngineState(status, s.get("exit_code"), s.get("reason") or "", raw,
                                         no_record=status is EngineStatus.LOST and raw == NO_RECORD)
        return states

    def cancel(self, job_id: str) -> None:
        """SIGTERM the job's process group, SIGKILL after its grace period. Idempotent."""
        self._agent.call("cancel", job_id=job_id)

    def check(self) -> list[CheckResult]:
        """Trivial checks: this machine's Python and the resources it hands out (no agent started)."""
        import sys

        results = [CheckResult("python", True, f"Python {sys.version.split()[0]} at {sys.executable}")]
        try:
            total = self.total()
        except RunyardError as e:
            results.append(CheckResult("resources", False, e.message, e.hint or ""))
        else:
            results.append(CheckResult("resources", True,
                                       f"{total.cpus:g} CPUs, {total.memory_mb} MB memory, {total.gpus} GPU(s)"))
        run_as = self.options.run_as
        if run_as == "shared":
            results.append(CheckResult("run_as", True, "shared: jobs run as the server's account and can see each other "
                                       "(their environment, working directories and tokens) and the server's files",
                                       "Set run_as: {pool: runyard-job, size: N} to isolate jobs (docs/operating.md)."))
        else:
            from runyard.backends.local._accounts import default_jobs_dir, pool_problem

            problem = pool_problem(run_as.accounts())
            if problem is not None:
                results.append(CheckResult("run_as", False, problem[0], problem[1]))
            else:
                results.append(CheckResult("run_as", True, f"jobs run as {run_as.accounts()[0]} .. {run_as.accounts()[-1]}, "
                                           f"one project per account at a time, in "
                                           f"{self.options.jobs_dir or default_jobs_dir(self._agent_dir)}"))
        return results + container_checks(self.options, "podman", _run_here)

    def close(self) -> None:
        """Close the connections to the agent; the agent and its jobs keep running."""
        self._agent.close()
        with self._lock:
            waiters = list(self._all_waiters)
        for waiter in waiters:
            waiter.close()

    def _borrow_waiter(self) -> AgentClient:
        with self._lock:
            if self._idle_waiters:
                return self._idle_waiters.pop()
            waiter = AgentClient(self._agent_dir, start_timeout_s=self.options.agent_start_timeout_s)
            self._all_waiters.append(waiter)
            return waiter

    @property
    def agent_pid(self) -> int | None:
        """The pid of the agent serving this backend (``None`` before it started)."""
        return self._agent.pid


def _detect_gpus(configured: list[int] | None) -> list[int]:
    if configured is not None:
        return sorted(set(configured))
    env = os.environ.get("RUNYARD_LOCAL_GPUS")
    if env is not None:
        try:
            return sorted({int(x) for x in env.split(",") if x.strip()})
        except ValueError as e:
            raise SpecError(f"RUNYARD_LOCAL_GPUS must be comma-separated GPU indices, but got {env!r}.",
                            "Set it like RUNYARD_LOCAL_GPUS=0,1, or to an empty string for none.") from e
    try:
        import pynvml
    except ImportError:
        pynvml = None
    if pynvml is not None:
        try:
            pynvml.nvmlInit()
            try:
                return list(range(pynvml.nvmlDeviceGetCount()))
            finally:
                pynvml.nvmlShutdown()
        except pynvml.NVMLError as e:
            log.debug("NVML sees no GPUs: %s", e)
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=index", "--format=csv,noheader"], capture_output=True, text=True,
                                 timeout=10, check=True).stdout
            return sorted(int(x) for x in out.split() if x.strip().isdigit())
        except (OSError, subprocess.SubprocessError) as e:
            # A container often ships nvidia-smi without a driver: CPU runs must still work.
            log.warning("`nvidia-smi --query-gpu=index --format=csv,noheader` failed (%s); counting no GPUs. "
                        "Set the backend's gpus option (e.g. gpus: [0, 1]) if this machine has some.", e)
    return []


def _run_here(argv: Sequence[str]) -> tuple[int, str, str]:
    """``(exit code, stdout, stderr)`` of ``argv`` on this machine, in a job's environment (for the checks)."""
    from runyard.backends.kit import job_environment

    try:
        p = subprocess.run(list(argv), capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                           env=job_environment())
    except FileNotFoundError:
        return 127, "", f"{argv[0]}: command not found"
    except (OSError, subprocess.TimeoutExpired) as e:
        return 126, "", str(e)
    return p.returncode, p.stdout, p.stderr
