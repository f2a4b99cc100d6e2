"""The Kubernetes objects of one run attempt: pure functions of the launch and the options.

Golden files under ``tests/backends/golden/`` pin their output; change them only on purpose
(``RUNYARD_UPDATE_GOLDEN=1 pytest tests/backends/test_kube_manifests.py``).

What a run becomes (:func:`workload_kind`):

- one task: a ``batch/v1`` Job, backoffLimit 0, one pod;
- ``framework: pytorch | jax | xgboost``: a Kubeflow Trainer v2 ``TrainJob``
  (``trainer.kubeflow.org/v1alpha1``) on the ClusterTrainingRuntime ``torch-distributed``,
  ``jax-distributed`` or ``xgboost-distributed`` (``runtimes`` overrides), one node per task;
  with ``training_api: training-operator-v1``: ``PyTorchJob``, ``JAXJob``, ``XGBoostJob``
  (``kubeflow.org/v1``), one replica type per role;
- ``framework: tensorflow`` (not in Trainer v2): a ``TFJob``, or with ``tensorflow_operator: false``
  an Indexed Job and a headless Service;
- ``framework: ray``: a KubeRay ``RayJob`` (``ray.io/v1``): head and worker groups from the roles,
  the ``job`` task as its entrypoint.

Every pod runs the task runner (``python -m runyard.runner exec``) in the run's image. The
launch file (the run's env and token) is a Secret owned by the object, passed to the container
as ``RUNYARD_LAUNCH`` (``secretKeyRef``); the container's shell writes it to a mode-600 file
under ``$TMPDIR`` and starts the runner on it, so no volume is needed and every kind (TrainJob's
trainer has no volumes) works the same. Which task a pod runs: ``--task-index
$JOB_COMPLETION_INDEX`` (Indexed Job, TrainJob: the Job controller sets it), ``--task
ROLE-$RUNYARD_REPLICA_INDEX`` (v1 kinds: the operator's ``replica-index`` label, through the
downward API). ``RUNYARD_TASK_HOST`` is the pod's IP: a task others connect to publishes it
through the server's rendezvous (``runyard.launch``), as on every backend; the operators'
own variables (``MASTER_ADDR``, ``PET_*``, ``TF_CONFIG``) are overridden by Runyard's in the task.

Resources per task: ``cpus`` → ``requests``/``limits.cpu``, ``memory_mb`` → ``memory`` (``Mi``), ``gpus``
→ ``limits``/``requests`` of ``gpu_resource`` (``nvidia.com/gpu``).
"""

from __future__ import annotations

import hashlib
import math
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from runyard.backends.base import Resources, RunLaunch, TaskSlot
from runyard.backends.kubernetes._options import KubernetesBackendOptions

__all__ = [
    "KINDS",
    "LABEL_ATTEMPT",
    "LABEL_MANAGED",
    "LABEL_RUN",
    "LABEL_SERVER",
    "OPERATORS",
    "Kind",
    "SECRET_KEY",
    "object_labels",
    "object_name",
    "render_secret",
    "render_service",
    "needs_service",
    "render_workload",
    "server_id_of",
    "workload_kind",
]

LABEL_MANAGED = "app.kubernetes.io/managed-by"
LABEL_SERVER = "runyard.dev/server"
LABEL_RUN = "runyard.dev/run"
LABEL_ATTEMPT = "runyard.dev/attempt"
LABEL_ROLE = "runyard.dev/role"
SECRET_KEY = "launch.json"

Kind = tuple[str, str, str]  # (apiVersion, kind, plural)

#: Every kind the backend creates and watches.
KINDS: dict[str, Kind] = {
    "Job": ("batch/v1", "Job", "jobs"),
    "TrainJob": ("trainer.kubeflow.org/v1alpha1", "TrainJob", "trainjobs"),
    "PyTorchJob": ("kubeflow.org/v1", "PyTorchJob", "pytorchjobs"),
    "TFJob": ("kubeflow.org/v1", "TFJob", "tfjobs"),
    "XGBoostJob": ("kubeflow.org/v1", "XGBoostJob", "xgboostjobs"),
    "JAXJob": ("kubeflow.org/v1", "JAXJob", "jaxjobs"),
    "RayJob": ("ray.io/v1", "RayJob", "rayjobs"),
}

