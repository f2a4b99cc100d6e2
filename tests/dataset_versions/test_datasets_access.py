"""Who may do what with datasets on a server that requires sign-in: project roles, public projects, run tokens."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from runyard.client import Client
from runyard.errors import Conflict, Forbidden, NotFound, RunyardError
from runyard.store import AuthStore, make_engine
from runyard.testing import LiveServer
from runyard.testing.pytest_plugin import LiveServers

ADMIN_PW = "admin-pw-0123456789"
USERS = {"alice": "alice-pw-123", "bob": "bob-pw-1234", "carol": "carol-pw-123", "dave": "dave-pw-1234"}
DATA = b"0123456789"


def _ref(i: int) -> list[object]:
    return [f"/shared/access/{i}.bin", hashlib.sha256(DATA).hexdigest(), len(DATA), 1.0]


@dataclass
class Team:
    """alice owns projects priv (bob edits, carol views) and pub (public); dave is in neither."""

    server: LiveServer
    tokens: dict[str, str] = field(default_factory=dict)

    def client(self, who: str) -> Client:
        return Client(self.server.url, self.tokens[who])


def _token(url: str, user: str, password: str) -> str:
    with Client(url) as c:
        c.login(user, password)
        token: str = c.create_token("datasets tests")["token"]
        c.logout()
    return token


@pytest.fixture(scope="module")
def team(module_live_servers: LiveServers) -> Team:
    server = module_live_servers.start("datasets-auth", env={"RUNYARD_AUTH": "required", "RUNYARD_ADMIN_PASSWORD": ADMIN_PW,
                                                              "RUNYARD_SCHEDULER": "0"})
    t = Team(server)
    t.tokens["admin"] = _token(server.url, "admin", ADMIN_PW)
    with t.client("admin") as admin:
        for user, pw in USERS.items():
            admin.create_user(user, pw)
    for user, pw in USERS.items():
        t.tokens[user] = _token(server.url, user, pw)
    with t.client("alice") as alice:
        alice.create_project("priv")
        alice.share_project("priv", "bob", "editor")
        alice.share_project("priv", "carol", "viewer")
        alice.create_project("pub", visibility="public")
        alice.create_dataset_version("priv", "ds", refs=[_ref(0)], message="alice's")
        alice.create_dataset_version("pub", "open", refs=[_ref(0)])
        run_id = alice.create_run("priv")["id"]
    engine = make_engine(f"sqlite:///{server.home / 'runyard.db'}")
    try:
        _, t.tokens["run"] = AuthStore(engine).create_token("run", run_id=run_id, name="test")
    finally:
        engine.dispose()
    return t


@pytest.fixture
def as_(team: Team) -> Iterator[dict[str, Client]]:
    clients = {who: team.client(who) for who in team.tokens}
    yield clients
    for c in clients.values():
        c.close()


def test_viewers_read_editors_push_owners_delete(as_: dict[str, Client]) -> None:
    for who in ("carol", "bob", "alice", "admin"):
        assert as_[who].list_datasets("priv")[0]["name"] == "ds"
        assert as_[who].get_dataset_version("priv", "ds", "latest")["message"] == "alice's"
        assert as_[who].diff_datasets("priv", "ds", 1, 1)["unchanged"] == 1
    with pytest.raises(Forbidden, match="this needs editor"):
        as_["carol"].create_dataset_version("priv", "ds", refs=[_ref(1)])
    pushed = as_["bob"].create_dataset_version("priv", "ds", refs=[_ref(2)], message="bob's")
    assert pushed["created"] and pushed["version"]["created_by"] == "bob"
    number = pushed["version"]["version"]
    for who in ("carol", "bob"):
        with pytest.raises(Forbidden, match="this needs owner"):
            as_[who].delete_dataset_version("priv", "ds", number)
    as_["alice"].delete_dataset_version("priv", "ds", number)
    with pytest.raises(NotFound):
        as_["alice"].get_dataset_version("priv", "ds", number)


def test_strangers_see_nothing_of_a_private_project(as_: dict[str, Client]) -> None:
    dave = as_["dave"]
    for call in (lambda: dave.list_datasets("priv"), lambda: dave.get_dataset("priv", "ds"),
                 lambda: dave.get_dataset_version("priv", "ds", 1), lambda: dave.diff_datasets("priv", "ds", 1, 1),
                 lambda: dave.delete_dataset_version("priv", "ds", 1)):
        with pytest.raises(NotFound, match="No project named 'priv'"):
            call()
    # Pushing into it: the same answer as creating a project of that name (the name is not confirmed).
    with pytest.raises(Conflict, match="taken or reserved"):
        dave.create_dataset_version("priv", "ds", refs=[_ref(3)])
    # Nor do other projects' datasets leak through another project's name.
    with pytest.raises(NotFound):
        dave.get_dataset("pub", "ds")


def test_public_projects_datasets_are_readable_by_any_signed_in_user(as_: dict[str, Client]) -> None:
    dave = as_["dave"]
    assert [d["name"] for d in dave.list_datasets("pub")] == ["open"]
    assert dave.get_dataset_version("pub", "open", None)["version"] == 1
    with pytest.raises(Forbidden):
        dave.create_dataset_version("pub", "open", refs=[_ref(4)])
    with pytest.raises(Forbidden):
        dave.delete_dataset_version("pub", "open", 1)
    with Client(as_["dave"].base_url) as anonymous, pytest.raises(RunyardError) as e:
        anonymous.list_datasets("pub")
    assert e.value.code == "unauthorized"


def test_a_run_token_cannot_use_project_datasets(as_: dict[str, Client]) -> None:
    run = as_["run"]
    with pytest.raises(Forbidden):
        run.list_datasets("priv")
    with pytest.raises(Forbidden):
        run.create_dataset_version("priv", "ds", refs=[_ref(5)])
