"""A full disk is named: writes answer 507 with the cause, /health says degraded, nothing escapes to uvicorn.

The server's RUNYARD_HOME (SQLite database and artifacts) is a 16 MiB tmpfs mounted for the
test (tests run as root; skipped with the reason where mounting is refused), filled up
while the server runs.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from runyard._http import Session
from runyard.client import Client
from runyard.errors import RunyardError, http_status
from runyard.testing.pytest_plugin import LiveServers

pytestmark = pytest.mark.slow


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(path: Path) -> None:
    """Write zeros into ``path`` until the disk refuses."""
    with open(path, "wb", buffering=0) as f:
        block = b"\0" * 65536
        try:
            while True:
                f.write(block)
        except OSError:
            pass
    # what a single block no longer fits in
    with open(path, "ab", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass


def _health(url: str) -> tuple[int, dict]:
    with Session(url + "/api/v1", timeout_s=5) as http:
        resp = http.request("GET", "/health")
        return resp.status_code, resp.json()


def test_disk_full_answers_507_and_health_degrades(live_servers: LiveServers, small_disk: Path) -> None:
    home = small_disk / "home"
    server = live_servers.start("small", home=home, env={"RUNYARD_HEALTH_MIN_FREE_MB": "1", "RUNYARD_SCHEDULER": "0"})
    code, body = _health(server.url)
    assert (code, body["status"], body["problems"]) == (200, "ok", [])
    with Client(server.url) as client:
        project = f"h-{uuid.uuid4().hex[:8]}"
        client.create_project(project)
        run = client.create_run(project, name="r")
        filler = small_disk / "filler"
        _fill(filler)

        with pytest.raises(RunyardError) as info:
            client.upload_artifact(run["id"], "model.bin", os.urandom(2 * 1024 * 1024))
        assert http_status(info.value) == 507, info.value
        assert info.value.code == "storage_full"
        assert "disk is full" in info.value.message

        # Database writes: the SQLite file and its journal cannot grow either.
        answers = []
        for i in range(200):
            try:
                client.log_metrics(run["id"], [f"m{i}"] * 500, list(range(500)), [1.0] * 500, [1.0] * 500)
                client.create_project(f"{project}-{i}-" + "x" * 40, description="d" * 4000)
            except RunyardError as e:
                answers.append((http_status(e), e.code, e.message))
                break
        assert answers, "the database kept accepting writes on a full disk"
        status, err_code, message = answers[0]
        assert (status, err_code) == (507, "storage_full"), answers
        assert "database" in message and "full" in message

        time.sleep(1.1)  # health is cached for a second
        code, body = _health(server.url)
        assert code == 200 and body["status"] == "degraded", body
        assert any(p.startswith("a write failed: The server's database cannot write") for p in body["problems"]), body
        assert any(p.startswith("disk full:") for p in body["problems"]), body

        filler.unlink()
        time.sleep(1.1)  # health is cached for a second
        code, body = _health(server.url)
        assert not any(p.startswith("disk full:") for p in body["problems"]), body
        client.upload_artifact(run["id"], "model.bin", b"fits now")
    server.stop()
    log = server.log_path.read_text() if server.log_path.exists() else ""
    assert "Exception in ASGI application" not in log
    assert "Internal server error" not in log


def test_an_unreachable_database_is_named() -> None:
    """A database that refuses connections: health says so (503 from the route), writes answer 503 unavailable."""
    from types import SimpleNamespace

    import sqlalchemy

    from runyard.server._errors import StorageProblems, storage_error
    from runyard.server._health import HealthCheck
    from runyard.testing import free_port

    engine = sqlalchemy.create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none",
                                      connect_args={"connect_timeout": 2})
    state = SimpleNamespace(store=SimpleNamespace(engine=engine), artifacts=None, storage_problems=StorageProblems())
    check = HealthCheck(SimpleNamespace(state=state))
    try:
        status, problems, db_ok = check.status()
    finally:
        check.close()
    assert (status, db_ok) == ("degraded", False)
    assert problems[0].startswith("database unreachable:"), problems
    with pytest.raises(sqlalchemy.exc.OperationalError) as info, engine.connect():
        pass
    error = storage_error(info.value)
    assert error is not None and (http_status(error), error.code) == (503, "unavailable")
    assert "database is unavailable" in error.message
