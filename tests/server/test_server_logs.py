"""Logs over HTTP: append and read, long-poll woken by a write, and the server-sent event stream."""

from __future__ import annotations

import threading
import time

import httpx
import orjson
import pytest

from runyard.client import Client
from runyard.errors import InvalidInput, NotFound
from runyard.testing import LiveServer


def test_append_and_read_by_offset_and_task(client: Client, project: str) -> None:
    rid = client.create_run(project)["id"]
    first = client.append_logs(rid, "main", [{"text": "hello"}, {"text": "oops", "stream": "stderr", "ts": 5.0}])
    last = client.append_logs(rid, "worker-1", [{"text": "w"}])
    page = client.read_logs(rid)
    assert [ln["text"] for ln in page["lines"]] == ["hello", "oops", "w"]
    assert page["next_offset"] == last and page["run_status"] == "running"
    assert page["lines"][1]["stream"] == "stderr" and page["lines"][1]["ts"] == 5.0
    assert [ln["text"] for ln in client.read_logs(rid, first)["lines"]] == ["w"]
    assert [ln["text"] for ln in client.read_logs(rid, task="main")["lines"]] == ["hello", "oops"]
    assert client.read_logs(rid, last)["next_offset"] == last
    with pytest.raises(InvalidInput, match="stream"):
        client.append_logs(rid, "main", [{"text": "x", "stream": "stdin"}])
    with pytest.raises(NotFound):
        client.append_logs(999_999, "main", [{"text": "x"}])


def test_a_batch_sent_again_with_its_id_is_stored_once(client: Client, project: str) -> None:
    rid, other = client.create_run(project)["id"], client.create_run(project)["id"]
    first = client.append_logs(rid, "main", [{"text": "a"}, {"text": "b"}], batch_id="batch-1")
    again = client.request("POST", f"/runs/{rid}/logs", json={"task": "main", "lines": [{"text": "a"}, {"text": "b"}],
                                                              "batch_id": "batch-1"}).json()
    assert again == {"offset": first, "duplicate": True}
    client.append_logs(rid, "main", [{"text": "c"}], batch_id="batch-2")
    client.append_logs(other, "main", [{"text": "elsewhere"}], batch_id="batch-1")  # ids are per run
    assert [ln["text"] for ln in client.read_logs(rid)["lines"]] == ["a", "b", "c"]
    assert [ln["text"] for ln in client.read_logs(other)["lines"]] == ["elsewhere"]
    with pytest.raises(InvalidInput, match="batch_id"):
        client.append_logs(rid, "main", [{"text": "x"}], batch_id="x" * 65)
    assert len(client.read_logs(rid)["lines"]) == 3  # nothing of a refused batch is stored


def test_long_poll_returns_when_a_line_is_appended(client: Client, project: str, shared_server: LiveServer) -> None:
    rid = client.create_run(project)["id"]
    delay_s = 0.8

    def write_later() -> None:
        # The behaviour under test: the poll below returns when this line arrives, ``delay_s`` later.
        time.sleep(delay_s)  # long enough that the poll below is already waiting
        with Client(shared_server.url) as other:
            other.append_logs(rid, "main", [{"text": "arrived"}])

    writer = threading.Thread(target=write_later)
    start = time.monotonic()
    writer.start()
    page = client.read_logs(rid, wait_s=20)
    elapsed = time.monotonic() - start
    writer.join()
    assert [ln["text"] for ln in page["lines"]] == ["arrived"]
    assert delay_s * 0.9 <= elapsed < 10, elapsed


def test_long_poll_ends_at_its_timeout_or_when_the_run_is_over(client: Client, project: str) -> None:
    rid = client.create_run(project)["id"]
    start = time.monotonic()
    page = client.read_logs(rid, wait_s=1)
    assert page["lines"] == [] and 0.9 <= time.monotonic() - start < 8
    client.update_run(rid, "succeeded")
    start = time.monotonic()
    page = client.read_logs(rid, wait_s=30)
    assert (page["lines"], page["run_status"]) == ([], "succeeded")
    assert time.monotonic() - start < 5  # a finished run gets no more lines: no waiting


def _sse_events(resp: httpx.Response) -> list[tuple[str, dict]]:
    events, name, data = [], None, None
    for line in resp.iter_lines():
        if line.startswith("event: "):
            name = line[len("event: ") :]
        elif line.startswith("data: "):
            data = orjson.loads(line[len("data: ") :])
        elif line == "" and name is not None:
            events.append((name, data))
            if name == "end":
                break
            name, data = None, None
    return events


def test_event_stream_delivers_lines_then_end(client: Client, project: str, shared_server: LiveServer) -> None:
    rid = client.create_run(project)["id"]
    client.append_logs(rid, "main", [{"text": "before"}])
    started = threading.Event()

    def produce() -> None:
        started.wait(10)
        with Client(shared_server.url) as other:
            for i in range(3):
                other.append_logs(rid, "main", [{"text": f"live {i}"}])
                time.sleep(0.1)  # lines arriving over time, as a live run's do: the behaviour under test
            other.append_logs(rid, "worker-0", [{"text": "last words"}])
            other.update_run(rid, "succeeded")

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        with httpx.stream("GET", f"{shared_server.url}/api/v1/runs/{rid}/logs/stream", timeout=30) as resp:
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("text/event-stream")
            started.set()
            events = _sse_events(resp)
    finally:
        started.set()
        producer.join()
    lines = [data["text"] for name, data in events if name == "line"]
    assert lines == ["before", "live 0", "live 1", "live 2", "last words"]
    assert events[-1] == ("end", {"status": "succeeded"})
    offsets = [data["offset"] for name, data in events if name == "line"]
    assert offsets == sorted(set(offsets))


def test_event_stream_of_a_finished_run_and_of_a_missing_run(client: Client, project: str,
                                                             shared_server: LiveServer) -> None:
    rid = client.create_run(project)["id"]
    client.append_logs(rid, "main", [{"text": "a"}, {"text": "b"}])
    client.update_run(rid, "failed")
    with httpx.stream("GET", f"{shared_server.url}/api/v1/runs/{rid}/logs/stream", params={"task": "main"},
                      timeout=10) as resp:
        events = _sse_events(resp)
    assert [(n, d.get("text", d.get("status"))) for n, d in events] == [("line", "a"), ("line", "b"), ("end", "failed")]
    resp = httpx.get(f"{shared_server.url}/api/v1/runs/999999/logs/stream", timeout=10)
    assert resp.status_code == 404 and resp.json()["code"] == "not_found"
