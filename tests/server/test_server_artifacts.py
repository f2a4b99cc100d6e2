"""Artifacts, blobs and snapshots over HTTP: streaming in and out, path traversal, upload limits."""

from __future__ import annotations

import hashlib
import http.client
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from runyard.client import Client
from runyard.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from runyard.testing import LiveServer


def _files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_upload_download_list(client: Client, project: str, tmp_path: Path) -> None:
    rid = client.create_run(project)["id"]
    data = os.urandom(1024 * 1024)  # exactly the shared server's limit: still accepted
    art = client.upload_artifact(rid, "model/weights.bin", data)
    assert (art["path"], art["size"], art["sha256"]) == ("model/weights.bin", len(data), hashlib.sha256(data).hexdigest())

    def chunks() -> Iterator[bytes]:  # a streamed upload (chunked, no content-length)
        yield b"epoch,loss\n"
        yield b"0,1.5\n"

    client.upload_artifact(rid, "metrics/./loss.csv", chunks())  # stored under its normalised path
    client.upload_artifact(rid, "notes.txt", b"v1")
    client.upload_artifact(rid, "notes.txt", b"version 2")  # a re-upload replaces the file
    client.upload_artifact(rid, "empty", b"")

    assert [a["path"] for a in client.list_artifacts(rid)] == ["empty", "metrics/loss.csv", "model/weights.bin", "notes.txt"]
    assert [a["path"] for a in client.list_artifacts(rid, "model")] == ["model/weights.bin"]

    dest = tmp_path / "dl" / "weights.bin"
    seen: list[int] = []
    assert client.download_artifact(rid, "model/weights.bin", dest, progress=seen.append) == len(data)
    assert dest.read_bytes() == data and sum(seen) == len(data)
    client.download_artifact(rid, "notes.txt", tmp_path / "notes.txt")
    assert (tmp_path / "notes.txt").read_bytes() == b"version 2"
    client.download_artifact(rid, "metrics/loss.csv", tmp_path / "loss.csv")
    assert (tmp_path / "loss.csv").read_text() == "epoch,loss\n0,1.5\n"
    resp = httpx.get(f"{client.base_url}/api/v1/runs/{rid}/artifacts/notes.txt")
    assert resp.headers["x-runyard-sha256"] == hashlib.sha256(b"version 2").hexdigest()

    with pytest.raises(NotFound, match="has no artifact 'nope.txt'"):
        client.download_artifact(rid, "nope.txt", tmp_path / "nope.txt")
    assert not (tmp_path / "nope.txt").exists() and not (tmp_path / "nope.txt.part").exists()
    with pytest.raises(NotFound, match="No run with id 999999"):
        client.upload_artifact(999_999, "a.txt", b"x")
    with pytest.raises(NotFound, match="No run with id 999999"):
        client.list_artifacts(999_999)
    # A file and a directory cannot share a path.
    with pytest.raises(Conflict, match="cannot be a file"):
        client.upload_artifact(rid, "model", b"x")
    with pytest.raises(Conflict, match="runs through an existing artifact file"):
        client.upload_artifact(rid, "notes.txt/inner", b"x")
    assert [a["path"] for a in client.list_artifacts(rid)] == ["empty", "metrics/loss.csv", "model/weights.bin", "notes.txt"]


# Raw request targets: sent byte for byte with http.client, because httpx would resolve `..`.
TRAVERSALS = [
    "%2e%2e/secret",
    "%2E%2E/%2E%2E/secret",
    "..%2fsecret",
    "a/../../secret",
    "a/%2e%2e/%2e%2e/secret",
    "%2Fetc%2Fpasswd",
    "%2F%2Fetc/passwd",
    "C:%5Cwindows%5Csecret",
    "..%5C..%5Csecret",
    "a%5C..%5C..%5Csecret",
    "evil%00.txt",
    "..",
    ".",
]


def test_path_traversal_is_refused_and_writes_nothing(shared_server: LiveServer, client: Client, project: str) -> None:
    rid = client.create_run(project)["id"]
    client.upload_artifact(rid, "ok.txt", b"fine")
    home = shared_server.home
    artifacts = home / "artifacts"
    before = _files_under(home)
    assert f"artifacts/runs/{rid}/ok.txt" in before

    conn = http.client.HTTPConnection("127.0.0.1", shared_server.port, timeout=10)
    try:
        for target in TRAVERSALS:
            for method in ("PUT", "GET"):
                conn.request(method, f"/api/v1/runs/{rid}/artifacts/{target}", body=b"pwned" if method == "PUT" else None)
                resp = conn.getresponse()
                body = resp.read()
                assert resp.status == 400, (method, target, resp.status, body)
                assert resp.getheader("content-type", "").startswith("application/json"), (method, target)
                assert b'"code":"invalid_input"' in body, (method, target, body)
            conn.request("GET", f"/api/v1/runs/{rid}/artifacts?prefix={target}")
            resp = conn.getresponse()
            assert resp.status in (200, 400), (target, resp.status)
            assert b"pwned" not in resp.read()
    finally:
        conn.close()

    after = _files_under(home)
    assert {f for f in after - before if not f.startswith("runyard.db")} == set()  # the database may grow, nothing else
    assert before - after == set()
    assert not any(b"pwned" in p.read_bytes() for p in artifacts.rglob("*") if p.is_file())
    assert not (home / "secret").exists() and not (home.parent / "secret").exists()


