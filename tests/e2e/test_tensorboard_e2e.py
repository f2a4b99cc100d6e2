"""TensorBoard event files end to end: scalars logged live, kept, served by ``runyard tensorboard``, imported.

The scripts do not import Runyard: they write event files with TensorBoard's own writers
(``tensorboard.summary.Writer``, the scalars plugin's tensors, and ``EventFileWriter`` with
``simple_value`` summaries, as PyTorch's SummaryWriter does). TensorFlow is installed in the test
environment for other tests; the scripts register ``tensorboard.compat.notf``, TensorBoard's own
switch to its TensorFlow-free code, so that importing the writers takes a fraction of a second.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from e2e_helpers import Yard, log_texts, wait_until

from runyard.errors import NotFound

pytest.importorskip("tensorboard", reason="the tensorboard extra (pip install 'runyard[tensorboard]')")

pytestmark = pytest.mark.slow

NO_TF = "import sys, types\nsys.modules.setdefault('tensorboard.compat.notf', types.ModuleType('tensorboard.compat.notf'))\n"

TRAIN_PY = NO_TF + """
import os, time
from pathlib import Path
from tensorboard.summary import Writer
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary

out = Path(os.environ["E2E_OUT"])
Path("logs").mkdir()
Path("logs/bad.tfevents.0").write_bytes(b"this is not an event file" * 10)
val = Writer("logs/val")  # TF2 style: the scalars plugin's tensors
train = EventFileWriter("logs/train")  # PyTorch style: simple_value
for step in range(3):
    train.add_event(Event(wall_time=time.time(), step=step, summary=Summary(value=[
        Summary.Value(tag="loss", simple_value=1.0 / (step + 1))])))
    val.add_scalar("acc", 0.5 + step / 10, step=step)
train.flush()
val.flush()
print("wrote 3 steps", flush=True)
deadline = time.time() + 60
while not (out / "go").exists() and time.time() < deadline:  # the test looks at the metrics meanwhile
    time.sleep(0.05)
train.add_event(Event(wall_time=time.time(), step=10, summary=Summary(value=[
    Summary.Value(tag="loss", simple_value=0.05)])))
train.close()
val.close()
"""

YML = """
project: e2e-tensorboard
command: python train.py
tensorboard:
  logdir: logs/
  serve: true
resources:
  cpus: 0.1
