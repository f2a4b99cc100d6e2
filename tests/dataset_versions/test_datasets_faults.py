"""Faults and hostile input: a push killed mid-upload, bad names, path traversal, sizes that lie."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from runyard.client import Client
from runyard.errors import InvalidInput, NotFound
from runyard.names import parse_dataset_ref
from runyard.snapshot import push_dataset
from runyard.testing import LiveServer


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_push_killed_mid_upload_then_repeated_stores_each_blob_once(
        client: Client, project: str, tmp_path: Path, ds_server: LiveServer, blob_files: Callable[[], list[Path]]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    contents = {f"f{i:02d}.bin": os.urandom(3 * 1024 * 1024 + i) for i in range(12)}
    contents["dup.bin"] = contents["f00.bin"]  # the same content twice: one blob
    for rel, body in contents.items():
        (data / rel).write_bytes(body)
    digests = {_sha(b) for b in contents.values()}
    # The push pauses after the first chunk of each blob's body (a failpoint), and is killed there.
    env = {**os.environ, "RUNYARD_SERVER": ds_server.url, "RUNYARD_FAILPOINTS": "snapshot.upload_chunk=120",
           "PYTHONPATH": str(Path(__file__).parents[2])}
    proc = subprocess.Popen([sys.executable, "-m", "runyard.cli", "datasets", "push", str(data), "--name", "big",
                             "-p", project, "--quiet"], env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not any(p.name.endswith(".part") for p in blob_files()):
            assert proc.poll() is None, proc.communicate()[0].decode()
            assert time.monotonic() < deadline, "the push never started an upload"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    # The server drops the half-received bodies: no blob is stored from them, and no version was made.
    deadline = time.monotonic() + 30
    while any(p.name.endswith(".part") for p in blob_files()):
        assert time.monotonic() < deadline, [p.name for p in blob_files()]
        time.sleep(0.05)
    assert {p.name for p in blob_files()} & digests == set()
    with pytest.raises(NotFound):
        client.get_dataset(project, "big")

    done = push_dataset(client, project, "big", data)
    assert done.created and done.version["version"] == 1 and done.n_uploaded == len(digests)
    names = [p.name for p in blob_files() if p.name in digests]
    assert sorted(names) == sorted(digests)  # each blob once
    assert not any(p.name.endswith(".part") for p in blob_files())
    again = push_dataset(client, project, "big", data)
    assert not again.created and again.n_uploaded == 0


@pytest.mark.parametrize("bad", ["", "-x", "a b", "x\x00y", "\ud800", "a/b/c", "../x", "x" * 129, "digits:0",
                                 "digits:-1", "digits:99999999999", "digits:1.5", "a:b:c", "Proj/x", "x\u202e"])
def test_hostile_dataset_references_refused(bad: str) -> None:
    with pytest.raises(InvalidInput) as e:
        parse_dataset_ref(bad)
    assert e.value.hint and "digits:3" in e.value.hint
    assert "\x00" not in e.value.message and "\ud800" not in e.value.message  # the message is printable


def test_dataset_references_parsed() -> None:
    assert parse_dataset_ref("digits") == (None, "digits", None)
    assert parse_dataset_ref("digits:3") == (None, "digits", 3)
    assert parse_dataset_ref("digits:latest") == (None, "digits", None)
    assert parse_dataset_ref("digits@latest") == (None, "digits", None)
    assert parse_dataset_ref("team/digits:3") == ("team", "digits", 3)
    assert parse_dataset_ref("v1.2_data-x") == (None, "v1.2_data-x", None)


def test_bad_requests_refused_with_400(client: Client, project: str, ds_server: LiveServer) -> None:
    api = ds_server.url + "/api/v1"
    body = b"tiny"
    client.upload_blob(_sha(body), body)
    # Path traversal in a file name: the snapshot is refused, so no dataset can name it.
    for path in ("../etc/passwd", "/abs", "a/../../b", "a\\b", "a\x00b"):
        with pytest.raises(InvalidInput):
            client.create_snapshot([[path, _sha(body), len(body), 0o644]])
    # A file claiming 10 GB for a 4-byte blob: the version is refused (sizes are the blobs').
    lie = client.create_snapshot([["big.bin", _sha(body), 10 * 1024**3, 0o644]])
    with pytest.raises(InvalidInput, match="claims 10737418240 bytes"):
        client.create_dataset_version(project, "d", snapshot_id=lie["id"])
    with pytest.raises(NotFound):
        client.get_dataset(project, "d")
    # Names with NUL, lone surrogates, slashes or dots in URLs.
    for name in ("x%00y", "%ED%A0%80", "..", "-x", "a%20b"):
        r = httpx.post(f"{api}/projects/{project}/datasets/{name}/versions", json={"refs": [["/a", _sha(b"a"), 1, 1.0]]})
        assert r.status_code in (400, 404, 405), (name, r.status_code, r.text)  # "..": the URL is normalised away
        assert r.status_code != 500
    # A lone surrogate or NUL in JSON text.
    raw = b'{"refs": [["/a\\ud800", "' + _sha(b"a").encode() + b'", 1, 1.0]]}'
    r = httpx.post(f"{api}/projects/{project}/datasets/d/versions", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code in (400, 422), r.text
    r = httpx.post(f"{api}/projects/{project}/datasets/d/versions", json={"refs": [["/a", _sha(b"a"), 1, 1.0]],
                                                                        "message": "m\x00"})
    assert r.status_code in (400, 422), r.text
    # Refs: relative, traversal, not a sha, sizes out of range, not numbers.
    for ref in (["rel/a", _sha(b"a"), 1, 1.0], ["/a/../b", _sha(b"a"), 1, 1.0], ["/a", "x" * 64, 1, 1.0],
                ["/a", _sha(b"a"), 2**63, 1.0], ["/a", _sha(b"a"), -1, 1.0], ["/a", _sha(b"a"), "1", 1.0],
                ["/a", _sha(b"a"), 1]):
        r = httpx.post(f"{api}/projects/{project}/datasets/d/versions", json={"refs": [ref]})
        assert r.status_code == 400, (ref, r.text)
    # Versions: not numbers, zero, too big.
    client.create_dataset_version(project, "d", refs=[["/a", _sha(b"a"), 1, 1.0]])
    for v in ("0", "-1", "x", "99999999999999999999", "1.5"):
        r = httpx.get(f"{api}/projects/{project}/datasets/d/versions/{v}")
        assert r.status_code == 400, (v, r.text)
        r = httpx.get(f"{api}/projects/{project}/datasets/d/diff", params={"a": v})
        assert r.status_code in (400, 422), (v, r.text)
    r = httpx.delete(f"{api}/projects/{project}/datasets/d/versions/latest")
    assert r.status_code == 400, r.text
    assert json.loads(httpx.get(f"{api}/projects/{project}/datasets/d/versions/1").text)["version"] == 1


def test_pushing_nothing_is_refused(client: Client, project: str, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInput, match="holds no files"):
        push_dataset(client, project, "e", tmp_path / "empty")
    with pytest.raises(InvalidInput, match="not a directory"):
        push_dataset(client, project, "e", tmp_path / "missing")
    with pytest.raises(InvalidInput, match="no such file"):
        push_dataset(client, project, "e", None, [str(tmp_path / "missing")])
    with pytest.raises(InvalidInput, match="only local paths and s3"):
        push_dataset(client, project, "e", None, ["ftp://host/x"])
