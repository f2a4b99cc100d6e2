"""RUNYARD_ARTIFACTS_URL=s3://bucket/prefix for real, against moto's S3 server: artifacts, a 200 MB
artifact through multipart with the server's memory bounded, a server killed mid-upload, snapshots
and blob dedup."""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from runyard.client import Client
from runyard.errors import NotFound, RunyardError
from runyard.snapshot import create_snapshot
from runyard.testing import free_port
from runyard.testing.pytest_plugin import LiveServers

pytestmark = pytest.mark.slow

MB = 1024 * 1024
BIG = 200 * MB
_BLOCK = hashlib.sha256(b"runyard").digest() * (MB // 32)  # 1 MiB, the same every time


def _big_body(n_bytes: int, reached: threading.Event | None = None, at: int = 0) -> Iterator[bytes]:
    """``n_bytes`` made of 1 MiB blocks numbered so that no two are equal; ``reached`` is set after ``at`` bytes."""
    sent = 0
    while sent < n_bytes:
        block = sent.to_bytes(8, "big") + _BLOCK[8:]
        sent += len(block)
        if reached is not None and sent >= at:
            reached.set()
            time.sleep(0.05)  # let the test kill the server while this upload is in flight
        yield block


def _big_sha(n_bytes: int) -> str:
    h = hashlib.sha256()
    for block in _big_body(n_bytes):
        h.update(block)
    return h.hexdigest()


def test_artifacts_round_trip(live_servers: LiveServers, moto_s3: Any, tmp_path: Path) -> None:
    prefix = f"p-{uuid.uuid4().hex[:8]}"
    server = live_servers.start("s3-small", env={**moto_s3.env(prefix), "RUNYARD_SCHEDULER": "0"})
    with Client(server.url) as client:
        client.create_project("s3small")
        run = client.create_run("s3small", name="r")
        client.upload_artifact(run["id"], "model/weights.bin", b"w" * 1000)
        client.upload_artifact(run["id"], "report.txt", b"first")
        client.upload_artifact(run["id"], "report.txt", b"second")  # replaced
        assert {a["path"]: a["size"] for a in client.list_artifacts(run["id"])} == {"model/weights.bin": 1000,
                                                                                   "report.txt": 6}
        client.download_artifact(run["id"], "report.txt", tmp_path / "report.txt")
        assert (tmp_path / "report.txt").read_bytes() == b"second"
        with pytest.raises(NotFound):
            client.download_artifact(run["id"], "absent.txt", tmp_path / "absent.txt")
    keys = moto_s3.keys(f"{prefix}/runs/{run['id']}/")
    assert keys == {f"{prefix}/runs/{run['id']}/model/weights.bin": 1000, f"{prefix}/runs/{run['id']}/report.txt": 6}


def test_200mb_artifact_multipart_and_a_server_killed_mid_upload(live_servers: LiveServers, moto_s3: Any,
                                                                 tmp_path: Path) -> None:
    """The body streams to S3 in multipart parts (the server's memory stays far below 200 MB); a server
    killed mid-upload leaves no object and no record, and the upload succeeds after a restart."""
    prefix = f"p-{uuid.uuid4().hex[:8]}"
    env = {**moto_s3.env(prefix), "RUNYARD_SCHEDULER": "0"}
    port = free_port()
    server = live_servers.start("s3-big", port=port, env=env)
    key = None
    with Client(server.url) as client:
        client.create_project("s3big")
        run = client.create_run("s3big", name="r")
        key = f"{prefix}/runs/{run['id']}/big.bin"
        reached = threading.Event()
        failure: list[BaseException] = []

        def upload() -> None:
            try:
                client.upload_artifact(run["id"], "big.bin", _big_body(BIG, reached, at=120 * MB))
            except BaseException as e:  # noqa: BLE001 - the kill makes it fail; the test looks at it
                failure.append(e)

        thread = threading.Thread(target=upload)
        thread.start()
        assert reached.wait(120), "the upload never got to 120 MB"
        s3 = moto_s3.client()
        uploads = s3.list_multipart_uploads(Bucket=moto_s3.bucket, Prefix=prefix).get("Uploads", [])
        assert [u["Key"].rsplit(".", 2)[0] for u in uploads] == [key], uploads  # a multipart upload is under way
        server.kill()
        thread.join(60)
        assert failure and isinstance(failure[0], RunyardError), failure
    assert moto_s3.keys(prefix) == {}, "a partial upload is visible in the bucket"

    server = live_servers.start("s3-big", port=port, env=env)
    with Client(server.url) as client:
        assert client.list_artifacts(run["id"]) == []
        with pytest.raises(NotFound):
            client.download_artifact(run["id"], "big.bin", tmp_path / "x")
        proc = psutil.Process(server.proc.pid)
        base = proc.memory_info().rss
        peak = [base]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], proc.memory_info().rss)
                time.sleep(0.05)

        sampler = threading.Thread(target=sample)
        sampler.start()
        t0 = time.monotonic()
        try:
            art = client.upload_artifact(run["id"], "big.bin", _big_body(BIG))
        finally:
            done.set()
            sampler.join()
        upload_s = time.monotonic() - t0
        expected = _big_sha(BIG)
        assert (art["size"], art["sha256"]) == (BIG, expected)
        grown = (peak[0] - base) / MB
        assert grown < 150, f"the server's memory grew by {grown:.0f} MiB for a 200 MiB upload: it buffers the body"
        assert moto_s3.keys(prefix) == {key: BIG}  # the object alone: no .part left behind
        dest = tmp_path / "big.bin"
        assert client.download_artifact(run["id"], "big.bin", dest) == BIG
        h = hashlib.sha256()
        with open(dest, "rb") as f:
            for chunk in iter(lambda: f.read(MB), b""):
                h.update(chunk)
        assert h.hexdigest() == expected
    print(f"200 MiB upload to moto S3: {upload_s:.1f} s, server memory +{grown:.0f} MiB")


def test_snapshots_store_each_blob_once(live_servers: LiveServers, moto_s3: Any, tmp_path: Path) -> None:
    prefix = f"p-{uuid.uuid4().hex[:8]}"
    server = live_servers.start("s3-snap", env={**moto_s3.env(prefix), "RUNYARD_SCHEDULER": "0"})
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        (d / "shared.py").write_text("print('same in both')\n")
    (a / "only_a.py").write_text("A = 1\n")
    (b / "only_b.py").write_text("B = 2\n")
    with Client(server.url) as client:
        first = create_snapshot(client, a)
        again = create_snapshot(client, a)
        other = create_snapshot(client, b)
        assert (first.n_uploaded, again.n_uploaded, other.n_uploaded) == (2, 0, 1)
        assert again.id == first.id
        digests = {hashlib.sha256(p.read_bytes()).hexdigest() for p in (a / "shared.py", a / "only_a.py", b / "only_b.py")}
        shared = hashlib.sha256((a / "shared.py").read_bytes()).hexdigest()
        client.upload_blob(shared, (a / "shared.py").read_bytes())  # the same content sent again by hand
        stored = moto_s3.keys(f"{prefix}/blobs/")
        assert sorted(k.rsplit("/", 1)[1] for k in stored) == sorted(digests)  # one object per content
        client.download_blob(shared, tmp_path / "blob")
        assert (tmp_path / "blob").read_text() == "print('same in both')\n"
