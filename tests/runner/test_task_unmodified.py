"""The runner around code run as it is (no Runyard import): metrics read from its output, outputs kept,
a graceful stop (KeyboardInterrupt), thread variables from resources.cpus, and mounts.

A real server (the session's) and real processes; nothing is mocked.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from runyard.backends.base import EngineStatus, Resources, RunLaunch, TaskSlot
from runyard.client import Client
from runyard.runner import TaskExecution, TaskResult
from runyard.testing import wait_for

PY = sys.executable


def _start(launch: RunLaunch, client: Client, workdir: Path) -> tuple[TaskExecution, threading.Thread, list[TaskResult]]:
    execution = TaskExecution(launch, TaskSlot(), client, workdir)
    results: list[TaskResult] = []
    thread = threading.Thread(target=lambda: results.append(execution.run()), daemon=True)
    thread.start()
    return execution, thread, results


def _texts(client: Client, run_id: int) -> list[str]:
    out: list[str] = []
    offset = 0
    while True:
        page = client.read_logs(run_id, offset)
        if not page["lines"]:
            return out
        out += [ln["text"] for ln in page["lines"]]
        offset = page["next_offset"]


def _script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "train.py"
    path.write_text(body)
    return f"{PY} {path}"


def test_output_metrics_are_logged_with_steps_and_bad_values_are_noted(make_launch: Callable, client: Client,
                                                                        tmp_path: Path) -> None:
    lines = [
        "| end of epoch 1 | valid ppl 250.02",
        "| end of epoch 2 | valid ppl 180.5",
        "epoch=3 loss=0.25 acc=1e999 lr=abc score n/a",  # too big: stored as missing; text: no number, skipped
        '{"step": 7, "f1": 0.5, "name": "x"}',
        "x" * 200_000,  # a huge line: logged in pieces, searched for nothing
        "bad \udcff surrogate and NUL \x00 loss=0.125",
    ]
    body = "import sys\n" + "".join(f"print({ln!r})\n" for ln in lines[:5])
    body += "sys.stdout.buffer.write(b'bad \\xed\\xa0\\x80 surrogate and NUL \\x00 loss=0.125\\n')\n"
    launch = make_launch(_script(tmp_path, body), task_io={"output_metrics": [
        {"regex": r"end of epoch (?P<step>\d+) \| valid ppl\s+(?P<val_ppl>[\d.]+)"},
        {"regex": r"score (?P<score>\S+)"}, {"preset": "key=value"}, {"preset": "json"}]})
    result = TaskExecution(launch, TaskSlot(), client, tmp_path / "w").run()

    assert result.status is EngineStatus.SUCCEEDED
    history = client.metric_history(launch.run_id, "val_ppl")
    assert history["steps"] == [1, 2] and history["values"] == [250.02, 180.5]
    assert client.metric_history(launch.run_id, "f1")["steps"] == [7]
    loss = client.metric_history(launch.run_id, "loss")
    assert loss["values"] == [0.25, 0.125]
    acc = client.metric_history(launch.run_id, "acc")
    assert acc["values"] == [None]
    assert not {"lr", "score"} & set(client.metric_summaries(launch.run_id))
    texts = _texts(client, launch.run_id)
    assert any("'n/a' for metric 'score' is not a number" in t for t in texts)
    assert any("for metric 'acc' is not a finite number; stored as missing" in t for t in texts)


def test_cancel_delivers_keyboard_interrupt_and_keeps_the_outputs(make_launch: Callable, client: Client,
                                                                    tmp_path: Path) -> None:
    body = (
        "import time\n"
        "open('model.pt', 'wb').write(b'w' * 3000)\n"
        "open('tmp.pt', 'wb').write(b't')\n"
        "print('ready', flush=True)\n"
        "try:\n"
        "    time.sleep(60)\n"
        "except KeyboardInterrupt:\n"
        "    print('exiting early: saving the best model', flush=True)\n"
        "    open('model.pt', 'wb').write(b'best' * 1000)\n"
    )
    launch = make_launch(_script(tmp_path, body), task_io={"outputs": ["*.pt", "!tmp.pt"]})
    _, thread, results = _start(launch, client, tmp_path / "w")
    wait_for(lambda: "ready" in _texts(client, launch.run_id), what="the script to start")
    client.cancel_run(launch.run_id)
    thread.join(20)
    [result] = results
    assert result.status is EngineStatus.CANCELED
    texts = _texts(client, launch.run_id)
    assert "exiting early: saving the best model" in texts
    assert any(t.startswith("[runyard] the run was canceled by a user: sending SIGINT") for t in texts), texts
    assert "[runyard] outputs kept: model.pt (3.9 KB); 1 file, 3.9 KB" in texts
    assert [a["path"] for a in client.list_artifacts(launch.run_id)] == ["model.pt"]
    dest = tmp_path / "model.pt"
    client.download_artifact(launch.run_id, "model.pt", dest)
    assert dest.read_bytes() == b"best" * 1000


def test_a_pruned_run_that_prints_another_metric_is_stopped_at_once(make_launch: Callable, client: Client,
                                                                      tmp_path: Path) -> None:
    body = (
        "import time\n"
        "for step in range(600):\n"
        "    print(f'loss={1 / (step + 1)}', flush=True)\n"
        "    time.sleep(0.5)\n"
    )
    launch = make_launch(_script(tmp_path, body), grace_period_s=30.0,
                         task_io={"output_metrics": [{"preset": "key=value"}], "stop_signal": "SIGTERM"})
    _, thread, results = _start(launch, client, tmp_path / "w")
    wait_for(lambda: "loss" in client.metric_summaries(launch.run_id), what="a metric")
    client.update_run(launch.run_id, "pruned", "pruned by the test")
    t0 = time.monotonic()
    thread.join(20)
    took = time.monotonic() - t0
    [result] = results
    assert took < 5, f"stopped after {took:.1f}s, not at its next metric (grace period 30 s)"
    assert result.reason.startswith("pruned: stopped")
    texts = _texts(client, launch.run_id)
    assert "[runyard] the pruned run printed another metric instead of exiting: stopping it now" in texts


def test_a_pruned_run_that_logs_through_the_sdk_and_ignores_should_stop_is_stopped_at_its_next_point(
        make_launch: Callable, client: Client, tmp_path: Path) -> None:
    body = (
        "import time, runyard\n"
        "runyard.init()\n"
        "for step in range(600):\n"
        "    runyard.log({'loss': 1 / (step + 1)}, step=step)\n"
        "    time.sleep(0.5)\n"
    )
    launch = make_launch(_script(tmp_path, body), grace_period_s=30.0, task_io={"stop_signal": "SIGTERM"})
    _, thread, results = _start(launch, client, tmp_path / "w")
    wait_for(lambda: "loss" in client.metric_summaries(launch.run_id), what="a metric")
    client.update_run(launch.run_id, "pruned", "pruned by the test")
    t0 = time.monotonic()
    thread.join(25)
    took = time.monotonic() - t0
    [result] = results
    # Counted from SDK_HEARS_WITHIN_S (4 s) after the runner heard of the decision: well before the 30 s of grace.
    assert took < 15, f"stopped after {took:.1f}s, not at its next point (grace period 30 s)"
    assert result.reason.startswith("pruned: stopped")
    assert "[runyard] the pruned run logged another metric instead of exiting: stopping it now" in _texts(
        client, launch.run_id)


def test_thread_variables_follow_cpus_unless_env_sets_them(make_launch: Callable, client: Client, tmp_path: Path) -> None:
    names = ["OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"]
    body = f"import json, os\nprint(json.dumps({{n: os.environ.get(n) for n in {names!r}}}))\n"
    launch = make_launch(_script(tmp_path, body), resources=Resources(cpus=2.5), env={"MKL_NUM_THREADS": "7"})
    TaskExecution(launch, TaskSlot(), client, tmp_path / "w").run()
    seen = json.loads(next(t for t in _texts(client, launch.run_id) if t.startswith("{")))
    assert seen == {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "7", "OPENBLAS_NUM_THREADS": "2", "NUMEXPR_NUM_THREADS": "2"}

    launch = make_launch(_script(tmp_path, body), resources=Resources(cpus=0.5))
    TaskExecution(launch, TaskSlot(), client, tmp_path / "w2").run()
    seen = json.loads(next(t for t in _texts(client, launch.run_id) if t.startswith("{")))
    assert set(seen.values()) == {"1"}


def test_cores_pin_the_task(make_launch: Callable, client: Client, tmp_path: Path) -> None:
    core = sorted(os.sched_getaffinity(0))[-1]
    launch = make_launch(f"{PY} -c 'import os; print(sorted(os.sched_getaffinity(0)))'")
    TaskExecution(launch, TaskSlot(), client, tmp_path / "w", {"RUNYARD_CPU_CORES": str(core)}).run()
    assert f"[{core}]" in _texts(client, launch.run_id)
    assert len(os.sched_getaffinity(0)) >= 1  # the runner's thread got its own set back


def test_mounts_link_data_into_the_working_directory(make_launch: Callable, client: Client, tmp_path: Path) -> None:
    data = tmp_path / "corpus"
    data.mkdir()
    (data / "train.txt").write_text("hello corpus\n")
    launch = make_launch("cat data/wikitext/train.txt", task_io={"mounts": {"data/wikitext": str(data)},
                                                                 "outputs": ["data/**"]})
    result = TaskExecution(launch, TaskSlot(), client, tmp_path / "w").run()
    assert result.status is EngineStatus.SUCCEEDED
    texts = _texts(client, launch.run_id)
    assert "hello corpus" in texts
    assert client.list_artifacts(launch.run_id) == []  # a mount is not the run's output

    launch = make_launch("true", task_io={"mounts": {"data": str(tmp_path / "missing")}})
    result = TaskExecution(launch, TaskSlot(), client, tmp_path / "w3").run()
    assert result.status is EngineStatus.FAILED
    run = client.get_run(launch.run_id)
    assert run["status_message"].startswith(f"mounts: data: {tmp_path / 'missing'}: {tmp_path / 'missing'} does not "
                                            "exist on this backend")


def test_outputs_every_uploads_while_the_run_runs(make_launch: Callable, client: Client, tmp_path: Path) -> None:
    body = (
        "import time\n"
        "open('ckpt.pt', 'w').write('epoch 1')\n"
        "print('saved', flush=True)\n"
        "time.sleep(60)\n"
    )
    launch = make_launch(_script(tmp_path, body), task_io={"outputs": ["ckpt.pt"], "outputs_every_s": 0.5})
    _, thread, results = _start(launch, client, tmp_path / "w")
    wait_for(lambda: [a["path"] for a in client.list_artifacts(launch.run_id)] == ["ckpt.pt"], 15,
             "the checkpoint to be uploaded while the run runs")
    assert client.get_run(launch.run_id)["status"] == "running"
    wait_for(lambda: "[runyard] outputs uploaded: ckpt.pt (7 B)" in _texts(client, launch.run_id), 5, "the log line")
    client.cancel_run(launch.run_id)
    thread.join(20)
    texts = _texts(client, launch.run_id)
    assert texts.count("[runyard] outputs uploaded: ckpt.pt (7 B)") == 1  # unchanged: not sent again
    assert "[runyard] outputs kept: ckpt.pt (7 B); 1 file, 7 B" in texts
