"""Runs over HTTP: metric batches (good and bad), history downsampling, list filters, sorting and pages."""

from __future__ import annotations

import random
from typing import Any

import httpx
import orjson
import pytest

from runyard.client import Client
from runyard.errors import InvalidInput, NotFound
from runyard.testing import LiveServer


def _post_batch(server: LiveServer, run_id: int, content: bytes) -> httpx.Response:
    return httpx.post(f"{server.url}/api/v1/runs/{run_id}/metrics", content=content,
                      headers={"content-type": "application/json"}, timeout=30)


def test_metric_batch_ingest_dedup_and_summaries(client: Client, project: str) -> None:
    run = client.create_run(project)["id"]
    keys = ["loss", "acc"] * 3
    steps = [0, 0, 1, 1, 2, 2]
    values = [3.0, 0.1, 2.0, None, 1.0, 0.7]
    assert client.log_metrics(run, keys, steps, values, [1.0] * 6, batch_id="b1") == {"stored": 6, "duplicate": False}
    assert client.log_metrics(run, keys, steps, values, [1.0] * 6, batch_id="b1") == {"stored": 0, "duplicate": True}
    summaries = client.metric_summaries(run)
    assert summaries["loss"] | {"ts": None} == {"last": 1.0, "step": 2, "min": 1.0, "max": 3.0, "count": 3, "ts": None}
    assert (summaries["acc"]["min"], summaries["acc"]["max"], summaries["acc"]["count"]) == (0.1, 0.7, 3)
    assert client.get_run(run)["metrics"] == summaries
    # NaN from the SDK travels as null (orjson writes NaN as null) and is stored as a gap.
    client.log_metrics(run, ["loss"], [3], [float("nan")], [2.0])
    hist = client.metric_history(run, "loss")
    assert (hist["steps"], hist["values"], hist["downsampled"], hist["total"]) == ([0, 1, 2, 3], [3.0, 2.0, 1.0, None], False, 4)