#: What to install for a kind the cluster does not serve (named in the refusal).
OPERATORS: dict[str, str] = {
    "TrainJob": "Kubeflow Trainer v2 (https://www.kubeflow.org/docs/components/trainer/operator-guides/installation/), "
                "with its ClusterTrainingRuntimes",
    "PyTorchJob": "the Kubeflow training operator v1 (https://github.com/kubeflow/training-operator)",
    "TFJob": "the Kubeflow training operator v1 (https://github.com/kubeflow/training-operator)",
    "XGBoostJob": "the Kubeflow training operator v1 (https://github.com/kubeflow/training-operator)",
    "JAXJob": "the Kubeflow training operator v1 (https://github.com/kubeflow/training-operator)",
    "RayJob": "the KubeRay operator (https://docs.ray.io/en/latest/cluster/kubernetes/getting-started.html)",
}

_DEFAULT_RUNTIMES = {"pytorch": "torch-distributed", "jax": "jax-distributed", "xgboost": "xgboost-distributed"}
_V1 = {  # framework → (kind, replica specs key, container name, {role: replica type})
    "pytorch": ("PyTorchJob", "pytorchReplicaSpecs", "pytorch", {"master": "Master", "worker": "Worker"}),
    "tensorflow": ("TFJob", "tfReplicaSpecs", "tensorflow", {"chief": "Chief", "worker": "Worker", "ps": "PS"}),
    "xgboost": ("XGBoostJob", "xgbReplicaSpecs", "xgboost", {"master": "Master", "worker": "Worker"}),
    "jax": ("JAXJob", "jaxReplicaSpecs", "jax", {"worker": "Worker"}),
}


def server_id_of(options: KubernetesBackendOptions, server_url: str) -> str:
    """The server's id on its objects: ``server_id``, else 8 hex digits of the server's URL."""
    return options.server_id or hashlib.sha256(server_url.encode()).hexdigest()[:8]


def object_name(server_id: str, run_id: int, attempt: int) -> str:
    """``ry-<server>-<run>-<attempt>``: one name per attempt, so a second submit finds the first (409)."""
    return f"ry-{server_id}-{run_id}-{attempt}"


def workload_kind(launch: RunLaunch, options: KubernetesBackendOptions) -> str:
    """The kind ``launch`` becomes (a key of :data:`KINDS`)."""
    if launch.distributed is None:
        return "Job"
    framework = str(launch.distributed.get("framework"))
    if framework == "ray":
        return "RayJob"
    if framework == "tensorflow":
        return "TFJob" if options.tensorflow_operator else "Job"
    if options.training_api == "training-operator-v1":
        return _V1[framework][0]
    return "TrainJob"


def object_labels(launch: RunLaunch, options: KubernetesBackendOptions, server_id: str) -> dict[str, str]:
    """The labels of every object of the attempt: the backend's ``labels``, then Runyard's."""
    return {**options.labels, LABEL_MANAGED: "runyard", LABEL_SERVER: server_id, LABEL_RUN: str(launch.run_id),
            LABEL_ATTEMPT: str(launch.attempt)}


def _annotations(launch: RunLaunch, options: KubernetesBackendOptions) -> dict[str, str]:
    return {**options.annotations, "runyard.dev/project": launch.project}


def _quantity_cpu(cpus: float) -> str:
    milli = max(1, math.ceil(cpus * 1000))
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def _resources(res: Resources, options: KubernetesBackendOptions) -> dict[str, Any]:
    amounts: dict[str, str] = {"cpu": _quantity_cpu(res.cpus)}
    if res.memory_mb:
        amounts["memory"] = f"{res.memory_mb}Mi"
    if res.gpus:
        amounts[options.gpu_resource] = str(res.gpus)
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _task_resources(launch: RunLaunch, slot: TaskSlot) -> Resources:
    if launch.distributed is None:
        return launch.resources
    from runyard.launch import task_resources

    return task_resources(launch, slot)


def _image(launch: RunLaunch, options: KubernetesBackendOptions, role: str | None = None) -> str:
    container = launch.container or {}
    roles = container.get("roles") or {}
    # Not ``pin``: an image id a local runtime gave a build means nothing to the cluster's nodes.
    image = (roles.get(role) if role else None) or container.get("image") or options.image
    return str(image or "")


