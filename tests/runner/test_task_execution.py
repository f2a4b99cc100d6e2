"""TaskExecution against a real server and real processes: logs, exit statuses, cancel, prune, time limit."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from runyard.backends.base import EngineStatus, RunLaunch, TaskSlot
from runyard.client import Client
from runyard.runner import TaskExecution, TaskResult
from runyard.testing import pid_alive, wait_for


def _start(launch: RunLaunch, client: Client, workdir: Path, **kwargs) -> tuple[TaskExecution, threading.Thread, list[TaskResult]]:
    execution = TaskExecution(launch, TaskSlot(), client, workdir, **kwargs)
    results: list[TaskResult] = []
    thread = threading.Thread(target=lambda: results.append(execution.run()), daemon=True)
    thread.start()
    return execution, thread, results


def _lines(client: Client, run_id: int) -> list[dict]:
    out: list[dict] = []
    offset = 0
    while True:
        page = client.read_logs(run_id, offset)
        if not page["lines"]:
            return out
        out += page["lines"]
        offset = page["next_offset"]


def _stdout(client: Client, run_id: int) -> list[str]:
    return [ln["text"] for ln in _lines(client, run_id) if ln["stream"] == "stdout"]


def test_output_reaches_the_server_in_order_and_exit_0_succeeds(make_launch: Callable, client: Client, tmp_path: Path) -> None:
    launch = make_launch("for i in $(seq 1 1200); do echo line-$i; done; echo warn >&2")
    result = TaskExecution(launch, TaskSlot(), client, tmp_path / "w").run()

    assert (result.status, result.exit_code, result.reported) == (EngineStatus.SUCCEEDED, 0, True)
    lines = _lines(client, launch.run_id)
    assert [ln["text"] for ln in lines if ln["stream"] == "stdout"] == [f"line-{i}" for i in range(1, 1201)]
    assert [ln["text"] for ln in lines if ln["stream"] == "stderr"] == ["warn"]
    assert {ln["task"] for ln in lines} == {"main-0"}
    run = client.get_run(launch.run_id)
    assert (run["status"], run["exit_code"]) == ("succeeded", 0)
    assert run["started_at"] is not None
    [task] = run["tasks"]
    assert (task["role"], task["rank"], task["status"], task["exit_code"], task["attempt"]) == ("main", 0, "succeeded", 0, 1)
    assert task["pid"] > 0 and task["host"]


def test_non_zero_exit_fails_with_the_code_and_the_last_20_lines(make_launch: Callable, client: Client, tmp_path: Path) -> None:
    launch = make_launch("for i in $(seq 1 25); do echo out-$i; done; exit 3")
    result = TaskExecution(launch, TaskSlot(), client, tmp_path).run()

    assert (result.status, result.exit_code, result.reason) == (EngineStatus.FAILED, 3, "exit code 3")
    run = client.get_run(launch.run_id)
    assert (run["status"], run["exit_code"]) == ("failed", 3)
    assert run["status_message"] == "exit code 3\n" + "\n".join(f"out-{i}" for i in range(6, 26))
    assert run["tasks"][0]["status"] == "failed"


def test_a_signal_is_named_in_the_message(make_launch: Callable, client: Client, tmp_path: Path) -> None:
    launch = make_launch("echo bye; kill -KILL $$")
    result = TaskExecution(launch, TaskSlot(), client, tmp_path).run()

    assert (result.status, result.exit_code) == (EngineStatus.FAILED, 137)
    assert client.get_run(launch.run_id)["status_message"] == "killed by signal SIGKILL\nbye"


def test_a_failing_setup_step_fails_the_run_and_skips_the_command(make_launch: Callable, client: Client, tmp_path: Path) -> None:
    launch = make_launch("echo command-ran", setup=("echo setup-1", "echo setup-2; exit 4"))
    result = TaskExecution(launch, TaskSlot(), client, tmp_path).run()

    assert (result.status, result.exit_code, result.reason) == (EngineStatus.FAILED, 4, "setup step 2 failed: exit code 4")
    assert _stdout(client, launch.run_id) == ["setup-1", "setup-2"]
    assert client.get_run(launch.run_id)["status_message"].startswith("setup step 2 failed: exit code 4\n")


def test_environment_and_working_directory(make_launch: Callable, client: Client, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNYARD_DATABASE_URL", "postgresql://u:secret@db/runyard")
    launch = make_launch('echo "$RUNYARD_TASK_ROLE $RUNYARD_TASK_RANK $RUNYARD_RUN_ID $MINE $CUDA_VISIBLE_DEVICES"; '
                         'echo "db=${RUNYARD_DATABASE_URL:-unset}"; pwd; command -v python; echo "$PATH"',
                         env={"MINE": "from-spec"})
    workdir = tmp_path / "work dir"
    TaskExecution(launch, TaskSlot(), client, workdir, {"CUDA_VISIBLE_DEVICES": "1"}).run()

    role_line, db, cwd, python, path = _stdout(client, launch.run_id)
    assert role_line == f"main 0 {launch.run_id} from-spec 1"
    assert db == "db=unset"
    assert Path(cwd) == workdir
    assert python == os.path.join(os.path.dirname(sys.executable), "python")
    assert path.split(os.pathsep)[0] == os.path.dirname(sys.executable)


def test_cancel_stops_the_process_group_within_the_grace_period(make_launch: Callable, client: Client, tmp_path: Path) -> None:
    # A child that ignores SIGTERM must go too: SIGKILL after grace_period_s.
    pids = tmp_path / "pids"
    launch = make_launch(f"(trap '' TERM; sleep 300) & echo $! >> {pids}; sleep 300 & echo $! >> {pids}; echo $$ >> {pids}; wait",
                         grace_period_s=1.0)
    _, thread, results = _start(launch, client, tmp_path / "w")
    started = wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 3 and pids.read_text().split(), what="pids")
    assert all(pid_alive(int(p)) for p in started)

    client.cancel_run(launch.run_id)
    t0 = time.monotonic()
    wait_for(lambda: not any(pid_alive(int(p)) for p in started), timeout_s=10, what="the task's processes to end")
    assert time.monotonic() - t0 < 5.0
    thread.join(10)
    [result] = results
    assert result.status is EngineStatus.CANCELED
    run = client.get_run(launch.run_id)
    assert run["status"] == "canceled"
    assert run["tasks"][0]["status"] == "canceled"


def test_pruned_run_gets_its_grace_period_then_sigint_and_stays_pruned(make_launch: Callable, client: Client,
                                                                        tmp_path: Path) -> None:
    # The default stop signal is SIGINT (Python code sees KeyboardInterrupt), SIGTERM after the grace.
    launch = make_launch("trap 'echo got-int; exit 0' INT; echo ready; while true; do sleep 0.05; done", grace_period_s=2.0)
    _, thread, results = _start(launch, client, tmp_path)
    wait_for(lambda: "ready" in _stdout(client, launch.run_id), what="the task to start")

    client.update_run(launch.run_id, "pruned", "pruned by the test")
    pruned_at = time.time()
    thread.join(15)
    [result] = results
    term_line = next(ln for ln in _lines(client, launch.run_id) if ln["text"] == "got-int")
    assert term_line["ts"] - pruned_at >= 2.0 - 0.2  # no signal before the grace period
    assert term_line["ts"] - pruned_at < 2.0 + 3.0  # a heartbeat (1 s) noticed the prune
    assert result.status is EngineStatus.CANCELED and result.reason.startswith("pruned")
    run = client.get_run(launch.run_id)
    assert (run["status"], run["status_message"]) == ("pruned", "pruned by the test")
    assert run["tasks"][0]["status"] == "pruned"


def test_time_limit_kills_an_overrunning_task(make_launch: Callable, client: Client, tmp_path: Path) -> None:
    launch = make_launch("echo started; sleep 60", time_limit_s=1, grace_period_s=1.0)
    t0 = time.monotonic()
    result = TaskExecution(launch, TaskSlot(), client, tmp_path).run()

    assert time.monotonic() - t0 < 5.0
    assert result.status is EngineStatus.TIMEOUT
    assert result.reason == "TIMEOUT: time limit of 1s exceeded"
    run = client.get_run(launch.run_id)
    assert run["status"] == "failed"
    assert run["status_message"] == "TIMEOUT: time limit of 1s exceeded\nstarted"


def test_canceled_before_start_stops_at_once(make_launch: Callable, client: Client, tmp_path: Path) -> None:
    launch = make_launch("sleep 60")
    client.cancel_run(launch.run_id)
    t0 = time.monotonic()
    result = TaskExecution(launch, TaskSlot(), client, tmp_path).run()

    assert time.monotonic() - t0 < 5.0
    assert result.status is EngineStatus.CANCELED
    assert client.get_run(launch.run_id)["status"] == "canceled"


def test_backend_cancel_reports_the_run_canceled(make_launch: Callable, client: Client, tmp_path: Path) -> None:
    launch = make_launch("echo up; sleep 60")
    execution, thread, results = _start(launch, client, tmp_path)
    wait_for(lambda: execution.pid, what="the process")
    execution.cancel()
    execution.cancel()  # idempotent
    thread.join(10)
    [result] = results
    assert (result.status, result.exit_code) == (EngineStatus.CANCELED, 128 + signal.SIGINT)
    run = client.get_run(launch.run_id)
    assert run["status"] == "canceled"
    assert run["status_message"].startswith("canceled by the backend")
    # The server did not cancel the run: after a second without its word, the log says the backend stopped it.
    assert any(ln["text"].startswith("[runyard] canceled by the backend: sending SIGINT")
               for ln in _lines(client, launch.run_id)), _lines(client, launch.run_id)


def test_system_metrics_are_logged(make_launch: Callable, client: Client, tmp_path: Path) -> None:
    launch = make_launch("python -c 'import time\nt = time.time()\nwhile time.time() - t < 2.5: pass'")
    result = TaskExecution(launch, TaskSlot(), client, tmp_path, sample_s=0.5).run()

    assert result.status is EngineStatus.SUCCEEDED
    summaries = client.metric_summaries(launch.run_id)
    assert {"sys/cpu_percent", "sys/memory_mb"} <= set(summaries)
    assert not any(k.startswith("sys/gpu") for k in summaries)  # no NVML on this machine
    cpu = client.metric_history(launch.run_id, "sys/cpu_percent")
    assert max(v for v in cpu["values"] if v is not None) > 20
    mem = client.metric_history(launch.run_id, "sys/memory_mb")
    assert min(mem["values"]) > 1


def test_the_snapshot_is_materialised_into_the_workdir(make_launch: Callable, client: Client, tmp_path: Path) -> None:
    from runyard.snapshot import create_snapshot

    project = tmp_path / "project"
    (project / "pkg").mkdir(parents=True)
    (project / "train.py").write_text("import pkg.util\nprint(pkg.util.VALUE)\nopen('train.py', 'a').write('# edited\\n')\n")
    (project / "pkg" / "__init__.py").write_text("")
    (project / "pkg" / "util.py").write_text("VALUE = 'from the snapshot'\n")
    snapshot = create_snapshot(client, project)
    launches = [make_launch("python train.py", snapshot_id=snapshot.id) for _ in range(2)]
    for i, launch in enumerate(launches):
        result = TaskExecution(launch, TaskSlot(), client, tmp_path / f"w{i}").run()
        assert result.status is EngineStatus.SUCCEEDED, result.message
        assert _stdout(client, launch.run_id) == ["from the snapshot"]
    # Each run edits its own copy: the second run's file was not touched by the first.
    assert (tmp_path / "w1" / "train.py").read_text().splitlines().count("# edited") == 1


def test_a_missing_snapshot_fails_the_run(make_launch: Callable, client: Client, tmp_path: Path) -> None:
    launch = make_launch("true", snapshot_id="0" * 64)
    result = TaskExecution(launch, TaskSlot(), client, tmp_path).run()
    assert result.status is EngineStatus.FAILED
    run = client.get_run(launch.run_id)
    assert run["status"] == "failed"
    assert run["status_message"].startswith(f"could not fetch snapshot {'0' * 64}")


class _CountingReports:
    """The real client, with every ``report`` call recorded."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self.reports: list[dict] = []

    def report(self, run_id: int, **parts) -> dict:
        self.reports.append(parts)
        return self._client.report(run_id, **parts)

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(self._client, name)


