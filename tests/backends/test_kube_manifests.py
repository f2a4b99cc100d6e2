"""Golden files pin the Kubernetes objects the backend renders (pure functions: no cluster needed), and every
object validates: built-in kinds with kubernetes-validate (strict), TrainJob with the Kubeflow Trainer API
models, the v1 kinds and RayJob with the schemas in runyard.testing.kube_schemas.

To accept an intended change, regenerate the files and review the diff:

    RUNYARD_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/backends/test_kube_manifests.py
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from runyard.backends.base import Resources, RunLaunch
from runyard.backends.kubernetes import (
    KubernetesBackendOptions,
    render_secret,
    render_service,
    render_workload,
    workload_kind,
)
from runyard.errors import SpecError
from runyard.launch import task_slots
from runyard.launch._frameworks import RoleRequest, TaskResources, distributed_launch

pytest.importorskip("kubernetes_validate")
pytest.importorskip("kubeflow_trainer_api")

from runyard.testing.golden import check_golden
from runyard.testing.kube_schemas import manifest_errors  # noqa: E402 - after the skips: needs the test extra

GOLDEN = Path(__file__).parent / "golden"
SID = "lab-a"
IMAGE = {"image": "ghcr.io/acme/digits:1.4", "roles": {}, "build": None}


def _launch(**kwargs: Any) -> RunLaunch:
    fields = {"run_id": 42, "attempt": 1, "project": "digits", "experiment_id": 7, "command": "python train.py --lr 0.1",
              "snapshot_id": "abc", "server_url": "http://runyard.runyard.svc:8765", "container": IMAGE,
              "resources": Resources(cpus=2, memory_mb=4096), "time_limit_s": 1800}
    fields.update(kwargs)
    return RunLaunch(**fields)


def _distributed(framework: str, roles: dict[str, RoleRequest], per_task: TaskResources, **kwargs: Any) -> RunLaunch:
    desc = distributed_launch(framework, roles, per_task)
    return _launch(distributed=desc, tasks=task_slots(desc), **kwargs)


GPU_OPTIONS = KubernetesBackendOptions.model_validate({
    "namespace": "ml-runs", "service_account": "runyard-runs", "node_selector": {"pool": "a100"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "priority_class": "research", "image_pull_secrets": ["regcred"], "labels": {"team": "vision"},
    "annotations": {"owner": "ml-team"}, "image_pull_policy": "IfNotPresent"})
PLAIN = KubernetesBackendOptions()
V1 = KubernetesBackendOptions(training_api="training-operator-v1")
GPU4 = TaskResources(8, 32000, 4)

CASES: dict[str, tuple[RunLaunch, KubernetesBackendOptions]] = {
    "single": (_launch(), PLAIN),
    "gpu": (_launch(resources=Resources(cpus=8, memory_mb=32000, gpus=2), time_limit_s=None), GPU_OPTIONS),
    "pip_runner": (_launch(resources=Resources(cpus=0.5)), KubernetesBackendOptions(runner_install="pip",
                                                                                    python="/usr/local/bin/python")),
    "trainjob_pytorch": (_distributed("pytorch", {"worker": RoleRequest(replicas=3)}, GPU4), GPU_OPTIONS),
    "trainjob_jax": (_distributed("jax", {"worker": RoleRequest(replicas=2)}, TaskResources(4, 8000, 0)), PLAIN),
    "trainjob_xgboost": (_distributed("xgboost", {"worker": RoleRequest(replicas=2)}, TaskResources(2, 4000, 0)),
                         KubernetesBackendOptions(runtimes={"xgboost": "xgboost-distributed-cpu"})),
    "pytorchjob": (_distributed("pytorch", {"worker": RoleRequest(replicas=3)}, GPU4), V1),
    "jaxjob": (_distributed("jax", {"worker": RoleRequest(replicas=2)}, TaskResources(4, 8000, 0)), V1),
    "xgboostjob": (_distributed("xgboost", {"worker": RoleRequest(replicas=2)}, TaskResources(2, 4000, 0)), V1),
    "tfjob": (_distributed("tensorflow", {"worker": RoleRequest(replicas=2), "ps": RoleRequest(replicas=1)},
                           TaskResources(4, 8000, 0)), V1),
    "tf_indexed_job": (_distributed("tensorflow", {"worker": RoleRequest(replicas=2)}, TaskResources(4, 8000, 0)),
                       KubernetesBackendOptions(tensorflow_operator=False)),
    "rayjob": (_distributed("ray", {"worker": RoleRequest(replicas=2)}, TaskResources(4, 8000, 1)), GPU_OPTIONS),
}


def _render(case: str) -> dict[str, Any]:
    launch, options = CASES[case]
    return render_workload(launch, options, server_id=SID, version="0.1.0")


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendered_object_matches_its_golden_file(case: str) -> None:
    obj = _render(case)
    assert _render(case) == obj  # pure: same input, same object
    text = json.dumps(obj, indent=2, sort_keys=True) + "\n"
    check_golden(GOLDEN / f"kube_{case}.json", text, f"The Kubernetes object for {case!r}", __file__)


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_rendered_object_validates(case: str) -> None:
    obj = _render(case)
    assert manifest_errors(obj) == [], obj
    stored = {**obj, "metadata": {**obj["metadata"], "uid": "0b6f7c1e-1111-2222-3333-444455556666"}}
    secret = render_secret(obj["metadata"]["name"], b'{"run_id": 42}', obj["metadata"]["labels"], stored)
    assert manifest_errors(secret) == []
    assert manifest_errors(render_service(obj, stored)) == []


def test_the_kind_follows_the_framework_and_the_options() -> None:
    kinds = {case: _render(case)["kind"] for case in CASES}
    assert kinds == {"single": "Job", "gpu": "Job", "pip_runner": "Job", "trainjob_pytorch": "TrainJob",
                     "trainjob_jax": "TrainJob", "trainjob_xgboost": "TrainJob", "pytorchjob": "PyTorchJob",
                     "jaxjob": "JAXJob", "xgboostjob": "XGBoostJob", "tfjob": "TFJob", "tf_indexed_job": "Job",
                     "rayjob": "RayJob"}
    assert workload_kind(CASES["tfjob"][0], PLAIN) == "TFJob"  # TensorFlow is not in Trainer v2: the v1 TFJob


def test_resources_map_to_requests_and_limits() -> None:
    job = _render("gpu")
    res = job["spec"]["template"]["spec"]["containers"][0]["resources"]
    # GPUs are an extended resource: requests must equal limits.
    assert res == {"requests": {"cpu": "8", "memory": "32000Mi", "nvidia.com/gpu": "2"},
                   "limits": {"cpu": "8", "memory": "32000Mi", "nvidia.com/gpu": "2"}}
    amd = render_workload(CASES["gpu"][0], GPU_OPTIONS.model_copy(update={"gpu_resource": "amd.com/gpu"}),
                          server_id=SID, version="0.1.0")
    assert amd["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["amd.com/gpu"] == "2"
    half = _render("pip_runner")["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert half["requests"] == {"cpu": "500m"}


def test_a_job_never_retries_and_carries_the_attempt() -> None:
    job = _render("single")
    # Restarts are Runyard's (max_restarts), so Kubernetes must not retry a pod.
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    # The cluster's backstop comes a margin after the runner's own time limit.
    assert job["spec"]["activeDeadlineSeconds"] == 1800 + 60
    labels = job["metadata"]["labels"]
    assert labels["runyard.dev/run"] == "42" and labels["runyard.dev/attempt"] == "1"
    assert labels["runyard.dev/server"] == SID and job["metadata"]["name"] == "ry-lab-a-42-1"
    second = render_workload(_launch(attempt=2), PLAIN, server_id=SID, version="0.1.0")
    assert second["metadata"]["name"] == "ry-lab-a-42-2"


def test_the_token_is_only_in_the_secret() -> None:
    for case in CASES:
        text = json.dumps(_render(case))
        assert "RUNYARD_TOKEN" not in text and "secretKeyRef" in text, case


def test_a_schema_error_is_found_in_each_kind() -> None:
    job = _render("single")
    bad = copy.deepcopy(job)
    bad["spec"]["template"]["spec"]["containers"][0]["bogus"] = 1
    assert any("bogus" in e for e in manifest_errors(bad))
    train = copy.deepcopy(_render("trainjob_pytorch"))
    train["spec"]["trainer"]["numNode"] = 2
    assert any("numNode" in e for e in manifest_errors(train))
    ray = copy.deepcopy(_render("rayjob"))
    ray["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "x"
    assert any("imagePullPolicyy" in e for e in manifest_errors(ray))
    tf = copy.deepcopy(_render("tfjob"))
    tf["spec"]["tfReplicaSpecs"]["Evaluator"] = tf["spec"]["tfReplicaSpecs"]["PS"]
    assert any("Evaluator" in e for e in manifest_errors(tf))


def test_bad_options_name_the_rule_and_the_fix() -> None:
    from runyard.backends.kubernetes import KubernetesBackend

    with pytest.raises(SpecError, match="namespace"):
        KubernetesBackend({"namespace": "ML_Runs"})
    with pytest.raises(SpecError, match="gpu_resource"):
        KubernetesBackend({"gpu_resource": "gpu"})
    with pytest.raises(SpecError, match="reach_server"):
        KubernetesBackend({"reach_server": False})
    with pytest.raises(SpecError, match="namespce"):
        KubernetesBackend({"namespce": "x"})
