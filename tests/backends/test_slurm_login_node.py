"""The Slurm backend through a login node: the same code with the Slurm commands run over SSH.

The "login node" is the real dev sshd on 127.0.0.1:2222 (scripts/dev-sshd.sh) in front of the
real single-node Slurm (scripts/dev-slurm.sh) of this machine. Jobs a test submitted are
cancelled by their Slurm job ids afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from ssh_helpers import DevSSHD, dev_sshd_session

from runyard.backends.base import EngineStatus, Resources
from runyard.backends.slurm import SlurmBackend
from runyard.client import Client
from runyard.testing.backend_contract import BackendContract, canceling_submitted, stdout_of, wait_terminal

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def dev_sshd() -> Iterator[DevSSHD]:
    yield from dev_sshd_session()


def _options(dev_sshd: DevSSHD, partition: str, work: Path, **more) -> dict:
    return {"partition": partition, "login_host": "127.0.0.1", "login_port": dev_sshd.port, "login_user": "root",
            "login_key": str(dev_sshd.key_file), "known_hosts": str(dev_sshd.known_hosts), "work_dir": str(work),
            "python": sys.executable, "poll_min_s": 0.2, "poll_max_s": 1.0, **more}


@pytest.fixture
def backend(slurm_cluster: str, dev_sshd: DevSSHD, tmp_path: Path) -> Iterator[SlurmBackend]:
    b = SlurmBackend(_options(dev_sshd, slurm_cluster, tmp_path / "cluster-work"), home=tmp_path / "home")
    with canceling_submitted(b):
        yield b


@pytest.fixture
def unknown_job_id() -> str:
    return "99999998"


class TestSlurmThroughLoginNodeContract(BackendContract):
    """The contract's cases that exercise the SSH path (submit, poll, cancel, capacity, the exit code).

    The rest run the same Slurm commands the direct contract (test_slurm_contract.py) already proves,
    through the same command seam; repeating them over SSH cost about a minute of the suite (the time
    limit alone waits for Slurm's one-minute granularity).
    """

    test_a_second_attempt_after_a_failure_runs_as_its_own_job = None  # type: ignore[assignment]
    test_close_is_idempotent_and_jobs_keep_running = None  # type: ignore[assignment]
    test_every_task_of_a_multi_task_run_starts = None  # type: ignore[assignment]
    test_a_run_over_its_time_limit_ends_timeout = None  # type: ignore[assignment]
    test_one_poll_answers_for_many_jobs = None  # type: ignore[assignment]


def test_check_through_the_login_node(backend: SlurmBackend) -> None:
    results = {r.name: r for r in backend.check()}
    assert results["ssh"].ok and "127.0.0.1" in results["ssh"].detail
    assert all(r.ok for r in results.values()), [r for r in results.values() if not r.ok]
    assert "runyard" in results["python"].detail


def _check(dev_sshd: DevSSHD, partition: str, tmp_path: Path, **more) -> dict:
    b = SlurmBackend(_options(dev_sshd, partition, tmp_path / "w", **more), home=tmp_path / "home")
    try:
        return {r.name: r for r in b.check()}
    finally:
        b.close()


def test_check_says_what_is_missing_on_the_login_node(slurm_cluster: str, dev_sshd: DevSSHD, tmp_path: Path) -> None:
    results = _check(dev_sshd, slurm_cluster, tmp_path, sbatch="/opt/nowhere/sbatch")
    assert not results["sbatch"].ok
    assert "/opt/nowhere/sbatch on the login node" in results["sbatch"].detail and "not found" in results["sbatch"].detail
    assert "sbatch option" in results["sbatch"].hint

    # Both at once: a missing Slurm command does not hide a missing Python.
    both = _check(dev_sshd, slurm_cluster, tmp_path, sbatch="/opt/nowhere/sbatch", python="/opt/nowhere/python")
    assert not both["sbatch"].ok and not both["python"].ok
    assert both["work_dir"].ok

    results = _check(dev_sshd, slurm_cluster, tmp_path, python="/opt/nowhere/python")
    python = results.pop("python")
    assert not python.ok
    assert python.detail == f"/opt/nowhere/python on the login node root@127.0.0.1:{dev_sshd.port}: not found"
    assert "set the backend's python option" in python.hint and "pip install runyard" in python.hint
    assert all(r.ok for r in results.values()), [r for r in results.values() if not r.ok]  # only the Python is missing


def _runyard(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RUNYARD_HOME": str(home), "COLUMNS": "200"}
    env.pop("RUNYARD_SERVER", None)
    return subprocess.run([sys.executable, "-m", "runyard.cli", *args], env=env, capture_output=True, text=True,
                          timeout=180, stdin=subprocess.DEVNULL, check=False)


def test_cli_backends_test_through_the_login_node(slurm_cluster: str, dev_sshd: DevSSHD, tmp_path: Path) -> None:
    """`runyard backends test` names a missing Python and a wrong key on the login node, and exits 1."""
    home = tmp_path / "home"
    sets = [f"{k}={v}" for k, v in _options(dev_sshd, slurm_cluster, tmp_path / "w").items()]
    add = ["backends", "add", "hpc", "--type", "slurm", *[a for s in sets for a in ("--set", s)]]
    assert _runyard(home, *add).returncode == 0
    res = _runyard(home, "backends", "test", "hpc")
    assert res.returncode == 0 and res.stdout.splitlines()[-1].startswith("Backend hpc: all "), res.stdout + res.stderr

    assert _runyard(home, *add, "--set", "python=/opt/nowhere/python", "--replace").returncode == 0
    res = _runyard(home, "backends", "test", "hpc")
    assert res.returncode == 1, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    fail = next(i for i, line in enumerate(lines) if line.startswith("FAIL"))
    assert lines[fail] == f"FAIL python: /opt/nowhere/python on the login node root@127.0.0.1:{dev_sshd.port}: not found"
    assert lines[fail + 1].startswith("      fix: Install runyard into the Python the compute nodes use")
    assert lines[-1] == "Backend hpc: 1 check(s) failed: python."

    wrong = dev_sshd.dir / "host_key"  # a key sshd does not accept for root
    assert _runyard(home, *add, "--set", f"login_key={wrong}", "--replace").returncode == 0
    res = _runyard(home, "backends", "test", "hpc")
    assert res.returncode == 1, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith("FAIL ssh: ") and f"refused the login with key {wrong}" in lines[0], lines[0]
    assert lines[1].startswith("      fix: ") and "authorized_keys" in lines[1]
    assert lines[2:] == ["Backend hpc: 1 check(s) failed: ssh."]  # nothing else is tried without the login node


def test_spool_mode_through_the_login_node(slurm_cluster: str, dev_sshd: DevSSHD, tmp_path: Path,
                                           make_launch, client: Client) -> None:
    """Code from a snapshot (its blobs copied to the cluster over SFTP), metrics and logs through the spool."""
    from runyard.snapshot import create_snapshot

    code = tmp_path / "code"
    code.mkdir()
    (code / "job.py").write_text("import runyard\nr = runyard.init()\nfor i in range(4):\n    r.log({'acc': i / 10}, step=i)\n"
                                 "print('spooled')\nr.finish()\n")
    snap = create_snapshot(client, code)
    work = tmp_path / "spool-work"
    b = SlurmBackend(_options(dev_sshd, slurm_cluster, work, reach_server=False, server_url="http://127.0.0.1:9"),
                     home=tmp_path / "home")
    with canceling_submitted(b):
        launch = make_launch("python job.py", snapshot_id=snap.id, resources=Resources(cpus=1))
        job_id = b.submit(launch)
        state = wait_terminal(b, job_id)
        assert state.status is EngineStatus.SUCCEEDED, state
        run = client.get_run(launch.run_id)
        assert run["status"] == "succeeded"
        assert run["metrics"]["acc"]["count"] == 4
        assert "spooled" in stdout_of(client, launch.run_id)
        assert (work / "blobs" / "snapshots" / f"{snap.id}.json").exists()
        # A second attempt from the same snapshot sends no blob again.
        put = []
        real_write = b.commands.write

        def write(path, data, mode=0o600):  # noqa: ANN001, ANN202
            put.append(path)
            return real_write(path, data, mode)

        b.commands.write = write  # type: ignore[method-assign]
        second = b.submit(make_launch("python job.py", snapshot_id=snap.id, run_id=launch.run_id, attempt=2))
        assert not [p for p in put if "/blobs/" in p and "/snapshots/" not in p], put
        b.cancel(second)
