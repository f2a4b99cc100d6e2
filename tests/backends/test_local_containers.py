"""The local agent with runs in a podman image: a container whose runner is gone is removed, not left running."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable

import pytest
from backend_helpers import pid_alive, wait_for, wait_terminal

from runyard.backends.local import LocalBackend
from runyard.client import Client
from runyard.runner._container import home_key

pytestmark = pytest.mark.slow

STUBBORN = ("python3 -c \"import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "signal.signal(signal.SIGINT, signal.SIG_IGN); print('up', flush=True); time.sleep(300)\"")


def _containers(run_id: int) -> list[str]:
    out = subprocess.run(["podman", "ps", "-a", "--format", "{{.Names}}", "--filter", f"label=runyard.home={home_key()}",
                          "--filter", f"name=^runyard-[0-9a-f]{{12}}-{run_id}-"],
                         capture_output=True, text=True, check=True).stdout
    return out.split()


def test_a_container_whose_agent_and_client_were_killed_is_removed(
        local_backend: LocalBackend, make_launch: Callable, client: Client, podman_image: str) -> None:
    """The agent is SIGKILLed, then the task's process group (the ``podman run`` client, as the OOM killer
    would): conmon keeps the container running. The next agent finds the job gone and removes it."""
    launch = make_launch(STUBBORN, container={"image": podman_image, "roles": {}, "build": None})
    job_id = local_backend.submit(launch)
    wait_for(lambda: _containers(launch.run_id), what="the container to start", timeout_s=60)
    pid = wait_for(lambda: (client.get_run(launch.run_id)["tasks"] or [{}])[0].get("pid"), what="the task's pid")
    old_agent = local_backend.agent_pid
    try:
        os.kill(old_agent, signal.SIGKILL)
        wait_for(lambda: not pid_alive(old_agent), what="the agent to die")
        os.killpg(pid, signal.SIGKILL)
        wait_for(lambda: not pid_alive(pid), what="the client to die")
        assert _containers(launch.run_id), "conmon keeps the container of a killed client"
        assert wait_terminal(local_backend, job_id, timeout_s=30).status.terminal
        wait_for(lambda: not _containers(launch.run_id), what="the container to be removed", timeout_s=30)
    finally:
        names = _containers(launch.run_id)
        if names:
            subprocess.run(["podman", "rm", "-f", "-t", "0", *names], capture_output=True, check=False)
