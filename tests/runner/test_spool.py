"""The spool of runs whose compute nodes cannot reach the server: SpoolClient writes, ingest replays
into a real server (the session's shared one), once."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runyard.backends.base import RunLaunch
from runyard.client import Client
from runyard.errors import NotFound, RunyardError
from runyard.runner import write_launch_file
from runyard.spool import SPOOL_ENV, SpoolClient, ingest, snapshot_manifest_path
from runyard.testing import LiveServer


def test_spool_client_writes_one_json_line_per_call(tmp_path: Path) -> None:
    with SpoolClient(tmp_path / "spool", "runner-main-0") as c:
        assert c.heartbeat(1) == "running" and c.get_run(1)["status"] == "running"
        c.append_logs(1, "main-0", [{"stream": "stdout", "text": "hi", "ts": 1.0}])
        c.log_metrics(1, ["loss"], [0], [0.5], [1.0], batch_id="b1")
        c.request("POST", "/runs/1/metrics", content=json.dumps({"batch_id": "b2", "keys": ["loss"], "steps": [1],
                                                                  "values": [0.4], "timestamps": [2.0]}).encode())
        c.update_task(1, "main", 0, status="running", pid=None)
        c.update_run(1, "succeeded", None, 0)
        c.upload_artifact(1, "model/w.bin", io.BytesIO(b"weights"))
        with pytest.raises(RunyardError, match="not available while the run spools"):
            c.request("GET", "/runs/1")
        with pytest.raises(RunyardError, match="must be relative"):
            c.upload_artifact(1, "../escape", b"x")
        path = c.path
    ops = [json.loads(line)["op"] for line in path.read_text().splitlines()]
    assert ops == ["logs", "metrics", "metrics", "task", "run", "artifact"]
    assert path.name == f"runner-main-0-{os.getpid()}.jsonl"
    assert (tmp_path / "spool" / "artifacts" / "model" / "w.bin").read_bytes() == b"weights"


def test_the_snapshot_comes_from_the_blob_cache(tmp_path: Path) -> None:
    cache = tmp_path / "blobs"
    with SpoolClient(tmp_path / "spool", blob_cache=cache) as c:
        with pytest.raises(NotFound, match="is missing"):
            c.get_snapshot("abc")
        snapshot_manifest_path(cache, "abc").parent.mkdir(parents=True)
        snapshot_manifest_path(cache, "abc").write_text('{"files": []}')
        assert c.get_snapshot("abc") == {"files": []}
        with pytest.raises(NotFound, match="shared file system"):
            c.download_blob("d" * 64, tmp_path / "x")
    with SpoolClient(tmp_path / "spool2") as c, pytest.raises(NotFound, match="no blob cache"):
        c.get_snapshot("abc")


def test_client_from_env_spools_inside_a_spooling_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SPOOL_ENV, str(tmp_path / "spool"))
    c = Client.from_env()
    try:
        assert isinstance(c, SpoolClient) and c.path.name.startswith("sdk-")
    finally:
        c.close()


def test_ingest_replays_everything_once_and_skips_half_lines(tmp_path: Path, server: LiveServer) -> None:
    spool = tmp_path / "spool"
    with Client(server.url) as client:
        run = client.create_run("spool-test", status="running")
        rid = run["id"]
        with SpoolClient(spool, "sdk") as sdk, SpoolClient(spool, "runner-main-0") as runner:
            runner.update_task(rid, "main", 0, status="running", host="node1")
            runner.append_logs(rid, "main-0", [{"stream": "stdout", "text": "line 1", "ts": 1.0}])
            sdk.log_metrics(rid, ["acc", "acc"], [0, 1], [0.5, 0.7], [1.0, 2.0], batch_id="batch-1")
            sdk.log_params(rid, {"extra": 3})
            sdk.set_tags(rid, {"site": "hpc"})
            sdk.upload_artifact(rid, "out.txt", b"result")
            runner.update_run(rid, "succeeded", None, 0)
        with open(runner.path, "ab") as f:
            f.write(b'{"op": "logs", "task": "main-0", "lines": [')  # a line still being written
        assert ingest(str(spool), rid, client) == 7
        got = client.get_run(rid)
        assert got["status"] == "succeeded" and got["exit_code"] == 0
        assert got["metrics"]["acc"]["count"] == 2 and got["params"]["extra"] == 3 and got["tags"]["site"] == "hpc"
        assert [ln["text"] for ln in client.read_logs(rid)["lines"]] == ["line 1"]
        assert [a["path"] for a in client.list_artifacts(rid)] == ["out.txt"]
        assert ingest(str(spool), rid, client) == 0  # offsets are kept in .ingested.json
        # A replay from scratch (the offsets lost) stores no metric twice: batches keep their ids.
        (spool / ".ingested.json").unlink()
        ingest(str(spool), rid, client)
        assert client.get_run(rid)["metrics"]["acc"]["count"] == 2
        assert [ln["text"] for ln in client.read_logs(rid)["lines"]] == ["line 1"]  # nor a log batch


def test_ingest_sees_an_sdk_file_made_while_it_lists(tmp_path: Path, server: LiveServer) -> None:
    """The task starts, logs and ends, and the runner writes the run's end, all between ingest's listing
    and its reading of the runner's file (over SSH that gap is long): the metrics still land first."""
    from runyard.spool import SpoolReader

    spool = tmp_path / "spool"
    with Client(server.url) as client:
        rid = client.create_run("spool-race", status="running")["id"]
        runner = SpoolClient(spool, "runner-main-0")
        runner.update_task(rid, "main", 0, status="running")

        class SlowReader(SpoolReader):
            listed = 0

            def list(self, directory: str) -> list[str]:
                names = super().list(directory)
                self.listed += 1
                if self.listed == 1:  # right after the first listing, the whole task happens
                    with SpoolClient(spool, "sdk") as sdk:
                        sdk.log_metrics(rid, ["acc"], [0], [0.5], [1.0], batch_id="race-1")
                    runner.update_run(rid, "succeeded", None, 0)
                    runner.close()
                return names

        ingest(str(spool), rid, client, SlowReader())
        got = client.get_run(rid)
        assert got["status"] == "succeeded"
        assert got["metrics"]["acc"]["count"] == 1


