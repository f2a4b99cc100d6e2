"""The Kubernetes backend: one workload object per run attempt, followed by one watch per kind.

Concept map:

| Runyard            | Kubernetes                                                                      |
| ------------------ | ------------------------------------------------------------------------------- |
| run attempt        | one object: a ``batch/v1`` Job, a Kubeflow ``TrainJob`` or v1 kind, a KubeRay     |
|                    | ``RayJob`` (``_manifests.workload_kind``); the engine job id is ``KIND/NAME``     |
| task               | one pod running ``python -m runyard.runner exec`` in the run's image             |
| launch file, token | a Secret owned by the object (gone with it), read by the pod as ``RUNYARD_LAUNCH`` |
| job state          | the object's conditions and its pods' states (``_states.map_object``)            |
| cancel             | delete with ``propagationPolicy: Foreground`` (pods first, then the object)      |
| time limit         | the runner stops the task at ``time_limit``; ``activeDeadlineSeconds`` is the     |
|                    | limit plus ``time_margin_s``, the cluster's backstop (``DeadlineExceeded``)       |
| restart            | never by Kubernetes (``backoffLimit: 0``): a new attempt is a new object         |
| logs               | through the runner, like every backend                                           |

Following: one watch per kind and namespace (``labelSelector=app.kubernetes.io/managed-by=runyard``),
started on first use, plus one on the pods. Each starts with a list, then watches from the
list's ``resourceVersion``; a watch that ends (``timeoutSeconds``) or is cut resumes from the last
``resourceVersion`` it saw; a 410 Gone (the history was compacted) lists again. ``poll``
answers from that cache, never calling the API itself; the watch counts are in :attr:`watch_stats`.

Adoption: objects are named ``ry-<server id>-<run>-<attempt>`` and labelled with the server id,
run id and attempt. A restarted server builds a new backend, whose first poll lists every kind it
is asked about: the objects of runs still running are followed again, and a second submit of the
same attempt gets the existing object (409 → the same job id).

Operational traps:

- The pods run the runner: the image must have Python with runyard installed (or set
  ``runner_install: pip``), and reach the server at ``server_url``.
- ``server_id`` defaults to a hash of the server's URL: a server whose URL changes (a local
  server on a new port) no longer recognises its objects by name; set ``server_id`` on a team
  server.
- ``build:`` is refused: building images in the cluster is out of scope; push the image and name it.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel

from runyard.backends.base import (
    BaseBackend,
    CheckResult,
    EngineState,
    EngineStatus,
    Feature,
    Resources,
    RunLaunch,
    TaskSlot,
)
from runyard.backends.kit import launch_file_bytes, launch_reaching, poll_waiting
from runyard.backends.kubernetes._api import KubeApi, KubeApiError, load_client
from runyard.backends.kubernetes._manifests import (
    KINDS,
    LABEL_ATTEMPT,
    LABEL_MANAGED,
    LABEL_RUN,
    LABEL_SERVER,
    OPERATORS,
    needs_service,
    object_labels,
    render_secret,
    render_service,
    render_workload,
    server_id_of,
    workload_kind,
)
from runyard.backends.kubernetes._options import KubernetesBackendOptions
from runyard.backends.kubernetes._states import map_object, node_shape
from runyard.errors import SpecError, SubmitError

__all__ = ["KubernetesBackend"]

log = logging.getLogger("runyard.backends.kubernetes")

LOST_AFTER_S = 60.0  # a submitted object the watch has not shown this long is lost
_SERVED_TTL_S = 60.0
_FRAMEWORKS = ("pytorch", "jax", "xgboost", "tensorflow", "ray")
_SELECTOR = f"{LABEL_MANAGED}=runyard"
# Options a run may not set for itself: they name the cluster and how it is followed, shared by every run.
_PER_BACKEND = frozenset({"kubeconfig", "context", "in_cluster", "namespace", "server_id", "watch_timeout_s",
                          "request_timeout_s"})


def _group_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def collection_path(kind: str, namespace: str) -> str:
    """The REST path of ``kind``'s objects in ``namespace`` (``Pod`` too)."""
    if kind == "Pod":
        return f"/api/v1/namespaces/{namespace}/pods"
    if kind in ("Secret", "Service"):
        return f"/api/v1/namespaces/{namespace}/{kind.lower()}s"
    api_version, _, plural = KINDS[kind]
    return f"/apis/{api_version}/namespaces/{namespace}/{plural}"


