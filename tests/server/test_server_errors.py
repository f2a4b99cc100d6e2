"""Every failure answers JSON ``{code, message, hint}`` with the status of its code, and the
client rebuilds the same error class from it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from runyard.client import Client
from runyard.errors import (
    Conflict,
    InvalidInput,
    InvalidState,
    NotFound,
    ServerUnreachable,
)
from runyard.testing import LiveServer, free_port


def _check_error(resp: httpx.Response, status: int, code: str, fragment: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"code", "message", "hint"}, body
    assert body["code"] == code, body
    assert fragment in body["message"], body
    assert body["hint"] is None or isinstance(body["hint"], str)
    return body


@pytest.fixture
def http(shared_server: LiveServer) -> httpx.Client:
    with httpx.Client(base_url=shared_server.url) as c:
        yield c


def test_error_shape_and_status_for_each_kind(http: httpx.Client, client: Client, project: str) -> None:
    run = client.create_run(project, params={"lr": 0.1})
    done = client.create_run(project)
    client.update_run(done["id"], "succeeded")
    api = "/api/v1"
    cases: list[tuple[str, str, dict[str, Any], int, str, str]] = [
        ("GET", f"{api}/runs/999999", {}, 404, "not_found", "No run with id 999999"),
        ("GET", f"{api}/runs/999999/metrics/loss", {}, 404, "not_found", "No run with id 999999"),
        ("GET", f"{api}/runs/{run['id']}/metrics/loss", {}, 404, "not_found", "has no metric 'loss'"),
        ("GET", f"{api}/projects/ghost-project", {}, 404, "not_found", "No project named 'ghost-project'"),
        ("GET", f"{api}/experiments/999999", {}, 404, "not_found", "No experiment with id 999999"),
        ("GET", f"{api}/snapshots/nope", {}, 404, "not_found", "No snapshot 'nope'"),
        ("GET", f"{api}/no/such/route", {}, 404, "not_found", "Not Found"),
        ("DELETE", f"{api}/projects", {}, 405, "method_not_allowed", "Method Not Allowed"),
        ("GET", f"{api}/runs/abc", {}, 400, "invalid_input", "run_id"),
        ("GET", f"{api}/runs", {"params": {"limit": 0}}, 400, "invalid_input", "limit"),
        ("GET", f"{api}/experiments", {"params": {"limit": -1}}, 400, "invalid_input", "limit"),
        ("GET", f"{api}/runs/1/logs", {"params": {"limit": -1}}, 400, "invalid_input", "limit"),
        ("GET", f"{api}/runs", {"params": {"filter": "lr"}}, 400, "invalid_input", "Cannot read the filter 'lr'"),
        ("GET", f"{api}/runs", {"params": {"order_by": "tags.x"}}, 400, "invalid_input", "cannot be sorted by a tag"),
        ("POST", f"{api}/projects", {"json": {"name": "Bad Name"}}, 400, "invalid_input", "lowercase letters"),
        ("POST", f"{api}/projects", {"json": {"name": project}}, 409, "conflict", "cannot be created: the name is taken or reserved"),
        ("POST", f"{api}/projects", {"content": b"{not json", "headers": {"content-type": "application/json"}},
         400, "invalid_input", "Invalid request"),
        ("POST", f"{api}/projects", {"json": {}}, 400, "invalid_input", "name: Field required"),
        ("POST", f"{api}/runs/{run['id']}/params", {"json": {"params": {"lr": 0.2}}}, 409, "conflict", "cannot change"),
        ("PATCH", f"{api}/runs/{done['id']}", {"json": {"status": "running"}}, 409, "invalid_state", "cannot become running"),
        ("PATCH", f"{api}/runs/{run['id']}", {"json": {"status": "finished"}}, 400, "invalid_input", "Unknown run status"),
        ("POST", f"{api}/runs/{done['id']}/cancel", {}, 409, "invalid_state", "nothing to cancel"),
        ("DELETE", f"{api}/runs/{run['id']}/tags/none", {}, 404, "not_found", "has no tag 'none'"),
        ("POST", f"{api}/runs", {"json": {"project": project, "status": "later"}}, 400, "invalid_input", "Unknown run status"),
    ]
    for method, path, kwargs, status, code, fragment in cases:
        body = _check_error(http.request(method, path, **kwargs), status, code, fragment)
        if status in (400, 404):
            assert body["hint"], (path, body)


def test_client_rebuilds_the_error_classes(client: Client, project: str) -> None:
    run = client.create_run(project, params={"lr": 0.1})
    with pytest.raises(NotFound, match="No run with id 999999") as info:
        client.get_run(999_999)
    assert info.value.hint
    with pytest.raises(Conflict, match="cannot change"):
        client.log_params(run["id"], {"lr": 0.5})
    client.update_run(run["id"], "failed", exit_code=3)
    with pytest.raises(InvalidState, match="cannot become running"):
        client.update_run(run["id"], "running")
    with pytest.raises(InvalidInput, match="lowercase letters"):
        client.create_project("UPPER")


def test_unreachable_server_is_a_clear_error() -> None:
    with Client(f"http://127.0.0.1:{free_port()}", timeout_s=2) as c, pytest.raises(
        ServerUnreachable, match="Cannot reach the Runyard server"
    ) as info:
        c.health()
    assert "/api/v1/health" in (info.value.hint or "")
