"""The models functions on a server that requires sign-in: a run's token logs its own model, project roles read it."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import runyard
from runyard.client import Client
from runyard.errors import Forbidden, NotFound
from runyard.store import AuthStore, make_engine
from runyard.testing import LiveServer
from runyard.testing.pytest_plugin import LiveServers

ADMIN_PW = "admin-pw-0123456789"
USERS = {"alice": "alice-pw-123", "carol": "carol-pw-123", "dave": "dave-pw-1234"}
PROJECT = "flv-private"


def _token(url: str, username: str, password: str) -> str:
    with Client(url) as c:
        c.login(username, password)
        token: str = c.create_token(f"test {username}")["token"]
        c.logout()
    return token


def _run_token(server: LiveServer, run_id: int) -> str:
    """Minted into the server's database as the scheduler does for a run it launches."""
    engine = make_engine(f"sqlite:///{server.home / 'runyard.db'}")
    try:
        _, secret = AuthStore(engine).create_token("run", run_id=run_id, name="test")
    finally:
        engine.dispose()
    return secret


@pytest.fixture
def world(live_servers: LiveServers) -> tuple[LiveServer, dict[str, str], int]:
    server = live_servers.start("auth", env={"RUNYARD_AUTH": "required", "RUNYARD_ADMIN_PASSWORD": ADMIN_PW,
                                             "RUNYARD_SCHEDULER": "0"})
    with Client(server.url, _token(server.url, "admin", ADMIN_PW)) as admin:
        for name, pw in USERS.items():
            admin.create_user(name, pw, email=f"{name}@example.org")
    tokens = {name: _token(server.url, name, pw) for name, pw in USERS.items()}
    with Client(server.url, tokens["alice"]) as alice:
        alice.create_project(PROJECT)
        alice.share_project(PROJECT, "carol", "viewer")
        run_id = alice.create_run(PROJECT, name="train")["id"]
    tokens["run"] = _run_token(server, run_id)
    return server, tokens, run_id


def test_a_launched_runs_token_logs_its_model_and_a_viewer_loads_it(world, monkeypatch: pytest.MonkeyPatch) -> None:
    server, tokens, run_id = world
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 3))
    model = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    monkeypatch.setenv("RUNYARD_SERVER", server.url)
    monkeypatch.setenv("RUNYARD_RUN_ID", str(run_id))  # as the runner sets them for a launched run
    monkeypatch.setenv("RUNYARD_TOKEN", tokens["run"])
    run = runyard.init()
    version = runyard.log_model(model, "clf", input_example=x[:2])
    assert (version["project"], version["run_id"], version["flavor"]) == (PROJECT, run_id, "sklearn")
    runyard.finish()
    monkeypatch.delenv("RUNYARD_RUN_ID")

    monkeypatch.setenv("RUNYARD_TOKEN", tokens["carol"])  # a viewer of the project
    np.testing.assert_array_equal(runyard.load_model(f"models:/{PROJECT}/clf/1").predict(x), model.predict(x))
    assert run.id == run_id

    monkeypatch.setenv("RUNYARD_TOKEN", tokens["dave"])  # signed in, no role in the project
    with pytest.raises((Forbidden, NotFound)):
        runyard.load_model(f"models:/{PROJECT}/clf/1")
