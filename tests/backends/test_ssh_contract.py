"""The backend contract on the SSH backend, against the real dev sshd on 127.0.0.1:2222."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ssh_helpers import LOADED_START_S, DevSSHD, dev_sshd_session, stop_ssh_jobs

from runyard.backends.ssh import SSHBackend
from runyard.testing.backend_contract import BackendContract


@pytest.fixture(scope="session")
def dev_sshd() -> Iterator[DevSSHD]:
    yield from dev_sshd_session()


@pytest.fixture
def backend(dev_sshd: DevSSHD, tmp_path: Path) -> Iterator[SSHBackend]:
    work = tmp_path / "ssh-work"
    backend = SSHBackend({"hosts": [dev_sshd.host_options(work_dir=str(work))], "start_timeout_s": LOADED_START_S})
    try:
        yield backend
    finally:
        backend.close()
        assert stop_ssh_jobs(work) == []  # every job of a contract test has ended by itself


@pytest.fixture
def unknown_job_id(dev_sshd: DevSSHD) -> str:
    return f"999999.1@127.0.0.1:{dev_sshd.port}"


class TestSSHContract(BackendContract):
    pass
