"""Single-user local mode answers only the local user: no DNS rebinding, no cross-site writes."""

from __future__ import annotations

import json

import pytest
from raw_http import V1, raw, raw_json

from runyard.client import Client
from runyard.testing import LiveServer
from runyard.testing.pytest_plugin import LiveServers

ADMIN_PW = "admin-pw-0123456789"


@pytest.fixture(scope="module")
def local(module_live_servers: LiveServers) -> LiveServer:
    return module_live_servers.start("local", env={"RUNYARD_SCHEDULER": "0"})


@pytest.fixture(scope="module")
def team(module_live_servers: LiveServers) -> LiveServer:
    return module_live_servers.start("team", env={"RUNYARD_AUTH": "required", "RUNYARD_ADMIN_PASSWORD": ADMIN_PW,
                                                   "RUNYARD_SCHEDULER": "0"})


@pytest.fixture(scope="module")
def run_id(local: LiveServer) -> int:
    with Client(local.url) as c:
        c.create_project("sec-local")
        return int(c.create_run("sec-local", name="target")["id"])


@pytest.mark.parametrize("host", ["evil.example:{port}", "evil.example", "127.0.0.1.evil.example:{port}",
                                  "localhost.evil.example", "", "10.0.0.1:{port}"])
def test_dns_rebinding_host_is_refused(local: LiveServer, host: str) -> None:
    status, _, body = raw(local, "GET", V1 + "/me", headers={"Host": host.format(port=local.port)})
    assert status == 403
    err = json.loads(body)
    assert "local mode" in err["message"] and "127.0.0.1" in err["hint"]


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST:{port}", "[::1]:{port}", "127.0.0.1",
                                  "localhost"])
def test_loopback_hosts_are_answered(local: LiveServer, host: str) -> None:
    status, _, body = raw(local, "GET", V1 + "/me", headers={"Host": host.format(port=local.port)})
    assert status == 200, body
    assert json.loads(body)["kind"] == "local"


def test_public_url_host_is_answered(live_servers: LiveServers) -> None:
    server = live_servers.start("named", env={"RUNYARD_SCHEDULER": "0", "RUNYARD_PUBLIC_URL": "http://runyard.lan:9999"})
    assert raw(server, "GET", V1 + "/me", headers={"Host": "runyard.lan:9999"})[0] == 200
    assert raw(server, "GET", V1 + "/me", headers={"Host": "evil.example"})[0] == 403


@pytest.mark.parametrize("ctype", ["text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
                                   "multipart/form-data; boundary=x", None])
def test_cross_site_metric_post_is_refused_and_stores_nothing(local: LiveServer, run_id: int, ctype: str | None) -> None:
    batch = json.dumps({"keys": ["loss"], "steps": [1], "values": [0.5], "timestamps": [1.0]}).encode()
    headers = {"Content-Type": ctype} if ctype else {}
    status, _, body = raw(local, "POST", f"{V1}/runs/{run_id}/metrics", batch, headers)
    assert status == 415, body
    assert "application/json" in json.loads(body)["hint"]
    with Client(local.url) as c:
        assert c.request("GET", f"/runs/{run_id}/metrics").json() == {}


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded"])
def test_cross_site_cancel_is_refused(local: LiveServer, ctype: str) -> None:
    with Client(local.url) as c:
        rid = c.create_run("sec-local", name="keep")["id"]
    status, _, _ = raw(local, "POST", f"{V1}/runs/{rid}/cancel", b"x=1", {"Content-Type": ctype})
    assert status == 415
    # A body-less fetch() from another site: no content type, but the browser names its origin.
    status, _, body = raw(local, "POST", f"{V1}/runs/{rid}/cancel", b"", {"Origin": "http://evil.example"})
    assert status == 403, body
    status, _, _ = raw(local, "POST", f"{V1}/runs/{rid}/cancel", b"", {"Origin": "null"})
    assert status == 403
    with Client(local.url) as c:
        assert c.get_run(rid)["status"] != "canceled"