"""


def _history(yard: Yard, run_id: int, key: str) -> list[tuple[int, float]]:
    try:
        points = yard.client.metric_history(run_id, key)
    except NotFound:
        return []
    return list(zip(points["steps"], points["values"], strict=True))


def test_scalars_arrive_live_and_runyard_tensorboard_serves_them(yard: Yard, make_project) -> None:
    project = make_project("tb", YML, TRAIN_PY)
    exp = yard.submit(project.path)
    run_id = wait_until(lambda: next(iter(yard.runs(exp["id"])), None), 60, "the run")["id"]

    # While the run still runs, its scalars are there: one metric per directory and tag.
    def live() -> bool:
        return len(_history(yard, run_id, "train/loss")) == 3 and len(_history(yard, run_id, "val/acc")) == 3

    wait_until(live, 60, "the first scalars")
    assert yard.client.get_run(run_id)["status"] == "running"
    assert _history(yard, run_id, "val/acc") == [(0, 0.5), (1, 0.6000000238418579), (2, 0.699999988079071)]
    (project.out / "go").write_text("")
    run = yard.wait_run(run_id, timeout_s=60)
    assert run["status"] == "succeeded", run["status_message"]
    assert _history(yard, run_id, "train/loss") == [(0, 1.0), (1, 0.5), (2, 0.3333333432674408), (10, 0.05000000074505806)]
    logs = log_texts(yard.client, run_id)
    # A corrupt event file is named in the log; the others are read all the same.
    assert any("bad.tfevents.0" in line and "corrupt" in line for line in logs), logs
    assert any("kept 3 event files" in line for line in logs), logs
    paths = {a["path"] for a in yard.client.list_artifacts(run_id, prefix="tensorboard/")}
    assert {p.rsplit("/", 1)[0] for p in paths} == {"tensorboard", "tensorboard/train", "tensorboard/val"}, paths

    # `runyard tensorboard` serves the kept files: a real TensorBoard on 127.0.0.1, stopped by its pid.
    env = {**os.environ, "RUNYARD_SERVER": yard.url, "RUNYARD_HOME": str(yard.cli_home)}
    env.pop("RUNYARD_TOKEN", None)
    proc = subprocess.Popen([sys.executable, "-m", "runyard.cli", "tensorboard", str(exp["id"]), "--idle", "5"],
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        assert "http://127.0.0.1:" in line, line + (proc.stderr.read() if proc.poll() is not None else "")
        url = line.split("http://", 1)[1].split("/", 1)[0]

        def runs() -> list[str] | None:
            try:
                with urllib.request.urlopen(f"http://{url}/data/runs", timeout=2) as answer:
                    found = json.loads(answer.read())
            except OSError:
                return None
            return found if len(found) >= 2 else None

        found = wait_until(runs, 60, "TensorBoard to list the runs")
        assert sorted(r.split("/", 1)[1] for r in found) == ["train", "val"], found
        query = urllib.request.urlopen(f"http://{url}/data/plugin/scalars/tags", timeout=5)
        tags = json.loads(query.read())
        assert any("loss" in t for t in tags.values()) and any("acc" in t for t in tags.values()), tags
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert "TensorBoard stopped" in proc.stderr.read()


def test_a_logdir_outside_the_working_directory_is_refused(yard: Yard, make_project) -> None:
    project = make_project("tb-escape", YML.replace("logdir: logs/", "logdir: ../elsewhere"), TRAIN_PY)
    res = yard.cli("run", project.path, "--json")
    assert res.returncode != 0
    assert "tensorboard.logdir is '../elsewhere', which leaves the run's working directory" in res.stderr, res.stderr


def test_runyard_tensorboard_says_when_no_run_kept_event_files(yard: Yard, make_project) -> None:
    project = make_project("tb-none", "project: e2e-tb-none\ncommand: python train.py\n", "print('hi')\n")
    exp = yard.submit(project.path)
    yard.wait_experiment(exp["id"], timeout_s=60)
    res = yard.cli("tensorboard", str(exp["id"]))
    assert res.returncode != 0
    assert "kept TensorBoard event files" in res.stderr and "serve: true" in res.stderr, res.stderr


WRITE_PAST_RUNS = NO_TF + """
import sys
from tensorboard.summary import Writer
root = sys.argv[1]
for name, scale in (("lr-0.1", 1.0), ("lr-0.01", 2.0)):
    w = Writer(f"{root}/{name}")
    for step in range(0, 50, 10):
        w.add_scalar("loss", scale / (step + 1), step=step, wall_time=1_700_000_000 + step)
    w.close()
"""


def test_runyard_import_tensorboard_makes_one_run_per_directory(yard: Yard, tmp_path: Path) -> None:
    logs = tmp_path / "past"
    subprocess.run([sys.executable, "-c", WRITE_PAST_RUNS, str(logs)], check=True, timeout=60)
    (logs / "lr-0.01" / "events.out.tfevents.corrupt").write_bytes(b"\x00" * 40)
    res = yard.cli("import", "tensorboard", logs, "--project", "e2e-tb-import", "--json")
    assert res.returncode == 0, res.stderr
    created = {r["name"]: r for r in json.loads(res.stdout)}
    assert sorted(created) == ["lr-0.01", "lr-0.1"]
    run = yard.client.get_run(created["lr-0.01"]["id"])
    assert run["status"] == "succeeded" and run["tags"]["source"] == "tensorboard"
    points = yard.client.metric_history(run["id"], "loss")
    assert points["steps"] == [0, 10, 20, 30, 40]
    assert points["values"][1] == pytest.approx(2.0 / 11)
    # Wall times are the event files' own.
    assert [round(t) for t in points["timestamps"]][:2] == [1_700_000_000, 1_700_000_010], points

    res = yard.cli("import", "tensorboard", tmp_path / "nothing-here", "--project", "e2e-tb-import")
    assert res.returncode != 0 and "is not a directory" in res.stderr, res.stderr
    (tmp_path / "empty").mkdir()
    res = yard.cli("import", "tensorboard", tmp_path / "empty", "--project", "e2e-tb-import")
    assert res.returncode != 0 and "No TensorBoard event files" in res.stderr, res.stderr


def test_tensorboard_stops_by_itself_when_idle(yard: Yard, tmp_path: Path) -> None:
    started = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "runyard.server._tbserve", "2", "--logdir", str(tmp_path), "--host",
                          "127.0.0.1", "--port", "0"], capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    assert "no request for 2s" in res.stderr
    assert time.monotonic() - started < 30
