"""The Ray backend: each attempt runs as a Ray job on an existing Ray cluster, through Ray's Jobs API.

Concept map:

| Runyard        | Ray                                                                               |
| -------------- | --------------------------------------------------------------------------------- |
| run attempt    | one Ray job (``JobSubmissionClient.submit_job``); with ``one_job_per_task``, one  |
|                | per task of a multi-task run                                                       |
| job id         | the job's submission id ``<name_prefix>-<run>-<attempt>-<role>-<rank>`` (several  |
|                | joined by ``,``): a restarted server follows its jobs by these ids alone           |
| task           | the job's entrypoint: ``python -m runyard.runner exec`` with the launch file from  |
|                | the job's ``working_dir``                                                          |
| Ray run        | a ``distributed:`` run with ``framework: ray`` runs its ``job`` task as the Ray    |
|                | job's driver; its tasks and actors use the cluster's workers (no second cluster)  |
| job state      | ``get_job_info`` (status, ``driver_exit_code``, message): ``_states.py``           |
| cancel         | ``stop_job``: SIGTERM to the runner, which stops the task within the run's grace   |
|                | period (Ray's SIGKILL comes after ``stop_wait_s``)                                 |
| capacity       | the dashboard's ``/api/cluster_status`` (used and total resources per node), less |
|                | what jobs submitted since are about to take                                        |

What reaches the cluster: the entrypoint command, the operator's ``runtime_env``, and the
job's ``working_dir``, which Ray uploads through the dashboard: the launch file (the run's
command, params, environment and API token) and, with ``snapshot: working_dir``, the
run's code. With ``snapshot: fetch`` (the default) the runner fetches the code from the
server, as on every other backend.

Every call to the dashboard runs with a time-out (``request_timeout_s``): Ray's client sets
none, and a dashboard that hangs must not hang the scheduler. A dashboard that does not
answer makes ``poll`` report ``UNKNOWN`` ("dashboard unreachable: …"), never a failure; the
runs carry on and are followed again once it answers.

Operational traps:

- The cluster's nodes must reach the server (``server_url``) and import the same Runyard
  version (``python``); ``runyard backends test NAME`` checks the dashboard and the token.
- A job's ``python`` is the first on the ``PATH`` that ``ray start`` had: give an absolute
  path unless a pip/uv/conda ``runtime_env`` provides one.
- Anyone who can use the cluster's dashboard can read a job's ``working_dir``, so its launch
  file's token: share a cluster only with people who may act as its runs.
"""

from __future__ import annotations

import dataclasses
import email.utils
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel

from runyard.backends.base import BaseBackend, CheckResult, EngineState, EngineStatus, Feature, Resources, RunLaunch
from runyard.backends.kit import launch_file_bytes, poll_waiting
from runyard.backends.ray._jobs import (
    LAUNCH_FILE,
    JobSpec,
    engine_job_id,
    far_launch,
    is_ray_driver_run,
    job_ids_of,
    job_specs,
)
from runyard.backends.ray._options import RayBackendOptions
from runyard.backends.ray._states import combine, map_job, unreachable
from runyard.errors import BackendError, RunyardError, SpecError, SubmitError

__all__ = ["RayBackend", "RayUnreachable", "require_ray"]

log = logging.getLogger("runyard.backends.ray")

T = TypeVar("T")

_INSTALL_HINT = "Install the Ray extra on the server: `pip install 'runyard[ray]'` (Ray's Jobs client, ray[default])."


class RayUnreachable(BackendError, ConnectionError):
    """The Ray dashboard did not answer (refused, timed out, or a proxy in front of it failed)."""


class RayAuthError(BackendError):
    """The Ray dashboard refused the credentials (HTTP 401/403)."""


def require_ray() -> Any:
    """``ray.job_submission``, imported; a clear error naming the extra when Ray is not installed.

    Raises:
        SpecError: Ray (``ray[default]``) is not installed.
    """
    try:
        import ray.job_submission as jobs
    except ImportError as e:
        raise SpecError(f"The ray backend needs Ray's Jobs client, which is not installed ({e}).", _INSTALL_HINT) from e
    return jobs