def test_runner_exec_with_spool_never_calls_the_server(tmp_path: Path, server: LiveServer) -> None:
    """The real runner (python -m runyard.runner exec --spool) with a server URL nobody answers."""
    with Client(server.url) as client:
        rid = client.create_run("spool-test", status="queued")["id"]
        launch = RunLaunch(run_id=rid, attempt=1, project="spool-test", experiment_id=None,
                           command="echo out; python -c "
                                   "'import runyard; r = runyard.init(); r.log({\"x\": 2.0}); r.finish()'",
                           snapshot_id=None, server_url="http://127.0.0.1:9", grace_period_s=2.0)
        write_launch_file(launch, tmp_path / "launch.json")
        spool = tmp_path / "spool"
        res = subprocess.run([sys.executable, "-m", "runyard.runner", "exec", "--launch", str(tmp_path / "launch.json"),
                              "--task-index", "0", "--workdir", str(tmp_path / "work"), "--spool", str(spool)],
                             capture_output=True, text=True, timeout=120, check=False)
        assert res.returncode == 0, res.stderr
        assert ingest(str(spool), rid, client) > 0
        run = client.get_run(rid)
        assert run["status"] == "succeeded" and run["metrics"]["x"]["last"] == 2.0
        assert "out" in [ln["text"] for ln in client.read_logs(rid)["lines"]]


def test_runner_exec_refuses_a_task_index_out_of_range(tmp_path: Path) -> None:
    launch = RunLaunch(run_id=1, attempt=1, project="p", experiment_id=None, command="true", snapshot_id=None,
                       server_url="http://127.0.0.1:9")
    write_launch_file(launch, tmp_path / "launch.json")
    res = subprocess.run([sys.executable, "-m", "runyard.runner", "exec", "--launch", str(tmp_path / "launch.json"),
                          "--task-index", "3"], capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 2 and "--task-index 3 is out of range" in res.stderr
