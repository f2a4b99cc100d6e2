"""Server outages: nothing is lost, a batch sent twice is stored once, the spool empties after replay."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import runyard
from runyard.client import Client
from runyard.testing import LiveServer, free_port


def test_a_batch_sent_twice_is_stored_once(server: LiveServer, client: Client, runyard_home: Path,
                                           monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = client.create_run("dup")["id"]
    spool = runyard_home / "spool" / str(run_id)
    monkeypatch.setenv("RUNYARD_RUN_ID", str(run_id))

    # 1. The server is away for the whole process: finish() gives up after 1 s and spools the batches.
    monkeypatch.setenv("RUNYARD_SERVER", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("RUNYARD_SDK_FLUSH_TIMEOUT_S", "1")
    runyard.init()
    for i in range(25_000):
        runyard.log({"x": float(i)}, step=i)
    runyard.finish()
    saved = {f.name: f.read_bytes() for f in spool.glob("*.json")}
    assert saved  # one file per batch (≤ 20,000 points), each holding its batch_id
    assert "they are saved in" in capsys.readouterr().err

    # 2. The next process of the run replays them, in order, and deletes them once acknowledged.
    monkeypatch.setenv("RUNYARD_SERVER", server.url)
    monkeypatch.setenv("RUNYARD_SDK_FLUSH_TIMEOUT_S", "30")
    runyard.init()
    runyard.finish()
    assert not spool.exists()
    assert "replaying 25000 metric points" in capsys.readouterr().err

    # 3. The same batches (same batch_ids) again, as after a crash between send and delete: stored once.
    spool.mkdir(parents=True)
    for name, body in saved.items():
        (spool / name).write_bytes(body)
    runyard.init()
    runyard.finish()
    assert not spool.exists()

    hist = client.metric_history(run_id, "x")
    assert hist["total"] == 25_000
    assert hist["steps"] == list(range(25_000))


def _log_for(seconds: float, start: int) -> int:
    """Log about one step per millisecond for a while; returns the next step."""
    i = start
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        runyard.log({"x": float(i), "y": -float(i)})
        i += 1
        time.sleep(0.001)  # a training loop's pace, not a wait on anything
    return i


# The same loop in a second process whose buffer cap is tiny, so it spills to its disk spool.
_SPOOLING_CHILD = """
import sys, time
from pathlib import Path
import runyard
stop = Path(sys.argv[1])
run = runyard.init(project="outage-spool")
print(run.id, flush=True)
i = 0
while not stop.exists():
    runyard.log({"x": float(i), "y": -float(i)})
    i += 1
    time.sleep(0.001)
runyard.finish()
print(i, flush=True)
"""


def _check_history(server: LiveServer, run_id: int, n: int) -> None:
    with Client(server.url) as client:
        x = client.metric_history(run_id, "x")
        y = client.metric_history(run_id, "y")
        assert client.get_run(run_id)["status"] == "succeeded"
    assert x["total"] == y["total"] == n
    assert x["steps"] == y["steps"] == list(range(n))
    assert x["values"] == [float(i) for i in range(n)]


def _check_reports(err: str, server: LiveServer) -> None:
    assert err.count(f"server unreachable at {server.url}, buffering metrics (will retry)") == 1, err
    assert err.count("is reachable again") == 1, err


@pytest.mark.slow
def test_no_point_lost_while_the_server_is_down_for_10_s(tmp_path: Path, runyard_home: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """One outage, two loggers: this process buffers in memory, a child with a 100-point cap spools to disk."""
    server = LiveServer(tmp_path / "server", port=free_port())
    server.start()
    child_home = tmp_path / "child-home"
    stop = tmp_path / "stop"
    child = None
    try:
        monkeypatch.setenv("RUNYARD_SERVER", server.url)
        monkeypatch.setenv("RUNYARD_SDK_FLUSH_TIMEOUT_S", "30")
        child = subprocess.Popen(
            [sys.executable, "-c", _SPOOLING_CHILD, str(stop)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "RUNYARD_HOME": str(child_home), "RUNYARD_SDK_BUFFER_POINTS": "100"})
        child_run_id = int(child.stdout.readline())  # type: ignore[union-attr]
        child_spool = child_home / "spool" / str(child_run_id)
        run = runyard.init(project="outage-memory")
        spool = runyard_home / "spool" / str(run.id)

        n = _log_for(1.0, 0)
        server.stop()
        n = _log_for(10.0, n)
        assert list(child_spool.glob("*.json")), "the child's 100-point buffer should have spilled to its spool"
        assert not spool.exists()
        server.start()
        n = _log_for(1.0, n)
        stop.touch()
        runyard.finish()
        child_out, child_err = child.communicate(timeout=60)
        assert child.returncode == 0, child_err

        _check_history(server, run.id, n)
        _check_history(server, child_run_id, int(child_out.split()[-1]))
        _check_reports(capsys.readouterr().err, server)
        _check_reports(child_err, server)
        assert not spool.exists() and not child_spool.exists()
    finally:
        if child is not None and child.poll() is None:
            child.kill()
            child.communicate()
        server.stop()

