"""Logging through a real server: bulk points in order, bad input, params, tags, artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import runyard
from runyard.client import Client
from runyard.testing import LiveServer, free_port


def test_100k_points_from_a_loop_read_back_in_order(server: LiveServer, client: Client) -> None:
    run = runyard.init(project="bulk")
    for i in range(100_000):
        runyard.log({"x": i * 0.5})
    runyard.finish()

    hist = client.metric_history(run.id, "x")
    assert hist["total"] == 100_000
    assert hist["steps"] == list(range(100_000))
    assert hist["values"] == [i * 0.5 for i in range(100_000)]
    assert client.get_run(run.id)["status"] == "succeeded"


def test_log_before_init_starts_a_run_with_defaults(server: LiveServer, client: Client,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNYARD_PROJECT", "auto")
    assert runyard.active_run() is None
    runyard.log({"loss": 1.0})
    runyard.log({"loss": 0.5})
    run = runyard.active_run()
    assert run is not None and run.id is not None and not run.launched
    runyard.finish()

    assert runyard.active_run() is None
    record = client.get_run(run.id)
    assert record["project"] == "auto"
    assert client.metric_history(run.id, "loss")["values"] == [1.0, 0.5]


def test_bad_values_names_and_steps_are_reported_once_and_dropped(server: LiveServer, client: Client,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    run = runyard.init(project="bad")
    runyard.log({"a": "text", "b": None, "c": object(), "d": np.array([1.0, 2.0]), "ok": 1.0})  # step 0
    runyard.log({"": 1.0, 3: 2.0, "x\ny": 1.0, "ok": 2.0})  # step 1
    runyard.log({"ok": 3.0}, step="five")  # type: ignore[arg-type]
    runyard.log({"ok": 4.0}, step=2**70)
    runyard.log({"ok": 5.0}, step=np.int64(7))  # type: ignore[arg-type]
    runyard.log({"ok": 6.0}, step=8.0)  # type: ignore[arg-type]
    runyard.log({"f32": np.float32(0.5), "i64": np.int64(3), "zero_d": np.array(2.5), "nan": float("nan"),
                 "inf": float("inf"), "flag": True, "big": 10**400}, step=9)
    for _ in range(3):
        runyard.log({"a": "again"})
    with pytest.raises(TypeError, match="dict of metric name"):
        runyard.log([("x", 1.0)])  # type: ignore[arg-type]
    runyard.finish()

    err = capsys.readouterr().err
    assert err.count("cannot log 'a'=") == 1
    for fragment in ("cannot log 'b'=None", "cannot log 'c'=", "cannot log 'd'=", "cannot log 'big'=", "got ''", "got 3",
                     "got 'x\\ny'", "step must be an integer, but got 'five'", "step must fit in 64 bits"):
        assert fragment in err
    assert sorted(client.metric_summaries(run.id)) == ["f32", "flag", "i64", "inf", "nan", "ok", "zero_d"]
    ok = client.metric_history(run.id, "ok")
    assert (ok["steps"], ok["values"]) == ([0, 1, 7, 8], [1.0, 2.0, 5.0, 6.0])
    assert client.metric_history(run.id, "f32")["values"] == [0.5]
    assert client.metric_history(run.id, "zero_d")["values"] == [2.5]
    assert client.metric_history(run.id, "nan")["values"] == [None]
    assert client.metric_history(run.id, "inf")["values"] == [None]


def test_params_tags_and_artifacts(server: LiveServer, client: Client, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    run = runyard.init(project="things", name="with-things", params={"lr": 0.1}, tags={"seed": 1})
    runyard.log_params({"layers": np.int64(4), "shape": (2, 3)})
    runyard.set_tags({"stage": "test"})
    assert runyard.params() == run.params == {"lr": 0.1, "layers": 4, "shape": [2, 3]}
    with pytest.raises(TypeError, match="dict"):
        runyard.log_params(["lr"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="dict"):
        runyard.set_tags("stage")  # type: ignore[arg-type]
    runyard.log_params({"lr": 0.2})  # params are fixed once logged: reported, not raised

    (tmp_path / "model.bin").write_bytes(b"\x00weights")
    ckpt = tmp_path / "ckpt"
    (ckpt / "sub").mkdir(parents=True)
    (ckpt / "a.txt").write_text("a")
    (ckpt / "sub" / "b c.txt").write_text("b")
    runyard.log({"loss": 0.3})
    assert runyard.log_artifact(tmp_path / "model.bin") == ["model.bin"]
    assert runyard.log_artifact(ckpt, name="checkpoints") == ["checkpoints/a.txt", "checkpoints/sub/b c.txt"]
    with pytest.raises(FileNotFoundError, match="missing"):
        runyard.log_artifact(tmp_path / "missing")
    assert client.metric_history(run.id, "loss")["values"] == [0.3]  # log_artifact flushed the metrics first
    runyard.finish()

    assert "cannot log params ['lr']" in capsys.readouterr().err
    record = client.get_run(run.id)
    assert record["name"] == "with-things"
    assert record["params"] == {"lr": 0.1, "layers": 4, "shape": [2, 3]}
    assert record["tags"] == {"seed": "1", "stage": "test"}
    paths = sorted(a["path"] for a in client.list_artifacts(run.id))
    assert paths == ["checkpoints/a.txt", "checkpoints/sub/b c.txt", "model.bin"]
    client.download_artifact(run.id, "checkpoints/sub/b c.txt", tmp_path / "back.txt")
    assert (tmp_path / "back.txt").read_text() == "b"


def test_unreachable_server_at_init_spools_the_run_under_a_local_id(monkeypatch: pytest.MonkeyPatch, runyard_home: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("RUNYARD_SERVER", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("RUNYARD_SDK_FLUSH_TIMEOUT_S", "0.5")
    run = runyard.init(project="nowhere", params={"lr": 0.1})
    assert run.id is None and run.local_id is not None and run.local_id.startswith("local-")
    for i in range(10):
        runyard.log({"loss": 1.0 / (i + 1)})
    assert runyard.params() == {"lr": 0.1}
    assert runyard.should_stop() is False
    runyard.finish()
    err = capsys.readouterr().err
    assert f"logging to run {run.local_id}" in err and "`runyard sync`" in err
    spooled = runyard_home / "spool" / run.local_id
    assert json.loads((spooled / "create.meta").read_text())["params"] == {"lr": 0.1}
    assert json.loads((spooled / "status.meta").read_text())["status"] == "succeeded"
    assert sum(int(p.stem.rsplit("-", 1)[1]) for p in spooled.glob("*.json")) == 10


def test_init_inside_a_spooling_task_without_a_run_id_gives_a_run_that_does_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("RUNYARD_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.delenv("RUNYARD_RUN_ID", raising=False)
    run = runyard.init(project="spooled", params={"lr": 0.1})
    assert run.id is None
    runyard.log({"loss": 0.5})
    runyard.finish()
    err = capsys.readouterr().err
    assert "cannot create a run in project 'spooled'" in err and "RUNYARD_RUN_ID is not" in err


@pytest.mark.parametrize("bad", ["a\x00b", "lone\ud800surrogate", "ssol\u202e"], ids=["nul", "lone-surrogate", "bidi"])
def test_a_metric_name_the_server_refuses_is_dropped_alone(server: LiveServer, client: Client, bad: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """Only the bad name's points are lost: the good points of the same calls reach the server."""
    run = runyard.init(project="bad-names")
    for step in range(3):
        runyard.log({"good": float(step), bad: 1.0}, step=step)
    runyard.finish()

    err = capsys.readouterr().err
    assert err.count(f"a metric name must be a string of 1-250 characters without newlines, NUL characters, "
                     f"bidirectional overrides or unpaired surrogates, but got {bad!r}") == 1, err
    assert sorted(client.metric_summaries(run.id)) == ["good"]
    good = client.metric_history(run.id, "good")
    assert (good["steps"], good["values"]) == ([0, 1, 2], [0.0, 1.0, 2.0])
    assert client.get_run(run.id)["status"] == "succeeded"


def test_init_refuses_a_project_name_the_store_refuses(server: LiveServer) -> None:
    from runyard.errors import InvalidInput

    with pytest.raises(InvalidInput, match="starting with a letter or digit"):
        runyard.init(project="_lead")