def test_uploads_over_the_limit_are_413_and_leave_nothing(shared_server: LiveServer, project: str) -> None:
    big = b"x" * (2 * 1024 * 1024)  # the shared server runs with RUNYARD_MAX_UPLOAD_MB=1
    with Client(shared_server.url) as c:
        rid = c.create_run(project)["id"]
        run_dir = shared_server.home / "artifacts" / "runs" / str(rid)
        blobs_dir = shared_server.home / "artifacts" / "blobs"
        blobs_before = _files_under(blobs_dir) if blobs_dir.exists() else set()

        resp = httpx.put(f"{shared_server.url}/api/v1/runs/{rid}/artifacts/big.bin", content=big, timeout=30)
        assert resp.status_code == 413
        assert resp.json() | {"message": None} == {
            "code": "too_large", "message": None,
            "hint": "Store large files elsewhere, or raise RUNYARD_MAX_UPLOAD_MB on the server."}
        assert "limit of 1 MiB" in resp.json()["message"]

        def stream() -> Iterator[bytes]:  # no content-length: the limit is enforced while reading
            for _ in range(8):
                yield b"y" * (256 * 1024)

        with pytest.raises(PayloadTooLarge, match="limit of 1 MiB"):
            c.upload_artifact(rid, "streamed/big.bin", stream())
        blob = hashlib.sha256(big).hexdigest()
        with pytest.raises(PayloadTooLarge):
            c.upload_blob(blob, big)

        assert c.list_artifacts(rid) == []
        assert not run_dir.exists() or _files_under(run_dir) == set()
        assert (_files_under(blobs_dir) if blobs_dir.exists() else set()) == blobs_before
        assert c.missing_blobs([blob]) == [blob]

        under = b"z" * (1024 * 1024 - 1)
        assert c.upload_artifact(rid, "fits.bin", under)["size"] == len(under)
        assert _files_under(run_dir) == {"fits.bin"}


def test_blobs_and_snapshots(client: Client, tmp_path: Path) -> None:
    files = {"train.py": b"print('hi')\n", "data/x.csv": os.urandom(5000), "README.md": os.urandom(64)}
    digests = {p: hashlib.sha256(d).hexdigest() for p, d in files.items()}
    manifest = [[p, digests[p], len(d), 0o644] for p, d in files.items()]
    missing = client.missing_blobs(list(digests.values()))
    assert sorted(missing) == sorted(digests.values())  # fresh random content: the server lacks all of it

    with pytest.raises(InvalidInput, match="blob\\(s\\) the server does not have"):
        client.create_snapshot(manifest)

    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(InvalidInput, match=f"hashes to {digests['train.py']}, not {wrong}"):
        client.upload_blob(wrong, files["train.py"])
    assert client.missing_blobs([wrong]) == [wrong]
    with pytest.raises(InvalidInput, match="not a sha256 digest"):
        client.upload_blob("abc", b"x")
    with pytest.raises(InvalidInput, match="not a sha256 digest"):
        client.missing_blobs(["ABC"])
    with pytest.raises(NotFound, match="No blob"):
        client.download_blob(wrong, tmp_path / "nothing")

    for p, d in files.items():
        client.upload_blob(digests[p], d)
    client.upload_blob(digests["train.py"], files["train.py"])  # uploading again is harmless
    assert client.missing_blobs(list(digests.values())) == []
    assert client.download_blob(digests["data/x.csv"], tmp_path / "x.csv") == 5000
    assert (tmp_path / "x.csv").read_bytes() == files["data/x.csv"]

    snap = client.create_snapshot(manifest, git_commit="deadbeef", git_branch="main", git_dirty=True, git_diff="+1")
    assert (snap["n_files"], snap["size"], snap["git_commit"], snap["git_dirty"]) == (3, 5000 + 64 + 12, "deadbeef", True)
    assert client.get_snapshot(snap["id"]) == snap
    assert client.create_snapshot(list(reversed(manifest)))["id"] == snap["id"]  # the id is the manifest's, order-free

    with pytest.raises(InvalidInput, match="is not \\[path, sha256, size, mode\\]"):
        client.create_snapshot([["train.py", digests["train.py"], 12]])
    with pytest.raises(InvalidInput, match="contains '..'"):
        client.create_snapshot([["../evil.py", digests["train.py"], 12, 0o644]])
    with pytest.raises(InvalidInput, match="is absolute"):
        client.create_snapshot([["/etc/passwd", digests["train.py"], 12, 0o644]])
    with pytest.raises(NotFound):
        client.get_snapshot("0" * 64)


def test_concurrent_uploads_of_one_path_leave_one_whole_file_and_its_record(
    shared_server: LiveServer, client: Client, project: str, tmp_path: Path
) -> None:
    """Every replica of a distributed run may save `model.pt` at the same moment."""
    rid = client.create_run(project)["id"]
    url = f"{shared_server.url}/api/v1/runs/{rid}/artifacts/model.pt"
    on_disk = shared_server.home / "artifacts" / "runs" / str(rid) / "model.pt"
    for round_ in range(4):
        contents = [bytes([65 + i + 3 * round_]) * (900 * 1024) for i in range(3)]
        codes: list[int] = []

        def upload(data: bytes, codes: list[int] = codes) -> None:
            def chunks() -> Iterator[bytes]:
                for k in range(0, len(data), 32 * 1024):
                    yield data[k : k + 32 * 1024]

            codes.append(httpx.put(url, content=chunks(), timeout=30).status_code)

        threads = [threading.Thread(target=upload, args=(d,)) for d in contents]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert codes == [201, 201, 201]
        stored = on_disk.read_bytes()
        assert stored in contents
        record = client.list_artifacts(rid, "model.pt")
        assert [(a["size"], a["sha256"]) for a in record] == [(len(stored), hashlib.sha256(stored).hexdigest())]
        client.download_artifact(rid, "model.pt", tmp_path / "model.pt")
        assert (tmp_path / "model.pt").read_bytes() == stored
    assert sorted(p.name for p in on_disk.parent.iterdir()) == ["model.pt"]  # no temporary files left
