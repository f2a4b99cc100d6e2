"""TaskExecution with ``output_dir`` (the local agent's way): output through files, the exit code in a file.

The same outcomes as through pipes (tests/runner/test_task_execution.py), and the files a
later process reads when the one that watched the task died: ``stdout``, ``stderr`` and
``exit-code`` in ``<output_dir>/<task>/``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from runyard.backends.base import EngineStatus, TaskSlot
from runyard.client import Client
from runyard.runner import TaskExecution, TaskResult
from runyard.testing import pid_alive, wait_for


def _run(launch, client: Client, tmp_path: Path, **kwargs) -> TaskResult:
    return TaskExecution(launch, TaskSlot(), client, tmp_path / "w", output_dir=tmp_path / "out", **kwargs).run()


def _texts(client: Client, run_id: int, stream: str) -> list[str]:
    texts: list[str] = []
    offset = 0
    while True:
        page = client.read_logs(run_id, offset, limit=10000)
        if not page["lines"]:
            return texts
        texts += [ln["text"] for ln in page["lines"] if ln["stream"] == stream]
        offset = page["next_offset"]


def test_output_reaches_the_server_in_order_and_stays_in_files(make_launch: Callable, client: Client,
                                                               tmp_path: Path) -> None:
    launch = make_launch("for i in $(seq 1 1200); do echo line-$i; done; echo warn >&2; printf no-newline",
                         setup=("echo from-setup",))
    result = _run(launch, client, tmp_path)
    assert (result.status, result.exit_code, result.reported) == (EngineStatus.SUCCEEDED, 0, True)
    expected = ["from-setup", *(f"line-{i}" for i in range(1, 1201)), "no-newline"]
    assert _texts(client, launch.run_id, "stdout") == expected
    assert _texts(client, launch.run_id, "stderr") == ["warn"]
    out = tmp_path / "out" / "main-0"
    assert (out / "exit-code").read_text() == "0\n"
    assert not (out / "stdout").exists() and not (out / "stderr").exists()  # all reported: the copies went


def test_a_chatty_task_s_output_file_takes_little_disk(make_launch: Callable, client: Client, tmp_path: Path) -> None:
    """What was read is freed on disk (a hole), so a task that prints for days does not fill it."""
    from runyard.runner import _task

    line = "x" * 1000
    launch = make_launch(f"for i in $(seq 1 30000); do echo {line}; done; sleep 0.3; stat -c '%s %b %B' "
                         f"{tmp_path}/out/main-0/stdout >&2")
    result = _run(launch, client, tmp_path)
    assert result.status is EngineStatus.SUCCEEDED
    [stat] = _texts(client, launch.run_id, "stderr")
    size, blocks, block_size = (int(x) for x in stat.split())
    assert size > 30_000_000
    assert blocks * block_size < 2 * _task.PUNCH_BYTES, stat  # without the holes: all 30 MB
    assert len(_texts(client, launch.run_id, "stdout")) == 30000


def test_exit_codes_and_signals_are_reported_as_through_pipes(make_launch: Callable, client: Client,
                                                              tmp_path: Path) -> None:
    failing = make_launch("for i in $(seq 1 25); do echo out-$i; done; exit 3")
    result = _run(failing, client, tmp_path / "a")
    assert (result.status, result.exit_code, result.reason) == (EngineStatus.FAILED, 3, "exit code 3")
    assert client.get_run(failing.run_id)["status_message"] == "exit code 3\n" + "\n".join(f"out-{i}" for i in range(6, 26))
    assert (tmp_path / "a" / "out" / "main-0" / "exit-code").read_text() == "3\n"

    killed = make_launch("echo bye; kill -KILL $$")
    result = _run(killed, client, tmp_path / "b")
    assert (result.status, result.exit_code) == (EngineStatus.FAILED, 137)
    assert client.get_run(killed.run_id)["status_message"] == "killed by signal SIGKILL\nbye"
    assert (tmp_path / "b" / "out" / "main-0" / "exit-code").read_text() == "137\n"

    missing = make_launch("no-such-program-here --flag")
    result = _run(missing, client, tmp_path / "c")
    assert (result.status, result.exit_code) == (EngineStatus.FAILED, 127)
    assert any("no-such-program-here" in t and "not found" in t for t in _texts(client, missing.run_id, "stderr"))


def test_a_failing_setup_step_writes_no_exit_code(make_launch: Callable, client: Client, tmp_path: Path) -> None:
    """Only the command's exit is the task's: a later reader finds none when a setup step ended it."""
    launch = make_launch("echo command-ran", setup=("echo setup-1", "exit 4"))
    result = _run(launch, client, tmp_path)
    assert (result.status, result.exit_code, result.reason) == (EngineStatus.FAILED, 4, "setup step 2 failed: exit code 4")
    assert _texts(client, launch.run_id, "stdout") == ["setup-1"]
    assert not (tmp_path / "out" / "main-0" / "exit-code").exists()


def test_cancel_stops_the_group_and_the_stop_is_reported(make_launch: Callable, client: Client, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    launch = make_launch(f"(trap '' TERM; sleep 300) & echo $! >> {pids}; echo $$ >> {pids}; echo ready; wait",
                         grace_period_s=1.0)
    execution = TaskExecution(launch, TaskSlot(), client, tmp_path / "w", output_dir=tmp_path / "out")
    results: list[TaskResult] = []
    thread = threading.Thread(target=lambda: results.append(execution.run()), daemon=True)
    thread.start()
    started = wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 2 and pids.read_text().split(), what="pids")
    wait_for(lambda: "ready" in _texts(client, launch.run_id, "stdout"), what="the output to arrive while it runs")
    client.cancel_run(launch.run_id)
    t0 = time.monotonic()
    wait_for(lambda: not any(pid_alive(int(p)) for p in started), timeout_s=10, what="the task's processes to end")
    assert time.monotonic() - t0 < 5.0
    thread.join(10)
    [result] = results
    assert result.status is EngineStatus.CANCELED
    assert client.get_run(launch.run_id)["status"] == "canceled"


def test_the_time_limit_holds(make_launch: Callable, client: Client, tmp_path: Path) -> None:
    launch = make_launch("echo start; sleep 30", time_limit_s=1, grace_period_s=1.0)
    t0 = time.monotonic()
    result = _run(launch, client, tmp_path)
    assert result.status is EngineStatus.TIMEOUT and time.monotonic() - t0 < 10
    assert "TIMEOUT" in client.get_run(launch.run_id)["status_message"]
