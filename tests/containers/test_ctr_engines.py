"""The container engines work on this machine as Runyard uses them: podman (root and rootless as a pool account)
and Charliecloud's ch-run (root and a pool account), with the test image, the wheels and the directory image
of runyard.testing.containers. Nothing here is mocked; docs/containers.md's set-up section describes the set-up.
"""

from __future__ import annotations

import json
import os
import pwd
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from runyard.testing.containers import POOL_ACCOUNT, RootlessPodman, ch_run

# Lists the container's mounts (mount point, source, type) and /root's entries as JSON: the image has no
# coreutils beyond a few, and Python reads /proc/self/mountinfo directly.
SHOW_MOUNTS = r"""
import json, os
mounts = []
for line in open("/proc/self/mountinfo"):
    left, right = line.split(" - ")
    f = left.split()
    kind, source = right.split()[:2]
    mounts.append({"root": f[3], "at": f[4], "type": kind, "source": source})
try:
    root = sorted(os.listdir("/root"))
except PermissionError:
    root = "denied"
print(json.dumps({"mounts": mounts, "root": root, "tmp": sorted(os.listdir("/tmp")), "uid": os.getuid()}))
"""


def _podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=False, timeout=timeout,
                          stdin=subprocess.DEVNULL)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A work directory every account may enter (pytest's tmp_path is under root's 0700 directory)."""
    d = Path(tempfile.mkdtemp(prefix="runyard-ctr-", dir="/var/tmp"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        subprocess.run(["rm", "-rf", str(d)], check=False)


@pytest.fixture
def echo_server() -> Iterator[int]:
    """A TCP server on the host's 127.0.0.1 that answers one line: a job in a container must reach it."""
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(30)
    port = srv.getsockname()[1]

    def serve() -> None:
        try:
            conn, _ = srv.accept()
        except OSError:
            return
        with conn:
            conn.sendall(b"hello from the host\n")

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield port
    finally:
        srv.close()
        t.join(timeout=5)


def test_podman_runs_on_the_host_network_with_a_bind_mount(podman_image: str, shared_dir: Path,
                                                           echo_server: int) -> None:
    (shared_dir / "in.txt").write_text("input\n")
    script = (f"import socket; s = socket.create_connection(('127.0.0.1', {echo_server})); "
              "print(s.recv(100).decode().strip()); "
              "open('/runyard/work/out.txt', 'w').write(open('/runyard/work/in.txt').read().upper())")
    res = _podman("run", "--rm", "-v", f"{shared_dir}:/runyard/work", "-w", "/runyard/work", podman_image,
                  "python3", "-c", script)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "hello from the host"
    out = shared_dir / "out.txt"
    assert out.read_text() == "INPUT\n"
    assert out.stat().st_uid == 0  # rootful podman: files written through a bind are root's


def test_podman_job_cannot_read_the_servers_home(podman_image: str, shared_dir: Path) -> None:
    res = _podman("run", "--rm", "-v", f"{shared_dir}:/runyard/work", podman_image, "python3", "-c", SHOW_MOUNTS)
    assert res.returncode == 0, res.stderr
    seen = json.loads(res.stdout)
    # The image's own /root (empty), not the host's (where the server's Python lives).
    assert seen["root"] == []
    binds = [m for m in seen["mounts"] if m["at"] == "/runyard/work"]
    assert binds and binds[0]["root"] == str(shared_dir)
    host_home = str(Path.home())
    leaked = [m for m in seen["mounts"] if m["root"].startswith(host_home + "/") or m["root"] == host_home]
    assert not leaked, f"the host's {host_home} is mounted into the container: {leaked}"
    print("podman mounts:", "\n".join(f"{m['at']} <- {m['type']} {m['root']}" for m in seen["mounts"]))


# The wheelhouse build itself (numpy, scipy and scikit-learn from a mounted volume) is exercised end to end by
# tests/e2e/test_containers_e2e.py, whose digits sweep builds and runs in that image.


def test_ch_run_runs_the_directory_image_as_root(charliecloud_image_dir: Path, shared_dir: Path) -> None:
    res = ch_run(charliecloud_image_dir, ["sh", "-c", "id -u; echo $USER; echo out > out.txt"],
                 binds={str(shared_dir): "/runyard/work"}, cwd="/runyard/work")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["0", "root"]
    assert (shared_dir / "out.txt").stat().st_uid == 0


def test_ch_run_runs_the_directory_image_as_a_pool_account(charliecloud_image_dir: Path, shared_dir: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("running ch-run as the pool account needs root (sudo -u runyard-job-1)")
    account = pwd.getpwnam(POOL_ACCOUNT)
    work = shared_dir / "work"
    work.mkdir()
    os.chown(work, account.pw_uid, account.pw_gid)
    secret = Path(tempfile.mkdtemp(prefix="runyard-ctr-host-tmp-"))  # in the host's /tmp, which ch-run would share
    try:
        res = ch_run(charliecloud_image_dir, ["python3", "-c", SHOW_MOUNTS + "open('out.txt', 'w').write('x')"],
                     binds={str(work): "/runyard/work"}, cwd="/runyard/work", user=POOL_ACCOUNT)
        assert res.returncode == 0, res.stderr
        seen = json.loads(res.stdout)
        assert seen["uid"] == account.pw_uid
        assert seen["root"] == "denied"  # the image's /root (0700); the host's is not mounted at all
        assert (work / "out.txt").stat().st_uid == account.pw_uid
        sources = {m["at"]: m["root"] for m in seen["mounts"]}
        assert sources["/runyard/work"] == str(work)
        assert secret.name not in seen["tmp"], "--private-tmp: the host's /tmp must not be shared with the job"
        assert not any(m["root"].startswith(str(Path.home())) for m in seen["mounts"])
        print("ch-run mounts:", "\n".join(f"{m['at']} <- {m['type']} {m['root']}" for m in seen["mounts"]))
    finally:
        secret.rmdir()


def test_ch_run_needs_existing_bind_targets(charliecloud_image_dir: Path, shared_dir: Path) -> None:
    res = ch_run(charliecloud_image_dir, ["true"], binds={str(shared_dir): "/runyard/not-there"})
    assert res.returncode != 0
    assert "/runyard/not-there" in res.stderr


def test_rootless_podman_as_a_pool_account(rootless_podman: RootlessPodman, podman_image: str) -> None:
    account = pwd.getpwnam(POOL_ACCOUNT)
    work = rootless_podman.root / "work"
    work.mkdir()
    os.chown(work, account.pw_uid, account.pw_gid)
    res = rootless_podman.run("run", "--rm", "-v", f"{work}:/runyard/work", "-w", "/runyard/work", podman_image,
                              "python3", "-c", SHOW_MOUNTS + "open('out.txt', 'w').write('x')")
    assert res.returncode == 0, res.stderr
    seen = json.loads(res.stdout)
    assert seen["uid"] == 0 and seen["root"] == []  # root in its user namespace, the image's empty /root
    # Files written through a bind belong to the account on the host, not to root.
    assert (work / "out.txt").stat().st_uid == account.pw_uid
    res = rootless_podman.run("info", "--format", "{{.Store.GraphDriverName}} {{.Host.Security.Rootless}}")
    assert res.stdout.split() == ["overlay", "true"], res.stderr
