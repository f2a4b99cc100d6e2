"""Policy around every backend, in one place: building launches, the backend pool,
resource accounting per dispatch pass, and what an engine state means for a run."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from typing import Any

from runyard.backends.base import Backend, EngineState, EngineStatus, Resources, RunLaunch, TaskSlot
from runyard.errors import RunyardError, SpecError

__all__ = ["BackendPool", "build_launch", "engine_outcome", "run_resources"]

log = logging.getLogger("runyard.scheduler")


class BackendPool:
    """Backends by name, created lazily from the server's configuration and kept open."""

    def __init__(self, options: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self._options = dict(options or {})
        self._backends: dict[str, Backend] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Backend:
        with self._lock:
            backend = self._backends.get(name)
            if backend is None:
                from runyard.backends.registry import get_backend

                backend = get_backend(name, self._options.get(name, {}))
                self._backends[name] = backend
            return backend

    def check(self, name: str, spec: Any = None) -> None:
        """Raise SpecError now (at submission) if the backend cannot be built, or cannot run
        ``spec``'s distributed tasks (``Backend.unsupported``: e.g. more than the machine has)."""
        backend = self.get(name)
        if spec is None or spec.distributed is None:
            return  # single-task runs: nothing more to check, and nothing to build
        from runyard.launch import task_slots

        distributed = spec.distributed.to_launch(spec.resources)
        res = spec.resources
        probe = RunLaunch(run_id=0, attempt=1, project=spec.project, experiment_id=None, command=spec.command,
                          snapshot_id=None, server_url="", resources=Resources(res.cpus, res.memory_mb, res.gpus),
                          time_limit_s=res.time_limit_s, tasks=task_slots(distributed), distributed=distributed)
        problems = backend.unsupported(probe)
        if problems:
            raise SpecError(f"Backend {name!r} cannot run this experiment: "
                            + "; ".join(f"{f.value}: {why}" for f, why in problems.items()) + ".",
                            "Lower the replicas or the per-role resources in distributed:, or use another backend.")

    def close(self) -> None:
        with self._lock:
            for backend in self._backends.values():
                try:
                    backend.close()
                except Exception:  # noqa: BLE001 - closing must not stop the server's shutdown
                    log.exception("closing backend %s", backend.name)
            self._backends.clear()


def build_launch(spec: Any, run: Mapping[str, Any], experiment: Mapping[str, Any], *, server_url: str,
                 token: str | None = None) -> RunLaunch:
    """Everything a backend needs for one attempt of ``run`` of an experiment with ``spec``."""
    params = dict(run["params"])
    env = {str(k): str(v) for k, v in spec.env.items()}
    env.update({
        "RUNYARD_SERVER": server_url,
        "RUNYARD_RUN_ID": str(run["id"]),
        "RUNYARD_PROJECT": experiment["project"],
        "RUNYARD_EXPERIMENT_ID": str(experiment["id"]),
        "RUNYARD_ATTEMPT": str(run["attempt"]),
        "RUNYARD_PARAMS": json.dumps(params),
    })
    if token:
        env["RUNYARD_TOKEN"] = token
    grace = float(spec.early_stopping.grace_period_s) if spec.early_stopping is not None else 10.0
    distributed = None
    tasks: tuple[TaskSlot, ...] = (TaskSlot(),)
    if spec.distributed is not None:  # single-task runs skip this entirely
        from runyard.launch import task_slots

        distributed = spec.distributed.to_launch(spec.resources)
        tasks = task_slots(distributed)
    return RunLaunch(
        run_id=run["id"],
        attempt=run["attempt"],
        project=experiment["project"],
        experiment_id=experiment["id"],
        command=spec.render_command(params),
        snapshot_id=experiment.get("snapshot_id"),
        server_url=server_url,
        token=token,
        params=params,
        env=env,
        setup=tuple(spec.setup),
        resources=Resources(cpus=spec.resources.cpus, memory_mb=spec.resources.memory_mb, gpus=spec.resources.gpus),
        time_limit_s=spec.resources.time_limit_s,
        grace_period_s=grace,
        tasks=tasks,
        distributed=distributed,
    )


def run_resources(spec: Any) -> Resources:
    """What one attempt of a run of ``spec`` holds: its resources, summed over the tasks of a distributed run."""
    res = spec.resources
    if spec.distributed is None:
        return Resources(res.cpus, res.memory_mb, res.gpus)
    total = Resources(0.0, 0, 0)
    for role in spec.distributed.to_launch(res)["roles"].values():
        r = role["resources"]
        total = total + Resources(r["cpus"], r["memory_mb"], r["gpus"]).times(role["replicas"])
    return total


def engine_outcome(state: EngineState) -> tuple[str, str] | None:
    """For a job the engine reports ended while the run is still active: (status, message).

    ``None`` while the job is pending or running. The runner normally reports the
    final status itself; this is what the scheduler records when it could not.
    """
    s = state.status
    if not s.terminal:
        return None
    reason = f" ({state.reason})" if state.reason else ""
    if s is EngineStatus.SUCCEEDED:
        return "succeeded", "the engine reports success" + reason
    if s is EngineStatus.CANCELED:
        return "canceled", "canceled by the engine" + reason
    if s is EngineStatus.TIMEOUT:
        return "failed", "TIMEOUT: the engine's time limit was reached" + reason
    if s is EngineStatus.LOST:
        return "failed", "the task's process disappeared without reporting an exit code" + reason
    code = f"exit code {state.exit_code}" if state.exit_code is not None else "failed"
    return "failed", code + reason


def resources_free(backend: Backend, held: Resources) -> Resources | None:
    """The backend's free capacity minus what this pass already handed out (None: engine queues)."""
    cap = backend.capacity()
    return None if cap is None else cap - held


def spec_of(config: Mapping[str, Any]) -> Any:
    from runyard.spec import validate_config

    try:
        return validate_config(config)
    except SpecError:
        raise
    except RunyardError:
        raise
