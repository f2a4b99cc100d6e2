"""Who may do what in the registry, on a server that requires sign-in: viewers read, editors register, archive
and edit, owners move aliases, outsiders see nothing of a private project and read a public one, and a
run's token registers from its own run into its own project only."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from runyard.client import Client
from runyard.errors import Forbidden, NotFound, RunyardError, Unauthorized
from runyard.store import AuthStore, make_engine
from runyard.testing import LiveServer
from runyard.testing.pytest_plugin import LiveServers

ADMIN_PW = "admin-pw-0123456789"
USERS = {"alice": "alice-pw-123", "bob": "bob-pw-1234", "carol": "carol-pw-123", "dave": "dave-pw-1234"}


@dataclass
class World:
    server: LiveServer
    tokens: dict[str, str | None] = field(default_factory=dict)
    run_id: int = 0  # a run of "priv" with artifacts under model/
    pub_run_id: int = 0  # a run of "pub"

    def client(self, who: str) -> Client:
        return Client(self.server.url, self.tokens[who])


def _token(url: str, username: str, password: str) -> str:
    with Client(url) as c:
        c.login(username, password)
        token = c.create_token(f"registry {username}")["token"]
        c.logout()
    return token


@pytest.fixture(scope="module")
def world(module_live_servers: LiveServers) -> Iterator[World]:
    server = module_live_servers.start("registry-auth", env={"RUNYARD_AUTH": "required", "RUNYARD_ADMIN_PASSWORD": ADMIN_PW,
                                                             "RUNYARD_SCHEDULER": "0"})
    w = World(server)
    w.tokens["admin"] = _token(server.url, "admin", ADMIN_PW)
    with w.client("admin") as admin:
        for name, pw in USERS.items():
            admin.create_user(name, pw)
    for role, name in (("owner", "alice"), ("editor", "bob"), ("viewer", "carol"), ("outsider", "dave")):
        w.tokens[role] = _token(server.url, name, USERS[name])
    w.tokens["anonymous"] = None
    with w.client("owner") as alice:
        alice.create_project("priv")
        alice.share_project("priv", "bob", "editor")
        alice.share_project("priv", "carol", "viewer")
        alice.create_project("pub", visibility="public")
        w.run_id = alice.create_run("priv", name="train")["id"]
        alice.upload_artifact(w.run_id, "model/w.bin", b"weights")
        w.pub_run_id = alice.create_run("pub", name="other")["id"]
        alice.upload_artifact(w.pub_run_id, "model/w.bin", b"public weights")
        alice.create_model_version("priv", "m", run_id=w.run_id, paths=["model"])
        alice.create_model_version("pub", "m", run_id=w.pub_run_id, paths=["model"])
        alice.set_model_alias("pub", "m", "production", 1)
    engine = make_engine(f"sqlite:///{server.home / 'runyard.db'}")
    try:
        _, w.tokens["run"] = AuthStore(engine).create_token("run", run_id=w.run_id, name="registry test")
        # run models: a run of "pub", whose token reads pub's models and public ones, never priv's
        _, w.tokens["pub_run"] = AuthStore(engine).create_token("run", run_id=w.pub_run_id, name="registry test")
    finally:
        engine.dispose()
    yield w


def _reads(project: str) -> list[Callable[[Client], Any]]:
    return [
        lambda c: c.list_models(project),
        lambda c: c.get_model(project, "m"),
        lambda c: c.get_model_version(project, "m", 1),
        lambda c: c.resolve_model(f"models:/{project}/m/1"),
    ]


def _outcome(w: World, who: str, call: Callable[[Client], Any]) -> str:
    with w.client(who) as c:
        try:
            call(c)
        except Unauthorized:
            return "401"
        except Forbidden:
            return "403"
        except NotFound:
            return "404"
    return "ok"


@pytest.mark.parametrize(("who", "expected"), [
    ("owner", "ok"), ("editor", "ok"), ("viewer", "ok"), ("admin", "ok"), ("outsider", "404"), ("anonymous", "401"),
    ("run", "ok"), ("pub_run", "403"),  # a run's token reads its own project's models, not another's private ones
])
def test_reading_a_private_projects_models(world: World, who: str, expected: str) -> None:
    assert [_outcome(world, who, call) for call in _reads("priv")] == [expected] * 4


@pytest.mark.parametrize(("who", "expected"), [("outsider", "ok"), ("viewer", "ok"), ("anonymous", "401"), ("run", "ok"),
                                               ("pub_run", "ok")])
def test_public_projects_models_are_readable_by_any_signed_in_user(world: World, who: str, expected: str) -> None:
    assert [_outcome(world, who, call) for call in _reads("pub")] == [expected] * 4


@pytest.mark.parametrize(("who", "expected"), [
    ("owner", "ok"), ("editor", "ok"), ("admin", "ok"), ("viewer", "403"), ("outsider", "404"), ("anonymous", "401"),
])
def test_editors_register_archive_and_edit(world: World, who: str, expected: str) -> None:
    calls = [
        lambda c: c.create_model_version("priv", "edits", run_id=world.run_id, paths=["model/w.bin"]),
        lambda c: c.archive_model_version("priv", "m", 1),
        lambda c: c.archive_model_version("priv", "m", 1, unarchive=True),
        lambda c: c.update_model("priv", "m", description=f"by {who}"),
        lambda c: c.update_model_version("priv", "m", 1, tags={"by": who}),
        lambda c: c.create_model("priv", f"new-{who}"),
    ]
    assert [_outcome(world, who, call) for call in calls] == [expected] * len(calls)


@pytest.mark.parametrize(("who", "expected"), [
    ("owner", "ok"), ("admin", "ok"), ("editor", "403"), ("viewer", "403"), ("outsider", "404"), ("anonymous", "401"),
    ("run", "403"),
])
def test_owners_move_and_delete_aliases(world: World, who: str, expected: str) -> None:
    alias = f"a-{who}"
    assert _outcome(world, who, lambda c: c.set_model_alias("priv", "m", alias, 1)) == expected
    if expected == "ok":
        assert _outcome(world, who, lambda c: c.delete_model_alias("priv", "m", alias)) == "ok"
        with world.client("admin") as admin:
            history = admin.get_model("priv", "m")["alias_history"]
        mine = [(e["from_version"], e["to_version"], e["actor"]) for e in history if e["alias"] == alias]
        assert mine == [(None, 1, {"owner": "alice", "admin": "admin"}[who]), (1, None, {"owner": "alice", "admin": "admin"}[who])]
    else:
        with world.client("owner") as alice:
            alice.set_model_alias("priv", "m", alias, 1)
        assert _outcome(world, who, lambda c: c.delete_model_alias("priv", "m", alias)) == expected
        with world.client("owner") as alice:
            alice.delete_model_alias("priv", "m", alias)


def test_outsiders_cannot_write_to_a_public_projects_models(world: World) -> None:
    assert _outcome(world, "outsider", lambda c: c.create_model_version("pub", "m", run_id=world.pub_run_id,
                                                                        paths=["model"])) == "403"
    assert _outcome(world, "outsider", lambda c: c.set_model_alias("pub", "m", "production", 1)) == "403"
    assert _outcome(world, "outsider", lambda c: c.archive_model_version("pub", "m", 1)) == "403"


def test_a_runs_token_registers_from_its_own_run_into_its_own_project_only(world: World) -> None:
    with world.client("run") as run:
        v = run.create_model_version("priv", "from-run", run_id=world.run_id, paths=["model"], flavor="files")
        assert (v["run_id"], v["created_by"]) == (world.run_id, f"run:{world.run_id}")
        # Another run's artifacts, another project, no run at all: refused.
        with pytest.raises(Forbidden, match="only from its own run"):
            run.create_model_version("pub", "x", run_id=world.pub_run_id, paths=["model"])
        with pytest.raises(Forbidden, match="only in its own project"):
            run.create_model_version("pub", "x", run_id=world.run_id, paths=["model"])
        with pytest.raises(Forbidden, match="only from its own run"):
            run.create_model_version("priv", "x", snapshot_id=v["snapshot_id"])
        # Nothing else of the registry.
        for call in (lambda: run.create_model("priv", "x"), lambda: run.archive_model_version("priv", "from-run", 1),
                     lambda: run.update_model("priv", "from-run", description="x")):
            with pytest.raises(Forbidden):
                call()
    with world.client("owner") as alice:
        assert [x["version"] for x in alice.get_model("priv", "from-run")["versions"]] == [1]
        assert alice.list_models("pub")[0]["n_versions"] == 1


def test_an_editor_cannot_register_from_a_run_they_cannot_read(world: World) -> None:
    with world.client("owner") as alice:
        alice.create_project("secret")
        hidden = alice.create_run("secret")["id"]
        alice.upload_artifact(hidden, "model/w.bin", b"secret weights")
    # bob edits priv but is no member of secret: its run is hidden from him.
    with world.client("editor") as bob, pytest.raises(NotFound, match=f"No run with id {hidden}"):
        bob.create_model_version("priv", "stolen", run_id=hidden, paths=["model"])
    with world.client("owner") as alice, pytest.raises(RunyardError):
        alice.get_model("priv", "stolen")
