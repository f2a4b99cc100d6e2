"""Kubernetes objects and their pods → Runyard's ``EngineState``: pure functions, one table.

- SUCCEEDED (exit 0): Job ``Complete`` (or ``SuccessCriteriaMet``), TrainJob ``Complete``, v1 kinds
  ``Succeeded``, RayJob ``jobStatus: SUCCEEDED``.
- TIMEOUT: ``Failed`` with reason (or message) ``DeadlineExceeded`` ("TIMEOUT: DeadlineExceeded: ...");
  RayJob ``reason: DeadlineExceeded``.
- FAILED: ``Failed``, explained by the pods: a container ``OOMKilled`` ("OOMKilled: ... raise
  resources.memory", exit 137), a pod ``Evicted`` ("Evicted: ..."; the cluster's fault: a restart
  helps), a container's exit code ("exit code N"); else the condition's reason and message.
- CANCELED: the object is being deleted (``deletionTimestamp``); RayJob ``jobStatus: STOPPED``.
- PENDING: ``Suspended``; no end yet and no pod running, with the pods' reason: ``Unschedulable``
  (and the scheduler's message), ``ImagePullBackOff``, ``ErrImagePull``, ``CreateContainerConfigError``
  ... ("pending: Unschedulable: 0/3 nodes are available: ..."), "pending: no pod yet".
- RUNNING: no end yet and a pod ``Running``; RayJob ``jobDeploymentStatus: Running`` with the job running.
- UNKNOWN: a RayJob status Runyard does not know, the raw status kept.

Restart policy: the scheduler restarts a FAILED run while its attempts are below
``max_restarts``; an eviction or a node lost is the cluster's fault, not the code's, and says so.
A Job never retries by itself (``backoffLimit: 0``): each attempt is a new object.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from runyard.backends.base import EngineState, EngineStatus, Resources

__all__ = ["PENDING_REASONS", "map_object", "node_shape", "parse_quantity", "pod_problem"]

#: Why a pod waits, as the kubelet and scheduler say it (container waiting reasons, PodScheduled reasons).
PENDING_REASONS = ("Unschedulable", "ImagePullBackOff", "ErrImagePull", "InvalidImageName", "CreateContainerConfigError",
                   "CreateContainerError", "ContainerCreating", "PodInitializing", "SchedulingGated")
_HINTS = {
    "Unschedulable": "no node has the resources or labels asked for",
    "ImagePullBackOff": "the image cannot be pulled; check its name and image_pull_secrets",
    "ErrImagePull": "the image cannot be pulled; check its name and image_pull_secrets",
    "InvalidImageName": "the image name is not valid",
    "CreateContainerConfigError": "a Secret or ConfigMap the pod needs is missing",
}


def _conditions(obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("status") == "True"]


def _cond(obj: Mapping[str, Any], *types: str) -> Mapping[str, Any] | None:
    return next((c for c in _conditions(obj) if c.get("type") in types), None)


def _raw(obj: Mapping[str, Any]) -> str:
    status = obj.get("status") or {}
    return json.dumps({k: status[k] for k in ("conditions", "jobStatus", "jobDeploymentStatus", "reason") if k in status},
                      sort_keys=True)[:500]


def _terminated(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    out = []
    for cs in statuses:
        state = cs.get("state") or {}
        term = state.get("terminated") or (cs.get("lastState") or {}).get("terminated")
        if term:
            out.append(term)
    return out


def pod_problem(pods: Sequence[Mapping[str, Any]]) -> EngineState | None:
    """A failure the pods explain (OOMKilled, Evicted, a non-zero exit), or ``None``."""
    for pod in pods:
        status = pod.get("status") or {}
        if status.get("reason") == "Evicted":
            return EngineState(EngineStatus.FAILED, None, "Evicted: " + (status.get("message") or "the node ran short of "
                               "resources") + "; the run is restarted if max_restarts allows", "Evicted")
        for term in _terminated(pod):
            if term.get("reason") == "OOMKilled":
                return EngineState(EngineStatus.FAILED, term.get("exitCode", 137),
                                   "OOMKilled: the task used more memory than its limit; raise resources.memory",
                                   "OOMKilled")
    for pod in pods:
        for term in _terminated(pod):
            code = term.get("exitCode")
            if code:
                return EngineState(EngineStatus.FAILED, int(code), f"exit code {code}", term.get("reason") or "Error")
    return None


def _pending_reason(pods: Sequence[Mapping[str, Any]]) -> str:
    for pod in pods:
        status = pod.get("status") or {}
        for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
            waiting = (cs.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason")
            if reason and reason not in ("ContainerCreating", "PodInitializing"):
                message = waiting.get("message") or _HINTS.get(reason, "")
                return f"pending: {reason}" + (f": {message}" if message else "")
        for cond in status.get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
                reason = cond.get("reason") or "Unschedulable"
                message = cond.get("message") or _HINTS.get(reason, "")
                return f"pending: {reason}" + (f": {message}" if message else "")
    if any((p.get("status") or {}).get("phase") == "Pending" for p in pods):
        return "pending: ContainerCreating"
    return "pending: no pod yet"


def _running_or_pending(obj: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> EngineState:
    live = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    if any((p.get("status") or {}).get("phase") == "Running" for p in live):
        return EngineState(EngineStatus.RUNNING, None, "", _raw(obj))
    if live and all((p.get("status") or {}).get("phase") in ("Succeeded", "Failed") for p in live):
        problem = pod_problem(live)
        if problem is not None and problem.status is EngineStatus.FAILED and \
                any((p.get("status") or {}).get("phase") == "Failed" for p in live):
            return EngineState(EngineStatus.RUNNING, None, "ending: " + problem.reason, _raw(obj))
        return EngineState(EngineStatus.RUNNING, None, "ending", _raw(obj))
    return EngineState(EngineStatus.PENDING, None, _pending_reason(live), _raw(obj))


def _failed(obj: Mapping[str, Any], cond: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> EngineState:
    reason, message = cond.get("reason") or "", cond.get("message") or ""
    if "DeadlineExceeded" in reason or "DeadlineExceeded" in message:
        return EngineState(EngineStatus.TIMEOUT, None, f"TIMEOUT: DeadlineExceeded: {message or 'the time limit passed'}",
                           _raw(obj))
    problem = pod_problem(pods)
    if problem is not None:
        return EngineState(problem.status, problem.exit_code, problem.reason, _raw(obj))
    text = f"{reason}: {message}" if message else reason or "failed"
    return EngineState(EngineStatus.FAILED, None, text, _raw(obj))


def map_object(obj: Mapping[str, Any], pods: Sequence[Mapping[str, Any]] = ()) -> EngineState:
    """One workload object (Job, TrainJob, a v1 kind, RayJob) with its pods, as an ``EngineState``."""
    kind = obj.get("kind")
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        return EngineState(EngineStatus.CANCELED, None, "canceled: the object is being deleted", _raw(obj))
    if kind == "RayJob":
        return _map_rayjob(obj, pods)
    done = _cond(obj, "Complete", "Succeeded", "SuccessCriteriaMet")
    if done is not None:
        return EngineState(EngineStatus.SUCCEEDED, 0, "", _raw(obj))
    failed = _cond(obj, "Failed")
    if failed is not None:
        return _failed(obj, failed, pods)
    if _cond(obj, "FailureTarget") is not None:  # the Job controller is stopping the pods; Failed follows
        return EngineState(EngineStatus.RUNNING, None, "ending: " + (_cond(obj, "FailureTarget") or {}).get("reason", ""),
                           _raw(obj))
    if _cond(obj, "Suspended") is not None or (obj.get("spec") or {}).get("suspend"):
        return EngineState(EngineStatus.PENDING, None, "pending: suspended", _raw(obj))
    return _running_or_pending(obj, pods)


def _map_rayjob(obj: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> EngineState:
    status = obj.get("status") or {}
    deploy = status.get("jobDeploymentStatus") or ""
    job = status.get("jobStatus") or ""
    reason, message = status.get("reason") or "", status.get("message") or ""
    raw = _raw(obj)
    if job == "SUCCEEDED" and deploy in ("Complete", ""):
        return EngineState(EngineStatus.SUCCEEDED, 0, "", raw)
    if job == "STOPPED":
        return EngineState(EngineStatus.CANCELED, None, "stopped: the Ray job was stopped", raw)
    if deploy == "Failed" or job == "FAILED":
        if reason == "DeadlineExceeded":
            return EngineState(EngineStatus.TIMEOUT, None, f"TIMEOUT: DeadlineExceeded: {message or 'the time limit passed'}",
                               raw)
        problem = pod_problem(pods)
        if problem is not None:
            return EngineState(problem.status, problem.exit_code, problem.reason, raw)
        return EngineState(EngineStatus.FAILED, None, f"{reason or 'failed'}: {message}" if message else reason or "failed",
                           raw)
    if deploy in ("Suspended", "Suspending"):
        return EngineState(EngineStatus.PENDING, None, "pending: suspended", raw)
    if deploy in ("", "New", "Initializing", "Waiting", "Retrying"):
        return EngineState(EngineStatus.PENDING, None, _pending_reason(pods) if pods else "pending: starting the Ray cluster",
                           raw)
    if deploy in ("Running", "Complete"):
        if job in ("", "NEW", "PENDING"):
            return EngineState(EngineStatus.PENDING, None, "pending: the Ray job is not running yet", raw)
        return EngineState(EngineStatus.RUNNING, None, "", raw)
    return EngineState(EngineStatus.UNKNOWN, None, f"RayJob status {deploy!r}/{job!r} is not known to Runyard", raw)


_SUFFIXES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
             "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}


def parse_quantity(text: str | int | float) -> float:
    """A Kubernetes quantity (``"3500m"``, ``"128Gi"``, ``"1e9"``, ``4``) as a number.

    Raises:
        ValueError: not a quantity.
    """
    value = str(text).strip()
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if value.endswith(suffix) and not value.endswith("e" + suffix):
            return float(value[: -len(suffix)]) * _SUFFIXES[suffix]
    return float(value)


def node_shape(node: Mapping[str, Any], gpu_resource: str) -> Resources:
    """A node's allocatable CPUs, memory (MB) and ``gpu_resource`` count; an unreadable amount counts as 0."""
    alloc = (node.get("status") or {}).get("allocatable") or {}

    def amount(key: str) -> float:
        try:
            return parse_quantity(alloc.get(key, 0))
        except ValueError:
            return 0.0

    return Resources(amount("cpu"), int(amount("memory") // 2**20), int(amount(gpu_resource)))
