"""The app as a whole: health, experiments and their cancel, the OpenAPI document, PostgreSQL."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter
from fastapi.routing import APIRoute

from runyard.client import Client
from runyard.errors import InvalidInput, SpecError
from runyard.server import routers
from runyard.testing import LiveServer


def test_health(client: Client) -> None:
    health = client.health()
    assert health["status"] == "ok" and health["database"] == "sqlite" and health["version"]


def test_experiments_create_list_cancel(client: Client, project: str) -> None:
    config = {"project": project, "command": "python train.py --lr {lr}", "params": {"lr": [0.1, 0.01]}}
    exp = client.create_experiment(project, "sweep-1", config)
    assert (exp["project"], exp["name"], exp["status"]) == (project, "sweep-1", "running")
    assert exp["config"]["command"] == config["command"] and "lr" in exp["config"]["params"]
    other = client.create_experiment(project, "sweep-2", config)
    assert [e["id"] for e in client.list_experiments(project)] == [other["id"], exp["id"]]
    assert client.get_experiment(exp["id"]) == exp

    eid = exp["id"]
    runs = {s: client.create_run(project, experiment_id=eid, status=s)["id"] for s in ("queued", "running")}
    starting = client.create_run(project, experiment_id=eid, status="queued")["id"]
    client.update_run(starting, "starting")
    done = client.create_run(project, experiment_id=eid)["id"]
    client.update_run(done, "succeeded")
    bystander = client.create_run(project, experiment_id=other["id"], status="queued")["id"]
    assert client.get_experiment(eid)["counts"] == {"queued": 1, "running": 1, "starting": 1, "succeeded": 1}

    canceled = client.cancel_experiment(eid)
    assert canceled["status"] == "canceled" and canceled["ended_at"] is not None
    assert canceled["counts"] == {"canceled": 3, "succeeded": 1}
    for rid in (*runs.values(), starting):
        run = client.get_run(rid)
        assert run["status"] == "canceled" and "experiment canceled" in run["status_message"]
    assert client.get_run(done)["status"] == "succeeded"  # a finished run keeps its status
    assert client.get_run(bystander)["status"] == "queued"  # another experiment is untouched
    assert client.cancel_experiment(eid)["status"] == "canceled"  # cancelling twice is harmless

    with pytest.raises(InvalidInput, match="name"):
        client.create_experiment(project, "", config)
    with pytest.raises(SpecError, match="command is required") as info:
        client.create_experiment(project, "bad", {"project": project})
    assert info.value.code == "invalid_spec" and info.value.hint


def _declared_routes() -> set[tuple[str, str]]:
    """(METHOD, path) of every documented route of every router module, mounted under /api/v1."""
    declared = {("GET", "/api/v1/health")}
    for info in pkgutil.iter_modules(routers.__path__):
        router = getattr(importlib.import_module(f"{routers.__name__}.{info.name}"), "router", None)
        if not isinstance(router, APIRouter):
            continue
        for route in router.routes:
            if isinstance(route, APIRoute) and route.include_in_schema:
                declared |= {(method, "/api/v1" + route.path_format) for method in route.methods}
    return declared


def test_openapi_lists_every_route(shared_server: LiveServer) -> None:
    doc = httpx.get(f"{shared_server.url}/api/v1/openapi.json", timeout=10).json()
    published = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    declared = _declared_routes()
    assert declared <= published, sorted(declared - published)
    must_have = {
        ("GET", "/api/v1/health"),
        ("POST", "/api/v1/projects"), ("GET", "/api/v1/projects"), ("GET", "/api/v1/projects/{name}"),
        ("PATCH", "/api/v1/projects/{name}"),
        ("POST", "/api/v1/experiments"), ("GET", "/api/v1/experiments"), ("GET", "/api/v1/experiments/{experiment_id}"),
        ("POST", "/api/v1/experiments/{experiment_id}/cancel"),
        ("POST", "/api/v1/runs"), ("GET", "/api/v1/runs"), ("GET", "/api/v1/runs/{run_id}"), ("PATCH", "/api/v1/runs/{run_id}"),
        ("POST", "/api/v1/runs/{run_id}/cancel"), ("POST", "/api/v1/runs/{run_id}/heartbeat"),
        ("POST", "/api/v1/runs/{run_id}/params"), ("POST", "/api/v1/runs/{run_id}/tags"),
        ("DELETE", "/api/v1/runs/{run_id}/tags/{key}"),
        ("POST", "/api/v1/runs/{run_id}/metrics"), ("GET", "/api/v1/runs/{run_id}/metrics"),
        ("GET", "/api/v1/runs/{run_id}/metrics/{key}"),
        ("POST", "/api/v1/runs/{run_id}/logs"), ("GET", "/api/v1/runs/{run_id}/logs"), ("GET", "/api/v1/runs/{run_id}/logs/stream"),
        ("PUT", "/api/v1/runs/{run_id}/artifacts/{path}"), ("GET", "/api/v1/runs/{run_id}/artifacts"),
        ("GET", "/api/v1/runs/{run_id}/artifacts/{path}"),
        ("POST", "/api/v1/blobs/missing"), ("PUT", "/api/v1/blobs/{digest}"), ("GET", "/api/v1/blobs/{digest}"),
        ("POST", "/api/v1/snapshots"), ("GET", "/api/v1/snapshots/{snapshot_id}"),
    }
    assert must_have <= published, sorted(must_have - published)
    # The hand-parsed metric batch body is documented, and every $ref in the document resolves.
    body = doc["paths"]["/api/v1/runs/{run_id}/metrics"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    if "$ref" in body:
        body = doc["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    assert {"keys", "steps", "values", "timestamps", "batch_id"} <= set(body["properties"])
    refs = set(re.findall(r'"\$ref":\s*"#/components/schemas/([^"]+)"', json.dumps(doc)))
    assert refs <= set(doc["components"]["schemas"]), sorted(refs - set(doc["components"]["schemas"]))

    # Every published operation is really served: routing answers neither "Not Found" nor "Method Not Allowed".
    # Path parameters name things that do not exist and bodies are empty, so nothing is changed.
    with httpx.Client(base_url=shared_server.url, timeout=10) as http:
        for method, path in sorted(published):
            concrete = re.sub(r"\{[^}]+\}", "999999", path)
            resp = http.request(method, concrete, json={} if method in ("POST", "PUT", "PATCH") else None)
            assert resp.status_code < 500, (method, concrete, resp.text)
            assert resp.status_code == 200 or resp.json()["message"] not in ("Not Found", "Method Not Allowed"), (method, path)
    assert httpx.get(f"{shared_server.url}/api/v1/docs", timeout=10).status_code == 200


@pytest.mark.postgres
def test_live_server_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    with LiveServer(tmp_path / "pg-home", database_url=pg_url) as server, Client(server.url) as c:
        assert c.health()["database"] == "postgresql"
        rid = c.create_run("pg", params={"lr": 0.1})["id"]
        n = 3000
        values = [float((i * 37) % 101) for i in range(n)]
        values[1234], values[2345] = -5.0, 500.0
        assert c.log_metrics(rid, ["loss"] * n, list(range(n)), values, [0.0] * n, batch_id="b")["stored"] == n
        assert c.log_metrics(rid, ["loss"] * n, list(range(n)), values, [0.0] * n, batch_id="b")["duplicate"] is True
        summary = c.metric_summaries(rid)["loss"]
        assert (summary["min"], summary["max"], summary["count"], summary["last"]) == (-5.0, 500.0, n, values[-1])
        full = c.metric_history(rid, "loss")
        assert full["steps"] == list(range(n)) and full["values"] == values
        small = c.metric_history(rid, "loss", max_points=50)
        assert small["downsampled"] and len(small["steps"]) <= 50 and {1234, 2345} <= set(small["steps"])
        assert [r["id"] for r in c.list_runs(filters=["metrics.loss.max > 100"])["items"]] == [rid]
        c.append_logs(rid, "main", [{"text": "on postgres"}])
        assert c.read_logs(rid)["lines"][0]["text"] == "on postgres"
