"""The environment jobs start from: an allow-list, never the server's (runyard.backends.kit.job_environment)."""

from __future__ import annotations

import os
import pwd

import pytest

from runyard.backends.kit import agent_environment, job_environment
from runyard.backends.slurm._commands import LocalCommands

SERVER_ENV = {
    "PATH": "/usr/local/bin:/usr/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TZ": "UTC", "TERM": "xterm",
    "TMPDIR": "/tmp", "HOME": "/srv/runyard", "USER": "runyard",
    "RUNYARD_ADMIN_PASSWORD": "pw", "RUNYARD_DATABASE_URL": "postgresql://u:pw@db/x", "AWS_SECRET_ACCESS_KEY": "k",
    "AWS_ACCESS_KEY_ID": "id", "RUNYARD_HOME": "/srv/runyard/home", "RUNYARD_TOKEN": "t", "GITHUB_TOKEN": "g",
    "SLURM_CONF": "/etc/slurm/slurm.conf", "SLURM_JOB_ID": "12",
}


def test_only_the_allow_list_reaches_a_job() -> None:
    env = job_environment(SERVER_ENV, env={"HF_HOME": "/data/hf"})
    assert env["PATH"] == "/usr/local/bin:/usr/bin" and env["LC_ALL"] == "C.UTF-8" and env["TZ"] == "UTC"
    assert env["TMPDIR"] == "/tmp" and env["HF_HOME"] == "/data/hf"
    for secret in ("RUNYARD_ADMIN_PASSWORD", "RUNYARD_DATABASE_URL", "AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID",
                   "RUNYARD_TOKEN", "GITHUB_TOKEN", "RUNYARD_HOME", "SLURM_JOB_ID"):
        assert secret not in env
    me = pwd.getpwuid(os.getuid()).pw_name
    assert env["USER"] == env["LOGNAME"] == me and env["HOME"] == "/srv/runyard"


def test_a_job_account_gets_its_own_user_and_home() -> None:
    env = job_environment(SERVER_ENV, user="nobody", home="/var/tmp/jobs/1.1")
    assert env["USER"] == env["LOGNAME"] == "nobody" and env["HOME"] == "/var/tmp/jobs/1.1"


def test_the_agent_and_sbatch_keep_what_they_need_and_no_secret() -> None:
    env = agent_environment(SERVER_ENV)
    assert env["RUNYARD_HOME"] == "/srv/runyard/home" and env["SLURM_CONF"] == "/etc/slurm/slurm.conf"
    assert not {"RUNYARD_ADMIN_PASSWORD", "RUNYARD_DATABASE_URL", "AWS_SECRET_ACCESS_KEY", "RUNYARD_TOKEN"} & set(env)


def test_sbatch_run_here_gets_no_secret_to_export(monkeypatch: pytest.MonkeyPatch) -> None:
    """sbatch exports its own environment to the job (--export=ALL): it must not hold the server's secrets."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-for-sbatch")
    monkeypatch.setenv("RUNYARD_ADMIN_PASSWORD", "admin-pw-for-sbatch")
    code, out, _ = LocalCommands().run(["env"])
    assert code == 0 and "PATH=" in out
    assert "aws-secret-for-sbatch" not in out and "admin-pw-for-sbatch" not in out
