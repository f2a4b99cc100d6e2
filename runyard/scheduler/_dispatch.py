"""Policy around every backend, in one place: building launches, the backend pool,
resource accounting per dispatch pass, and what an engine state means for a run."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from runyard.backends.base import (
    Backend,
    EngineState,
    EngineStatus,
    Resources,
    RunLaunch,
    TaskSlot,
)
from runyard.errors import RunyardError, SpecError

__all__ = ["BackendPool", "Unavailable", "backend_names", "build_launch", "describe_shape", "engine_outcome",
           "infeasible", "run_resources", "task_shapes", "waiting_reason"]

log = logging.getLogger("runyard.scheduler")


class BackendPool:
    """Backends by name, built from the server's ``backends.yml`` and kept open.

    Names map to a type and options (``runyard.backends.config``). The file is read
    again when its modification time or size changes (checked at most once a second):
    a backend whose entry changed or disappeared is closed and rebuilt on next use;
    jobs it started keep running and are polled by the rebuilt one. A file made
    invalid by a hand edit is logged and the backends read before are kept.

    Args:
        options: entries given directly, ``{name: {"type": ..., **options}}`` (tests,
            embedding); used instead of the file when given. A name without ``type``
            uses the name as its type.
        path: the configuration file (default ``$RUNYARD_HOME/backends.yml``).
        clock: monotonic seconds, for the once-a-second look at the file (tests inject one).
        instances: backends already built, by name (tests, embedding: e.g.
            ``runyard.testing.FakeBackend``); used as given, never rebuilt, and closed with
            the pool. With ``instances`` and no ``options``, these are the only backends
            (no implicit ``local``); with both, they are added to ``options``' entries.
    """

    def __init__(self, options: Mapping[str, Mapping[str, Any]] | None = None, *, path: Any = None,
                 clock: Any = None, instances: Mapping[str, Backend] | None = None) -> None:
        import time

        self._clock = clock or time.monotonic
        from runyard.backends.config import BackendEntry

        self._static: dict[str, BackendEntry] | None = None
        if options is not None:
            self._static = {"local": BackendEntry("local", "local", {})}
            for name, opts in options.items():
                opts = dict(opts)
                allow = opts.pop("allow", None)
                self._static[name] = BackendEntry(name, str(opts.pop("type", name)), opts, allow)
        self._given: dict[str, Backend] = dict(instances or {})
        if instances is not None:
            self._static = dict(self._static or {})
            for name, backend in self._given.items():
                self._static[name] = BackendEntry(name, str(getattr(backend, "name", type(backend).__name__)), {})
        self._path = path
        self._stamp: tuple[int, int] | None = None
        self._error = ""  # why the file's current version was refused
        self._checked_at = 0.0
        self._entries: dict[str, Any] = dict(self._static or {})
        self._backends: dict[str, Backend] = {}
        self._built_from: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def path(self) -> Any:
        from runyard.backends.config import backends_path

        return self._path if self._path is not None else backends_path()

    def _refresh(self) -> None:
        """Reload the file if it changed (lock held)."""
        if self._static is not None:
            return
        import os

        now = self._clock()
        if self._stamp is not None and now - self._checked_at < 1.0:
            return
        self._checked_at = now
        from runyard.backends.config import load_backends

        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = (0, 0)
        if stamp == self._stamp:
            return
        try:
            entries = load_backends(self.path)
        except SpecError as e:
            if self._stamp is None:
                raise  # nothing to fall back on: submissions say what is wrong with the file
            self._stamp = stamp  # told once per version of the file
            self._error = e.message
            log.error("%s is invalid; keeping the backends read before: %s", self.path, e)
            return
        self._error = ""
        self._entries = entries
        self._stamp = stamp
        for name in list(self._backends):
            if self._entries.get(name) != self._built_from.get(name):
                self._close_one(name)

    def entries(self) -> dict[str, Any]:
        """The configured backends, name → ``BackendEntry`` (reloaded if the file changed)."""
        with self._lock:
            self._refresh()
            return dict(self._entries)

    def get(self, name: str) -> Backend:
        """The backend configured as ``name``, built on first use.

        Raises:
            SpecError: no backend of that name (the message lists the configured
                ones), or its entry is invalid.
        """
        with self._lock:
            self._refresh()
            backend = self._given[name] if name in self._given else self._backends.get(name)
            if backend is None:
                from runyard.backends.registry import get_backend

                entry = self._entries.get(name)
                if entry is None:
                    import difflib

                    known = sorted(self._entries)
                    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
                    broken = (f" The server's {self.path} was changed but is invalid, so the backends read before "
                              f"are used: {self._error}") if self._error else ""
                    raise SpecError(
                        f"No backend named {name!r} is configured on the server. Configured backends: {', '.join(known)}."
                        + broken,
                        (f"Did you mean {close[0]!r}? " if close else "")
                        + f"Pick one in runyard.yml (backend: NAME), or add it: `runyard backends add {name} --type TYPE`.")
                backend = get_backend(entry.type, entry.backend_options())
                self._backends[name] = backend
                self._built_from[name] = entry
            return backend

    def check(self, name: str, spec: Any = None) -> None:
        """Raise SpecError now (at submission) if the backend is not configured or cannot be built, if
        ``spec``'s runs can never fit a node of it (:func:`infeasible`), or if it cannot run ``spec``'s
        distributed tasks (``Backend.unsupported``: e.g. more than the machine has)."""
        backend = self.get(name)
        if spec is None:
            return
        from runyard.backends._images import check_require_image

        check_require_image(getattr(backend, "options", None), name, spec)
        check_spec = getattr(backend, "check_spec", None)  # a backend's own refusals (kubernetes: build:)
        if check_spec is not None:
            check_spec(spec)
        why = infeasible(backend, name, spec)
        if why:
            raise SpecError(f"Runs of this experiment can never start: {why}.",
                            "Ask for less in resources: (or the per-role resources in distributed:), "
                            "or pick a backend with larger nodes (backend: NAME).")
        if spec.distributed is None:
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

    def _close_one(self, name: str) -> None:
        backend = self._backends.pop(name, None)
        self._built_from.pop(name, None)
        if backend is not None:
            try:
                backend.close()
            except Exception:
                log.exception("closing backend %s", name)

    def built(self) -> dict[str, Backend]:
        """The backends built so far and those given as instances, name → backend (none is built by asking)."""
        with self._lock:
            return {**self._backends, **self._given}

    def close(self) -> None:
        """Close every backend built or given (their jobs keep running)."""
        with self._lock:
            for name in list(self._backends):
                self._close_one(name)
            for name, backend in self._given.items():
                try:
                    backend.close()
                except Exception:
                    log.exception("closing backend %s", name)


def build_launch(spec: Any, run: Mapping[str, Any], experiment: Mapping[str, Any], *, server_url: str,
                 token: str | None = None, datasets: Sequence[Any] = ()) -> RunLaunch:
    """Everything a backend needs for one attempt of ``run`` of an experiment with ``spec``.

    ``datasets``: the run's ``RunDataset`` records (``Store.run_datasets``), materialised by the runner.
    """
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
        container=container_of(spec, distributed),
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
        tensorboard=None if spec.tensorboard is None else spec.tensorboard.model_dump(),
        task_io=spec.task_io(),
        datasets={d.name: {"project": d.project, "dataset": d.dataset, "version": d.version, "content_id": d.content_id,
                           "snapshot_id": d.snapshot_id, "refs": [list(r) for r in d.refs]} for d in datasets},
    )


def container_of(spec: Any, distributed: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The launch's ``container`` from ``image:`` and ``build:`` (``None`` when the spec names neither)."""
    image = spec.image_for(None)
    roles = {}
    if distributed is not None:
        # A role naming its own image runs it as it is; the others run the top-level image (or the build).
        roles = {role: spec.image_for(role) for role in distributed["roles"] if not spec.uses_build(role)}
        roles = {role: ref for role, ref in roles.items() if ref and (ref != image or spec.build is not None)}
    if image is None and spec.build is None and not roles:
        return None
    build = spec.build_spec()
    return {"image": image, "roles": roles, "build": None if build is None else build.to_dict()}


