"""The Slurm backend through a login node: the same code with the Slurm commands run over SSH.

The "login node" is the real dev sshd on 127.0.0.1:2222 (scripts/dev-sshd.sh) in front of the
real single-node Slurm (scripts/dev-slurm.sh) of this machine. Jobs a test submitted are
cancelled by their Slurm job ids afterwards.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from contract import BackendContract, stdout_of, wait_terminal
from ssh_helpers import DevSSHD, dev_sshd_session

from runyard.backends.base import EngineStatus, Resources
from runyard.backends.slurm import SlurmBackend
from runyard.client import Client

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def dev_sshd() -> Iterator[DevSSHD]:
    yield from dev_sshd_session()


def _options(dev_sshd: DevSSHD, partition: str, work: Path, **more) -> dict:
    return {"partition": partition, "login_host": "127.0.0.1", "login_port": dev_sshd.port, "login_user": "root",
            "login_key": str(dev_sshd.key_file), "known_hosts": str(dev_sshd.known_hosts), "work_dir": str(work),
            "python": sys.executable, "poll_min_s": 0.2, "poll_max_s": 1.0, **more}


def _tracked(backend: SlurmBackend) -> list[str]:
    submitted: list[str] = []
    real = backend.submit

    def submit(launch):  # noqa: ANN001, ANN202
        job_id = real(launch)
        submitted.append(job_id)
        return job_id

    backend.submit = submit  # type: ignore[method-assign]
    return submitted


@pytest.fixture
def backend(slurm_cluster: str, dev_sshd: DevSSHD, tmp_path: Path) -> Iterator[SlurmBackend]:
    b = SlurmBackend(_options(dev_sshd, slurm_cluster, tmp_path / "cluster-work"), home=tmp_path / "home")
    submitted = _tracked(b)
    try:
        yield b
    finally:
        for job_id in submitted:
            b.cancel(job_id)
        b.close()


@pytest.fixture
def unknown_job_id() -> str:
    return "99999998"


class TestSlurmThroughLoginNodeContract(BackendContract):
    pass


def test_check_through_the_login_node(backend: SlurmBackend) -> None:
    results = {r.name: r for r in backend.check()}
    assert results["ssh"].ok and "127.0.0.1" in results["ssh"].detail
    assert all(r.ok for r in results.values()), [r for r in results.values() if not r.ok]
    assert "runyard" in results["python"].detail


def test_check_says_what_is_missing_on_the_login_node(slurm_cluster: str, dev_sshd: DevSSHD, tmp_path: Path) -> None:
    b = SlurmBackend(_options(dev_sshd, slurm_cluster, tmp_path / "w", sbatch="/opt/nowhere/sbatch",
                              python="/opt/nowhere/python"), home=tmp_path / "home")
    try:
        results = {r.name: r for r in b.check()}
    finally:
        b.close()
    assert not results["sbatch"].ok
    assert "/opt/nowhere/sbatch on the login node" in results["sbatch"].detail and "not found" in results["sbatch"].detail
    assert "sbatch option" in results["sbatch"].hint


def test_spool_mode_through_the_login_node(slurm_cluster: str, dev_sshd: DevSSHD, tmp_path: Path,
                                           make_launch, client: Client) -> None:
    b = SlurmBackend(_options(dev_sshd, slurm_cluster, tmp_path / "spool-work", reach_server=False,
                              server_url="http://127.0.0.1:9"), home=tmp_path / "home")
    submitted = _tracked(b)
    try:
        script = ("import runyard; r = runyard.init(); [r.log({'acc': i / 10}, step=i) for i in range(4)]; "
                  "print('spooled'); r.finish()")
        launch = make_launch(f"python -c \"{script}\"", resources=Resources(cpus=1))
        job_id = b.submit(launch)
        state = wait_terminal(b, job_id)
        assert state.status is EngineStatus.SUCCEEDED, state
        run = client.get_run(launch.run_id)
        assert run["status"] == "succeeded"
        assert run["metrics"]["acc"]["count"] == 4
        assert "spooled" in stdout_of(client, launch.run_id)
    finally:
        for job_id in submitted:
            b.cancel(job_id)
        b.close()
