"""Limits that keep bad input a 4xx: artifact path sizes, distinct metric keys per run."""

from __future__ import annotations

import itertools
import time

import httpx
import pytest
from sec_helpers import MAX_KEYS, SecServer

from runyard.errors import InvalidInput
from runyard.store import Store, make_engine, upgrade

V1 = "/api/v1"
_n = itertools.count()


def _run(sec: SecServer) -> int:
    with sec.admin() as admin:
        return admin.create_run(f"lim{next(_n)}")["id"]


def _put(sec: SecServer, run_id: int, path: str) -> httpx.Response:
    return httpx.put(f"{sec.url}{V1}/runs/{run_id}/artifacts/{path}", content=b"x", timeout=60,
                     headers={"Authorization": f"Bearer {sec.admin_token}", "Content-Type": "application/octet-stream"})


@pytest.mark.parametrize(("path", "limit"), [
    ("a" * 256 + ".pt", "200 bytes"),          # one name too long for a file system
    ("é" * 101, "200 bytes"),                  # 202 bytes in UTF-8
    ("/".join(["d"] * 2000) + "/f", "1024 bytes"),
    ("/".join(["d"] * 40) + "/f", "32"),
    ("/".join(["d" * 100] * 11), "1024 bytes"),
])
def test_oversize_artifact_paths_are_refused_with_the_limit(sec_server: SecServer, path: str, limit: str) -> None:
    run_id = _run(sec_server)
    r = _put(sec_server, run_id, path)
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    assert limit in r.json()["message"] + r.json()["hint"]
    with sec_server.admin() as admin:
        assert admin.list_artifacts(run_id) == []
    ok = _put(sec_server, run_id, "/".join(["d"] * 31) + "/" + "n" * 200)  # at the limits: stored
    assert ok.status_code == 201, ok.text


def _metrics(sec: SecServer, run_id: int, keys: list[str]) -> httpx.Response:
    now = time.time()
    return httpx.post(f"{sec.url}{V1}/runs/{run_id}/metrics", timeout=60, headers={"Authorization": f"Bearer {sec.admin_token}"},
                      json={"keys": keys, "steps": [1] * len(keys), "values": [0.5] * len(keys), "timestamps": [now] * len(keys)})


def test_a_run_holds_at_most_the_cap_of_metric_keys_and_a_batch_over_it_is_refused_whole(sec_server: SecServer) -> None:
    run_id = _run(sec_server)
    too_many = _metrics(sec_server, run_id, [f"k{i}" for i in range(MAX_KEYS + 1)])
    assert too_many.status_code in (400, 413, 422) and f"at most {MAX_KEYS} distinct metric keys" in too_many.json()["message"]

    assert _metrics(sec_server, run_id, [f"k{i}" for i in range(MAX_KEYS - 10)]).status_code == 200
    # 10 new keys fit; 11 do not: the batch, its points of known keys included, is refused whole.
    over = _metrics(sec_server, run_id, ["k0"] + [f"new{i}" for i in range(11)])
    assert over.status_code in (400, 413, 422), over.text
    with sec_server.admin() as admin:
        summaries = admin.metric_summaries(run_id)
    assert len(summaries) == MAX_KEYS - 10 and summaries["k0"]["count"] == 1
    assert _metrics(sec_server, run_id, ["k0"] + [f"new{i}" for i in range(10)]).status_code == 200
    assert _metrics(sec_server, run_id, ["k0", "k1"]).status_code == 200  # known keys: always welcome
    assert _metrics(sec_server, run_id, ["one-more"]).status_code in (400, 413, 422)


def test_a_huge_key_batch_is_refused_quickly_with_the_default_cap(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNYARD_MAX_METRIC_KEYS", raising=False)
    store = Store(make_engine(db_url))
    upgrade(store.engine)
    run_id = store.create_run("huge").id
    keys = [f"key{i}" for i in range(50_000)]
    t0 = time.perf_counter()
    with pytest.raises(InvalidInput, match="at most 10000 distinct metric keys"):
        store.ingest_metrics(run_id, keys, [0] * len(keys), [1.0] * len(keys), [0.0] * len(keys))
    assert time.perf_counter() - t0 < 2.0
    assert store.metric_summaries(run_id) == {}
    store.engine.dispose()
