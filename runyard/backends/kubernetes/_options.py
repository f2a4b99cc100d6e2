"""The Kubernetes backend's settings: one entry of ``backends.yml`` with ``type: kubernetes``."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from runyard.backends._images import ContainerOptions
from runyard.backends.options import rule as _rule

__all__ = ["KubernetesBackendOptions"]

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_RESOURCE_NAME = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$")




class Toleration(BaseModel):
    """One pod toleration, as Kubernetes spells it."""

    model_config = ConfigDict(extra="forbid", strict=True)

    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    tolerationSeconds: int | None = None  # noqa: N815 - Kubernetes' own field name


class _KubernetesBackendOptionsOwn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    kubeconfig: str | None = Field(None, **_rule(
        "a kubeconfig file path", "Give e.g. kubeconfig: ~/.kube/config, or set in_cluster: true on a server that "
        "runs in a pod.", "$KUBECONFIG or ~/.kube/config"))
    context: str | None = Field(None, **_rule("a context of the kubeconfig", "Use a name `kubectl config get-contexts` "
                                                                             "lists.", "the kubeconfig's current context"))
    in_cluster: bool = Field(False, **_rule(
        "true or false: use the service account of the pod the server runs in",
        "Set in_cluster: true only when the Runyard server itself runs in the cluster.", "false"))
    namespace: str = Field("default", **_rule("a namespace name (a DNS label)", "Use a namespace `kubectl get ns` lists, "
                                                                                "e.g. namespace: ml-runs.", "default"))
    image: str | None = Field(None, **_rule(
        "the image runs use when their runyard.yml names none; it must provide Python with runyard installed",
        "Give e.g. image: ghcr.io/acme/runyard-runner:0.9 (docs/backends.md, Kubernetes).", "none: runs must name one"))
    image_pull_secrets: list[str] = Field(default_factory=list, **_rule(
        "a list of Secret names in the namespace", "Create one with `kubectl create secret docker-registry NAME ...`.", "[]"))
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = Field(None, **_rule(
        "Always, IfNotPresent or Never", "Write e.g. image_pull_policy: IfNotPresent.", "Kubernetes' default"))
    service_account: str | None = Field(None, **_rule(
        "a ServiceAccount name in the namespace, the one the run's pods run as",
        "Create it with `kubectl create serviceaccount NAME -n NAMESPACE`.", "the namespace's default"))
    node_selector: dict[str, str] = Field(default_factory=dict, **_rule(
        "a mapping of node labels", "Write e.g. node_selector: {nvidia.com/gpu.present: 'true'}.", "{}"))
    tolerations: list[Toleration] = Field(default_factory=list, **_rule(
        "a list of tolerations (key, operator, value, effect)",
        "Write e.g. tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}].", "[]"))
    priority_class: str | None = Field(None, **_rule("a PriorityClass name", "Use one `kubectl get priorityclass` lists.",
                                                     "none"))
    gpu_resource: str = Field("nvidia.com/gpu", **_rule(
        "the extended resource name GPUs are requested as", "Write e.g. gpu_resource: amd.com/gpu.", "nvidia.com/gpu"))
    labels: dict[str, str] = Field(default_factory=dict, **_rule(
        "a mapping of labels added to every object", "Write e.g. labels: {team: vision}.", "{}"))
    annotations: dict[str, str] = Field(default_factory=dict, **_rule(
        "a mapping of annotations added to every object", "Write e.g. annotations: {owner: ml-team}.", "{}"))
    reach_server: bool = Field(True, **_rule(
        "true: pods reach the server over the network",
        "Pods must reach the server (set server_url to the address they see); reach_server: false is not supported "
        "on Kubernetes.", "true"))
    server_url: str | None = Field(None, **_rule(
        "the server's URL as pods reach it, e.g. http://runyard.runyard.svc:8765",
        "Give an http:// or https:// URL.", "the server's own URL"))
    server_id: str | None = Field(None, **_rule(
        "a short name for this Runyard server (a label value): objects carry it, a restarted server adopts its own",
        "Write e.g. server_id: lab-a; give each server sharing a namespace its own.", "a hash of the server's URL"))
    python: str = Field("python3", **_rule(
        "the Python in the image (a command or a path)", "Write e.g. python: /opt/conda/bin/python.", "python3"))
    runner_install: Literal["image", "pip"] = Field("image", **_rule(
        "image: the image has runyard installed; pip: an init container pip-installs this server's runyard version "
        "into the pod", "Write runner_install: pip for images without runyard (pods then need PyPI or a mirror).",
        "image"))
    training_api: Literal["trainer-v2", "training-operator-v1"] = Field("trainer-v2", **_rule(
        "trainer-v2 (Kubeflow Trainer TrainJob) or training-operator-v1 (PyTorchJob, TFJob, XGBoostJob, JAXJob)",
        "Write training_api: training-operator-v1 on clusters still on the v1 kinds.", "trainer-v2"))
    tensorflow_operator: bool = Field(True, **_rule(
        "true: TensorFlow runs become TFJobs (training-operator v1); false: an Indexed Job and a headless Service",
        "Write tensorflow_operator: false on clusters without the training operator.", "true"))
    runtimes: dict[str, str] = Field(default_factory=dict, **_rule(
        "a mapping framework → ClusterTrainingRuntime name, for TrainJobs",
        "Write e.g. runtimes: {pytorch: torch-distributed-gpu}.",
        "pytorch: torch-distributed, jax: jax-distributed, xgboost: xgboost-distributed"))
    ttl_after_finished_s: int | None = Field(3600, ge=0, **_rule(
        "seconds Kubernetes keeps a finished Job (ttlSecondsAfterFinished), or null to keep it",
        "Write e.g. ttl_after_finished_s: 3600.", "3600"))
    time_margin_s: int = Field(60, ge=0, **_rule(
        "seconds added to a run's time_limit for activeDeadlineSeconds (the runner stops the task at the limit)",
        "Write e.g. time_margin_s: 60.", "60"))
    watch_timeout_s: int = Field(300, ge=1, le=3600, **_rule(
        "seconds each watch request lasts before it is renewed (timeoutSeconds)", "Write e.g. watch_timeout_s: 300.",
        "300"))
    request_timeout_s: float = Field(30.0, gt=0, **_rule("seconds for one API request", "Write e.g. request_timeout_s: 30.",
                                                         "30"))

    @field_validator("namespace")
    @classmethod
    def _check_namespace(cls, value: str) -> str:
        if not _DNS_LABEL.match(value):
            raise ValueError("not a DNS label (lower-case letters, digits and '-', at most 63)")
        return value

    @field_validator("image_pull_secrets")
    @classmethod
    def _check_secrets(cls, value: list[str]) -> list[str]:
        for name in value:
            if not re.match(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", name):
                raise ValueError(f"{name!r} is not a Secret name")
        return value

    @field_validator("labels", "node_selector")
    @classmethod
    def _check_labels(cls, value: dict[str, str]) -> dict[str, str]:
        for k, v in value.items():
            if not _LABEL_KEY.match(k):
                raise ValueError(f"{k!r} is not a label key")
            if not _LABEL_VALUE.match(v):
                raise ValueError(f"{v!r} (of {k!r}) is not a label value (at most 63 letters, digits, '-', '_', '.')")
        return value

    @field_validator("gpu_resource")
    @classmethod
    def _check_gpu(cls, value: str) -> str:
        if not _RESOURCE_NAME.match(value) or "/" not in value:
            raise ValueError("not an extended resource name such as nvidia.com/gpu")
        return value

    @field_validator("server_id")
    @classmethod
    def _check_server_id(cls, value: str | None) -> str | None:
        if value is not None and (not _DNS_LABEL.match(value) or len(value) > 20):
            raise ValueError("not a short DNS label (at most 20 lower-case letters, digits and '-')")
        return value

    @field_validator("server_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("not an http(s) URL")
        return value

    @field_validator("runtimes")
    @classmethod
    def _check_runtimes(cls, value: dict[str, str]) -> dict[str, str]:
        for k in value:
            if k not in ("pytorch", "jax", "xgboost"):
                raise ValueError(f"{k!r} has no TrainJob runtime (pytorch, jax, xgboost have)")
        return value

    @model_validator(mode="after")
    def _check_together(self) -> _KubernetesBackendOptionsOwn:
        if self.in_cluster and (self.kubeconfig or self.context):
            raise ValueError("in_cluster: true takes no kubeconfig or context")
        if not self.reach_server:
            raise ValueError("reach_server: false is not supported: pods report to the server over the network "
                             "(set server_url to the address pods reach the server at)")
        return self


class KubernetesBackendOptions(ContainerOptions, _KubernetesBackendOptionsOwn):
    """Settings of one Kubernetes backend. ``container_runtime`` & co. (docs/containers.md) do not apply: the
    cluster's runtime runs the pod; ``require_image`` makes no difference (every run has an image here)."""

    model_config = ConfigDict(extra="forbid", strict=True)
