"""POST /api/v1/blobs/batch: many blobs in one streamed request, recorded in one transaction; the client's use of
it (datasets push, code snapshots) and its fallback to PUT /blobs/SHA256 against a server without the route."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from runyard.client import Client
from runyard.errors import InvalidInput, PayloadTooLarge, RunyardError
from runyard.server.routers import artifacts as artifacts_router
from runyard.snapshot import create_snapshot, push_dataset
from runyard.snapshot._scan import scan
from runyard.snapshot._upload import upload_missing
from runyard.store import Store
from runyard.testing import LiveServer
from runyard.testing.pytest_plugin import LiveServers

MiB = 1024 * 1024


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _frame(data: bytes, digest: str | None = None, size: int | None = None) -> bytes:
    return (digest or _sha(data)).encode() + b"%020d" % (len(data) if size is None else size) + data


@pytest.fixture(scope="module")
def batch_server(module_live_servers: LiveServers) -> LiveServer:
    """A server of this module: files up to 8 MiB (so a blob can be larger than the 1 MiB write pieces)."""
    return module_live_servers.start("blob-batch", env={"RUNYARD_SCHEDULER": "0", "RUNYARD_MAX_UPLOAD_MB": "8"})


@pytest.fixture
def bclient(batch_server: LiveServer) -> Iterator[Client]:
    with Client(batch_server.url) as c:
        yield c


def _blob_files(server: LiveServer) -> list[Path]:
    root = server.home / "artifacts" / "blobs"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _no_part_files(server: LiveServer) -> bool:
    return not any(p.name.endswith(".part") for p in _blob_files(server))


def _post(client: Client, body: Any) -> dict[str, Any]:
    answer: dict[str, Any] = client.request("POST", "/blobs/batch", content=body,
                                            headers={"Content-Type": "application/octet-stream"}).json()
    return answer


# ------------------------------------------------------------------------------------------------ the route
def test_a_batch_stores_and_records_every_blob(bclient: Client, batch_server: LiveServer, tmp_path: Path) -> None:
    blobs = [os.urandom(100), b"", os.urandom(3 * MiB + 17), os.urandom(70_000), b"same \x00 bytes"]
    blobs.append(blobs[-1])  # a blob twice in one batch is stored once
    body = b"".join(_frame(b) for b in blobs)
    digests = [_sha(b) for b in blobs]
    assert bclient.missing_blobs(digests) == list(dict.fromkeys(digests))

    # Sent in odd pieces (chunked): frame headers and blobs split across chunks.
    answer = _post(bclient, (body[i : i + 4099] for i in range(0, len(body), 4099)))
    assert answer == {"n_blobs": len(blobs), "size": sum(len(b) for b in blobs)}
    assert bclient.missing_blobs(digests) == []  # all recorded
    for b in blobs:
        dest = tmp_path / _sha(b)
        assert bclient.download_blob(_sha(b), dest) == len(b) and dest.read_bytes() == b
    assert _no_part_files(batch_server)
    assert _post(bclient, body) == answer  # again: harmless
    assert _post(bclient, b"") == {"n_blobs": 0, "size": 0}  # an empty batch


def test_a_blob_whose_bytes_do_not_match_is_refused_naming_it(bclient: Client, batch_server: LiveServer) -> None:
    good, bad, after = os.urandom(500), os.urandom(600), os.urandom(700)
    wrong = _sha(b"something else")
    with pytest.raises(InvalidInput) as e:
        _post(bclient, _frame(good) + _frame(bad, digest=wrong) + _frame(after))
    assert wrong in e.value.message and "nothing of it was stored" in e.value.message
    # Nothing of the refused blob nor of the rest (the valid one before it may be kept: it was not written yet).
    assert bclient.missing_blobs([wrong, _sha(after)]) == [wrong, _sha(after)]
    names = {p.name for p in _blob_files(batch_server)}
    assert wrong not in names and _sha(bad) not in names and _sha(after) not in names
    # Blobs written before the refused one are kept and recorded: a first MiB of small blobs goes to storage.
    early = [os.urandom(300_000) for _ in range(4)]
    with pytest.raises(InvalidInput, match=wrong):
        _post(bclient, b"".join(_frame(b) for b in early) + _frame(bad, digest=wrong))
    assert bclient.missing_blobs([_sha(b) for b in early]) == []

    # A large blob (written in pieces to its temporary file) that does not match: its file is dropped.
    big = os.urandom(2 * MiB + 5)
    with pytest.raises(InvalidInput, match=wrong):
        _post(bclient, _frame(big, digest=wrong))
    assert wrong not in {p.name for p in _blob_files(batch_server)} and _no_part_files(batch_server)

    # A size that is too small: the blob's bytes hash to something else (the rest would be read as a header).
    data = os.urandom(300)
    with pytest.raises(InvalidInput, match=_sha(data)):
        _post(bclient, _frame(data, size=299))
    # A size that is too large: the body ends inside the blob.
    with pytest.raises(InvalidInput, match=f"ends inside blob {_sha(data)}"):
        _post(bclient, _frame(data, size=301))
    assert bclient.missing_blobs([_sha(data)]) == [_sha(data)] and _no_part_files(batch_server)


@pytest.mark.parametrize("head", [
    b"Z" * 64 + b"0" * 20,  # not hex
    ("\ud800".encode("utf-8", "surrogatepass") * 22)[:64] + b"0" * 20,  # a lone surrogate's bytes
    b"\x00" * 84,  # NUL
    _sha(b"x").upper().encode() + b"%020d" % 1,  # uppercase hex
    _sha(b"x").encode() + b"-0000000000000000001",  # a signed size
    _sha(b"x").encode() + b"1",  # a header cut short
])
def test_malformed_frames_are_refused(bclient: Client, batch_server: LiveServer, head: bytes) -> None:
    with pytest.raises(InvalidInput) as e:
        _post(bclient, head + b"x")
    assert "Frame each blob" in (e.value.hint or "") or "header" in e.value.message
    assert _no_part_files(batch_server)


def test_limits_name_the_limit_and_the_fix(bclient: Client) -> None:
    # More blobs than allowed (empty ones: the count, not the bytes).
    too_many = _frame(b"") * (artifacts_router.BATCH_MAX_BLOBS + 1)
    with pytest.raises(InvalidInput) as e:
        _post(bclient, too_many)
    assert "10,000 blobs" in e.value.message and "at most 10,000" in (e.value.hint or "")
    # A file over RUNYARD_MAX_UPLOAD_MB (8 here), refused at its header.
    with pytest.raises(PayloadTooLarge, match="8 MiB per file") as e2:
        _post(bclient, _sha(b"x").encode() + b"%020d" % (9 * MiB))
    assert "RUNYARD_MAX_UPLOAD_MB" in (e2.value.hint or "")
    # A numbers too big for any file.
    with pytest.raises(PayloadTooLarge):
        _post(bclient, _sha(b"x").encode() + b"9" * 20)


def test_a_declared_body_over_the_limit_is_refused_before_its_bytes(batch_server: LiveServer) -> None:
    host, port = batch_server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.putrequest("POST", "/api/v1/blobs/batch")
        conn.putheader("Content-Type", "application/octet-stream")
        conn.putheader("Content-Length", str(300 * MiB))
        conn.endheaders()  # and not one byte of the body
        resp = conn.getresponse()
        answer = json.loads(resp.read())
    finally:
        conn.close()
    assert resp.status == 413 and answer["code"] == "too_large"
    assert "256 MiB per request" in answer["message"] and "several batches" in answer["hint"]


def test_a_body_cut_short_leaves_no_part_file_and_records_nothing_of_its_blob(bclient: Client, batch_server: LiveServer) -> None:
    first, big = os.urandom(MiB + 1000), os.urandom(5 * MiB)  # the first one over 1 MiB: written as it comes
    body = _frame(first) + _frame(big)
    host, port = batch_server.url.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)), timeout=30)
    try:
        s.sendall(b"POST /api/v1/blobs/batch HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\n"
                  b"Content-Length: %d\r\n\r\n" % (f"{host}:{port}".encode(), len(body)))
        s.sendall(body[: 3 * MiB])  # the client is killed here
        deadline = time.monotonic() + 30
        while _no_part_files(batch_server):  # the server is writing the big blob's temporary file
            assert time.monotonic() < deadline, "the server never started writing the big blob"
            time.sleep(0.05)
    finally:
        s.close()
    deadline = time.monotonic() + 30
    while not _no_part_files(batch_server):
        assert time.monotonic() < deadline, [p.name for p in _blob_files(batch_server)]
        time.sleep(0.05)
    assert _sha(big) not in {p.name for p in _blob_files(batch_server)}
    assert bclient.missing_blobs([_sha(first), _sha(big)]) == [_sha(big)]  # the whole blob before it is kept


# ------------------------------------------------------------------------------------------------ the store
def test_record_blobs_inserts_once_in_one_call(db_url: str) -> None:
    store = Store.open(db_url)
    try:
        a, b, c = _sha(b"a"), _sha(b"b"), _sha(b"c")
        store.record_blob(a, 1)
        store.record_blobs([(a, 1), (b, 1), (b, 1), (c, 1)])  # one already there, one twice
        store.record_blobs([])
        assert store.missing_blobs([a, b, c, _sha(b"d")]) == [_sha(b"d")]
        many = [(_sha(str(i).encode()), i) for i in range(3000)]
        store.record_blobs(many)
        assert store.missing_blobs([d for d, _ in many]) == []
    finally:
        store.close()


# ------------------------------------------------------------------------------------------------ the client
class _Requests:
    """Counts the client's blob uploads: PUT /blobs/SHA256 and POST /blobs/batch (blobs in each)."""

    def __init__(self, client: Client) -> None:
        self.puts = 0
        self.batches: list[int] = []
        put, batch = client.upload_blob, client.upload_blobs

        def upload_blob(digest: str, data: Any) -> None:
            self.puts += 1
            put(digest, data)

        def upload_blobs(items: Any) -> dict[str, Any]:
            answer = batch(items)
            self.batches.append(answer["n_blobs"])
            return answer

        client.upload_blob = upload_blob  # type: ignore[method-assign]
        client.upload_blobs = upload_blobs  # type: ignore[method-assign]