def backend_names(spec: Any) -> list[str]:
    """The backends ``spec``'s runs may go to, in the order they are tried (``backend:`` is one name or a list)."""
    backend = spec.backend
    return [backend] if isinstance(backend, str) else list(backend)


def _counted_roles(spec: Any, backend: Backend | None) -> dict[str, Any]:
    """The roles of ``spec``'s distributed run whose tasks ``backend`` starts (every role without a backend)."""
    roles = spec.distributed.to_launch(spec.resources)["roles"]
    if backend is None:
        return roles
    from runyard.scheduler._hooks import started_roles

    started = started_roles(backend, spec.distributed.framework)
    return roles if started is None else {name: role for name, role in roles.items() if name in started}


def run_resources(spec: Any, backend: Backend | None = None) -> Resources:
    """What one attempt of a run of ``spec`` holds: its resources, summed over the tasks of a distributed run
    (those ``backend`` starts: ``Backend.started_roles``)."""
    res = spec.resources
    if spec.distributed is None:
        return Resources(res.cpus, res.memory_mb, res.gpus)
    total = Resources(0.0, 0, 0)
    for role in _counted_roles(spec, backend).values():
        r = role["resources"]
        total = total + Resources(r["cpus"], r["memory_mb"], r["gpus"]).times(role["replicas"])
    return total


