"""Schema checks of the Kubernetes objects the backend emits, as a real API server would make them.

- built-in kinds (``batch/v1`` Job, ``v1`` Secret, Service, Pod): ``kubernetes-validate`` in strict
  mode (unknown fields are errors) at :data:`KUBE_VERSION`;
- ``TrainJob`` (``trainer.kubeflow.org/v1alpha1``): the Kubeflow Trainer API's pydantic models
  (``kubeflow-trainer-api``), with unknown fields refused (the models ignore them: a round trip
  that loses a key is the error);
- the training-operator v1 kinds (``PyTorchJob``, ``TFJob``, ``XGBoostJob``, ``JAXJob``) and KubeRay's
  ``RayJob``: schemas written here for the fields Runyard sets (no PyPI package ships KubeRay's
  CRDs; ``kubeflow-training``'s models check required fields only), with every pod template checked
  by ``kubernetes-validate`` as a ``PodTemplate``.

:func:`manifest_errors` returns the problems (``[]``: valid); the fake API server answers 422 with
them. These packages are in the ``test`` extra, never needed at run time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["KUBE_VERSION", "RAYJOB_SCHEMA", "V1_SCHEMAS", "manifest_errors"]

#: The Kubernetes version built-in kinds are checked against (kubernetes-validate's schemas).
KUBE_VERSION = "1.33"

_BUILTIN = {("v1", "Secret"), ("v1", "Service"), ("v1", "Pod"), ("batch/v1", "Job"), ("v1", "PodTemplate")}

_META = {"type": "object", "required": ["name"], "properties": {
    "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
    "namespace": {"type": "string"},
    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
    "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
}}
_TEMPLATE = {"type": "object", "required": ["spec"]}  # checked by kubernetes-validate as a PodTemplate

_REPLICA = {"type": "object", "additionalProperties": False, "required": ["replicas", "template"], "properties": {
    "replicas": {"type": "integer", "minimum": 0},
    "restartPolicy": {"enum": ["Always", "OnFailure", "Never", "ExitCode"]},
    "template": _TEMPLATE,
}}
_RUN_POLICY = {"type": "object", "additionalProperties": False, "properties": {
    "backoffLimit": {"type": "integer", "minimum": 0},
    "activeDeadlineSeconds": {"type": "integer", "minimum": 1},
    "cleanPodPolicy": {"enum": ["All", "Running", "None"]},
    "ttlSecondsAfterFinished": {"type": "integer", "minimum": 0},
}}


def _v1_schema(kind: str, spec_key: str, replica_types: list[str]) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "required": ["apiVersion", "kind", "metadata", "spec"],
            "properties": {
                "apiVersion": {"const": "kubeflow.org/v1"}, "kind": {"const": kind}, "metadata": _META,
                "spec": {"type": "object", "additionalProperties": False, "required": [spec_key], "properties": {
                    "runPolicy": _RUN_POLICY,
                    spec_key: {"type": "object", "additionalProperties": False, "minProperties": 1,
                               "properties": {t: _REPLICA for t in replica_types}},
                }},
                "status": {"type": "object"},
            }}


#: The training-operator v1 kinds, for the fields Runyard sets (kubeflow.org/v1).
V1_SCHEMAS: dict[str, dict[str, Any]] = {
    "PyTorchJob": _v1_schema("PyTorchJob", "pytorchReplicaSpecs", ["Master", "Worker"]),
    "TFJob": _v1_schema("TFJob", "tfReplicaSpecs", ["Chief", "Worker", "PS"]),
    "XGBoostJob": _v1_schema("XGBoostJob", "xgbReplicaSpecs", ["Master", "Worker"]),
    "JAXJob": _v1_schema("JAXJob", "jaxReplicaSpecs", ["Worker"]),
}

_GROUP = {"type": "object", "additionalProperties": False, "required": ["rayStartParams", "template"], "properties": {
    "rayStartParams": {"type": "object", "additionalProperties": {"type": "string"}},
    "template": _TEMPLATE,
}}
#: KubeRay's RayJob (ray.io/v1), for the fields Runyard sets.
RAYJOB_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "ray.io/v1"}, "kind": {"const": "RayJob"}, "metadata": _META,
        "spec": {"type": "object", "additionalProperties": False, "required": ["entrypoint", "rayClusterSpec"],
                 "properties": {
                     "entrypoint": {"type": "string", "minLength": 1},
                     "shutdownAfterJobFinishes": {"type": "boolean"},
                     "ttlSecondsAfterFinished": {"type": "integer", "minimum": 0},
                     "activeDeadlineSeconds": {"type": "integer", "minimum": 1},
                     "backoffLimit": {"type": "integer", "minimum": 0},
                     "submissionMode": {"enum": ["K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"]},
                     "rayClusterSpec": {"type": "object", "additionalProperties": False, "required": ["headGroupSpec"],
                                        "properties": {
                                            "rayVersion": {"type": "string"},
                                            "headGroupSpec": _GROUP,
                                            "workerGroupSpecs": {"type": "array", "items": {
                                                **_GROUP, "required": ["groupName", "rayStartParams", "template"],
                                                "properties": {**_GROUP["properties"],
                                                               "groupName": {"type": "string"},
                                                               "replicas": {"type": "integer", "minimum": 0},
                                                               "minReplicas": {"type": "integer", "minimum": 0},
                                                               "maxReplicas": {"type": "integer", "minimum": 0}}}},
                                        }},
                 }},
        "status": {"type": "object"},
    }}


def _path(parts: Any) -> str:
    return ".".join(str(p) for p in parts) or "(top)"


def _builtin_errors(obj: Mapping[str, Any]) -> list[str]:
    import kubernetes_validate

    try:
        kubernetes_validate.validate(dict(obj), KUBE_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        return [f"{_path(e.path)}: {e.message}"]
    return []


def _pod_template_errors(template: Any, where: str) -> list[str]:
    wrapped = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "check"}, "template": template}
    return [f"{where}.{e.removeprefix('template.')}" for e in _builtin_errors(wrapped)]


def _schema_errors(obj: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    return [f"{_path(e.absolute_path)}: {e.message}" for e in sorted(validator.iter_errors(obj), key=str)]


def _lost_keys(sent: Any, kept: Any, at: str = "") -> list[str]:
    """Keys of ``sent`` that a model round trip (``kept``) dropped: fields the schema does not know."""
    if isinstance(sent, Mapping):
        kept = kept if isinstance(kept, Mapping) else {}
        out = []
        for key, value in sent.items():
            where = f"{at}.{key}" if at else str(key)
            if key not in kept:
                out.append(f"{where}: unknown field {key!r}")
            else:
                out += _lost_keys(value, kept[key], where)
        return out
    if isinstance(sent, list):
        kept = kept if isinstance(kept, list) else []
        return [e for i, v in enumerate(sent) for e in _lost_keys(v, kept[i] if i < len(kept) else None, f"{at}.{i}")]
    return []


def _trainjob_errors(obj: Mapping[str, Any]) -> list[str]:
    import pydantic
    from kubeflow_trainer_api.models import TrainerV1alpha1TrainJob

    try:
        model = TrainerV1alpha1TrainJob.from_dict(dict(obj))
    except pydantic.ValidationError as e:
        return [f"{_path(err['loc'])}: {err['msg']}" for err in e.errors()]
    if model is None:
        return ["(top): not an object"]
    return _lost_keys(obj, model.to_dict())


def manifest_errors(obj: Mapping[str, Any]) -> list[str]:
    """What is wrong with ``obj`` as the API server would judge it (``[]``: valid).

    Raises:
        KeyError: a kind this module has no schema for.
    """
    api, kind = obj.get("apiVersion"), obj.get("kind")
    if (api, kind) in _BUILTIN:
        return _builtin_errors(obj)
    if (api, kind) == ("trainer.kubeflow.org/v1alpha1", "TrainJob"):
        return _trainjob_errors(obj)
    if api == "kubeflow.org/v1" and kind in V1_SCHEMAS:
        errors = _schema_errors(obj, V1_SCHEMAS[kind])
        specs = next((v for k, v in (obj.get("spec") or {}).items() if k.endswith("ReplicaSpecs")), {}) or {}
        for rtype, spec in specs.items():
            if isinstance(spec, Mapping) and "template" in spec:
                errors += _pod_template_errors(spec["template"], f"spec.{rtype}.template")
        return errors
    if (api, kind) == ("ray.io/v1", "RayJob"):
        errors = _schema_errors(obj, RAYJOB_SCHEMA)
        cluster = (obj.get("spec") or {}).get("rayClusterSpec") or {}
        groups = [("headGroupSpec", cluster.get("headGroupSpec"))]
        groups += [(f"workerGroupSpecs.{i}", g) for i, g in enumerate(cluster.get("workerGroupSpecs") or [])]
        for where, group in groups:
            if isinstance(group, Mapping) and "template" in group:
                errors += _pod_template_errors(group["template"], f"spec.rayClusterSpec.{where}.template")
        return errors
    raise KeyError(f"no schema for {api} {kind}")