def _write(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


def test_datasets_push_sends_small_files_in_batches_and_nothing_the_second_time(
        bclient: Client, batch_server: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from runyard.snapshot import _upload

    monkeypatch.setattr(_upload, "BATCH_FILES", 10)  # 25 small files: 3 batches
    bclient.create_project("bb")
    data = _write(tmp_path / "data", {f"d{i // 10}/f{i}.bin": os.urandom(2000 + i) for i in range(25)}
                  | {"big.bin": os.urandom(5 * MiB)})
    counter = _Requests(bclient)
    progress: list[tuple[int, int]] = []

    def on_progress(phase: str, done: int, total: int) -> None:
        if phase == "uploading":
            progress.append((done, total))

    first = push_dataset(bclient, "bb", "ds", data, progress=on_progress)
    assert first.created and first.n_uploaded == 26
    assert counter.puts == 1 and counter.batches[0] == 0  # the probe (an empty batch), then the batches in any order
    assert sorted(counter.batches[1:]) == [5, 10, 10]
    assert progress[-1][0] == progress[-1][1] == first.bytes_uploaded
    assert _no_part_files(batch_server)
    again = push_dataset(bclient, "bb", "ds", data)
    assert not again.created and again.n_uploaded == 0
    assert counter.puts == 1 and len(counter.batches) == 4


def test_a_code_snapshot_uses_batches(bclient: Client, tmp_path: Path) -> None:
    proj = _write(tmp_path / "proj", {"train.py": b"print('hi')\n" + os.urandom(8).hex().encode(),
                                      "lib/util.py": b"X = 1\n" + os.urandom(8).hex().encode(), "runyard.yml": b"name: x\n"})
    counter = _Requests(bclient)
    info = create_snapshot(bclient, proj)
    assert info.n_uploaded == 3 and counter.puts == 0 and counter.batches == [0, 3]
    assert create_snapshot(bclient, proj).n_uploaded == 0 and counter.batches == [0, 3]
    assert bclient.get_snapshot(info.id)["n_files"] == 3


def test_a_file_changed_after_its_scan_is_named(bclient: Client, tmp_path: Path) -> None:
    proj = _write(tmp_path / "proj", {"a.bin": os.urandom(1000), "b.bin": os.urandom(1000)})
    result = scan(proj)
    (proj / "b.bin").write_bytes(os.urandom(1000))  # same size, other bytes
    with pytest.raises(InvalidInput, match="'b.bin' in .* changed while the snapshot was being uploaded"):
        upload_missing(bclient, result.root, result.files)
    (proj / "b.bin").write_bytes(b"short")  # it shrank
    result2 = scan(proj)
    (proj / "b.bin").write_bytes(b"shor")
    with pytest.raises(InvalidInput, match="'b.bin' in .* changed"):
        upload_missing(bclient, result2.root, result2.files)


# ---------------------------------------------------------------------------- in-process servers
@pytest.fixture
def inproc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[bool], tuple[str, Store]]]:
    """``inproc(with_batch)``: this version's app served in this process (its module constants can be patched),
    with or without POST /blobs/batch (without: as a server from before the route)."""
    from runyard.server._app import create_app

    monkeypatch.setenv("RUNYARD_HOME", str(tmp_path / "home"))
    running: list[tuple[uvicorn.Server, threading.Thread, Store]] = []

    def start(with_batch: bool) -> tuple[str, Store]:
        if not with_batch:  # the artifacts router without the route, while this test runs
            monkeypatch.setattr(artifacts_router.router, "routes",
                                [r for r in artifacts_router.router.routes if getattr(r, "path", "") != "/blobs/batch"])
        store = Store.open(f"sqlite:///{tmp_path / f'inproc-{len(running)}.db'}")
        app = create_app(store, artifacts_url=str(tmp_path / f"artifacts-{len(running)}"), scheduler=False)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        running.append((server, thread, store))
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "the in-process server did not start"
            time.sleep(0.02)
        return f"http://127.0.0.1:{sock.getsockname()[1]}", store

    try:
        yield start
    finally:
        for server, thread, store in running:
            server.should_exit = True
            thread.join(30)
            store.close()


