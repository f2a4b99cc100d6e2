"""runyard._proc: process identity (start time, liveness, zombies), flock, process-group signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from runyard._proc import (
    cmdline,
    is_locked,
    killpg,
    locked,
    pid_alive,
    same_process,
    start_time,
    try_lock,
)
from runyard.testing import wait_for


def test_start_time_is_psutils_create_time_and_names_one_process() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        started = start_time(proc.pid)
        assert started is not None
        assert abs(started - psutil.Process(proc.pid).create_time()) < 0.05
        assert same_process(proc.pid, started)
        assert not same_process(proc.pid, started - 10.0)  # a recycled pid: same number, other start
        assert same_process(proc.pid, None)
        # Right after fork the child still shows the parent's command line until it execs.
        wait_for(lambda: "time.sleep(30)" in " ".join(cmdline(proc.pid) or []), timeout_s=10,
                 what="the child to exec")
    finally:
        proc.kill()
        proc.wait()


def test_a_zombie_is_not_alive_and_a_reaped_pid_neither() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while psutil.Process(proc.pid).status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not pid_alive(proc.pid)  # exited, not yet reaped
    proc.wait()
    assert not pid_alive(proc.pid)
    assert start_time(proc.pid) is None
    assert not pid_alive(0) and not pid_alive(None)
    assert pid_alive(os.getpid())


def test_flock_helpers(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    assert not is_locked(path)
    fd = try_lock(path)
    assert fd is not None
    try:
        # flock locks belong to the open file: another open of it, in this process too, is refused.
        assert is_locked(path)
        assert try_lock(path) is None
    finally:
        os.close(fd)
    assert not is_locked(path)
    with locked(path):
        assert is_locked(path)
    assert not is_locked(path)


def test_killpg_signals_a_group_and_ignores_one_that_is_gone() -> None:
    proc = subprocess.Popen(["sleep", "30"], start_new_session=True)
    killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(10) == -signal.SIGTERM
    killpg(proc.pid, signal.SIGTERM)  # gone: no error
