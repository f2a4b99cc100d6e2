"""Helpers for tests/auth: a live server that requires sign-in, with users in every role, and their credentials.

The server runs as a server reachable from other machines would (RUNYARD_AUTH=required,
first admin from RUNYARD_ADMIN_PASSWORD) but listens on 127.0.0.1 only. Run tokens are
minted straight into the server's database with the same call the scheduler makes
(its scheduler is off, so that no run is dispatched in the middle of a test).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

import httpx

from runyard.client import Client
from runyard.store import AuthStore, make_engine
from runyard.testing import LiveServer
from runyard.testing.pytest_plugin import LiveServers

ADMIN_PW = "admin-pw-0123456789"
PASSWORDS = {"alice": "alice-pw-123", "bob": "bob-pw-1234", "carol": "carol-pw-123", "dave": "dave-pw-1234",
             "erin": "erin-pw-1234"}
BLOB = b"print('hello from the snapshot')\n"


def start_auth_server(servers: LiveServers, name: str, **env: str) -> LiveServer:
    return servers.start(name, env={"RUNYARD_AUTH": "required", "RUNYARD_ADMIN_PASSWORD": ADMIN_PW,
                                    "RUNYARD_SCHEDULER": "0", **env})


def token_for(url: str, username: str, password: str, **kw: object) -> str:
    with Client(url) as c:
        c.login(username, password)
        token = c.create_token(f"test {username}", **kw)["token"]
        c.logout()
    return token


def mint_run_token(server: LiveServer, run_id: int) -> str:
    engine = make_engine(f"sqlite:///{server.home / 'runyard.db'}")
    try:
        _, secret = AuthStore(engine).create_token("run", run_id=run_id, name="test")
    finally:
        engine.dispose()
    return secret


@dataclass
class World:
    """Users, a private project shared with some of them, its experiment, runs and snapshot."""

    server: LiveServer
    tokens: dict[str, str | None] = field(default_factory=dict)  # principal -> bearer token (None: anonymous)
    project: str = "priv"
    experiment_id: int = 0
    run_id: int = 0
    other_run_id: int = 0
    snapshot_id: str = ""
    digest: str = ""

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, principal: str) -> Client:
        return Client(self.url, self.tokens[principal])

    def admin(self) -> Client:
        return self.client("admin")


# On a server with sign-in, local is for admins only unless backends.yml opens it (allow: and run_as:):
# the world's users submit experiments to it, so it is opened to every editor of a project.
OPEN_LOCAL = "local:\n  type: local\n  allow: {}\n  run_as: shared\n"


def build_world(server: LiveServer) -> World:
    w = World(server)
    (server.home / "backends.yml").write_text(OPEN_LOCAL)
    w.tokens["admin"] = token_for(server.url, "admin", ADMIN_PW)
    with w.admin() as admin:
        for name, pw in PASSWORDS.items():
            admin.create_user(name, pw, email=f"{name}@example.org")
    for principal, name in (("owner", "alice"), ("editor", "bob"), ("viewer", "carol"), ("stranger", "dave")):
        w.tokens[principal] = token_for(server.url, name, PASSWORDS[name])
    w.tokens["anonymous"] = None
    revoked = token_for(server.url, "dave", PASSWORDS["dave"])
    with Client(server.url, revoked) as c:
        c.revoke_token(c.me()["token_id"])
    w.tokens["revoked"] = revoked
    w.tokens["expired"] = token_for(server.url, "dave", PASSWORDS["dave"], expires_in_days=1.0 / 86400)  # one second
    with w.client("owner") as alice:
        alice.create_project(w.project, description="alice's")
        alice.share_project(w.project, "bob", "editor")
        alice.share_project(w.project, "carol", "viewer")
        w.digest = hashlib.sha256(BLOB).hexdigest()
        alice.upload_blob(w.digest, BLOB)
        w.snapshot_id = alice.create_snapshot([["train.py", w.digest, len(BLOB), 0o644]])["id"]
        w.experiment_id = alice.create_experiment(w.project, "exp",
                                                  {"project": w.project, "command": "python train.py"},
                                                  snapshot_id=w.snapshot_id)["id"]
        w.run_id = alice.create_run(w.project, experiment_id=w.experiment_id, params={"lr": 0.1})["id"]
        w.other_run_id = alice.create_run(w.project, experiment_id=w.experiment_id)["id"]
        alice.log_metrics(w.run_id, ["loss"], [0], [1.0], [time.time()])
        alice.append_logs(w.run_id, "main", [{"text": "hello"}])
        alice.upload_artifact(w.run_id, "model.txt", b"weights")
        alice.set_tags(w.run_id, {"t": "1"})
    w.tokens["run"] = mint_run_token(server, w.run_id)
    time.sleep(1.1)  # the expired token's second has passed (its expiry is what the tests check)
    return w


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def call(url: str, token: str | None, method: str, path: str, **kw: object) -> httpx.Response:
    return httpx.request(method, url + path, headers={**bearer(token), **kw.pop("headers", {})}, timeout=30, **kw)  # type: ignore[arg-type]
