"""Request bodies are capped per route kind (413 naming the limit), without the server buffering past the cap."""

from __future__ import annotations

import json

import pytest
from raw_http import V1, raw, raw_json, rss_kib, send_large

from runyard.client import Client
from runyard.errors import PayloadTooLarge
from runyard.testing import LiveServer
from runyard.testing.pytest_plugin import LiveServers

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def server(module_live_servers: LiveServers) -> LiveServer:
    return module_live_servers.start("bodies", env={"RUNYARD_SCHEDULER": "0", "RUNYARD_MAX_UPLOAD_MB": "4"})


@pytest.fixture(scope="module")
def run_id(server: LiveServer) -> int:
    with Client(server.url) as c:
        c.create_project("sec-bodies")
        return int(c.create_run("sec-bodies", name="r")["id"])


def _too_large(status: int, body: bytes, limit: str) -> None:
    assert status == 413, body[:300]
    err = json.loads(body)
    assert err["code"] == "too_large" and limit in err["message"], err


@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize(("method", "path", "limit"), [
    ("POST", V1 + "/auth/login", "1 MiB"),         # public JSON route
    ("POST", V1 + "/projects", "1 MiB"),           # JSON route
    ("POST", V1 + "/runs", "1 MiB"),               # a run name in the body
    ("PATCH", V1 + "/runs/{rid}", "1 MiB"),
    ("POST", V1 + "/runs/{rid}/metrics", "16 MiB"),  # batch routes
    ("POST", V1 + "/runs/{rid}/logs", "16 MiB"),
    ("POST", V1 + "/snapshots", "16 MiB"),
])
def test_oversized_bodies_get_413_with_the_limit(server: LiveServer, run_id: int, method: str, path: str, limit: str,
                                                 chunked: bool) -> None:
    size = 20 * MiB
    status, body, sent = send_large(server, method, path.format(rid=run_id), size, chunked=chunked,
                                    head=b'{"name": "', fill=b"x")
    _too_large(status, body, limit)
    if not chunked:
        assert sent < size  # refused on the declared length, before the body


def test_file_uploads_keep_their_own_cap(server: LiveServer, run_id: int) -> None:
    status, body, _ = send_large(server, "PUT", f"{V1}/runs/{run_id}/artifacts/big.bin", 5 * MiB, chunked=True,
                                 content_type="application/octet-stream")
    _too_large(status, body, "4 MiB")
    with Client(server.url) as c:
        c.upload_artifact(run_id, "ok.bin", b"\x01" * (3 * MiB))  # over the JSON cap, under the upload cap
        with pytest.raises(PayloadTooLarge):
            c.upload_artifact(run_id, "big2.bin", b"\x01" * (5 * MiB))
        assert [a["path"] for a in c.list_artifacts(run_id)] == ["ok.bin"]


def test_a_batch_over_the_json_cap_still_goes_in(server: LiveServer, run_id: int) -> None:
    n = 60_000  # about 3 MiB of JSON: over 1 MiB, under the batch cap
    lines = [{"stream": "stdout", "text": "x" * 40} for _ in range(n // 10)]
    status, got = raw_json(server, "POST", f"{V1}/runs/{run_id}/logs", {"task": "main", "lines": lines * 1})
    assert status == 200, got
    batch = {"keys": ["loss"] * n, "steps": list(range(n)), "values": [0.123456789] * n, "timestamps": [1.7e9] * n}
    assert len(json.dumps(batch)) > 1 * MiB
    status, got = raw_json(server, "POST", f"{V1}/runs/{run_id}/metrics", batch)
    assert status == 200 and got["stored"] == n, got


def test_a_200mb_run_name_is_refused_and_memory_stays_flat(server: LiveServer) -> None:
    assert server.proc is not None
    before = rss_kib(server.proc.pid)
    for chunked in (False, True):
        status, body, _ = send_large(server, "POST", V1 + "/runs", 200 * MiB, chunked=chunked,
                                     head=b'{"project": "sec-bodies", "name": "', fill=b"n")
        _too_large(status, body, "1 MiB")
    status, body, _ = send_large(server, "POST", V1 + "/auth/login", 80 * MiB, chunked=True,
                                 head=b'{"username": "admin", "password": "', fill=b"p")
    _too_large(status, body, "1 MiB")
    after = rss_kib(server.proc.pid)
    assert after - before < 32 * 1024, (before, after)  # KiB: nothing near the bodies' size was kept
    with Client(server.url) as c:
        assert all(len(r["name"]) < 1000 for r in c.list_runs(project="sec-bodies")["items"])


@pytest.mark.parametrize("path", [V1 + "/projects", V1 + "/runs", V1 + "/runs/{rid}/metrics", V1 + "/runs/{rid}/logs",
                                  V1 + "/auth/login", V1 + "/snapshots", V1 + "/blobs/missing"])
@pytest.mark.parametrize("opener", [b"[", b'{"a":'])
def test_deeply_nested_json_gets_4xx(server: LiveServer, run_id: int, path: str, opener: bytes) -> None:
    status, _, body = raw(server, "POST", path.format(rid=run_id), opener * 100_000, {"Content-Type": "application/json"})
    assert 400 <= status < 500, (status, body[:300])
    assert json.loads(body)["code"] in ("invalid_input", "not_found")