def test_a_short_task_reports_its_start_and_end_in_one_request(make_launch: Callable, client: Client, tmp_path: Path) -> None:
    launch = make_launch("true")
    counting = _CountingReports(client)
    result = TaskExecution(launch, TaskSlot(), counting, tmp_path / "w").run()

    assert (result.status, result.reported) == (EngineStatus.SUCCEEDED, True)
    [report] = counting.reports
    assert report["run"]["status"] == "running" and report["then"]["run"]["status"] == "succeeded"
    run = client.get_run(launch.run_id)
    assert run["status"] == "succeeded" and run["started_at"] is not None
    assert [e["status"] for e in run["events"]][-2:] == ["running", "succeeded"]  # the history has both
    [task] = run["tasks"]
    assert (task["status"], task["exit_code"]) == ("succeeded", 0) and task["pid"] > 0 and task["host"]


def test_a_longer_task_reports_its_start_at_once(make_launch: Callable, client: Client, tmp_path: Path) -> None:
    launch = make_launch("sleep 1")
    counting = _CountingReports(client)
    execution, thread, results = _start(launch, counting, tmp_path / "w")
    wait_for(lambda: client.get_run(launch.run_id)["status"] == "running", timeout_s=5, what="running before the end")
    thread.join(10)
    assert [r["run"]["status"] for r in counting.reports] == ["running", "succeeded"]
    assert all("then" not in r or r["then"] is None for r in counting.reports)
    assert results[0].status is EngineStatus.SUCCEEDED