BAD_BATCHES: list[tuple[bytes, str]] = [  # body, message fragment
    (b"{not json", "not valid JSON"),
    (b"", "not valid JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b'{"keys": ["a"], "steps": [0], "values": [1.0]}', "needs a list 'timestamps', but got NoneType"),
    (b'{"keys": "a", "steps": [0], "values": [1.0], "timestamps": [0]}', "needs a list 'keys', but got str"),
    (b'{"keys": ["a"], "steps": [0.5], "values": [1.0], "timestamps": [0]}', "steps must be integers"),
    (b'{"keys": ["a"], "steps": ["0"], "values": [1.0], "timestamps": [0]}', "steps must be integers"),
    (b'{"keys": ["a"], "steps": [true], "values": [1.0], "timestamps": [0]}', "steps must be integers"),
    (b'{"keys": ["a"], "steps": [9223372036854775808], "values": [1.0], "timestamps": [0]}', "steps must be integers"),
    (b'{"keys": ["a"], "steps": [0], "values": [1.0], "timestamps": ["now"]}', "timestamps must be numbers"),
    (b'{"keys": [1], "steps": [0], "values": [1.0], "timestamps": [0]}', "keys must be strings"),
    (b'{"keys": ["a"], "steps": [0], "values": ["high"], "timestamps": [0]}', "values must be numbers"),
    (b'{"keys": ["a"], "steps": [0], "values": [NaN], "timestamps": [0]}', "not valid JSON"),
    (b'{"keys": ["a", "a"], "steps": [0], "values": [1.0, 2.0], "timestamps": [0, 0]}', "equal length"),
    (b'{"keys": ["a"], "steps": [0], "values": [1.0], "timestamps": [0], "batch_id": 7}', "batch_id must be a string"),
    (b'{"keys": ["a"], "steps": [0], "values": [1.0], "timestamps": [0], "batch_id": "' + b"x" * 65 + b'"}',
     "batch_id must be a string of at most 64"),
    (orjson.dumps({"keys": ["k" * 251], "steps": [0], "values": [1.0], "timestamps": [0]}), "metric name must be 1-250"),
    (orjson.dumps({"keys": ["a\x00b"], "steps": [0], "values": [1.0], "timestamps": [0]}),
     "metric name must be 1-250 characters without newlines, NUL characters, bidirectional overrides or unpaired surrogates"),
    (orjson.dumps({"keys": ["a"] * 100_001, "steps": [], "values": [], "timestamps": []}), "at most 100000 points"),
]


def test_bad_metric_batches_are_400_with_a_clear_message(shared_server: LiveServer, client: Client, project: str) -> None:
    run = client.create_run(project)["id"]
    for body, fragment in BAD_BATCHES:
        resp = _post_batch(shared_server, run, body)
        assert resp.status_code == 400, (body[:80], resp.text)
        payload = resp.json()
        assert payload["code"] == "invalid_input" and fragment in payload["message"], (body[:80], payload)
        assert payload["hint"], payload
    assert client.metric_summaries(run) == {}  # nothing was stored
    resp = _post_batch(shared_server, 999_999, b'{"keys": [], "steps": [], "values": [], "timestamps": []}')
    assert (resp.status_code, resp.json()["code"]) == (404, "not_found")
    assert _post_batch(shared_server, run, b'{"keys": [], "steps": [], "values": [], "timestamps": []}').json() == {
        "stored": 0, "duplicate": False}


def test_history_downsampling_over_http(client: Client, project: str) -> None:
    run = client.create_run(project)["id"]
    rng = random.Random(3)
    truth = {s: rng.gauss(0, 1) for s in range(20_000)}
    truth[4321], truth[17_000] = -99.0, 99.0
    steps = list(truth)
    for i in range(0, len(steps), 5000):
        chunk = steps[i : i + 5000]
        client.log_metrics(run, ["val/loss"] * len(chunk), chunk, [truth[s] for s in chunk], [0.0] * len(chunk))
    for max_points in (100, 1000):  # 20,000 points = 78 blocks: blocks path for 100, raw points for 1000
        hist = client.metric_history(run, "val/loss", max_points=max_points)
        assert hist["key"] == "val/loss" and hist["downsampled"] is True and hist["total"] == 20_000
        assert 0 < len(hist["steps"]) <= max_points
        assert hist["steps"] == sorted(hist["steps"])
        assert all(truth[s] == v for s, v in zip(hist["steps"], hist["values"], strict=True))
        assert {4321, 17_000} <= set(hist["steps"])
    full = client.metric_history(run, "val/loss")
    assert (len(full["steps"]), full["downsampled"]) == (20_000, False)
    with pytest.raises(InvalidInput, match="max_points"):
        client.metric_history(run, "val/loss", max_points=1)
    with pytest.raises(NotFound, match="has no metric 'nope'"):
        client.metric_history(run, "nope")


def test_list_runs_filter_sort_paginate(client: Client, project: str) -> None:
    expected: dict[int, dict[str, Any]] = {}
    for i in range(50):
        params = {"lr": round(0.001 * (i + 1), 3), "opt": "adam" if i % 2 else "sgd", "seed": i}
        run = client.create_run(project, name=f"r{i:02d}", params=params, tags={"parity": "odd" if i % 2 else "even"})
        rid = run["id"]
        if i % 5 != 0:  # every fifth run logs no accuracy
            acc = [i / 100, (i % 7) / 10, (50 - i) / 100]
            client.log_metrics(rid, ["acc"] * 3, [0, 1, 2], acc, [0.0] * 3)
            expected[rid] = {"i": i, "last": acc[-1], "min": min(acc), "max": max(acc)}
        else:
            expected[rid] = {"i": i}
        if i >= 45:
            client.update_run(rid, "succeeded")

    page = client.list_runs(project=project, limit=10)
    assert page["total"] == 50 and len(page["items"]) == 10 and page["limit"] == 10

    def ids(**kw: Any) -> list[int]:
        return [r["id"] for r in client.list_runs(project=project, limit=100, **kw)["items"]]

    got = ids(filters=["params.lr >= 0.025", "params.opt = adam"])
    assert sorted(got) == sorted(r for r, e in expected.items() if e["i"] >= 24 and e["i"] % 2)
    got = ids(filters=["metrics.acc.min < 0.05"])
    assert sorted(got) == sorted(r for r, e in expected.items() if "min" in e and e["min"] < 0.05)
    got = ids(filters=["tags.parity = even"], status=["succeeded"])
    assert sorted(got) == sorted(r for r, e in expected.items() if e["i"] in (46, 48))

    with_acc = [r for r in expected if "last" in expected[r]]
    without = sorted(r for r in expected if "last" not in expected[r])
    for agg in ("last", "min", "max"):
        for desc in (False, True):
            order = f"metrics.acc.{agg}{' desc' if desc else ''}"
            want = sorted(with_acc, key=lambda r: (-expected[r][agg] if desc else expected[r][agg], r)) + without
            got = ids(order_by=order)
            assert got[: len(with_acc)] == want[: len(with_acc)], order
            assert sorted(got[len(with_acc) :]) == without, order  # runs lacking the metric come last

    pages: list[int] = []
    for offset in range(0, 50, 15):
        p = client.list_runs(project=project, order_by="params.lr desc", limit=15, offset=offset)
        assert (p["total"], p["offset"]) == (50, offset)
        pages += [r["id"] for r in p["items"]]
    assert pages == sorted(expected, key=lambda r: -expected[r]["i"])
    assert client.list_runs(project=project, offset=50)["items"] == []

    with pytest.raises(InvalidInput, match="Cannot read the sort order") as info:
        client.list_runs(project=project, order_by="metrics.acc sideways")
    assert "asc|desc" in (info.value.hint or "")
    with pytest.raises(InvalidInput, match="not a number"):
        client.list_runs(project=project, filters=["metrics.acc > high"])
    with pytest.raises(InvalidInput, match="id needs a number"):
        client.list_runs(project=project, filters=["id = abc"])


def test_params_tags_status_over_http(client: Client, project: str, shared_server: LiveServer) -> None:
    run = client.create_run(project, params={"lr": 0.1}, tags={"a": "1", "team/owner": "ml"}, status="queued")
    rid = run["id"]
    assert client.log_params(rid, {"lr": 0.1, "bs": 8})["params"] == {"lr": 0.1, "bs": 8}
    assert client.set_tags(rid, {"b": 2})["tags"] == {"a": "1", "b": "2", "team/owner": "ml"}
    resp = httpx.delete(f"{shared_server.url}/api/v1/runs/{rid}/tags/a")
    assert resp.status_code == 200 and resp.json()["tags"] == {"b": "2", "team/owner": "ml"}
    resp = httpx.delete(f"{shared_server.url}/api/v1/runs/{rid}/tags/team%2Fowner")  # tag names may hold '/'
    assert resp.status_code == 200 and resp.json()["tags"] == {"b": "2"}
    client.update_run(rid, "running")
    done = client.update_run(rid, "failed", message="oom", exit_code=137)
    assert (done["status"], done["exit_code"], done["status_message"]) == ("failed", 137, "oom")
    assert [e["status"] for e in done["events"]] == ["queued", "running", "failed"]


def test_report_records_task_and_run_status_in_one_request(client: Client, project: str) -> None:
    run = client.create_run(project, status="queued")["id"]
    start = client.report(run, task={"role": "main", "rank": 0, "status": "running", "pid": 4242, "host": "h1"},
                          run={"status": "running"})
    assert start == {"applied": True, "status": "running"}
    client.cancel_run(run)
    # The run ended meanwhile: the task's end is recorded, the run's status change is not applied.
    end = client.report(run, task={"role": "main", "rank": 0, "status": "succeeded", "exit_code": 0},
                        run={"status": "succeeded", "exit_code": 0})
    assert end == {"applied": False, "status": "canceled"}
    got = client.get_run(run)
    assert got["status"] == "canceled"
    (task,) = got["tasks"]
    assert (task["status"], task["pid"], task["host"], task["exit_code"]) == ("succeeded", 4242, "h1", 0)


@pytest.mark.parametrize(("body", "fragment"), [
    ({"run": {"status": "done"}}, "Unknown run status 'done'"),
    ({"task": {"role": "main", "rank": 0, "status": "bogus"}}, "Unknown task status 'bogus'"),
    ({"run": {"message": "no status"}}, "needs a status"),
])
def test_bad_reports_are_refused_and_change_nothing(client: Client, project: str, body: dict[str, Any],
                                                    fragment: str) -> None:
    run = client.create_run(project, status="running")["id"]
    with pytest.raises(InvalidInput, match=fragment):
        client.report(run, **body)
    got = client.get_run(run)
    assert (got["status"], got["tasks"]) == ("running", [])


def test_report_for_a_missing_run_is_404(client: Client) -> None:
    with pytest.raises(NotFound, match="No run with id 987654"):
        client.report(987654, run={"status": "running"})