@dataclasses.dataclass
class _Job:
    """What this server knows about one Ray job it submitted (or asked about)."""

    submission_id: str
    resources: Resources
    submitted_at: float  # monotonic
    running_since: float | None = None  # monotonic: first poll that saw it RUNNING
    state: EngineState | None = None
    cancel_requested: bool = False
    polled_at: float = float("-inf")  # monotonic: when Ray was last asked about it
    start_head: float | None = None  # Ray's start_time and end_time of the job (the head's clock, Unix seconds)
    end_head: float | None = None


@dataclasses.dataclass(frozen=True)
class _ClusterView:
    """What the dashboard's cluster status said: each node's total and used resources."""

    fetched_at: float  # monotonic, on this machine
    taken_at: float  # monotonic, on this machine: when the head wrote the status (fetched_at less its age)
    totals: tuple[Resources, ...]
    used: tuple[Resources, ...]
    taken_head: float | None = None  # when the head wrote the status, by the head's clock (Unix seconds)


class RayBackend(BaseBackend):
    """Runs each attempt as a Ray job on an existing cluster. Thread-safe.

    Args:
        options: a mapping validated as :class:`RayBackendOptions`.
        clock: monotonic seconds (tests inject one).
    """

    name: ClassVar[str] = "ray"
    options_model: ClassVar[type[BaseModel]] = RayBackendOptions
    options: RayBackendOptions

    def __init__(self, options: Mapping[str, Any] | RayBackendOptions | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(options)
        import importlib.util

        if importlib.util.find_spec("ray") is None:  # Ray's own import is seconds: it waits for the first call
            raise SpecError("The ray backend needs Ray's Jobs client (the package ray[default]), which is not installed "
                            "on the server.", _INSTALL_HINT)
        self._clock = clock
        self._lock = threading.Lock()
        self._client: Any = None
        self._jobs: dict[str, _Job] = {}
        self._view: _ClusterView | None = None
        self._closed = False

    # ------------------------------------------------------------ the dashboard
    def _headers(self) -> dict[str, str]:
        headers = dict(self.options.headers)
        token = self.options.token
        if self.options.token_file:
            path = Path(self.options.token_file).expanduser()
            try:
                token = path.read_text().strip()
            except OSError as e:
                raise BackendError(f"Cannot read the Ray token file {path}: {e.strerror or e}.",
                                   "Point token_file at a file this server's account can read, holding the "
                                   "cluster's token.") from e
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` with a time-out, Ray's and the network's errors as Runyard's.

        Raises:
            RayUnreachable: no answer (refused, timed out).
            RayAuthError: the dashboard refused the credentials.
            BackendError: the dashboard answered with an error (its message is kept).
        """
        timeout = self.options.request_timeout_s
        done = threading.Event()
        outcome: list[Any] = []

        def call() -> None:
            try:
                outcome.append((True, fn(*args, **kwargs)))
            except BaseException as e:  # noqa: BLE001 - handed to the caller's thread below
                outcome.append((False, e))
            finally:
                done.set()

        # A daemon thread per call: Ray's client sets no time-out, and a call stuck on a dashboard that
        # accepted the connection and never answers must neither block the next calls nor the server's exit.
        threading.Thread(target=call, name="runyard-ray-call", daemon=True).start()
        if not done.wait(timeout):
            raise RayUnreachable(f"the Ray dashboard at {self.options.address} did not answer {what} within {timeout:g}s.",
                                 self._reach_hint())
        ok, value = outcome[0]
        if ok:
            return value
        if isinstance(value, RunyardError):
            raise value
        if not isinstance(value, Exception):
            raise value
        raise self._translate(what, value) from value

    def _reach_hint(self) -> str:
        return (f"Is the Ray head up and its dashboard reachable from the server? Try "
                f"`curl {self.options.address}/api/version`.")

    def _translate(self, what: str, e: Exception) -> BackendError:
        from runyard._http import TransportError

        text = str(e)
        name = type(e).__name__
        # requests' errors (Ray's client) by name: requests is Ray's dependency, not Runyard's.
        network = ("ConnectionError", "ConnectTimeout", "ReadTimeout", "Timeout", "ChunkedEncodingError")
        if isinstance(e, (ConnectionError, OSError, TimeoutError, TransportError)) or name in network:
            return RayUnreachable(f"the Ray dashboard at {self.options.address} cannot be reached ({what}): "
                                  f"{_first_line(text) or name}.", self._reach_hint())
        if "status code 401" in text or "status code 403" in text or "Authentication" in text.split("\n")[0]:
            return RayAuthError(f"the Ray dashboard at {self.options.address} refused the credentials ({what}): "
                                f"{_first_line(text)}.",
                                "Set the backend's token (or token_file) to the cluster's token (RAY_AUTH_TOKEN of `ray start`).")
        return BackendError(f"the Ray dashboard at {self.options.address} answered an error ({what}): {_first_line(text)}.",
                            "See the dashboard's log on the head node (dashboard.log in Ray's session directory).")

    def _jobs_client(self) -> Any:
        """The ``JobSubmissionClient``, built on first use (it asks the dashboard for its version)."""
        with self._lock:
            if self._client is not None:
                return self._client
        try:
            jobs = require_ray()
        except SpecError as e:
            raise BackendError(e.message, e.hint) from e
        headers = self._headers()
        client = self._call("to its version check", jobs.JobSubmissionClient, self.options.address, headers=headers)
        with self._lock:
            if self._client is None:
                self._client = client
            return self._client

    def _forget_client(self) -> None:
        with self._lock:
            self._client = None

    def _job_call(self, what: str, method: str, *args: Any, **kwargs: Any) -> Any:
        client = self._jobs_client()
        try:
            return self._call(what, getattr(client, method), *args, **kwargs)
        except RayUnreachable:
            self._forget_client()  # a head that restarted may answer on a new connection with a new version
            raise

    # -------------------------------------------------------------- interface
    def unsupported(self, launch: RunLaunch) -> dict[Feature, str]:
        """Multi-task runs of frameworks other than Ray, unless ``one_job_per_task`` is set."""
        o = self.options_for(launch) if launch.options else self.options
        if len(launch.tasks) > 1 and not is_ray_driver_run(launch) and not o.one_job_per_task:
            framework = (launch.distributed or {}).get("framework", "several tasks")
            return {Feature.MULTI_TASK: f"the ray backend runs a {framework} run's tasks as separate Ray jobs only when "
                                        "the backend's one_job_per_task is true (a framework: ray run uses the "
                                        "cluster itself)"}
        return {}

    def started_roles(self, framework: str) -> frozenset[str] | None:
        """A ``framework: ray`` run starts its ``job`` task alone (the cluster is its head and workers)."""
        return frozenset({"job"}) if framework == "ray" else None

    def capacity(self) -> Resources:
        """The most any node of the cluster has free, less what this server's jobs are about to take
        (submitted since the cluster's status was written).

        Raises:
            BackendError: the dashboard does not answer, or the cluster lists no node yet (the
                scheduler then submits nothing to it this pass, and its runs say why).
        """
        view = self._cluster_view(self.options.capacity_ttl_s)
        free = [t - u for t, u in zip(view.totals, view.used, strict=True)]
        best = max(free, key=lambda r: (r.cpus, r.gpus, r.memory_mb)) if free else Resources(0.0, 0, 0)
        unseen = self._unseen(view)
        if unseen:
            # The scheduler stops polling a run once its runner reported the end, which may be before this
            # server saw the job run: ask Ray about such jobs here, or they would hold room forever.
            stale = [j.submission_id for j in unseen if self._clock() - j.polled_at > self.options.capacity_ttl_s]
            for sid in stale:
                self._poll_job(sid)
            unseen = self._unseen(view)
        for job in unseen:
            best = best - job.resources
        return best + self._freed_since(view)

    def _freed_since(self, view: _ClusterView) -> Resources:
        """What this server's jobs that ended after the cluster's status was written still hold in it.

        The head writes its status every few seconds: without this, each run would wait up to that long
        for the room its predecessor left. Asks Ray about (at most 8 of) the jobs last seen running.
        """
        if view.taken_head is None:
            return Resources(0.0, 0, 0)
        now = self._clock()
        with self._lock:
            running = sorted((j for j in self._jobs.values() if j.state is not None
                              and j.state.status is EngineStatus.RUNNING and now - j.polled_at > self.options.capacity_ttl_s),
                             key=lambda j: j.polled_at)
        for job in running[:8]:
            self._poll_job(job.submission_id)
        freed = Resources(0.0, 0, 0)
        with self._lock:
            for job in self._jobs.values():
                if (job.state is not None and job.state.status.terminal and job.end_head is not None
                        and job.start_head is not None and job.start_head < view.taken_head < job.end_head):
                    freed = freed + job.resources
        return freed

    def _unseen(self, view: _ClusterView) -> list[_Job]:
        """This server's jobs that hold (or are about to hold) resources the cluster's status does not show yet."""
        with self._lock:
            return [j for j in self._jobs.values()
                    if (j.state is None or not j.state.status.terminal)
                    and (j.running_since is None or j.running_since >= view.taken_at)]

    def nodes(self) -> list[Resources] | None:
        """``None``: a Ray cluster may grow (nodes join, an autoscaler adds them), so a run larger than it is
        held with its reason rather than refused."""
        return None

    def submit(self, launch: RunLaunch, *, at_most: int | None = None) -> str:
        """Submit the attempt's Ray job(s). Idempotent per attempt: a job already submitted is adopted.

        Raises:
            SubmitError: the launch needs what :meth:`unsupported` names, the dashboard refused
                or could not be reached, or the code could not be staged.
        """
        self.refuse_unsupported(launch)
        o = self.options_for(launch)
        specs = job_specs(launch, o)
        far = far_launch(launch, o)
        for spec in specs:
            self._submit_one(launch, far, spec, o)
        return engine_job_id(specs)

    def _submit_one(self, launch: RunLaunch, far: RunLaunch, spec: JobSpec, o: RayBackendOptions) -> None:
        sid = spec.submission_id
        try:
            known = self._info(sid)
        except BackendError as e:
            raise SubmitError(f"Submitting run {launch.run_id} to Ray failed: {e.message}", e.hint) from e
        if known is not None:
            theirs = getattr(known, "metadata", None) or {}
            if any(str(theirs.get(k)) != v for k, v in spec.metadata.items() if k in ("runyard_run", "runyard_attempt",
                                                                                       "runyard_project")):
                raise SubmitError(f"The Ray cluster already has a job {sid} of another run (project "
                                  f"{theirs.get('runyard_project')!r}, run {theirs.get('runyard_run')}): another Runyard "
                                  "server, or an earlier database of this one, submits to the same cluster.",
                                  "Give each Runyard server (and database) its own name_prefix in the backend's entry "
                                  "(`runyard backends add NAME --type ray --set name_prefix=... --replace`).")
        else:
            stage = self._stage(launch, far, sid, o)
            try:
                kwargs = spec.submit_kwargs()
                kwargs["runtime_env"]["working_dir"] = str(stage)
                self._job_call(f"to submit job {sid}", "submit_job", **kwargs)
            except BackendError as e:
                if self._info_or_none(sid) is None:  # a submit that timed out may still have been taken
                    raise SubmitError(f"Ray refused run {launch.run_id} (job {sid}): {e.message}", e.hint) from e
            finally:
                shutil.rmtree(stage, ignore_errors=True)
            log.info("run %s attempt %s: Ray job %s", launch.run_id, launch.attempt, sid)
        with self._lock:
            self._jobs.setdefault(sid, _Job(sid, spec.resources, self._clock()))

    def _stage(self, launch: RunLaunch, far: RunLaunch, sid: str, o: RayBackendOptions) -> Path:
        """A local directory with what the job's working_dir carries: the launch file (and the code)."""
        from runyard import config

        root = config.home() / "ray" / "stage"
        root.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f"{sid}.", dir=root))
        try:
            if o.snapshot == "working_dir" and launch.snapshot_id:
                self._materialize(launch, stage)
            launch_file = stage / LAUNCH_FILE
            launch_file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(launch_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(launch_file_bytes(far))
        except (OSError, RunyardError) as e:
            shutil.rmtree(stage, ignore_errors=True)
            message = e.message if isinstance(e, RunyardError) else str(e)
            raise SubmitError(f"Preparing run {launch.run_id}'s working_dir for Ray failed: {message}",
                              "Check the server's disk (RUNYARD_HOME) and that the run's snapshot exists.") from e
        return stage

    def _materialize(self, launch: RunLaunch, dest: Path) -> None:
        from runyard import config
        from runyard.client import Client
        from runyard.snapshot import materialize

        with Client(launch.server_url, launch.token, timeout_s=60.0) as client:
            materialize(client, launch.snapshot_id or "", dest, cache_dir=config.home() / "cache" / "blobs", link=False)

    def poll(self, job_ids: Sequence[str], wait_s: float = 0.0) -> dict[str, EngineState]:
        """States of ``job_ids``: one ``get_job_info`` per Ray job not yet seen ended.

        A dashboard that does not answer gives ``UNKNOWN`` ("dashboard unreachable") for every job
        not known to have ended.
        """
        return poll_waiting(self._poll_once, job_ids, wait_s, interval_s=0.5)

    def _poll_once(self, job_ids: Sequence[str]) -> dict[str, EngineState]:
        out: dict[str, EngineState] = {}
        down: BackendError | None = None
        for job_id in job_ids:
            parts = []
            for sid in job_ids_of(job_id):
                state = self._known_terminal(sid)
                if state is None and down is None:
                    try:
                        state = self._poll_job(sid)
                    except (RayUnreachable, RayAuthError) as e:
                        down = e
                    except BackendError as e:
                        state = EngineState(EngineStatus.UNKNOWN, None, f"Ray job {sid}: {e.message}", "")
                if state is None and down is not None:
                    why = down.message.rstrip(".")
                    state = unreachable(why) if isinstance(down, RayUnreachable) else \
                        EngineState(EngineStatus.UNKNOWN, None, f"dashboard refused the credentials: {why}", "")
                if state is not None:
                    parts.append((_task_of(sid), state))
            out[job_id] = combine(parts) if parts else EngineState(EngineStatus.LOST, None,
                                                                   f"{job_id!r} names no Ray job", "", no_record=True)
        return out

    def _known_terminal(self, sid: str) -> EngineState | None:
        with self._lock:
            job = self._jobs.get(sid)
            if job is not None and job.state is not None and job.state.status.terminal:
                return job.state
        return None

    def _poll_job(self, sid: str) -> EngineState:
        info = self._info(sid)
        with self._lock:
            job = self._jobs.get(sid)
        if info is None:
            state = EngineState(EngineStatus.LOST, None, f"Ray does not know job {sid} (never submitted, or the "
                                                         "cluster restarted since)", "")
        else:
            state = map_job(str(getattr(info.status, "value", info.status)), message=info.message,
                            exit_code=info.driver_exit_code, error_type=getattr(info.error_type, "value", info.error_type),
                            cancel_requested=job is not None and job.cancel_requested)
            if job is None:  # a job of a previous server: adopted, with what it reserves (its metadata says)
                job = _Job(sid, _reserved(getattr(info, "metadata", None) or {}), self._clock())
                with self._lock:
                    job = self._jobs.setdefault(sid, job)
        if job is not None:
            with self._lock:
                if state.status is EngineStatus.RUNNING and job.running_since is None:
                    job.running_since = self._clock()
                job.state = state
                job.polled_at = self._clock()
                if info is not None:
                    job.start_head = info.start_time / 1000 if info.start_time else None
                    job.end_head = info.end_time / 1000 if info.end_time else None
        return state

    def _info(self, sid: str) -> Any:
        """The job's ``JobDetails``, or ``None`` when Ray does not know it."""
        try:
            return self._job_call(f"about job {sid}", "get_job_info", sid)
        except BackendError as e:
            if "status code 404" in e.message or "does not exist" in e.message:
                return None
            raise

    def _info_or_none(self, sid: str) -> Any:
        try:
            return self._info(sid)
        except BackendError:
            return None

    def cancel(self, job_id: str) -> None:
        """``stop_job`` on each Ray job of the attempt; an ended or unknown job is a no-op.

        Raises:
            BackendError: the dashboard cannot be reached (the scheduler asks again at its next pass).
        """
        for sid in job_ids_of(job_id):
            with self._lock:
                job = self._jobs.get(sid)
                if job is not None and job.state is not None and job.state.status.terminal:
                    continue
                if job is not None:
                    job.cancel_requested = True
            try:
                self._job_call(f"to stop job {sid}", "stop_job", sid)
            except BackendError as e:
                if "status code 404" in e.message or "does not exist" in e.message:
                    continue
                raise
            with self._lock:
                job = self._jobs.setdefault(sid, _Job(sid, Resources(0.0, 0, 0), self._clock()))
                job.cancel_requested = True

    def close(self) -> None:
        """Drop the client; jobs keep running. Idempotent."""
        self._forget_client()
        with self._lock:
            self._closed = True

    def check(self) -> list[CheckResult]:
        """The Ray client here, the dashboard, the credentials, the cluster's resources."""
        results: list[CheckResult] = []
        try:
            jobs = require_ray()
            import ray

            results.append(CheckResult("ray client", True, f"ray {ray.__version__} on the server ({Path(jobs.__file__).parent})"))
        except SpecError as e:
            return [CheckResult("ray client", False, e.message, e.hint or _INSTALL_HINT)]
        try:
            self._jobs_client()
            self._job_call("to list jobs", "list_jobs")
            results.append(CheckResult("dashboard", True, f"{self.options.address} answers the Jobs API"))
        except RayAuthError as e:
            results.append(CheckResult("dashboard", False, e.message, e.hint or ""))
            return results
        except BackendError as e:
            results.append(CheckResult("dashboard", False, e.message, e.hint or self._reach_hint()))
            return results
        try:
            view = self._cluster_view(0.0)
        except BackendError as e:
            results.append(CheckResult("resources", False, e.message, e.hint or ""))
            return results
        total = sum(view.totals, Resources(0.0, 0, 0))
        results.append(CheckResult("resources", True, f"{len(view.totals)} node(s): {total.cpus:g} CPUs, "
                                                      f"{total.gpus} GPUs, {total.memory_mb} MB"))
        return results

    # ------------------------------------------------------------- resources
    def _cluster_view(self, ttl_s: float) -> _ClusterView:
        now = self._clock()
        with self._lock:
            view = self._view
            if view is not None and now - view.fetched_at <= ttl_s:
                return view
        status, age_s = self._call("about the cluster's status", self._fetch_cluster_status)
        fetched = self._clock()
        view = _parse_cluster_status(status, fetched, age_s)
        if view is None:
            # No status from the autoscaler's monitor (a head that started seconds ago, or none runs): the
            # nodes' totals from the state API, less everything this server's jobs hold.
            totals = self._call("about the cluster's nodes", self._fetch_node_totals)
            if not totals:
                raise BackendError(f"the Ray cluster at {self.options.address} lists no alive node yet.",
                                   "Wait for the head to finish starting; `ray status` on the head shows its nodes.")
            view = _ClusterView(fetched, float("-inf"), tuple(totals), tuple(Resources(0.0, 0, 0) for _ in totals))
        with self._lock:
            self._view = view
        return view

    def _get_json(self, path: str) -> tuple[Any, str | None]:
        """``GET path`` on the dashboard with the backend's headers: (the JSON body, the Date header)."""
        from runyard._http import Session

        with Session(self.options.address, headers=self._headers(), timeout_s=self.options.request_timeout_s) as http:
            resp = http.request("GET", path)
            if resp.status_code != 200:
                raise RuntimeError(f"Request failed with status code {resp.status_code}: {resp.text[:200]}")
            return resp.json(), resp.headers.get("Date")

    def _fetch_node_totals(self) -> list[Resources]:
        """Each alive node's total resources, from the state API (``/api/v0/nodes``)."""
        body, _ = self._get_json("/api/v0/nodes?detail=1&limit=10000")
        rows = (((body or {}).get("data") or {}).get("result") or {}).get("result") or []
        mb = 1024 * 1024
        return [Resources(float(r.get("resources_total", {}).get("CPU", 0)),
                          int(float(r.get("resources_total", {}).get("memory", 0)) // mb),
                          int(float(r.get("resources_total", {}).get("GPU", 0))))
                for r in rows if isinstance(r, Mapping) and r.get("state") == "ALIVE"]

    def _fetch_cluster_status(self) -> tuple[Any, float]:
        """``GET /api/cluster_status``: (its ``clusterStatus``, how old it is in seconds, by the dashboard's clock)."""
        body, date = self._get_json("/api/cluster_status")
        status = ((body or {}).get("data") or {}).get("clusterStatus")
        age = 0.0
        if status and date:
            try:
                now_there = email.utils.parsedate_to_datetime(date).timestamp()
                age = max(0.0, now_there + 1.0 - float(status.get("time") or now_there))  # Date has 1 s resolution
            except (TypeError, ValueError):
                age = 0.0
        return status, age


def _parse_cluster_status(status: Any, fetched_at: float, age_s: float) -> _ClusterView | None:
    """The nodes' totals and usage from ``clusterStatus.loadMetricsReport.usageByNode`` (``usage`` for the whole
    cluster when Ray gives no breakdown); ``None`` when there is no status."""
    if not isinstance(status, Mapping):
        return None
    report = status.get("loadMetricsReport") or {}
    by_node = report.get("usageByNode") or {}
    usages = list(by_node.values()) if isinstance(by_node, Mapping) and by_node else [report.get("usage") or {}]
    totals: list[Resources] = []
    used: list[Resources] = []
    for usage in usages:
        if not isinstance(usage, Mapping) or not usage:
            continue

        def pair(key: str, usage: Mapping[str, Any] = usage) -> tuple[float, float]:
            value = usage.get(key) or [0.0, 0.0]
            return float(value[0]), float(value[1])

        cpu_used, cpu_total = pair("CPU")
        gpu_used, gpu_total = pair("GPU")
        mem_used, mem_total = pair("memory")
        mb = 1024 * 1024
        totals.append(Resources(cpu_total, int(mem_total // mb), int(gpu_total)))
        used.append(Resources(cpu_used, int(-(-mem_used // mb)), int(-(-gpu_used // 1))))
    if not totals:
        return None
    try:
        taken_head = float(status["time"])
    except (KeyError, TypeError, ValueError):
        taken_head = None
    return _ClusterView(fetched_at, fetched_at - age_s, tuple(totals), tuple(used), taken_head)


def _reserved(metadata: Mapping[str, str]) -> Resources:
    """What a job reserves, from the metadata ``job_specs`` gave it (0 for what it does not say)."""
    try:
        return Resources(float(metadata.get("runyard_cpus", 0)), int(metadata.get("runyard_memory_mb", 0)),
                         int(metadata.get("runyard_gpus", 0)))
    except ValueError:
        return Resources(0.0, 0, 0)


def _first_line(text: str) -> str:
    line = (text or "").strip().split("\n", 1)[0].rstrip(".")
    return line if len(line) <= 300 else line[:299] + "…"


def _task_of(sid: str) -> str:
    """``main-0`` from ``runyard-12-1-main-0``."""
    parts = sid.rsplit("-", 2)
    return "-".join(parts[-2:]) if len(parts) == 3 else sid
