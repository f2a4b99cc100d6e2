"""A registration cut short by a killed server (SIGKILL) leaves no version, not even a half one.

The server is held inside a registration by a failpoint (``RUNYARD_FAILPOINTS``): after the first of
the model's blobs was copied, or after the snapshot was stored and before the version row. It is
killed there, restarted without the failpoint, and the model is checked: no version exists, and
registering again gives version 1 with every file whole.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from runyard.client import Client
from runyard.errors import NotFound, RunyardError
from runyard.testing.pytest_plugin import LiveServers

FILES = {"model/weights.bin": bytes(range(256)) * 512, "model/config.json": b'{"layers": 3}', "model/vocab.txt": b"a\nb\n"}


def _count(db: Path, sql: str) -> int:
    with sqlite3.connect(db, timeout=30) as conn:
        return int(conn.execute(sql).fetchone()[0])


def _wait(predicate, what: str, timeout_s: float = 60.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.parametrize(("point", "window"), [
    ("registry.blob_copied", "SELECT count(*) FROM blobs"),
    ("registry.before_version", "SELECT count(*) FROM snapshots"),
])
def test_a_server_killed_mid_registration_stores_no_version(live_servers: LiveServers, point: str, window: str) -> None:
    server = live_servers.start("crash", env={"RUNYARD_SCHEDULER": "0", "RUNYARD_FAILPOINTS": f"{point}=120"})
    db = server.home / "runyard.db"
    with Client(server.url) as c:
        c.create_project("p")
        run = c.create_run("p", name="train")["id"]
        for path, data in FILES.items():
            c.upload_artifact(run, path, data)
    assert _count(db, window) == 0

    failed: list[BaseException] = []

    def register() -> None:
        try:
            with Client(server.url) as c:
                c.create_model_version("p", "digits", run_id=run, paths=["model"])
        except RunyardError as e:
            failed.append(e)

    thread = threading.Thread(target=register)
    thread.start()
    _wait(lambda: _count(db, window) > 0, f"the registration to reach {point}")
    server.kill()
    thread.join(60)
    assert not thread.is_alive() and len(failed) == 1  # the client saw the connection drop

    # Nothing of a version is stored: no row, no model (it is created in the version's transaction).
    assert _count(db, "SELECT count(*) FROM model_versions") == 0
    assert _count(db, "SELECT count(*) FROM registered_models") == 0

    server.env.pop("RUNYARD_FAILPOINTS")
    server.start()
    with Client(server.url) as c:
        with pytest.raises(NotFound):
            c.get_model("p", "digits")
        v = c.create_model_version("p", "digits", run_id=run, paths=["model"])
        assert v["version"] == 1
        assert sorted(f[0] for f in v["files"]) == ["config.json", "vocab.txt", "weights.bin"]
        # Every blob is whole, those copied before the kill included.
        for path, digest, size, _ in v["files"]:
            data = FILES[f"model/{path}"]
            assert (digest, size) == (hashlib.sha256(data).hexdigest(), len(data))
            c.download_blob(digest, server.home / "check")
            assert (server.home / "check").read_bytes() == data
