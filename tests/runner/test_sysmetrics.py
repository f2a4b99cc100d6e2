"""ProcessTreeSampler over a real process tree."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from runyard.runner._sysmetrics import ProcessTreeSampler


def test_samples_the_whole_tree() -> None:
    busy = "import time\nt = time.time()\nwhile time.time() - t < 5: pass"
    # A shell whose child burns CPU and holds ~50 MB: both count.
    proc = subprocess.Popen(["bash", "-c", f"{sys.executable} -c 'x = bytearray(50 * 2**20)\n{busy}'; true"], start_new_session=True)
    try:
        time.sleep(0.3)
        sampler = ProcessTreeSampler(proc.pid, "")
        time.sleep(1.0)
        values = sampler.sample()
        assert values["sys/cpu_percent"] > 1  # a busy loop; low bar: the machine may be loaded
        assert values["sys/memory_mb"] > 50
        assert not any(k.startswith("sys/gpu") for k in values)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert sampler.sample() == {}
    sampler.close()
