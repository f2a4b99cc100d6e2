"""The dev sshd (scripts/dev-sshd.sh) for tests: bring it up if it is down, stop it by pid if we started it.

Used by tests/backends/test_ssh_*.py and tests/e2e/test_ssh*.py (which put this directory on
sys.path). The sshd runs on 127.0.0.1:$RUNYARD_DEV_SSHD_PORT (2222) with its keys in
$RUNYARD_DEV_DIR (/tmp/runyard-dev-sshd).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from runyard.testing import pid_alive, wait_for

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "dev-sshd.sh"
# A runner's start on the dev sshd while the rest of the suite loads the machine's 2 cores: the backend's 30 s
# default, measured on a quiet machine, is not enough then.
LOADED_START_S = 120.0


@dataclass
class DevSSHD:
    """A running dev sshd; ``started`` says whether this test session started it."""

    dir: Path
    port: int
    started: bool = False

    @property
    def key_file(self) -> Path:
        return self.dir / "client_key"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    @property
    def pid(self) -> int:
        return int((self.dir / "sshd.pid").read_text().strip())

    def host_options(self, **more: Any) -> dict[str, Any]:
        """A host entry of the ssh backend for this sshd, with this interpreter as the host's Python."""
        return {"host": "127.0.0.1", "port": self.port, "user": "root", "key_file": str(self.key_file),
                "known_hosts": str(self.known_hosts), "python": sys.executable, "cpus": 2, **more}

    def up(self) -> None:
        subprocess.run([str(SCRIPT), "up"], env=_env(self), check=True, capture_output=True, timeout=60)

    def kill(self) -> None:
        """Stop the listener and every open session (children of the listener), by pid, like an outage."""
        import psutil

        pid = self.pid
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=False)]
        for p in procs:
            try:
                p.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        wait_for(lambda: not pid_alive(pid), timeout_s=10, what="sshd to stop")
        (self.dir / "sshd.pid").unlink(missing_ok=True)

    def down(self) -> None:
        subprocess.run([str(SCRIPT), "down"], env=_env(self), check=True, capture_output=True, timeout=60)


def _env(sshd: DevSSHD) -> dict[str, str]:
    return {**os.environ, "RUNYARD_DEV_DIR": str(sshd.dir), "RUNYARD_DEV_SSHD_PORT": str(sshd.port)}


def dev_sshd_session() -> Any:
    """Generator for a session fixture: the dev sshd, up; stopped afterwards only if it was started here."""
    if not Path("/usr/sbin/sshd").exists() or shutil.which("ssh-keygen") is None:
        msg = "OpenSSH is not installed: run `sudo scripts/test-setup.sh`."
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    sshd = DevSSHD(Path(os.environ.get("RUNYARD_DEV_DIR", "/tmp/runyard-dev-sshd")),
                   int(os.environ.get("RUNYARD_DEV_SSHD_PORT", "2222")))
    status = subprocess.run([str(SCRIPT), "status"], env=_env(sshd), capture_output=True, timeout=30)
    if status.returncode != 0:
        sshd.up()
        sshd.started = True
    try:
        yield sshd
    finally:
        if sshd.started and (sshd.dir / "sshd.pid").exists():
            pid = sshd.pid
            sshd.down()
            assert not pid_alive(pid)


def stop_ssh_jobs(work_dir: Path, timeout_s: float = 30.0) -> list[int]:
    """Stop, by their process group ids, the jobs still running under an SSH backend's ``work_dir``
    (this machine is the host); returns the ids it had to stop."""
    stopped = []
    for pid_file in sorted((work_dir / "jobs").glob("*/pid")):
        if (pid_file.parent / "exit").exists():
            continue
        pgid = int(pid_file.read_text().strip())
        if pid_alive(pgid):
            try:
                os.killpg(pgid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            stopped.append(pgid)
    for pgid in stopped:
        try:
            wait_for(lambda p=pgid: not pid_alive(p), timeout_s=timeout_s, what=f"job process group {pgid} to end")
        except AssertionError:
            os.killpg(pgid, signal.SIGKILL)
    return stopped
