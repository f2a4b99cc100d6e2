"""`python -m runyard.runner exec`, the launch wire format, and the package's public surface."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import runyard.runner
from runyard.backends.base import Resources, RunLaunch, TaskSlot
from runyard.client import Client
from runyard.errors import InvalidInput
from runyard.runner import (
    launch_from_dict,
    launch_to_dict,
    read_launch_file,
    write_launch_file,
)


def test_exec_runs_one_task_in_the_foreground(make_launch: Callable, client: Client, tmp_path: Path) -> None:
    launch = make_launch("echo from-exec; echo $RUNYARD_TASK_ROLE-$RUNYARD_TASK_RANK; exit 5",
                         tasks=(TaskSlot("master", 0), TaskSlot("worker", 1)))
    path = write_launch_file(launch, tmp_path / "launch.json")
    assert path.stat().st_mode & 0o077 == 0  # it holds the token
    proc = subprocess.run([sys.executable, "-m", "runyard.runner", "exec", "--launch", str(path), "--task", "worker-1",
                           "--workdir", str(tmp_path / "w")], capture_output=True, text=True, timeout=60, check=False)

    assert proc.returncode == 5, proc.stderr
    assert proc.stdout == "from-exec\nworker-1\n"  # echoed for the engine's own log
    lines = client.read_logs(launch.run_id)["lines"]
    assert [(ln["task"], ln["text"]) for ln in lines] == [("worker-1", "from-exec"), ("worker-1", "worker-1")]
    run = client.get_run(launch.run_id)
    assert (run["status"], run["exit_code"]) == ("failed", 5)
    assert [(t["role"], t["rank"], t["status"]) for t in run["tasks"]] == [("worker", 1, "failed")]


def test_exec_rejects_an_unknown_task(make_launch: Callable, tmp_path: Path) -> None:
    path = write_launch_file(make_launch("true"), tmp_path / "launch.json")
    proc = subprocess.run([sys.executable, "-m", "runyard.runner", "exec", "--launch", str(path), "--task", "worker-9"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert "The launch has no task 'worker-9'; its tasks are main-0" in proc.stderr


def test_launch_round_trips_through_json(tmp_path: Path) -> None:
    launch = RunLaunch(run_id=7, attempt=2, project="p", experiment_id=3, command="python train.py", snapshot_id="abc",
                       server_url="http://127.0.0.1:1", token="t0k", params={"lr": 0.1, "layers": [1, 2]},
                       env={"A": "1"}, setup=("pip install -e .",), resources=Resources(cpus=2, memory_mb=512, gpus=1),
                       time_limit_s=60, grace_period_s=3.0, tasks=(TaskSlot("master", 0), TaskSlot("worker", 0)),
                       options={"partition": "gpu"})
    assert launch_from_dict(launch_to_dict(launch)) == launch
    assert read_launch_file(write_launch_file(launch, tmp_path / "l.json")) == launch


def test_bad_launches_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="The launch lacks command, server_url"):
        launch_from_dict({"run_id": 1, "attempt": 1, "project": "p"})
    with pytest.raises(InvalidInput, match="No launch file at"):
        read_launch_file(tmp_path / "missing.json")


def test_public_surface() -> None:
    assert sorted(runyard.runner.__all__) == [
        "SudoAccount", "TaskExecution", "TaskGroup", "TaskResult", "launch_from_dict", "launch_to_dict", "preload",
        "read_launch_file", "sudo_kill_all", "sudo_kill_group", "sudo_remove", "sudo_works", "write_launch_file",
    ]
    for name in runyard.runner.__all__:
        assert getattr(runyard.runner, name) is not None
    with pytest.raises(AttributeError):
        runyard.runner.nothing  # noqa: B018


def test_exec_passes_sigterm_on_to_the_task(make_launch: Callable, client: Client, tmp_path: Path) -> None:
    import os
    import signal
    import time

    from runyard.testing import pid_alive, wait_for

    pid_file = tmp_path / "pid"
    launch = make_launch(f"echo $$ > {pid_file}; exec sleep 300", grace_period_s=1.0)
    path = write_launch_file(launch, tmp_path / "launch.json")
    proc = subprocess.Popen([sys.executable, "-m", "runyard.runner", "exec", "--launch", str(path), "--workdir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        task_pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), what="the task"))
        os.kill(proc.pid, signal.SIGTERM)
        t0 = time.monotonic()
        assert proc.wait(15) == 128 + signal.SIGINT  # the task's stop signal (Python code: KeyboardInterrupt)
        assert time.monotonic() - t0 < 5
        assert not pid_alive(task_pid)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    run = client.get_run(launch.run_id)
    assert run["status"] == "failed"
    assert run["status_message"].startswith("stopped: the runner received SIGTERM")


def test_a_sigterm_after_the_run_ended_cancels_the_task(make_launch: Callable, client: Client, tmp_path: Path) -> None:
    # Runyard has the engine stop the job of a run that ended (Slurm's scancel after another task
    # failed it): that SIGTERM stops the task, as canceled, and the run keeps its status and message.
    import os
    import signal

    from runyard.testing import pid_alive, wait_for

    pid_file = tmp_path / "pid"
    launch = make_launch(f"echo $$ > {pid_file}; exec sleep 300", grace_period_s=1.0)
    path = write_launch_file(launch, tmp_path / "launch.json")
    proc = subprocess.Popen([sys.executable, "-m", "runyard.runner", "exec", "--launch", str(path), "--workdir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        task_pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), what="the task"))
        client.update_run(launch.run_id, status="failed", message="task worker-1 failed: exit code 3")
        os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
        assert proc.returncode == 128 + signal.SIGINT
        assert not pid_alive(task_pid)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "stopped: the run had ended (failed) when the engine sent SIGTERM" in err, err
    run = client.get_run(launch.run_id)
    assert (run["status"], run["status_message"]) == ("failed", "task worker-1 failed: exit code 3")
    assert [(t["role"], t["rank"], t["status"]) for t in run["tasks"]] == [("main", 0, "canceled")]