@pytest.mark.parametrize(("command", "argv"), [
    ("python -c pass", ["python", "-c", "pass"]),
    ('python train.py --lr=0.01 --name "a b"', ["python", "train.py", "--lr=0.01", "--name", "a b"]),
    ("python train.py > out.txt", None),  # redirection
    ("FOO=1 python train.py", None),  # an assignment
    ("python $SCRIPT", None),  # a variable
    ("ls *.py", None),  # a glob
    ("cd sub && python x.py", None),
    ("python -c 'print(1)'", None),
    ("echo hi", None),  # a shell builtin
    ("python 'unbalanced", None),
])
def test_only_plain_commands_run_without_bash(command: str, argv: list[str] | None) -> None:
    from runyard.runner._task import _plain_argv

    assert _plain_argv(command) == argv


def test_a_plain_command_that_does_not_exist_fails_the_shell_way(make_launch: Callable, client: Client, tmp_path: Path) -> None:
    launch = make_launch("no-such-program-here --flag")
    result = TaskExecution(launch, TaskSlot(), client, tmp_path / "w").run()
    assert (result.status, result.exit_code) == (EngineStatus.FAILED, 127)
    assert any("no-such-program-here: command not found" in line for line in _stdout(client, launch.run_id)
               + [ln["text"] for ln in _lines(client, launch.run_id)])


def test_a_plain_command_runs_with_the_run_environment_and_path(make_launch: Callable, client: Client, tmp_path: Path) -> None:
    launch = make_launch("python -c pass")
    result = TaskExecution(launch, TaskSlot(), client, tmp_path / "w").run()
    assert (result.status, result.exit_code) == (EngineStatus.SUCCEEDED, 0)
    [task] = client.get_run(launch.run_id)["tasks"]
    assert task["pid"] > 0
