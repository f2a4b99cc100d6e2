"""Fixtures of tests/security: live servers that require sign-in, on SQLite and on PostgreSQL.

Each module gets one server per database (``sec_server``), with short limits so the tests
are quick: a run's token lives 2 s past its run's end, 5 failed sign-ins per user and
address, 50 metric keys per run. Its scheduler is off; run tokens are minted by the same
store call the scheduler's dispatch makes (``Store.claim_runs``), on the server's database.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from runyard.client import Client
from runyard.store import Store, make_engine
from runyard.testing import LiveServer
from runyard.testing._postgres import drop_database, postgres_url
from runyard.testing.pytest_plugin import LiveServers

ADMIN_PW = "admin-pw-0123456789"
GRACE_S = 2.0
MAX_FAILURES = 5
MAX_KEYS = 50


@dataclass
class SecServer:
    server: LiveServer
    database_url: str
    admin_token: str

    @property
    def url(self) -> str:
        return self.server.url

    def admin(self) -> Client:
        return Client(self.url, self.admin_token)

    def store(self) -> Store:
        return Store(make_engine(self.database_url))

    def user_token(self, username: str, password: str) -> str:
        return token_for(self.url, username, password)

    def claim(self, run_id: int, attempt: int = 1) -> str:
        """Dispatch a queued run as the scheduler does (queued → starting, the attempt's token minted)."""
        store = self.store()
        try:
            return store.claim_runs([(run_id, attempt)])[run_id]
        finally:
            store.engine.dispose()


def token_for(url: str, username: str, password: str) -> str:
    with Client(url) as c:
        c.login(username, password)
        token = c.create_token(f"test {username}")["token"]
        c.logout()
    return token


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def sec_database(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None for SQLite in the server's home, else a fresh PostgreSQL database for the module."""
    if request.param == "sqlite":
        yield None
        return
    try:
        url, name = postgres_url()
    except ConnectionError as e:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {e}. CI must run the PostgreSQL tests.")
        pytest.skip(f"SKIPPING POSTGRESQL TESTS: {e}")
    try:
        yield url
    finally:
        drop_database(name)


def start_sec_server(servers: LiveServers, name: str, database_url: str | None, **env: str) -> SecServer:
    server = servers.start(name, database_url=database_url, env={
        "RUNYARD_AUTH": "required", "RUNYARD_ADMIN_PASSWORD": ADMIN_PW, "RUNYARD_SCHEDULER": "0",
        "RUNYARD_RUN_TOKEN_GRACE_S": str(GRACE_S), "RUNYARD_LOGIN_MAX_FAILURES": str(MAX_FAILURES),
        "RUNYARD_LOGIN_WINDOW_S": "600", "RUNYARD_MAX_METRIC_KEYS": str(MAX_KEYS), **env})
    url = database_url or f"sqlite:///{server.home / 'runyard.db'}"
    return SecServer(server, url, token_for(server.url, "admin", ADMIN_PW))


@pytest.fixture(scope="module")
def sec_server(module_live_servers: LiveServers, sec_database: str | None) -> SecServer:
    name = "sec-pg" if sec_database else "sec-sqlite"
    return start_sec_server(module_live_servers, name, sec_database)
