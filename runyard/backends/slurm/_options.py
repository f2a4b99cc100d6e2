"""The Slurm backend's settings: one entry of ``backends.yml`` with ``type: slurm``."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from runyard.backends._images import ContainerOptions
from runyard.backends.options import rule as _rule

__all__ = ["SlurmBackendOptions"]

_NAME_RE = re.compile(r"^[A-Za-z0-9_.+-]+$")
_MODULE_RE = re.compile(r"^[A-Za-z0-9_.+/@-]+$")




class _SlurmBackendOptionsOwn(BaseModel):
    """Settings of one Slurm backend. Every field's ``rule`` and ``fix`` feed the error messages."""

    model_config = ConfigDict(extra="forbid", strict=True)

    partition: str | None = Field(None, **_rule(
        "a Slurm partition name", "Use a partition `sinfo -s` lists, e.g. partition: debug.", "the cluster's default"))
    account: str | None = Field(None, **_rule("a Slurm account name", "Use an account `sacctmgr show assoc user=$USER` lists.", "none"))
    qos: str | None = Field(None, **_rule("a Slurm QOS name", "Use a QOS `sacctmgr show qos` lists.", "none"))
    sbatch_lines: list[str] = Field(default_factory=list, **_rule(
        "a list of extra sbatch options, e.g. ['--constraint=v100', '--exclusive']",
        "Write each option as on the sbatch command line, without '#SBATCH'.", "[]"))
    modules: list[str] = Field(default_factory=list, **_rule(
        "a list of environment modules to load, e.g. ['python/3.11', 'cuda/12.1']",
        "Write module names as `module avail` shows them.", "[]"))
    env_setup: list[str] = Field(default_factory=list, **_rule(
        "a list of shell lines run before the task, e.g. ['source ~/venvs/runyard/bin/activate']",
        "Write one shell command per item.", "[]"))
    python: str | None = Field(None, **_rule(
        "the Python interpreter on the compute nodes that has runyard installed",
        "Give a command or an absolute path, e.g. python: /opt/venvs/runyard/bin/python.",
        "this server's Python (local mode), python3 (login_host mode)"))
    work_dir: str | None = Field(None, **_rule(
        "an absolute directory on a file system the compute nodes share",
        "Give an absolute path, e.g. work_dir: /scratch/$USER/runyard.", "$RUNYARD_HOME/slurm (local mode)"))
    reach_server: bool = Field(True, **_rule(
        "true or false: whether compute nodes can reach the server",
        "Set reach_server: false to spool metrics and logs through work_dir instead.", "true"))
    server_url: str | None = Field(None, **_rule(
        "the server's URL as the compute nodes reach it, e.g. http://login01:8765",
        "Give an http:// or https:// URL.", "the server's own URL"))
    cpu_bind: str | None = Field("cores", pattern=r"^[a-z_,]+$", **_rule(
        "srun's --cpu-bind value, e.g. cores, threads or none",
        "Set cpu_bind: none (or null) on a cluster whose srun refuses binding.", "cores"))
    tasks_per_node: int | None = Field(None, ge=1, **_rule(
        "an integer ≥ 1: tasks of a multi-task run per node (sets --nodes)",
        "Set it to how many tasks fit on one node, or remove it to let Slurm place them.", "Slurm decides"))
    login_host: str | None = Field(None, **_rule(
        "a host name: the login node to run the Slurm commands on over SSH",
        "Give a host name or address, or remove it to run the commands on this machine.", "none (this machine)"))
    login_port: int = Field(22, ge=1, le=65535, **_rule("a TCP port from 1 to 65535", "Use the login node's SSH port.", "22"))
    login_user: str | None = Field(None, **_rule("a user name on the login node", "Give your login name there.", "the current user"))
    login_key: str | None = Field(None, **_rule(
        "the path of an SSH private key file", "Give e.g. ~/.ssh/id_ed25519.", "the SSH agent and default keys"))
    known_hosts: str | bool | None = Field(None, **_rule(
        "a known_hosts file path, or false to accept any host key (test hosts only)",
        "Give a path, or remove it to use ~/.ssh/known_hosts.", "~/.ssh/known_hosts"))
    sbatch: str = Field("sbatch", **_rule("the sbatch command or its absolute path", "Give e.g. sbatch: /usr/bin/sbatch.", "sbatch"))
    squeue: str = Field("squeue", **_rule("the squeue command or its absolute path", "Give e.g. squeue: /usr/bin/squeue.", "squeue"))
    sacct: str = Field("sacct", **_rule("the sacct command or its absolute path", "Give e.g. sacct: /usr/bin/sacct.", "sacct"))
    scancel: str = Field("scancel", **_rule("the scancel command or its absolute path", "Give e.g. scancel: /usr/bin/scancel.", "scancel"))
    sinfo: str = Field("sinfo", **_rule("the sinfo command or its absolute path", "Give e.g. sinfo: /usr/bin/sinfo.", "sinfo"))
    poll_min_s: float = Field(1.0, gt=0, le=600, **_rule("a number of seconds > 0 and ≤ 600", "Use e.g. poll_min_s: 1.", "1"))
    poll_max_s: float = Field(30.0, gt=0, le=3600, **_rule("a number of seconds > 0 and ≤ 3600", "Use e.g. poll_max_s: 30.", "30"))
    time_margin_s: int = Field(60, ge=0, **_rule(
        "an integer ≥ 0: seconds added to a run's time_limit for Slurm's --time",
        "The runner stops the task at time_limit; Slurm's limit is a backstop a bit later.", "60"))
    command_timeout_s: float = Field(60.0, gt=0, **_rule("a number of seconds > 0", "Use e.g. command_timeout_s: 60.", "60"))

    @field_validator("partition", "account", "qos")
    @classmethod
    def _check_name(cls, value: str | None) -> str | None:
        if value is not None and not _NAME_RE.match(value):
            raise ValueError("not a plain name")
        return value

    @field_validator("modules")
    @classmethod
    def _check_modules(cls, value: list[str]) -> list[str]:
        for m in value:
            if not _MODULE_RE.match(m):
                raise ValueError(f"{m!r} is not a module name")
        return value

    @field_validator("sbatch_lines")
    @classmethod
    def _check_sbatch_lines(cls, value: list[str]) -> list[str]:
        for line in value:
            if not line.startswith("-") or "\n" in line:
                raise ValueError(f"{line!r} is not one sbatch option starting with '-'")
        return value

    @field_validator("work_dir")
    @classmethod
    def _check_work_dir(cls, value: str | None) -> str | None:
        if value is not None and not (value.startswith("/") or value.startswith("~")):
            raise ValueError("not absolute")
        return value

    @field_validator("server_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("not an http(s) URL")
        return value

    @field_validator("python", "sbatch", "squeue", "sacct", "scancel", "sinfo")
    @classmethod
    def _check_command(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or "\n" in value):
            raise ValueError("empty or several lines")
        return value

    @model_validator(mode="after")
    def _check_together(self) -> SlurmBackendOptions:
        if self.poll_max_s < self.poll_min_s:
            raise ValueError(f"poll_max_s ({self.poll_max_s:g}) is below poll_min_s ({self.poll_min_s:g})")
        if self.login_host and not self.work_dir:
            raise ValueError("login_host needs work_dir: a directory on the cluster's shared file system")
        return self


class SlurmBackendOptions(ContainerOptions, _SlurmBackendOptionsOwn):
    """Settings of one Slurm backend. The container settings (docs/containers.md) come last; the
    default ``container_runtime`` here is apptainer."""

    model_config = ConfigDict(extra="forbid", strict=True)