def task_shapes(spec: Any, backend: Backend | None = None) -> list[Resources]:
    """What each task of a run of ``spec`` asks for (one entry for a single-task run; the tasks ``backend`` starts)."""
    res = spec.resources
    if spec.distributed is None:
        return [Resources(res.cpus, res.memory_mb, res.gpus)]
    shapes: list[Resources] = []
    for role in _counted_roles(spec, backend).values():
        r = role["resources"]
        shapes += [Resources(r["cpus"], r["memory_mb"], r["gpus"])] * int(role["replicas"])
    return shapes


def describe_shape(r: Resources) -> str:
    """``2 CPUs, 0 GPUs, 23 GiB`` (memory in GiB from 1 GiB up, else in MB)."""
    mem = f"{r.memory_mb / 1024:.0f} GiB" if r.memory_mb >= 1024 else f"{r.memory_mb} MB"
    return f"{r.cpus:g} CPUs, {r.gpus} GPUs, {mem}"


def _excess(need: Resources, node: Resources) -> tuple[list[str], list[str]]:
    """What ``need`` asks beyond ``node``: (``gpus: 1``…, ``0 GPUs``…)."""
    asks: list[str] = []
    has: list[str] = []
    if need.gpus > node.gpus:
        asks.append(f"gpus: {need.gpus}")
        has.append(f"{node.gpus} GPUs")
    if need.cpus > node.cpus + 1e-9:
        asks.append(f"cpus: {need.cpus:g}")
        has.append(f"{node.cpus:g} CPUs")
    if need.memory_mb and need.memory_mb > node.memory_mb:
        asks.append(f"memory: {need.memory_mb} MB")
        has.append(f"{node.memory_mb} MB of memory")
    return asks, has


def infeasible(backend: Backend, name: str, spec: Any) -> str:
    """Why runs of ``spec`` can never start on ``backend`` (``""``: they may), from the node shapes it reports.

    The rule, the same for single and distributed runs: every task must fit one node whole
    (CPUs, memory and GPUs), and on a backend of one node (the local machine) all the run's
    tasks together must fit it. A backend that does not know its nodes (``nodes()`` is
    ``None``: SSH, a Slurm whose sinfo fails) accepts every run.
    """
    try:
        nodes = backend.nodes()
    except RunyardError as e:
        log.warning("backend %s could not tell its nodes, accepting the run: %s", name, e.message)
        return ""
    if not nodes:
        return ""
    largest = max(nodes, key=lambda n: (n.gpus, n.cpus, n.memory_mb))
    shapes = task_shapes(spec, backend)
    several = len(shapes) > 1
    if len(nodes) == 1:
        need = run_resources(spec, backend)
        asks, has = _excess(need, nodes[0])
        if asks:
            whole = f" (all {len(shapes)} tasks together)" if several else ""
            return (f"asks {', '.join(asks)}{whole} but backend {name} has {', '.join(has)} "
                    f"(largest node: {describe_shape(largest)})")
        return ""
    for shape in shapes:
        if not any(shape.fits_in(n) for n in nodes):
            asks, _ = _excess(shape, largest)
            if not asks:  # fits the largest in each dimension apart, but no one node has all of it
                asks = [f"cpus: {shape.cpus:g}", f"memory: {shape.memory_mb} MB", f"gpus: {shape.gpus}"]
            per = " per task" if several else ""
            return (f"asks {', '.join(asks)}{per} but no node of backend {name} ({len(nodes)} nodes) has that much "
                    f"(largest node: {describe_shape(largest)})")
    return ""


@dataclass(frozen=True)
class Unavailable(Resources):
    """What ``capacity()`` stands for when the backend could not tell it (its engine did not answer): no room, and why."""

    why: str = ""


def waiting_reason(need: Resources, free: Resources | None) -> str:
    """Why a run that fits its backend waits: ``pending: no GPU free``, ``pending: 1 of 4 CPUs free`` …"""
    if free is None:
        return "pending: waiting for its backend"
    if isinstance(free, Unavailable):
        return f"pending: its backend cannot tell its free resources: {free.why}"
    if need.gpus > free.gpus:
        return "pending: no GPU free" if free.gpus <= 0 else f"pending: {free.gpus:g} of {need.gpus} GPUs free"
    if need.cpus > free.cpus + 1e-9:
        return f"pending: {max(0.0, free.cpus):g} of {need.cpus:g} CPUs free"
    if need.memory_mb and need.memory_mb > free.memory_mb:
        return f"pending: {max(0, free.memory_mb)} of {need.memory_mb} MB of memory free"
    return "pending: waiting for room on its backend"


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