def _runner_script(options: KubernetesBackendOptions, task_arg: str, version: str) -> str:
    """The container's shell script: write the launch file from the Secret, then exec the runner."""
    python = shlex.quote(options.python)
    lines = ['umask 077',
             'dir="${TMPDIR:-/tmp}/runyard"',
             'mkdir -p "$dir/work"',
             'printf %s "$RUNYARD_LAUNCH" > "$dir/launch.json"',
             'unset RUNYARD_LAUNCH']
    if options.runner_install == "pip":
        # The image has Python but not runyard: this server's version goes into the pod's own directory.
        lines += [f'{python} -m pip install --quiet --disable-pip-version-check --target "$dir/lib" '
                  f'{shlex.quote("runyard==" + version)}',
                  'export PYTHONPATH="$dir/lib${PYTHONPATH:+:$PYTHONPATH}"']
    lines.append(f'exec {python} -m runyard.runner exec --launch "$dir/launch.json" --workdir "$dir/work"'
                 + (f" {task_arg}" if task_arg else ""))
    return "\n".join(lines)


def _env(secret_name: str, extra: Sequence[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    return [{"name": "RUNYARD_LAUNCH", "valueFrom": {"secretKeyRef": {"name": secret_name, "key": SECRET_KEY}}},
            {"name": "RUNYARD_TASK_HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            *[dict(e) for e in extra]]


def _container(name: str, image: str, script: str, env: list[dict[str, Any]], res: Resources,
               options: KubernetesBackendOptions) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "image": image, "command": ["/bin/sh", "-c", script], "env": env,
                           "resources": _resources(res, options)}
    if options.image_pull_policy:
        out["imagePullPolicy"] = options.image_pull_policy
    return out


def _pod_spec(containers: list[dict[str, Any]], launch: RunLaunch, options: KubernetesBackendOptions,
              **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"restartPolicy": "Never", "enableServiceLinks": False,
                            # the runner's grace period for the task, plus its own last reports
                            "terminationGracePeriodSeconds": math.ceil(launch.grace_period_s) + 15,
                            "containers": containers, **extra}
    if options.service_account:
        spec["serviceAccountName"] = options.service_account
    if options.node_selector:
        spec["nodeSelector"] = dict(options.node_selector)
    if options.tolerations:
        spec["tolerations"] = [t.model_dump(exclude_none=True) for t in options.tolerations]
    if options.priority_class:
        spec["priorityClassName"] = options.priority_class
    if options.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": s} for s in options.image_pull_secrets]
    return spec


def _deadline(launch: RunLaunch, options: KubernetesBackendOptions) -> int | None:
    return launch.time_limit_s + options.time_margin_s if launch.time_limit_s else None


def _metadata(name: str, labels: Mapping[str, str], annotations: Mapping[str, str]) -> dict[str, Any]:
    return {"name": name, "labels": dict(labels), "annotations": dict(annotations)}


def render_workload(launch: RunLaunch, options: KubernetesBackendOptions, *, server_id: str,
                    version: str) -> dict[str, Any]:
    """The object that runs ``launch`` (no I/O; same input, same object).

    Args:
        server_id: the server's id (:func:`server_id_of`), in the name and the labels.
        version: this server's runyard version (``runner_install: pip`` installs it).
    """
    name = object_name(server_id, launch.run_id, launch.attempt)
    labels = object_labels(launch, options, server_id)
    annotations = _annotations(launch, options)
    kind = workload_kind(launch, options)
    if kind == "Job":
        return _render_job(launch, options, name, labels, annotations, version)
    if kind == "TrainJob":
        return _render_trainjob(launch, options, name, labels, annotations, version)
    if kind == "RayJob":
        return _render_rayjob(launch, options, name, labels, annotations, version)
    return _render_v1(launch, options, name, labels, annotations, version)


def _render_job(launch: RunLaunch, options: KubernetesBackendOptions, name: str, labels: Mapping[str, str],
                annotations: Mapping[str, str], version: str) -> dict[str, Any]:
    n = len(launch.tasks)
    indexed = launch.distributed is not None  # tensorflow without the operator: one pod per task
    script = _runner_script(options, '--task-index "$JOB_COMPLETION_INDEX"' if indexed else "", version)
    # A Job's pods all share one template: each takes the largest any task needs.
    each = [_task_resources(launch, s) for s in launch.tasks]
    res = Resources(max(r.cpus for r in each), max(r.memory_mb for r in each), max(r.gpus for r in each))
    pod_extra: dict[str, Any] = {}
    if indexed:
        pod_extra["subdomain"] = name  # the headless Service: <pod hostname>.<name> resolves
    containers = [_container("main", _image(launch, options), script, _env(name), res, options)]
    spec: dict[str, Any] = {
        # Restarts are Runyard's (max_restarts: a new attempt, a new Job): Kubernetes must not retry.
        "backoffLimit": 0,
        "template": {"metadata": {"labels": dict(labels)}, "spec": _pod_spec(containers, launch, options, **pod_extra)},
    }
    if indexed:
        spec.update({"completions": n, "parallelism": n, "completionMode": "Indexed"})
    deadline = _deadline(launch, options)
    if deadline:
        spec["activeDeadlineSeconds"] = deadline
    if options.ttl_after_finished_s is not None:
        spec["ttlSecondsAfterFinished"] = options.ttl_after_finished_s
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": _metadata(name, labels, annotations), "spec": spec}


def _render_trainjob(launch: RunLaunch, options: KubernetesBackendOptions, name: str, labels: Mapping[str, str],
                     annotations: Mapping[str, str], version: str) -> dict[str, Any]:
    framework = str((launch.distributed or {}).get("framework"))
    runtime = options.runtimes.get(framework) or _DEFAULT_RUNTIMES[framework]
    each = [_task_resources(launch, s) for s in launch.tasks]
    res = Resources(max(r.cpus for r in each), max(r.memory_mb for r in each), max(r.gpus for r in each))
    script = _runner_script(options, '--task-index "$JOB_COMPLETION_INDEX"', version)
    trainer: dict[str, Any] = {"image": _image(launch, options), "command": ["/bin/sh", "-c", script],
                               "env": _env(name), "numNodes": len(launch.tasks),
                               "resourcesPerNode": _resources(res, options)}
    spec: dict[str, Any] = {"runtimeRef": {"apiGroup": "trainer.kubeflow.org", "kind": "ClusterTrainingRuntime",
                                           "name": runtime},
                            "trainer": trainer}
    pod_patch: dict[str, Any] = {}
    if options.service_account:
        pod_patch["serviceAccountName"] = options.service_account
    if options.node_selector:
        pod_patch["nodeSelector"] = dict(options.node_selector)
    if options.tolerations:
        pod_patch["tolerations"] = [t.model_dump(exclude_none=True) for t in options.tolerations]
    if options.image_pull_secrets:
        pod_patch["imagePullSecrets"] = [{"name": s} for s in options.image_pull_secrets]
    # The runtime's node pods get the run's labels (the backend finds a run's pods by them) and the
    # backend's scheduling settings.
    pod_template: dict[str, Any] = {"metadata": {"labels": dict(labels)}}
    if pod_patch:
        pod_template["spec"] = pod_patch
    spec["runtimePatches"] = [{"manager": "runyard.dev/backend", "trainingRuntimeSpec": {"template": {"spec": {
        "replicatedJobs": [{"name": "node", "template": {"spec": {"template": pod_template}}}]}}}}]
    deadline = _deadline(launch, options)
    if deadline:
        spec["activeDeadlineSeconds"] = deadline
    return {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob",
            "metadata": _metadata(name, labels, annotations), "spec": spec}


def _render_v1(launch: RunLaunch, options: KubernetesBackendOptions, name: str, labels: Mapping[str, str],
               annotations: Mapping[str, str], version: str) -> dict[str, Any]:
    framework = str((launch.distributed or {}).get("framework"))
    kind, key, cname, types = _V1[framework]
    replica_specs: dict[str, Any] = {}
    for role, rtype in types.items():
        slots = [s for s in launch.tasks if s.role == role]
        if not slots:
            continue
        script = _runner_script(options, f'--task "{role}-$RUNYARD_REPLICA_INDEX"', version)
        env = _env(name, [{"name": "RUNYARD_REPLICA_INDEX", "valueFrom": {"fieldRef": {
            "fieldPath": "metadata.labels['training.kubeflow.org/replica-index']"}}}])
        container = _container(cname, _image(launch, options, role), script, env, _task_resources(launch, slots[0]),
                               options)
        replica_specs[rtype] = {"replicas": len(slots), "restartPolicy": "Never",
                                "template": {"metadata": {"labels": {**labels, LABEL_ROLE: role}},
                                             "spec": _pod_spec([container], launch, options)}}
    run_policy: dict[str, Any] = {"backoffLimit": 0, "cleanPodPolicy": "Running"}
    deadline = _deadline(launch, options)
    if deadline:
        run_policy["activeDeadlineSeconds"] = deadline
    if options.ttl_after_finished_s is not None:
        run_policy["ttlSecondsAfterFinished"] = options.ttl_after_finished_s
    return {"apiVersion": "kubeflow.org/v1", "kind": kind, "metadata": _metadata(name, labels, annotations),
            "spec": {"runPolicy": run_policy, key: replica_specs}}


def _render_rayjob(launch: RunLaunch, options: KubernetesBackendOptions, name: str, labels: Mapping[str, str],
                   annotations: Mapping[str, str], version: str) -> dict[str, Any]:
    # KubeRay starts the Ray nodes itself (head and worker groups); the run's `job` task is the
    # entrypoint, which KubeRay submits to the head: the runner runs it there (task job-0).
    def group(role: str, container_name: str) -> dict[str, Any]:
        slots = [s for s in launch.tasks if s.role == role]
        res = _task_resources(launch, slots[0]) if slots else launch.resources
        container = {"name": container_name, "image": _image(launch, options, role), "env": _env(name),
                     "resources": _resources(res, options)}
        if options.image_pull_policy:
            container["imagePullPolicy"] = options.image_pull_policy
        return {"rayStartParams": {}, "template": {"metadata": {"labels": {**labels, LABEL_ROLE: role}},
                                                   "spec": _pod_spec([container], launch, options)}}

    script = _runner_script(options, "--task job-0", version)
    n_workers = sum(1 for s in launch.tasks if s.role == "worker")
    cluster: dict[str, Any] = {"headGroupSpec": group("head", "ray-head")}
    if n_workers:
        workers = group("worker", "ray-worker")
        cluster["workerGroupSpecs"] = [{"groupName": "workers", "replicas": n_workers, "minReplicas": n_workers,
                                        "maxReplicas": n_workers, **workers}]
    spec: dict[str, Any] = {"entrypoint": "/bin/sh -c " + shlex.quote(script), "shutdownAfterJobFinishes": True,
                            "backoffLimit": 0, "submissionMode": "K8sJobMode", "rayClusterSpec": cluster}
    if options.ttl_after_finished_s is not None:
        spec["ttlSecondsAfterFinished"] = options.ttl_after_finished_s
    deadline = _deadline(launch, options)
    if deadline:
        spec["activeDeadlineSeconds"] = deadline
    return {"apiVersion": "ray.io/v1", "kind": "RayJob", "metadata": _metadata(name, labels, annotations), "spec": spec}


def render_secret(name: str, launch_json: bytes, labels: Mapping[str, str], owner: Mapping[str, Any]) -> dict[str, Any]:
    """The Secret holding the launch file, owned by ``owner`` (the workload object as stored: its uid), so it goes with it."""
    import base64

    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "labels": dict(labels), "ownerReferences": [_owner_ref(owner)]},
            "data": {SECRET_KEY: base64.b64encode(launch_json).decode()}}


def render_service(workload: Mapping[str, Any], owner: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The headless Service of an Indexed Job (``tensorflow_operator: false``): each pod gets a DNS name."""
    meta = workload["metadata"]
    selector = {k: v for k, v in meta["labels"].items() if k in (LABEL_SERVER, LABEL_RUN, LABEL_ATTEMPT)}
    out: dict[str, Any] = {"apiVersion": "v1", "kind": "Service",
                           "metadata": {"name": meta["name"], "labels": dict(meta["labels"])},
                           "spec": {"clusterIP": "None", "selector": selector, "publishNotReadyAddresses": True}}
    if owner is not None:
        out["metadata"]["ownerReferences"] = [_owner_ref(owner)]
    return out


def _owner_ref(owner: Mapping[str, Any]) -> dict[str, Any]:
    # No blockOwnerDeletion: setting it needs `update` on the owner's finalizers (the
    # OwnerReferencesPermissionEnforcement admission plugin), a permission the Role need not grant.
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True}


def needs_service(workload: Mapping[str, Any]) -> bool:
    """Whether the workload is an Indexed Job whose pods find each other through a headless Service."""
    return workload.get("kind") == "Job" and workload["spec"].get("completionMode") == "Indexed"