def test_json_writes_and_same_origin_work(local: LiveServer, run_id: int) -> None:
    status, got = raw_json(local, "POST", f"{V1}/runs/{run_id}/metrics",
                           {"keys": ["acc"], "steps": [1], "values": [0.9], "timestamps": [1.0]})
    assert status == 200 and got["stored"] == 1
    with Client(local.url) as c:
        rid = c.create_run("sec-local", name="cancel-me")["id"]
    status, _, _ = raw(local, "POST", f"{V1}/runs/{rid}/cancel", b"", {"Origin": local.url})  # the UI itself
    assert status == 200
    with Client(local.url) as c:
        assert c.get_run(rid)["status"] == "canceled"
        c.upload_artifact(run_id, "model.bin", b"\x00" * 1000)  # application/octet-stream uploads
        assert [a["path"] for a in c.list_artifacts(run_id)] == ["model.bin"]


def test_team_server_is_unaffected(team: LiveServer) -> None:
    # Any Host name: a team server checks credentials, not names.
    status, _, body = raw(team, "GET", V1 + "/health", headers={"Host": "runyard.example.com"})
    assert status == 200
    status, _, _ = raw(team, "GET", V1 + "/me", headers={"Host": "runyard.example.com"})
    assert status == 401
    with Client(team.url) as c:
        c.login("admin", ADMIN_PW)
        token = c.create_token("sec")["token"]
    # Bearer tokens (CLI, SDK, runners) may send any content type the API takes.
    status, _, body = raw(team, "POST", V1 + "/projects", json.dumps({"name": "sec-team"}).encode(),
                          {"Authorization": f"Bearer {token}", "Content-Type": "text/plain",
                           "Host": "runyard.example.com"})
    assert status in (200, 201, 400, 415) and status != 403
    status, _, body = raw(team, "POST", V1 + "/projects", json.dumps({"name": "sec-team2"}).encode(),
                          {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                           "Host": "runyard.example.com", "Origin": "https://elsewhere.example"})
    assert status == 201, body


def test_session_cookie_writes_refuse_simple_content_types(team: LiveServer) -> None:
    import httpx

    with httpx.Client(base_url=team.url + V1, timeout=10) as http:
        login = http.post("/auth/login", json={"username": "admin", "password": ADMIN_PW}).json()
        csrf = login["csrf_token"]
        resp = http.post("/projects", content=b'{"name": "sec-cookie"}',
                         headers={"Content-Type": "text/plain", "X-CSRF-Token": csrf})
        assert resp.status_code == 415
        resp = http.post("/projects", json={"name": "sec-cookie"}, headers={"X-CSRF-Token": csrf})
        assert resp.status_code == 201


def test_bearer_requests_in_local_mode_skip_the_content_type_rule(local: LiveServer, run_id: int) -> None:
    """A run's token (runners in local mode) is not a browser: its writes are judged by the API alone."""
    from runyard.store import AuthStore, make_engine

    engine = make_engine(f"sqlite:///{local.home / 'runyard.db'}")
    try:
        _, secret = AuthStore(engine).create_token("run", run_id=run_id, name="sec")
    finally:
        engine.dispose()
    batch = json.dumps({"keys": ["tok"], "steps": [1], "values": [1.0], "timestamps": [1.0]}).encode()
    status, _, body = raw(local, "POST", f"{V1}/runs/{run_id}/metrics", batch,
                          {"Authorization": f"Bearer {secret}", "Content-Type": "text/plain"})
    assert status == 200, body  # the metric route parses its body itself
    # The Host rule holds for every request in local mode.
    status, _, _ = raw(local, "GET", f"{V1}/runs/{run_id}", headers={"Authorization": f"Bearer {secret}",
                                                                      "Host": "evil.example"})
    assert status == 403
