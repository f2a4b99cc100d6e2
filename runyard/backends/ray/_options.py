"""The Ray backend's settings: one entry of ``backends.yml`` with ``type: ray``."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from runyard.backends.options import rule as _rule

__all__ = ["RayBackendOptions", "RayRuntimeEnv"]

_PREFIX_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")
_RESOURCE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:/-]*$")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Ray's own resource names: they have their own entrypoint_* settings (or none), not a custom resource.
_BUILTIN_RESOURCES = {"CPU", "GPU", "memory", "object_store_memory"}




class RayRuntimeEnv(BaseModel):
    """The runtime environment every job of the backend gets (Ray's ``runtime_env``), without ``working_dir``.

    ``working_dir`` is the backend's own: it carries the launch file (and, with
    ``snapshot: working_dir``, the run's code). Other code reaches the jobs through ``py_modules``.
    """

    model_config = ConfigDict(extra="forbid")

    pip: list[str] | None = Field(None, description="pip requirements installed into a virtualenv per job (default: none)")
    uv: list[str] | None = Field(None, description="requirements installed with uv (default: none)")
    conda: str | dict[str, Any] | None = Field(None, description="a conda environment name or an environment.yml mapping (default: none)")
    env_vars: dict[str, str] = Field(default_factory=dict, description="variables set in every job")
    py_modules: list[str] | None = Field(None, description="local directories or remote URIs importable in the jobs (default: none)")
    config: dict[str, Any] | None = Field(None, description="Ray's runtime_env config, e.g. {setup_timeout_seconds: 1200} (default: none)")

    @field_validator("env_vars")
    @classmethod
    def _check_env(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _ENV_NAME_RE.match(name):
                raise ValueError(f"the name {name!r} is not an environment variable name")
            if name.startswith("RUNYARD_"):
                raise ValueError(f"the variable {name} is Runyard's own; jobs get it from their launch")
        return value

    @model_validator(mode="after")
    def _one_environment(self) -> RayRuntimeEnv:
        given = [k for k in ("pip", "uv", "conda") if getattr(self, k)]
        if len(given) > 1:
            raise ValueError(f"it sets {' and '.join(given)}; Ray takes one of pip, uv and conda")
        return self

    def to_ray(self) -> dict[str, Any]:
        """As Ray's ``runtime_env`` takes it (unset keys left out)."""
        return {k: v for k, v in self.model_dump().items() if v not in (None, {}, [])}


class RayBackendOptions(BaseModel):
    """Settings of one Ray backend. Every field's ``rule`` and ``fix`` feed the error messages."""

    model_config = ConfigDict(extra="forbid")

    address: str = Field(..., **_rule(
        "the Ray dashboard's URL, http://HOST:8265 (the Jobs API)",
        "Give the address `ray status` or the head node's log prints, e.g. address: http://ray-head:8265."))
    token: str | None = Field(None, **_rule(
        "the cluster's token (Ray's token authentication, RAY_AUTH_TOKEN)",
        "Give the token the cluster was started with, or use token_file.", "none"))
    token_file: str | None = Field(None, **_rule(
        "the path of a file holding the cluster's token, e.g. ~/.ray/auth_token",
        "Give a file this server's account can read (mode 600).", "none"))
    headers: dict[str, str] = Field(default_factory=dict, **_rule(
        "a mapping of HTTP headers sent to the dashboard, e.g. {X-Proxy-Key: abc}",
        "Give header names and values as strings.", "{}"))
    python: str | None = Field(None, **_rule(
        "the Python on the cluster's nodes that imports runyard: an absolute path, or a command",
        "Give e.g. python: /opt/venvs/runyard/bin/python (a job's PATH is the one `ray start` had).",
        "python3; python with a pip, uv or conda runtime_env"))
    runtime_env: RayRuntimeEnv = Field(default_factory=RayRuntimeEnv, json_schema_extra={
        "fix": "Give a mapping of pip, uv, conda, env_vars, py_modules and config (Ray's runtime_env); working_dir is "
               "the backend's own (docs/backends.md, Ray).", "default": "{}"})
    snapshot: Literal["fetch", "working_dir"] = Field("fetch", **_rule(
        "fetch (the runner fetches the run's code from the server) or working_dir (the server sends it with the job "
        "as Ray's working_dir)", "Use snapshot: fetch unless the cluster should not download code from the server.",
        "fetch"))
    reach_server: bool = Field(True, **_rule(
        "true: the cluster's nodes reach the server (the runner reports over HTTP)",
        "The Ray backend needs the nodes to reach the server; set server_url to the address they reach it at.", "true"))
    server_url: str | None = Field(None, **_rule(
        "the server's URL as the cluster's nodes reach it, e.g. http://runyard.internal:8765",
        "Give an http:// or https:// URL.", "the server's own URL"))
    entrypoint_resources: dict[str, float] = Field(default_factory=dict, json_schema_extra={
        "fix": "Give Ray custom resources every job's driver reserves, with amounts > 0, as the cluster's nodes declare "
               "them (`ray status`), e.g. {accelerator_type:A100: 0.01}; CPUs, GPUs and memory come from the run's "
               "resources.", "default": "{}"})
    one_job_per_task: bool = Field(False, **_rule(
        "true or false: run each task of a multi-task run (PyTorch, TensorFlow, XGBoost, JAX) as its own Ray job",
        "Set one_job_per_task: true to allow them; the tasks meet through the server's rendezvous.", "false"))
    name_prefix: str = Field("runyard", **_rule(
        "lower-case letters, digits and '-' (up to 31): the start of every job's submission id",
        "Give each Runyard server sharing a cluster its own prefix, e.g. name_prefix: runyard-team-a.", "runyard"))
    request_timeout_s: float = Field(10.0, gt=0, le=600, **_rule(
        "a number of seconds > 0 and ≤ 600: how long one call to the dashboard may take",
        "Use e.g. request_timeout_s: 10.", "10"))
    capacity_ttl_s: float = Field(1.0, ge=0, le=600, **_rule(
        "a number of seconds ≥ 0: how long the cluster's free resources are reused",
        "Use e.g. capacity_ttl_s: 1.", "1"))
    stop_wait_s: float | None = Field(None, gt=0, le=3600, **_rule(
        "a number of seconds > 0: how long Ray waits after stop_job's SIGTERM before SIGKILL",
        "Use e.g. stop_wait_s: 30 (the runner stops the task within the run's grace period).",
        "the run's grace period + 5"))

    @field_validator("address", "server_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+(/\S*)?$", value):
            raise ValueError("not an http(s) URL")
        return value.rstrip("/") if value is not None else None

    @field_validator("python")
    @classmethod
    def _check_python(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or "\n" in value):
            raise ValueError("empty or several lines")
        return value

    @field_validator("name_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        if not _PREFIX_RE.match(value):
            raise ValueError("not lower-case letters, digits and '-'")
        return value

    @field_validator("entrypoint_resources")
    @classmethod
    def _check_resources(cls, value: dict[str, float]) -> dict[str, float]:
        for name, amount in value.items():
            if name in _BUILTIN_RESOURCES:
                raise ValueError(f"the resource {name} is set by the run's resources, not as a custom resource")
            if not _RESOURCE_RE.match(name):
                raise ValueError(f"the name {name!r} is not a resource name")
            if not amount > 0:
                raise ValueError(f"the amount of {name}, {amount}, is not > 0")
        return value

    @model_validator(mode="after")
    def _check_together(self) -> RayBackendOptions:
        if self.token and self.token_file:
            raise ValueError("token and token_file are both set; give one of them")
        if any(k.lower() == "authorization" for k in self.headers) and (self.token or self.token_file):
            raise ValueError("headers has an Authorization header and token/token_file is set; give one of them")
        if not self.reach_server:
            raise ValueError("reach_server: false is not possible with the ray backend: the runner in each Ray job "
                             "reports to the server over HTTP (the Jobs API cannot carry a spool back); set "
                             "reach_server: true and server_url to the address the cluster's nodes reach the server at")
        return self
