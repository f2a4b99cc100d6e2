"""Helpers of tests/security: servers that require sign-in, their admin and users (imported by the tests and the conftest)."""

from __future__ import annotations

from dataclasses import dataclass

from runyard.client import Client
from runyard.store import Store, make_engine
from runyard.testing import LiveServer
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


def start_sec_server(servers: LiveServers, name: str, database_url: str | None, **env: str) -> SecServer:
    server = servers.start(name, database_url=database_url, env={
        "RUNYARD_AUTH": "required", "RUNYARD_ADMIN_PASSWORD": ADMIN_PW, "RUNYARD_SCHEDULER": "0",
        "RUNYARD_RUN_TOKEN_GRACE_S": str(GRACE_S), "RUNYARD_LOGIN_MAX_FAILURES": str(MAX_FAILURES),
        "RUNYARD_LOGIN_WINDOW_S": "600", "RUNYARD_MAX_METRIC_KEYS": str(MAX_KEYS), **env})
    # Its users submit to local, which a server with sign-in keeps for admins unless backends.yml opens it.
    (server.home / "backends.yml").write_text("local:\n  type: local\n  allow: {}\n  run_as: shared\n")
    url = database_url or f"sqlite:///{server.home / 'runyard.db'}"
    return SecServer(server, url, token_for(server.url, "admin", ADMIN_PW))
