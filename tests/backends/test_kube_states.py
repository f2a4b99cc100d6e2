"""Kubernetes objects and pods → Runyard's engine states (pure functions; no API server)."""

from __future__ import annotations

from typing import Any

import pytest

from runyard.backends.base import EngineStatus
from runyard.backends.kubernetes import map_object


def _obj(kind: str, status: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": "ry-x-1-1", **meta}, "spec": {}, "status": status or {}}


def _cond(type_: str, reason: str = "", message: str = "", status: str = "True") -> dict[str, Any]:
    return {"conditions": [{"type": type_, "status": status, "reason": reason, "message": message}]}


RUNNING_POD = {"metadata": {"name": "p"}, "status": {"phase": "Running"}}


@pytest.mark.parametrize(("kind", "status", "expected"), [
    ("Job", _cond("Complete", "CompletionsReached"), EngineStatus.SUCCEEDED),
    ("Job", _cond("SuccessCriteriaMet", "CompletionsReached"), EngineStatus.SUCCEEDED),
    ("Job", _cond("Failed", "BackoffLimitExceeded"), EngineStatus.FAILED),
    ("Job", _cond("Failed", "DeadlineExceeded"), EngineStatus.TIMEOUT),
    ("Job", _cond("Suspended"), EngineStatus.PENDING),
    ("Job", _cond("Complete", status="False"), EngineStatus.PENDING),  # a False condition says nothing
    ("TrainJob", _cond("Complete", "JobsCompleted"), EngineStatus.SUCCEEDED),
    ("TrainJob", _cond("Failed", "JobsFailed", "jobset failed"), EngineStatus.FAILED),
    ("TrainJob", _cond("Failed", "DeadlineExceeded"), EngineStatus.TIMEOUT),
    ("TrainJob", _cond("Suspended", "Suspended"), EngineStatus.PENDING),
    ("PyTorchJob", _cond("Succeeded", "PyTorchJobSucceeded"), EngineStatus.SUCCEEDED),
    ("TFJob", _cond("Failed", "TFJobFailed", "TFJob default/x has failed"), EngineStatus.FAILED),
    ("XGBoostJob", _cond("Failed", "DeadlineExceeded", "XGBoostJob x has failed because it has reached the deadline"),
     EngineStatus.TIMEOUT),
    ("JAXJob", _cond("Created", "JAXJobCreated"), EngineStatus.PENDING),
    ("RayJob", {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}, EngineStatus.SUCCEEDED),
    ("RayJob", {"jobDeploymentStatus": "Failed", "jobStatus": "FAILED", "reason": "AppFailed"}, EngineStatus.FAILED),
    ("RayJob", {"jobDeploymentStatus": "Failed", "reason": "DeadlineExceeded", "message": "over"}, EngineStatus.TIMEOUT),
    ("RayJob", {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"}, EngineStatus.RUNNING),
    ("RayJob", {"jobDeploymentStatus": "Running", "jobStatus": "PENDING"}, EngineStatus.PENDING),
    ("RayJob", {"jobDeploymentStatus": "Initializing"}, EngineStatus.PENDING),
    ("RayJob", {"jobDeploymentStatus": "Complete", "jobStatus": "STOPPED"}, EngineStatus.CANCELED),
    ("RayJob", {"jobDeploymentStatus": "Suspended"}, EngineStatus.PENDING),
    ("RayJob", {"jobDeploymentStatus": "Exploded"}, EngineStatus.UNKNOWN),
])
def test_conditions_map_to_engine_states(kind: str, status: dict[str, Any], expected: EngineStatus) -> None:
    state = map_object(_obj(kind, status))
    assert state.status is expected, state
    if expected is EngineStatus.TIMEOUT:
        assert state.reason.startswith("TIMEOUT: DeadlineExceeded")
    if expected is EngineStatus.UNKNOWN:
        assert "Exploded" in state.reason and "Exploded" in state.raw


def test_an_object_with_a_running_pod_is_running_and_one_being_deleted_is_canceled() -> None:
    assert map_object(_obj("TrainJob", _cond("Created")), [RUNNING_POD]).status is EngineStatus.RUNNING
    deleting = _obj("Job", {}, deletionTimestamp="2026-01-01T00:00:00Z")
    assert map_object(deleting, [RUNNING_POD]).status is EngineStatus.CANCELED


def test_pod_reasons_explain_a_failure_and_a_wait() -> None:
    oom = {"metadata": {"name": "p"}, "status": {"phase": "Failed", "containerStatuses": [
        {"name": "main", "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}}
    state = map_object(_obj("PyTorchJob", _cond("Failed", "PyTorchJobFailed")), [RUNNING_POD, oom])
    assert (state.status, state.exit_code) == (EngineStatus.FAILED, 137) and state.reason.startswith("OOMKilled")
    gated = {"metadata": {"name": "p"}, "status": {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": ""}]}}
    state = map_object(_obj("Job"), [gated])
    assert state.reason == "pending: Unschedulable: no node has the resources or labels asked for"
    config = {"metadata": {"name": "p"}, "status": {"phase": "Pending", "containerStatuses": [
        {"name": "main", "state": {"waiting": {"reason": "CreateContainerConfigError"}}}]}}
    assert map_object(_obj("Job"), [config]).reason.startswith("pending: CreateContainerConfigError: a Secret")
    assert map_object(_obj("Job")).reason == "pending: no pod yet"


@pytest.mark.parametrize(("text", "value"), [("3500m", 3.5), ("2", 2.0), (4, 4.0), ("128Gi", 128 * 2**30),
                                             ("131072Ki", 2**27), ("1e9", 1e9), ("500M", 5e8)])
def test_quantities(text: str | int, value: float) -> None:
    from runyard.backends.kubernetes._states import parse_quantity

    assert parse_quantity(text) == value
