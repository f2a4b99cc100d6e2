"""SSHBackend and RemoteHost against the real dev sshd on 127.0.0.1:2222, with a real server.

This machine is the SSH host: jobs run under a per-test ``work_dir`` and are stopped by
their process group ids afterwards (``stop_ssh_jobs``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ssh_helpers import LOADED_START_S, DevSSHD, dev_sshd_session, stop_ssh_jobs

from runyard.backends._remote import (
    HostKeyMismatch,
    RemoteAuthError,
    RemoteHost,
    RemoteTimeout,
    RemoteUnreachable,
)
from runyard.backends.base import EngineStatus, Feature, Resources, TaskSlot
from runyard.backends.ssh import SSHBackend
from runyard.client import Client
from runyard.errors import SpecError, SubmitError
from runyard.snapshot import create_snapshot
from runyard.testing import LiveServer, free_port, pid_alive, wait_for
from runyard.testing.backend_contract import stdout_of, wait_state, wait_terminal


@pytest.fixture(scope="session")
def dev_sshd() -> Iterator[DevSSHD]:
    yield from dev_sshd_session()


@pytest.fixture
def work(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "ssh-work"
    try:
        yield path
    finally:
        stop_ssh_jobs(path)


@pytest.fixture
def make_backend(dev_sshd: DevSSHD, work: Path) -> Iterator[Callable[..., SSHBackend]]:
    """``make_backend(**host_options)``: an SSH backend on the dev sshd, closed afterwards."""
    made: list[SSHBackend] = []

    def make(hosts: list[dict] | None = None, **host_options: object) -> SSHBackend:
        backend = SSHBackend({"hosts": hosts or [dev_sshd.host_options(work_dir=str(work), **host_options)],
                              "start_timeout_s": LOADED_START_S})
        made.append(backend)
        return backend

    try:
        yield make
    finally:
        for backend in made:
            backend.close()


def _remote(dev_sshd: DevSSHD, **kwargs: object) -> RemoteHost:
    args = {"host": "127.0.0.1", "port": dev_sshd.port, "user": "root", "key_file": dev_sshd.key_file,
            "known_hosts": dev_sshd.known_hosts, **kwargs}
    return RemoteHost(**args)  # type: ignore[arg-type]


# ------------------------------------------------------------------ RemoteHost
def test_remote_host_runs_commands_and_copies_files(dev_sshd: DevSSHD, tmp_path: Path) -> None:
    with _remote(dev_sshd) as host:
        assert host.run("echo out; echo err >&2; exit 3") == (3, "out\n", "err\n")
        assert host.run(["printf", "%s", "a b; c"]).stdout == "a b; c"  # argv is quoted
        assert host.run("cat", input="fed").stdout == "fed"
        assert host.run("kill -KILL $$").exit_code == 137

        target = tmp_path / "far" / "side" / "data.bin"
        host.put_bytes(b"\x00secret", str(target))
        assert target.read_bytes() == b"\x00secret"
        assert target.stat().st_mode & 0o777 == 0o600  # owner-only by default
        local = tmp_path / "script.sh"
        local.write_text("echo hi\n")
        local.chmod(0o755)
        host.put(local, str(tmp_path / "copied.sh"))
        assert (tmp_path / "copied.sh").read_text() == "echo hi\n"
        assert (tmp_path / "copied.sh").stat().st_mode & 0o777 == 0o755
        assert host.exists(str(target)) and not host.exists(str(tmp_path / "nope"))
        assert not [p for p in target.parent.iterdir() if p.name.endswith(".tmp")]  # written by rename

        with pytest.raises(RemoteTimeout, match="ran longer than 1s"):
            host.run("sleep 10", timeout_s=1)
        assert host.run("echo still usable").stdout == "still usable\n"


def test_remote_host_errors_name_the_problem_and_the_fix(dev_sshd: DevSSHD, tmp_path: Path) -> None:
    with pytest.raises(RemoteUnreachable, match=r"127\.0\.0\.1:\d+ refused the connection") as e:
        _remote(dev_sshd, port=free_port()).run("true")
    assert "Is sshd running there" in (e.value.hint or "")

    with pytest.raises(RemoteAuthError, match="refused the login with key") as e:
        _remote(dev_sshd, key_file=dev_sshd.dir / "host_key").run("true")  # a key the host does not authorize
    assert "authorized_keys" in (e.value.hint or "")

    with pytest.raises(RemoteAuthError, match="does not exist"):
        _remote(dev_sshd, key_file=tmp_path / "missing_key").run("true")

    wrong = tmp_path / "known_hosts"
    other_key = (dev_sshd.dir / "client_key.pub").read_text().split()[:2]  # any key but the host's
    wrong.write_text(f"[127.0.0.1]:{dev_sshd.port} {' '.join(other_key)}\n")
    with pytest.raises(HostKeyMismatch, match="does not match") as e:
        _remote(dev_sshd, known_hosts=wrong).run("true")
    assert "ssh-keygen -R" in (e.value.hint or "")


def test_remote_host_reconnects_after_sshd_restarts(dev_sshd: DevSSHD) -> None:
    host = _remote(dev_sshd, min_backoff_s=0.1, max_backoff_s=0.5)
    try:
        assert host.run("echo 1").stdout == "1\n"
        dev_sshd.kill()
        try:
            with pytest.raises(RemoteUnreachable):
                host.run("echo 2")
        finally:
            dev_sshd.up()
            dev_sshd.started = True  # this session's sshd now: stop it at the end
        assert wait_for(lambda: _try(host), timeout_s=15, what="a reconnect") == "3\n"
        assert host.n_connects == 2
    finally:
        host.close()


def _try(host: RemoteHost) -> str | None:
    try:
        return host.run("echo 3").stdout
    except RemoteUnreachable:
        return None


# ----------------------------------------------------------------- options
def test_options_are_validated_with_the_valid_keys_named() -> None:
    with pytest.raises(SpecError, match="ssh.hosts is required: the hosts to run on"):
        SSHBackend({})
    with pytest.raises(SpecError, match=r"ssh.hots is not an option of the ssh backend\. Did you mean 'hosts'\? "
                                        r"Valid options: hosts \(default: required\), connect_timeout_s \(default: 10\.0\)"):
        SSHBackend({"hots": []})
    with pytest.raises(SpecError, match=r"ssh.hosts.0.prot is not an option.*Did you mean 'port'\?.*"
                                        r"Valid options: host \(default: required\), port \(default: 22\)"):
        SSHBackend({"hosts": [{"host": "a", "prot": 22}]})
    with pytest.raises(SpecError, match=r"ssh.hosts.0.cpus is invalid \(input should be greater than 0\), but got -1"):
        SSHBackend({"hosts": [{"host": "a", "cpus": -1}]})
    with pytest.raises(SpecError, match="listed twice"):
        SSHBackend({"hosts": [{"host": "a"}, {"host": "a", "port": 22}]})
    with pytest.raises(SpecError, match="too_short|at least 1"):
        SSHBackend({"hosts": []})
    # Building a backend connects to nothing.
    assert SSHBackend({"hosts": [{"host": "gpu1.invalid", "gpus": 2}]}).name == "ssh"


def test_unsupported_features(make_backend: Callable[..., SSHBackend], make_launch: Callable) -> None:
    backend = make_backend(gpus=1)
    assert backend.unsupported(make_launch("true")) == {}
    launch = make_launch("true", tasks=(TaskSlot("master", 0), TaskSlot("worker", 0)), resources=Resources(gpus=2))
    problems = backend.unsupported(launch)
    assert set(problems) == {Feature.MULTI_TASK, Feature.GPUS}
    assert "largest host has 1" in problems[Feature.GPUS]
    with pytest.raises(SubmitError, match="multi_task"):
        backend.submit(launch)


# ------------------------------------------------------------------- check
def test_check_passes_on_a_good_host(make_backend: Callable[..., SSHBackend], work: Path) -> None:
    results = make_backend().check()
    assert [(r.name, r.ok) for r in results] == [("ssh connection", True), ("commands on the host", True),
                                                 ("work directory", True), ("python on the host", True),
                                                 ("runyard on the host", True)]
    assert sys.executable in results[3].detail
    assert str(work) in results[2].detail


def test_check_reports_a_wrong_key_and_stops_there(make_backend: Callable[..., SSHBackend], dev_sshd: DevSSHD) -> None:
    results = make_backend(key_file=str(dev_sshd.dir / "host_key")).check()
    assert len(results) == 1
    r = results[0]
    assert (r.name, r.ok) == ("ssh connection", False)
    assert "refused the login with key" in r.detail and str(dev_sshd.dir / "host_key") in r.detail
    assert "authorized_keys" in r.hint


def test_check_reports_a_missing_python_and_one_without_runyard(make_backend: Callable[..., SSHBackend],
                                                                tmp_path: Path) -> None:
    missing = make_backend(python="/opt/no-such-python3").check()
    by_name = {r.name: r for r in missing}
    assert by_name["ssh connection"].ok and by_name["commands on the host"].ok
    r = by_name["python on the host"]
    assert not r.ok
    assert r.detail.endswith("`/opt/no-such-python3` on root@127.0.0.1:2222: not found") or "not found" in r.detail
    assert "set the host's python option" in r.hint
    assert "runyard on the host" not in by_name  # nothing to import with

    bare = tmp_path / "bare-venv"  # a Python that exists but has no runyard
    import venv

    venv.create(bare, with_pip=False)
    r = {r.name: r for r in make_backend(python=str(bare / "bin" / "python")).check()}["runyard on the host"]
    assert not r.ok
    assert "cannot import runyard: ModuleNotFoundError: No module named 'runyard'" in r.detail
    assert "-m pip install 'runyard==" in r.hint


def test_check_of_a_host_that_is_down(make_backend: Callable[..., SSHBackend], dev_sshd: DevSSHD) -> None:
    port = free_port()
    results = make_backend(hosts=[{"host": "127.0.0.1", "port": port, "key_file": str(dev_sshd.key_file)}]).check()
    assert [(r.name, r.ok) for r in results] == [("ssh connection", False)]
    assert f"127.0.0.1:{port} refused the connection" in results[0].detail


# ------------------------------------------------------- capacity and runs
def test_capacity_and_gpu_placement(make_backend: Callable[..., SSHBackend], make_launch: Callable, client: Client,
                                    tmp_path: Path) -> None:
    backend = make_backend(cpus=2, gpus=2, memory_mb=1000)
    assert backend.capacity() == Resources(2.0, 1000, 2)
    gate = tmp_path / "gate"
    gated = f'echo "cvd=[$CUDA_VISIBLE_DEVICES]"; while [ ! -e {gate} ]; do sleep 0.05; done'
    a = make_launch(gated, resources=Resources(cpus=1, gpus=1, memory_mb=400))
    b = make_launch(gated, resources=Resources(cpus=1, gpus=1, memory_mb=400))
    cpu_only = make_launch('echo "cvd=[$CUDA_VISIBLE_DEVICES]"')
    ja, jb = backend.submit(a), backend.submit(b)
    assert ja == f"{a.run_id}.1@127.0.0.1:2222"
    assert backend.capacity() == Resources(0.0, 200, 0)
    with pytest.raises(SubmitError, match=r"No ssh host can take run .*127\.0\.0\.1:2222: full"):
        backend.submit(cpu_only)
    seen = sorted(wait_for(lambda r=launch.run_id: [x for x in stdout_of(client, r) if x.startswith("cvd=")],
                           timeout_s=60, what="cvd")[0] for launch in (a, b))
    assert seen == ["cvd=[0]", "cvd=[1]"]

    gate.touch()
    for job in (ja, jb):
        assert wait_terminal(backend, job).status is EngineStatus.SUCCEEDED
    assert backend.capacity() == Resources(2.0, 1000, 2)
    job = backend.submit(cpu_only)
    assert wait_terminal(backend, job).status is EngineStatus.SUCCEEDED
    assert stdout_of(client, cpu_only.run_id) == ["cvd=[]"]  # CPU-only runs see no GPUs


def test_submit_is_idempotent_per_attempt_and_state_lives_on_the_host(make_backend: Callable[..., SSHBackend],
                                                                       make_launch: Callable, client: Client) -> None:
    backend = make_backend()
    launch = make_launch("echo once")
    job = backend.submit(launch)
    assert backend.submit(launch) == job
    assert wait_terminal(backend, job).status is EngineStatus.SUCCEEDED
    assert stdout_of(client, launch.run_id) == ["once"]
    # A new backend (a restarted server) reads the same state from the host.
    fresh = make_backend()
    assert fresh.poll([job])[job].status is EngineStatus.SUCCEEDED
    assert fresh.submit(launch) == job


def test_the_snapshot_is_shipped_once_per_host(make_backend: Callable[..., SSHBackend], make_launch: Callable,
                                               client: Client, work: Path, tmp_path: Path, server: LiveServer) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "train.py").write_text("print('from the snapshot')\n")
    (project / "data.txt").write_text("payload\n")
    snap = create_snapshot(client, project)
    backend = make_backend()
    first = make_launch("python train.py && cat data.txt", snapshot_id=snap.id)
    job = backend.submit(first)
    assert wait_terminal(backend, job).status is EngineStatus.SUCCEEDED
    assert stdout_of(client, first.run_id) == ["from the snapshot", "payload"]
    blobs = sorted(p for p in (work / "cache" / "blobs").rglob("*") if p.is_file())
    assert len(blobs) == 2
    stamps = {p: p.stat().st_mtime_ns for p in blobs}

    second = make_launch("python train.py", snapshot_id=snap.id)
    assert wait_terminal(backend, backend.submit(second)).status is EngineStatus.SUCCEEDED
    assert {p: p.stat().st_mtime_ns for p in blobs} == stamps  # not sent again, not re-downloaded by the runner
    # A second backend (server restart) asks the host which blobs it has, and sends none.
    third = make_launch("python train.py", snapshot_id=snap.id)
    assert wait_terminal(make_backend(), make_backend().submit(third)).status is EngineStatus.SUCCEEDED
    assert {p: p.stat().st_mtime_ns for p in blobs} == stamps


def test_jobs_survive_the_ssh_connection_dropping(make_backend: Callable[..., SSHBackend], make_launch: Callable,
                                                  client: Client, dev_sshd: DevSSHD, tmp_path: Path, work: Path) -> None:
    backend = make_backend()
    gate = tmp_path / "gate"
    launch = make_launch(f"echo started; while [ ! -e {gate} ]; do sleep 0.05; done; echo done")
    job = backend.submit(launch)
    wait_for(lambda: "started" in stdout_of(client, launch.run_id), timeout_s=60, what="the task's output")
    pgid = int((work / "jobs" / f"{launch.run_id}.1" / "pid").read_text())

    dev_sshd.kill()
    try:
        state = backend.poll([job])[job]
        assert (state.status, state.raw) == (EngineStatus.UNKNOWN, "unreachable")  # never LOST while unreachable
        assert "refused the connection" in state.reason
        assert backend.capacity() == Resources(0.0, 0, 0)  # an unreachable host counts as full
        backend.cancel(job + "x")  # unknown id: no-op even while down
        assert pid_alive(pgid)  # the job kept running
        gate.touch()
    finally:
        dev_sshd.up()
        dev_sshd.started = True
    state = wait_state(backend, job, lambda s: s.status.terminal, what="the end after reconnecting")
    assert state.status is EngineStatus.SUCCEEDED
    assert stdout_of(client, launch.run_id) == ["started", "done"]
    assert client.get_run(launch.run_id)["status"] == "succeeded"


def test_a_cancel_while_the_host_is_down_is_delivered_later(make_backend: Callable[..., SSHBackend],
                                                             make_launch: Callable, client: Client,
                                                             dev_sshd: DevSSHD, work: Path) -> None:
    backend = make_backend()
    launch = make_launch("echo started; sleep 300", grace_period_s=1.0)
    job = backend.submit(launch)
    wait_for(lambda: "started" in stdout_of(client, launch.run_id), timeout_s=60, what="the task's output")
    pgid = int((work / "jobs" / f"{launch.run_id}.1" / "pid").read_text())
    dev_sshd.kill()
    try:
        backend.cancel(job)  # logged and kept: the host is down
        assert pid_alive(pgid)
    finally:
        dev_sshd.up()
        dev_sshd.started = True
    state = wait_terminal(backend, job, timeout_s=60)
    assert state.status is EngineStatus.CANCELED
    wait_for(lambda: not pid_alive(pgid), timeout_s=15, what="the job's processes to end")


def test_a_runner_killed_with_sigkill_is_lost(make_backend: Callable[..., SSHBackend], make_launch: Callable,
                                              client: Client, work: Path) -> None:
    backend = make_backend()
    launch = make_launch("echo started; sleep 300", grace_period_s=1.0)
    job = backend.submit(launch)
    wait_for(lambda: "started" in stdout_of(client, launch.run_id), timeout_s=60, what="the task's output")
    pgid = int((work / "jobs" / f"{launch.run_id}.1" / "pid").read_text())
    os.killpg(pgid, 9)  # wrapper and runner; the task has a session of its own
    state = wait_terminal(backend, job)
    assert state.status is EngineStatus.LOST
    assert "without writing its exit code" in state.reason
    # Clean up the orphaned task (sleep 300) by its pid, found through the task record.
    task_pid = client.get_run(launch.run_id)["tasks"][0]["pid"]
    if task_pid and pid_alive(task_pid):
        os.killpg(task_pid, 9)
        wait_for(lambda: not pid_alive(task_pid), timeout_s=10, what="the orphaned task to end")


def test_a_host_that_is_down_makes_submit_fail_clearly(make_backend: Callable[..., SSHBackend], make_launch: Callable,
                                                       dev_sshd: DevSSHD) -> None:
    port = free_port()
    backend = make_backend(hosts=[{"host": "127.0.0.1", "port": port, "key_file": str(dev_sshd.key_file),
                                   "known_hosts": str(dev_sshd.known_hosts)}])
    with pytest.raises(SubmitError, match=rf"No ssh host can take run .*127\.0\.0\.1:{port} refused the connection"):
        backend.submit(make_launch("true"))
    job = f"1.1@127.0.0.1:{port}"
    assert backend.poll([job])[job].status is EngineStatus.UNKNOWN