@dataclasses.dataclass
class _Watch:
    kind: str
    thread: threading.Thread | None
    synced: threading.Event  # the first list is in the cache
    tried: threading.Event  # the first list was tried (it may have failed: see error)
    error: str = ""  # the last failure, "" after a success
    not_served: bool = False  # the list answered 404: the cluster does not serve the kind


class KubernetesBackend(BaseBackend):
    """Runs each attempt as one Kubernetes object in the backend's namespace. Thread-safe.

    Args:
        options: a mapping validated as :class:`KubernetesBackendOptions`.
        clock: monotonic seconds (tests inject one).
    """

    name: ClassVar[str] = "kubernetes"
    options_model: ClassVar[type[BaseModel]] = KubernetesBackendOptions
    options: KubernetesBackendOptions

    def __init__(self, options: Mapping[str, Any] | KubernetesBackendOptions | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(options)
        self._clock = clock
        self._lock = threading.Lock()
        self._api: KubeApi | None = None
        self._objects: dict[tuple[str, str], dict[str, Any]] = {}  # (kind, name) → object, kept by the watches
        self._pods: dict[str, dict[str, Any]] = {}  # pod name → pod
        self._watches: dict[str, _Watch] = {}
        self._submitted: dict[str, float] = {}  # job id → when (clock)
        self._canceled: set[str] = set()
        self._final: dict[str, EngineState] = {}
        self._served: tuple[float, set[str]] | None = None
        self._nodes: tuple[float, list[Resources] | None] | None = None
        self._stop = threading.Event()
        #: How the watches went: ``lists`` (initial lists and relists), ``resumes`` (a watch renewed from its
        #: resourceVersion), ``gone`` (410s that forced a relist), ``errors``.
        self.watch_stats: dict[str, int] = {"lists": 0, "resumes": 0, "gone": 0, "errors": 0}

    # ------------------------------------------------------------ plumbing
    @property
    def namespace(self) -> str:
        return self.options.namespace

    def api(self) -> KubeApi:
        """The API client, built on first use (raises ``SpecError`` when the credentials cannot be loaded)."""
        with self._lock:
            if self._api is None:
                o = self.options
                self._api = KubeApi(load_client(o.kubeconfig, o.context, o.in_cluster, o.request_timeout_s),
                                    o.request_timeout_s)
            return self._api

    def served_kinds(self, *, fresh: bool = False) -> set[str]:
        """Which of :data:`KINDS` the cluster serves (discovery, cached for a minute)."""
        now = self._clock()
        with self._lock:
            if self._served is not None and not fresh and now - self._served[0] < _SERVED_TTL_S:
                return set(self._served[1])
        api = self.api()
        served: set[str] = set()
        by_group: dict[str, list[str]] = {}
        for kind, (api_version, _k, _p) in KINDS.items():
            by_group.setdefault(api_version, []).append(kind)
        for api_version, kinds in by_group.items():
            try:
                listing = api.request("GET", f"/apis/{api_version}")
            except KubeApiError as e:
                if e.status == 404:
                    continue
                raise
            names = {r.get("kind") for r in listing.get("resources") or [] if "/" not in r.get("name", "")}
            served |= {k for k in kinds if k in names}
        with self._lock:
            self._served = (now, served)
        return served

    # ------------------------------------------------------------ interface
    def unsupported(self, launch: RunLaunch) -> dict[Feature, str]:
        """Several tasks without a ``distributed:`` framework, or a framework with no Kubernetes kind."""
        if launch.distributed is None:
            if len(launch.tasks) > 1:
                return {Feature.MULTI_TASK: "several tasks need a distributed: section naming their framework "
                                            f"({', '.join(_FRAMEWORKS)}) on Kubernetes"}
            return {}
        framework = launch.distributed.get("framework")
        if framework not in _FRAMEWORKS:
            return {Feature.MULTI_TASK: f"framework {framework!r} has no Kubernetes kind here "
                                        f"(supported: {', '.join(_FRAMEWORKS)})"}
        return {}

    def check_spec(self, spec: Any) -> None:
        """Refuse at submission what Kubernetes runs cannot do: ``build:`` (images are not built in the
        cluster), a run without an image when the backend has no default ``image``, and a distributed
        run whose kind the cluster does not serve (discovery, cached a minute; skipped when the cluster
        cannot be asked: ``submit`` refuses it then).

        Raises:
            SpecError: naming the problem and the fix.
        """
        if getattr(spec, "build", None) is not None:
            raise SpecError("The kubernetes backend cannot build images: this experiment has a build: section, and "
                            "building in the cluster is not supported.",
                            "Build and push the image yourself (e.g. `podman build -t REGISTRY/NAME:TAG . && podman push "
                            "REGISTRY/NAME:TAG`), then write `image: REGISTRY/NAME:TAG` instead of build:.")
        roles: list[str | None] = [None]
        if getattr(spec, "distributed", None) is not None:
            roles = list(spec.distributed.to_launch(spec.resources)["roles"])
        missing = [r for r in roles if not spec.image_for(r)]
        if missing and not self.options.image:
            raise SpecError("Runs on Kubernetes run in a container image, but this experiment names none and the "
                            "backend has no default image.",
                            "Add `image: NAME` to runyard.yml (an image with Python and runyard installed), or set "
                            "the backend's image: option.")
        if getattr(spec, "distributed", None) is None:
            return
        probe = RunLaunch(run_id=0, attempt=1, project=spec.project, experiment_id=None, command="", snapshot_id=None,
                          server_url="", distributed=spec.distributed.to_launch(spec.resources))
        kind = workload_kind(probe, self.options)
        try:
            served = self.served_kinds()
        except (KubeApiError, SpecError) as e:
            log.info("cannot ask the cluster which kinds it serves (the run's submit will): %s", e.message)
            return
        if kind not in served:
            raise SpecError(f"This experiment's {probe.distributed['framework']} runs become {kind}s "
                            f"({KINDS[kind][0]}), which the cluster does not serve.",
                            f"Install {OPERATORS[kind]}, or pick another backend. "
                            "`runyard backends test NAME` lists the kinds the cluster serves.")

    def nodes(self) -> list[Resources] | None:
        """The allocatable CPUs, memory and ``gpu_resource`` of the nodes runs may land on (schedulable, matching
        ``node_selector``), asked at most every minute; ``None`` when nodes cannot be read (no permission: unknown)."""
        now = self._clock()
        with self._lock:
            cached = self._nodes
            if cached is not None and now - cached[0] < _SERVED_TTL_S:
                return cached[1]
        try:
            items = self.api().request("GET", "/api/v1/nodes").get("items") or []
        except (KubeApiError, SpecError) as e:
            log.debug("nodes of the cluster not readable: %s", e.message)
            shapes = None
        else:
            shapes = [node_shape(n, self.options.gpu_resource) for n in items
                      if not (n.get("spec") or {}).get("unschedulable")
                      and all(((n.get("metadata") or {}).get("labels") or {}).get(k) == v
                              for k, v in self.options.node_selector.items())] or None
        with self._lock:
            self._nodes = (now, shapes)
        return shapes

    def capacity(self) -> None:
        """``None``: Kubernetes queues pods itself (a pod that cannot be placed waits, Unschedulable)."""
        return None

    def submit(self, launch: RunLaunch, *, at_most: int | None = None) -> str:
        """Create the attempt's object and its Secret (and Service). Idempotent per attempt: the object's
        name is the attempt's, and a 409 returns the existing object's job id.

        Raises:
            SubmitError: the cluster does not serve the kind (naming the operator to install), the run
                has ``build:`` or no image, or the API server refused (its message is included).
        """
        from runyard._version import __version__

        self.refuse_unsupported(launch)
        fixed = sorted(k for k in launch.options if k in _PER_BACKEND)
        if fixed:
            raise SubmitError(f"Run {launch.run_id} sets {', '.join(fixed)} for itself; on Kubernetes these belong "
                              "to the backend (its cluster, namespace and watches are shared by every run).",
                              "Remove them from the run's options, or configure another kubernetes backend in "
                              "backends.yml with them.")
        options = self.options_for(launch)
        container = launch.container or {}
        if container.get("build"):
            raise SubmitError(f"Run {launch.run_id} has a build: section; the kubernetes backend does not build images.",
                              "Build and push the image, then name it with `image:` in runyard.yml.")
        kind = workload_kind(launch, options)
        served = self._served_or_refuse(kind)
        if kind not in served:
            raise SubmitError(f"The cluster does not serve {kind} ({KINDS[kind][0]}), which run {launch.run_id} needs.",
                              f"Install {OPERATORS[kind]}, or use another backend for this run. "
                              "`runyard backends test NAME` lists the kinds the cluster serves.")
        sid = server_id_of(options, launch.server_url)
        workload = render_workload(launch, options, server_id=sid, version=__version__)
        images = self._images_of(workload)
        if not all(images):
            raise SubmitError(f"Run {launch.run_id} names no image, and the kubernetes backend has no default image.",
                              "Add `image: NAME` to runyard.yml, or set the backend's image: option.")
        name = workload["metadata"]["name"]
        job_id = f"{kind}/{name}"
        api = self.api()
        try:
            created = api.request("POST", collection_path(kind, self.namespace), body=workload)
        except KubeApiError as e:
            if e.status != 409:
                raise self._refused(launch, kind, e) from e
            created = self._existing(kind, name, launch)
        # The runner runs in the pod, not in a container it starts: the launch it reads has no container.
        far = dataclasses.replace(launch_reaching(launch, options.server_url), container=None)
        if kind == "RayJob":  # KubeRay runs the Ray nodes; the runner runs the job task alone
            far = dataclasses.replace(far, distributed=None, tasks=(TaskSlot("job", 0),))
        labels = object_labels(launch, options, sid)
        try:
            self._create_owned(render_secret(name, launch_file_bytes(far), labels, created))
            if needs_service(workload):
                self._create_owned(render_service(workload, created))
        except KubeApiError as e:
            self._delete(job_id)  # a workload without its Secret would wait forever (CreateContainerConfigError)
            raise self._refused(launch, "Secret", e) from e
        with self._lock:
            self._objects[(kind, name)] = created
            self._submitted[job_id] = self._clock()
        self._ensure_watch(kind)
        log.info("run %s attempt %s: %s", launch.run_id, launch.attempt, job_id)
        return job_id

    def poll(self, job_ids: Sequence[str], wait_s: float = 0.0) -> dict[str, EngineState]:
        """States from the watches' cache (no API call of its own once the watches run)."""
        return poll_waiting(self._poll_once, job_ids, wait_s, interval_s=0.1)

    def cancel(self, job_id: str) -> None:
        """Delete the object with foreground propagation (its pods go first); an ended or unknown job is a no-op."""
        with self._lock:
            if job_id in self._final:
                return
            self._canceled.add(job_id)
        self._delete(job_id)

    def close(self) -> None:
        """Stop the watches; objects keep running. Idempotent."""
        self._stop.set()
        with self._lock:
            api, self._api = self._api, None
            self._watches.clear()
        if api is not None:
            try:
                api.client.close()
            except Exception as e:  # noqa: BLE001 - closing a pool must not fail close(); logged
                log.debug("closing the Kubernetes client: %s", e)

    # ------------------------------------------------------------ submit helpers
    def _served_or_refuse(self, kind: str) -> set[str]:
        try:
            return self.served_kinds()
        except KubeApiError as e:
            raise SubmitError(f"Cannot ask the cluster which kinds it serves: {e.message}", e.hint) from e
        except SpecError as e:
            raise SubmitError(e.message, e.hint) from e

    @staticmethod
    def _images_of(workload: Mapping[str, Any]) -> list[str]:
        found: list[str] = []

        def walk(node: Any) -> None:
            if isinstance(node, Mapping):
                if "image" in node and isinstance(node["image"], str):
                    found.append(node["image"])
                for v in node.values():
                    walk(v)
            elif isinstance(node, list):
                for v in node:
                    walk(v)

        walk(workload.get("spec"))
        return found or [""]

    def _existing(self, kind: str, name: str, launch: RunLaunch) -> dict[str, Any]:
        try:
            obj = self.api().request("GET", f"{collection_path(kind, self.namespace)}/{name}")
        except KubeApiError as e:
            raise self._refused(launch, kind, e) from e
        labels = obj.get("metadata", {}).get("labels") or {}
        if labels.get(LABEL_RUN) != str(launch.run_id) or labels.get(LABEL_ATTEMPT) != str(launch.attempt):
            raise SubmitError(f"A {kind} named {name} exists in namespace {self.namespace} but is not run "
                              f"{launch.run_id}'s attempt {launch.attempt}.",
                              "Give each Runyard server sharing a namespace its own server_id.")
        return obj

    def _create_owned(self, obj: Mapping[str, Any]) -> None:
        try:
            self.api().request("POST", collection_path(str(obj["kind"]), self.namespace), body=obj)
        except KubeApiError as e:
            if e.status != 409:  # 409: made by the first submit of this attempt
                raise

    def _refused(self, launch: RunLaunch, kind: str, e: KubeApiError) -> SubmitError:
        hint = e.hint
        if e.status == 422:
            hint = ("The cluster's schema or an admission rule refused the object; fix the backend's options "
                    "(labels, tolerations, resources) or report the message with `runyard backends test NAME`'s output.")
        return SubmitError(f"Kubernetes refused the {kind} of run {launch.run_id} in namespace {self.namespace}: "
                           f"{e.message}", hint)

    def _delete(self, job_id: str) -> None:
        kind, _, name = job_id.partition("/")
        if kind not in KINDS or not name:
            return
        try:
            self.api().request("DELETE", f"{collection_path(kind, self.namespace)}/{name}",
                               body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Foreground"})
        except KubeApiError as e:
            if e.status != 404:
                raise

    # ------------------------------------------------------------ following
    def _ensure_watch(self, kind: str) -> _Watch:
        with self._lock:
            w = self._watches.get(kind)
            if w is not None and w.thread is not None and w.thread.is_alive():
                return w
            w = _Watch(kind, None, threading.Event(), threading.Event())
            w.thread = threading.Thread(target=self._watch_loop, args=(w,), daemon=True, name=f"runyard-kube-watch-{kind}")
            self._watches[kind] = w
            w.thread.start()
        return w

    def _store(self, kind: str, event: str, obj: dict[str, Any]) -> None:
        name = obj.get("metadata", {}).get("name", "")
        with self._lock:
            if kind == "Pod":
                if event == "DELETED":
                    self._pods.pop(name, None)
                else:
                    self._pods[name] = obj
            elif event == "DELETED":
                self._objects.pop((kind, name), None)
            else:
                self._objects[(kind, name)] = obj

    def _watch_loop(self, w: _Watch) -> None:
        stop, kind = self._stop, w.kind
        path = collection_path(kind, self.namespace)
        rv: str | None = None
        backoff = 0.2
        while not stop.is_set():
            try:
                api = self.api()
                if rv is None:
                    listing = api.request("GET", path, query={"labelSelector": _SELECTOR})
                    items = listing.get("items") or []
                    with self._lock:
                        if kind == "Pod":
                            self._pods = {o["metadata"]["name"]: o for o in items}
                        else:
                            for key in [k for k in self._objects if k[0] == kind]:
                                del self._objects[key]
                            for o in items:
                                o.setdefault("kind", kind)
                                self._objects[(kind, o["metadata"]["name"])] = o
                        self.watch_stats["lists"] += 1
                    rv = str(listing.get("metadata", {}).get("resourceVersion") or "")
                    w.error, w.not_served = "", False
                    w.synced.set()
                    w.tried.set()
                else:
                    with self._lock:
                        self.watch_stats["resumes"] += 1
                for event in api.watch(path, {"labelSelector": _SELECTOR, "resourceVersion": rv},
                                       self.options.watch_timeout_s):
                    if stop.is_set():
                        return
                    etype, obj = event.get("type"), event.get("object") or {}
                    if etype == "ERROR":
                        if obj.get("code") == 410:
                            with self._lock:
                                self.watch_stats["gone"] += 1
                            rv = None  # the history is gone: list again
                            break
                        raise KubeApiError(int(obj.get("code") or 0), obj.get("reason", ""), obj.get("message", ""))
                    new_rv = obj.get("metadata", {}).get("resourceVersion")
                    if etype != "BOOKMARK":
                        obj.setdefault("kind", kind)
                        self._store(kind, str(etype), obj)
                    if new_rv:
                        rv = str(new_rv)
                w.error = ""
                backoff = 0.2
            except (KubeApiError, SpecError) as e:
                if stop.is_set():
                    return
                status = getattr(e, "status", 0)
                if status == 410:
                    rv = None
                with self._lock:
                    self.watch_stats["errors"] += 1
                w.error = e.message
                w.not_served = status == 404 and rv is None
                w.tried.set()
                log.debug("watch of %s: %s; resuming", kind, e.message)
                # A kind the cluster does not serve is asked again slowly (its operator may be installed later).
                stop.wait(30.0 if w.not_served else backoff)
                backoff = min(5.0, backoff * 2)
            except Exception as e:  # noqa: BLE001 - a watch thread must not die silently; it retries
                log.warning("watch of %s failed: %r; resuming", kind, e)
                w.error = repr(e)
                w.tried.set()
                stop.wait(1.0)

    def _wait_synced(self, kinds: set[str]) -> dict[str, _Watch]:
        """The watches of ``kinds``, each waited for until its first list was tried (at most a request timeout)."""
        deadline = time.monotonic() + self.options.request_timeout_s
        out = {}
        for kind in kinds:
            w = self._ensure_watch(kind)
            w.tried.wait(max(0.0, deadline - time.monotonic()))
            out[kind] = w
        return out

    def _poll_once(self, job_ids: Sequence[str]) -> dict[str, EngineState]:
        if not job_ids:
            return {}
        if self._stop.is_set():
            self._stop = threading.Event()  # polled after close: follow again
        parsed = {j: j.partition("/") for j in job_ids}
        kinds = {k for k, _, n in parsed.values() if k in KINDS and n}
        watches = self._wait_synced(kinds | {"Pod"}) if kinds else {}
        out: dict[str, EngineState] = {}
        failing: list[tuple[str, EngineState, list[dict[str, Any]]]] = []  # FAILED first seen: explained below
        now = self._clock()
        with self._lock:
            pods_by_attempt: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
            for pod in self._pods.values():
                labels = pod.get("metadata", {}).get("labels") or {}
                key = (labels.get(LABEL_SERVER, ""), labels.get(LABEL_RUN, ""), labels.get(LABEL_ATTEMPT, ""))
                pods_by_attempt.setdefault(key, []).append(pod)
            for job_id, (kind, _, name) in parsed.items():
                if job_id in self._final:
                    out[job_id] = self._final[job_id]
                    continue
                if kind not in KINDS or not name:
                    out[job_id] = EngineState(EngineStatus.LOST, None, f"{job_id!r} is not a Kubernetes job id (KIND/NAME)")
                    continue
                obj = self._objects.get((kind, name))
                canceled = job_id in self._canceled
                w = watches.get(kind)
                if obj is None and w is not None and not w.synced.is_set():
                    # Never listed: the kind is not served, or the API server cannot be reached.
                    if w.not_served:
                        state = EngineState(EngineStatus.LOST, None, f"the cluster does not serve {kind} "
                                            f"(install {OPERATORS[kind].split(' (')[0]})", w.error)
                    else:
                        out[job_id] = EngineState(EngineStatus.UNKNOWN, None,
                                                  f"cannot list {kind} in namespace {self.namespace}: "
                                                  f"{w.error or 'no answer yet'}", w.error)
                        continue
                elif obj is None:
                    since = self._submitted.get(job_id)
                    if canceled:
                        state = EngineState(EngineStatus.CANCELED, None, "canceled: deleted", "")
                    elif since is not None and now - since < LOST_AFTER_S:
                        state = EngineState(EngineStatus.PENDING, None, "pending: submitted", "")
                    else:
                        state = EngineState(EngineStatus.LOST, None,
                                            f"namespace {self.namespace} has no {kind} named {name}", "")
                else:
                    labels = obj.get("metadata", {}).get("labels") or {}
                    key = (labels.get(LABEL_SERVER, ""), labels.get(LABEL_RUN, ""), labels.get(LABEL_ATTEMPT, ""))
                    state = map_object(obj, pods_by_attempt.get(key, []))
                    if canceled and state.status in (EngineStatus.FAILED, EngineStatus.SUCCEEDED, EngineStatus.TIMEOUT,
                                                     EngineStatus.CANCELED):
                        state = EngineState(EngineStatus.CANCELED, state.exit_code, "canceled", state.raw)
                if state.status is EngineStatus.FAILED and obj is not None:
                    failing.append((job_id, state, [p for p in pods_by_attempt.get(key, [])
                                                    if (p.get("status") or {}).get("phase") == "Failed"]))
                elif state.status.terminal:
                    self._final[job_id] = state
                out[job_id] = state
        for job_id, state, failed_pods in failing:
            out[job_id] = self._with_pod_log(state, failed_pods)
            with self._lock:
                self._final[job_id] = out[job_id]
        return out

    def _with_pod_log(self, state: EngineState, pods: Sequence[Mapping[str, Any]]) -> EngineState:
        """``state`` with the pod's last log lines when its runner never started (pod logs are the fallback
        for what the runner could not report: an image without runyard, a wrong ``python``)."""
        for pod in pods[:1]:
            name = pod.get("metadata", {}).get("name", "")
            try:
                text = self.api().text(f"{collection_path('Pod', self.namespace)}/{name}/log", query={"tailLines": 20})
            except KubeApiError as e:
                log.debug("the log of pod %s: %s", name, e.message)
                return state
            if "[runyard] task" in text or not text.strip():
                return state  # the runner ran and reported; its own reason stands
            tail = " | ".join(line.strip() for line in text.strip().splitlines()[-5:])
            return dataclasses.replace(state, reason=f"{state.reason}; the runner did not start in pod {name}: {tail}")
        return state

    # ------------------------------------------------------------ check
    def check(self) -> list[CheckResult]:
        """Credentials, namespace access (a dry-run Job), the kinds served, the GPU resource on the nodes."""
        o = self.options
        results: list[CheckResult] = []
        try:
            api = self.api()
            version = api.request("GET", "/version")
            results.append(CheckResult("credentials", True, f"API server {version.get('gitVersion', '?')} at {api.host}"))
        except SpecError as e:
            return [CheckResult("credentials", False, e.message, e.hint)]
        except KubeApiError as e:
            return [CheckResult("credentials", False, e.message, e.hint)]
        probe = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "runyard-check",
                                                                        "labels": {LABEL_MANAGED: "runyard"}},
                 "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [
                     {"name": "check", "image": o.image or "busybox", "command": ["true"]}]}}}}
        try:
            api.request("POST", collection_path("Job", o.namespace), query={"dryRun": "All"}, body=probe)
            api.request("GET", collection_path("Job", o.namespace), query={"labelSelector": _SELECTOR, "limit": 1})
            try:  # authorization comes before the lookup: 404 means "allowed, and there is none", 403 "not allowed"
                api.request("DELETE", f"{collection_path('Job', o.namespace)}/runyard-check", query={"dryRun": "All"},
                            body={"kind": "DeleteOptions", "apiVersion": "v1", "dryRun": ["All"]})
            except KubeApiError as e:
                if e.status != 404:
                    raise
            results.append(CheckResult("namespace", True,
                                       f"can create and delete Jobs in {o.namespace} (dry runs) and list them"))
        except KubeApiError as e:
            results.append(CheckResult("namespace", False, f"namespace {o.namespace}: {e.message}",
                                       e.hint if e.status != 404 else f"Create it: `kubectl create namespace {o.namespace}`."))
        try:
            served = self.served_kinds(fresh=True)
        except KubeApiError as e:
            results.append(CheckResult("kinds", False, f"discovery failed: {e.message}", e.hint))
            served = set()
        else:
            missing = [k for k in KINDS if k not in served]
            detail = f"served: {', '.join(k for k in KINDS if k in served)}"
            if missing:
                detail += "; not served: " + "; ".join(f"{k} (install {OPERATORS[k].split(' (')[0]})" for k in missing)
            results.append(CheckResult("kinds", "Job" in served, detail,
                                       "" if "Job" in served else "The API server does not serve batch/v1 Jobs."))
            wanted = "TrainJob" if o.training_api == "trainer-v2" else "PyTorchJob"
            if wanted not in served:
                results.append(CheckResult("training operator", False,
                                           f"{wanted} is not served: distributed PyTorch, JAX and XGBoost runs are refused",
                                           f"Install {OPERATORS[wanted]}, or set training_api to the one installed."))
        try:
            nodes = api.request("GET", "/api/v1/nodes").get("items") or []
        except KubeApiError as e:
            results.append(CheckResult("gpu resource", True, f"nodes not readable ({e.reason}): {o.gpu_resource} not checked"))
        else:
            total = 0
            others: set[str] = set()
            for node in nodes:
                alloc = (node.get("status") or {}).get("allocatable") or {}
                try:
                    total += int(alloc.get(o.gpu_resource, 0))
                except (TypeError, ValueError):
                    pass
                others |= {k for k in alloc if "gpu" in k and k != o.gpu_resource}
            if total:
                results.append(CheckResult("gpu resource", True, f"{total} {o.gpu_resource} on {len(nodes)} node(s)"))
            else:
                alt = f"; nodes offer {', '.join(sorted(others))}" if others else ""
                results.append(CheckResult("gpu resource", not others,
                                           f"no node offers {o.gpu_resource}{alt}: GPU runs would stay Unschedulable",
                                           f"Set gpu_resource to {sorted(others)[0]}." if others else ""))
        results.append(self._check_server_url(api.host))
        return results

    def _check_server_url(self, api_host: str) -> CheckResult:
        """Pods need the server's address as they see it: without server_url they get the server's own URL,
        which is right only when the cluster runs on the server's machine (its API on a loopback address)."""
        from urllib.parse import urlsplit

        if self.options.server_url:
            return CheckResult("server_url", True, f"pods report to {self.options.server_url}")
        local = (urlsplit(api_host).hostname or "") in ("127.0.0.1", "localhost", "::1")
        return CheckResult("server_url", local,
                           "not set: pods are given the server's own URL" + (" (the cluster is on this machine)" if local
                                                                             else ", which pods in a remote cluster "
                                                                                  "usually cannot reach"),
                           "" if local else "Set server_url to the address pods reach the server at, e.g. "
                                            "server_url: http://runyard.runyard.svc:8765.")
