"""A run's life: final statuses, the context manager, exit hooks, should_stop(), and attach mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import runyard
from runyard.client import Client
from runyard.testing import LiveServer


def test_finish_sets_the_final_status_of_an_ad_hoc_run(server: LiveServer, client: Client,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    first = runyard.init(project="life")
    runyard.log({"x": 1.0})
    second = runyard.init(project="life")  # a new init() finishes the active run first
    assert runyard.active_run() is second
    first.log({"x": 2.0})  # a finished run reports and ignores, never raises
    first.log({"x": 3.0})
    first.log_params({"late": 1})
    err = capsys.readouterr().err
    assert err.count(f"log() on run {first.id} after finish() is ignored") == 1
    assert f"run {first.id}: cannot log params ['late']: the run was finished" in err
    second.finish("pruned")
    second.finish("failed")  # idempotent: the first finish() counts
    third = runyard.init(project="life")
    with pytest.raises(ValueError, match="must be one of succeeded, failed, canceled, pruned, but got 'done'"):
        third.finish("done")
    runyard.finish("failed")

    assert [client.get_run(r.id)["status"] for r in (first, second, third)] == ["succeeded", "pruned", "failed"]
    assert client.metric_history(first.id, "x")["values"] == [1.0]


def test_context_manager_marks_failed_on_exception(server: LiveServer, client: Client) -> None:
    with pytest.raises(ZeroDivisionError), runyard.init(project="ctx") as failing:
        failing.log({"x": 1.0})
        1 / 0  # noqa: B018
    with runyard.init(project="ctx") as passing:
        passing.log({"x": 2.0})

    failed = client.get_run(failing.id)
    assert failed["status"] == "failed" and "ZeroDivisionError" in failed["status_message"]
    assert client.get_run(passing.id)["status"] == "succeeded"
    assert client.metric_history(failing.id, "x")["values"] == [1.0]
    assert runyard.active_run() is None


@pytest.mark.parametrize("launched", [False, True], ids=["ad-hoc", "launched"])
def test_should_stop_turns_true_after_the_run_is_canceled(launched: bool, server: LiveServer, client: Client,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    if launched:
        monkeypatch.setenv("RUNYARD_RUN_ID", str(client.create_run("stop")["id"]))
    run = runyard.init(project="stop")
    assert runyard.should_stop() is False
    client.cancel_run(run.id)
    deadline = time.monotonic() + 15
    steps = 0
    while not runyard.should_stop():
        assert time.monotonic() < deadline, "should_stop() stayed false 15 s after the cancel"
        runyard.log({"x": float(steps)})
        steps += 1
        time.sleep(0.01)  # a training step's pace; the loop itself waits on should_stop()
    runyard.finish()

    assert client.get_run(run.id)["status"] == "canceled"
    assert client.metric_history(run.id, "x")["total"] == steps
    if not launched:  # the server keeps "canceled"; finish() reports instead of raising
        assert "cannot set its status to succeeded" in capsys.readouterr().err


def _python(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.mark.parametrize(("ending", "status"), [("pass", "succeeded"), ("raise ValueError('boom')", "failed")])
def test_exit_finishes_the_active_run(ending: str, status: str, server: LiveServer, client: Client,
                                      tmp_path: Path) -> None:
    script = f"""
        import runyard
        run = runyard.init(project="exit")
        print(run.id, flush=True)
        for i in range(2500):
            runyard.log({{"x": float(i)}})
        {ending}
    """
    proc = _python(script, dict(os.environ), tmp_path)
    assert proc.returncode == (0 if status == "succeeded" else 1), proc.stderr
    run_id = int(proc.stdout.split()[0])
    record = client.get_run(run_id)
    assert record["status"] == status
    if status == "failed":
        assert "ValueError: boom" in record["status_message"]
    assert client.metric_history(run_id, "x")["total"] == 2500


def test_attach_mode_in_a_launched_run(server: LiveServer, client: Client, tmp_path: Path) -> None:
    record = client.create_run("launched", params={"lr": 0.01, "layers": 2})
    env = {**os.environ, "RUNYARD_RUN_ID": str(record["id"]), "RUNYARD_SERVER": server.url,
           "RUNYARD_PARAMS": json.dumps({"lr": 0.01, "layers": 2})}
    script = """
        import json, runyard
        before = runyard.params()
        runyard.log({"warmup": 1.0})  # attaches on first use: step 0
        run = runyard.init(project="ignored", params={"lr": 1.0, "batch_size": 32})  # attaches again
        print(json.dumps({"before": before, "after": runyard.params(), "id": run.id, "launched": run.launched}))
        for step in range(1, 301):
            runyard.log({"loss": 1.0 / step, "acc": step / 300})
        runyard.finish()
    """
    proc = _python(script, env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["before"] == {"lr": 0.01, "layers": 2}
    assert out["after"] == {"lr": 0.01, "layers": 2, "batch_size": 32}  # the launch's params win over init()'s
    assert (out["id"], out["launched"]) == (record["id"], True)

    after = client.get_run(record["id"])
    assert after["status"] == "running"  # the runner owns a launched run's status
    assert after["params"] == {"lr": 0.01, "layers": 2, "batch_size": 32}
    assert client.metric_history(record["id"], "warmup")["steps"] == [0]
    loss = client.metric_history(record["id"], "loss")
    assert loss["steps"] == list(range(1, 301))  # default steps go on across the second init()
    assert loss["values"] == [1.0 / s for s in range(1, 301)]
    assert "runyard:" not in proc.stderr  # attaching prints nothing
