"""ProcessTreeSampler over a real process tree."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil

from runyard.runner._sysmetrics import ProcessTreeSampler
from runyard.testing import wait_for


def _tree_rss_mb(pid: int) -> float:
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        return sum(p.memory_info().rss for p in procs) / 2**20
    except psutil.NoSuchProcess:
        return 0.0


def test_samples_the_whole_tree() -> None:
    busy = "import time\nt = time.time()\nwhile time.time() - t < 5: pass"
    # A shell whose child burns CPU and holds ~50 MB: both count.
    proc = subprocess.Popen(["bash", "-c", f"{sys.executable} -c 'x = bytearray(50 * 2**20)\n{busy}'; true"],
                            start_new_session=True)
    try:
        wait_for(lambda: _tree_rss_mb(proc.pid) > 50, 30, "the child to hold its 50 MB")
        sampler = ProcessTreeSampler(proc.pid, "")
        time.sleep(1.0)  # the window the CPU percentage is measured over: the behaviour under test
        values = sampler.sample()
        assert values["sys/cpu_percent"] > 1  # a busy loop; low bar: the machine may be loaded
        assert values["sys/memory_mb"] > 50
        assert not any(k.startswith("sys/gpu") for k in values)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert sampler.sample() == {}
    sampler.close()
