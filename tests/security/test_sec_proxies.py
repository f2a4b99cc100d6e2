"""X-Forwarded-For counts only from RUNYARD_TRUSTED_PROXIES: a job on the server's machine cannot pose as another address."""

from __future__ import annotations

import json

import pytest
from raw_http import V1, raw

from runyard.client import Client
from runyard.testing import LiveServer
from runyard.testing.pytest_plugin import LiveServers

ADMIN_PW = "admin-pw-0123456789"


def _server(servers: LiveServers, name: str, **env: str) -> LiveServer:
    return servers.start(name, env={"RUNYARD_AUTH": "required", "RUNYARD_ADMIN_PASSWORD": ADMIN_PW, "RUNYARD_SCHEDULER": "0",
                                    "RUNYARD_LOGIN_MAX_FAILURES": "2", "RUNYARD_LOGIN_WINDOW_S": "60", **env})


def _login(server: LiveServer, password: str, forwarded: str) -> int:
    body = json.dumps({"username": "admin", "password": password}).encode()
    return raw(server, "POST", V1 + "/auth/login", body, {"Content-Type": "application/json",
                                                           "X-Forwarded-For": forwarded})[0]


def _login_addresses(server: LiveServer) -> list[str]:
    with Client(server.url) as c:
        c.login("admin", ADMIN_PW)
        return [e["address"] for e in c.audit(action="login") if not e["success"]]


def test_forged_forwarded_for_from_loopback_is_ignored(live_servers: LiveServers) -> None:
    server = _server(live_servers, "untrusted")
    assert _login(server, "wrong-1", "203.0.113.1") == 401
    assert _login(server, "wrong-2", "203.0.113.2") == 401
    # A new forged address does not reset the count: the limiter keys on the real peer.
    assert _login(server, "wrong-3", "203.0.113.3") == 429
    assert _login(server, ADMIN_PW, "198.51.100.7") == 429
    with pytest.raises(Exception, match="Too many failed sign-ins"):
        _login_addresses(server)


def test_audit_records_the_peer_not_the_forged_address(live_servers: LiveServers) -> None:
    server = _server(live_servers, "audit")
    assert _login(server, "wrong-1", "203.0.113.1") == 401
    assert _login_addresses(server) == ["127.0.0.1"]


def test_trusted_proxy_forwarded_for_is_used(live_servers: LiveServers) -> None:
    server = _server(live_servers, "trusted", RUNYARD_TRUSTED_PROXIES="127.0.0.1")
    assert _login(server, "wrong-1", "203.0.113.1") == 401
    assert _login(server, "wrong-2", "203.0.113.1") == 401
    assert _login(server, "wrong-3", "203.0.113.1") == 429  # that client is paused...
    assert _login(server, "wrong-4", "203.0.113.2") == 401  # ...another one behind the proxy is not
    addresses = _login_addresses(server)
    assert "203.0.113.1" in addresses and "203.0.113.2" in addresses and "127.0.0.1" not in addresses


def test_bad_trusted_proxies_setting_stops_the_server(live_servers: LiveServers) -> None:
    with pytest.raises(RuntimeError, match="RUNYARD_TRUSTED_PROXIES"):
        _server(live_servers, "bad", RUNYARD_TRUSTED_PROXIES="not-an-ip")