def test_a_server_without_the_route_gets_every_file_by_put(inproc: Callable[[bool], tuple[str, Store]], tmp_path: Path) -> None:
    url, store = inproc(False)
    files = {f"f{i}.bin": os.urandom(100 + i) for i in range(7)}
    proj = _write(tmp_path / "proj", files)
    with Client(url) as c:
        with pytest.raises(RunyardError) as e:  # the route is really gone: POST /blobs/{digest} matches no method
            c.upload_blobs(())
        assert e.value.code in ("method_not_allowed", "not_found")
        counter = _Requests(c)
        info = create_snapshot(c, proj)
        assert info.n_uploaded == 7 and counter.puts == 7 and counter.batches == []
        assert create_snapshot(c, proj).n_uploaded == 0
    assert store.missing_blobs([_sha(b) for b in files.values()]) == []


def test_a_streamed_body_over_the_byte_limit_is_refused(inproc: Callable[[bool], tuple[str, Store]],
                                                        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(artifacts_router, "BATCH_MAX_BYTES", 2 * MiB)  # the limit, lowered in this process
    url, store = inproc(True)
    blobs = [os.urandom(MiB // 2) for _ in range(6)]
    body = b"".join(_frame(b) for b in blobs)
    with Client(url) as c:
        with pytest.raises(PayloadTooLarge) as e:  # chunked: no Content-Length to refuse it by
            _post(c, (body[i : i + 65536] for i in range(0, len(body), 65536)))
        assert "limit of 2 MiB per request" in e.value.message and "several batches" in (e.value.hint or "")
    parts = [p for p in (tmp_path / "artifacts-0").rglob("*.part")]
    assert parts == []
    # The blobs wholly received before the limit may be kept (valid content); the others are not recorded.
    assert set(store.missing_blobs([_sha(b) for b in blobs])) >= {_sha(b) for b in blobs[4:]}


def test_a_batch_on_a_postgresql_server(live_servers: LiveServers, pg_url: str, tmp_path: Path) -> None:
    server = live_servers.start("blob-batch-pg", database_url=pg_url, env={"RUNYARD_SCHEDULER": "0"})
    blobs = [os.urandom(1000 + i) for i in range(30)]
    with Client(server.url) as c:
        assert _post(c, b"".join(_frame(b) for b in blobs + blobs[:3])) == {"n_blobs": 33, "size": sum(map(len, blobs + blobs[:3]))}
        assert c.missing_blobs([_sha(b) for b in blobs]) == []
        proj = _write(tmp_path / "proj", {f"f{i}.bin": b for i, b in enumerate(blobs)} | {"new.bin": b"new"})
        counter = _Requests(c)
        assert create_snapshot(c, proj).n_uploaded == 1 and counter.batches == [0, 1]


def test_the_datasets_push_command_sends_batches(batch_server: LiveServer, bclient: Client, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """``runyard datasets push`` itself (in this process, so that its client's requests can be counted)."""
    from typer.testing import CliRunner

    from runyard.cli import app

    calls: list[tuple[str, int]] = []
    put, batch = Client.upload_blob, Client.upload_blobs

    def upload_blob(self: Client, digest: str, data: Any) -> None:
        calls.append(("PUT", 1))
        put(self, digest, data)

    def upload_blobs(self: Client, items: Any) -> dict[str, Any]:
        answer = batch(self, items)
        calls.append(("POST", answer["n_blobs"]))
        return answer

    monkeypatch.setattr(Client, "upload_blob", upload_blob)
    monkeypatch.setattr(Client, "upload_blobs", upload_blobs)
    monkeypatch.setenv("RUNYARD_SERVER", batch_server.url)
    monkeypatch.setenv("RUNYARD_HOME", str(tmp_path / "client-home"))
    bclient.create_project("bbcli")
    data = _write(tmp_path / "data", {f"x/f{i}.bin": os.urandom(5000 + i) for i in range(40)})
    args = ["datasets", "push", str(data), "--name", "cli", "-p", "bbcli", "--json"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert calls[0] == ("POST", 0) and all(kind == "POST" for kind, _ in calls)  # the probe, then batches only
    assert sum(n for _, n in calls) == 40 and len(calls) <= 1 + 8  # about one batch per upload thread
    calls.clear()
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert calls == [] and out["bytes_uploaded"] == 0 and out["unchanged"]
