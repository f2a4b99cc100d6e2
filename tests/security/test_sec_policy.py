"""Who may run jobs where (``allow:`` in backends.yml), and a server home nobody else can read.

The attack this guards against: on a team server, any signed-in user (say a viewer of
someone else's project) created a project of their own and an experiment whose command
printed ``$RUNYARD_HOME/initial-admin-password``; its log showed the admin's password.
Now ``local`` (the server's own machine and account) is for admins only on a server with
sign-in, unless backends.yml opens it with ``allow:`` *and* ``run_as:``.

The servers require sign-in (as one reachable from other machines) and run without their
scheduler: submissions are checked and stored, nothing is dispatched. Their backends.yml is
read again on each submission, so each test writes the one it needs.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from runyard.backends.config import load_backends, parse_backends
from runyard.client import Client
from runyard.errors import Forbidden, SpecError
from runyard.testing import LiveServer
from runyard.testing.pytest_plugin import LiveServers

pytestmark = pytest.mark.slow

ADMIN_PW = "admin-pw-0123456789"
PASSWORDS = {"alice": "alice-pw-123", "bob": "bob-pw-1234", "carol": "carol-pw-123"}
STEAL = "cat $RUNYARD_HOME/initial-admin-password"


def _start(servers: LiveServers, name: str, database_url: str | None = None) -> LiveServer:
    return servers.start(name, database_url=database_url,
                         env={"RUNYARD_AUTH": "required", "RUNYARD_ADMIN_PASSWORD": ADMIN_PW, "RUNYARD_SCHEDULER": "0"})


def _users(server: LiveServer) -> dict[str, str]:
    """Tokens of admin, alice (owner of 'shared'), bob (its editor) and carol (its viewer)."""
    tokens = {}
    with Client(server.url) as admin:
        admin.login("admin", ADMIN_PW)
        for name, pw in PASSWORDS.items():
            admin.create_user(name, pw)
        tokens["admin"] = admin.create_token("t")["token"]
    for name, pw in PASSWORDS.items():
        with Client(server.url) as c:
            c.login(name, pw)
            tokens[name] = c.create_token("t")["token"]
    with Client(server.url, tokens["alice"]) as alice:
        alice.create_project("shared")
        alice.share_project("shared", "bob", "editor")
        alice.share_project("shared", "carol", "viewer")
    return tokens


class Team:
    def __init__(self, server: LiveServer, tokens: dict[str, str]) -> None:
        self.server = server
        self.tokens = tokens

    def client(self, who: str) -> Client:
        return Client(self.server.url, self.tokens[who])

    def backends(self, text: str) -> None:
        (self.server.home / "backends.yml").write_text(text)

    def submit(self, who: str, project: str, backend: object = "local", *, override: str | None = None) -> dict:
        with self.client(who) as c:
            return c.create_experiment(project, f"e-{uuid.uuid4().hex[:6]}",
                                       {"project": project, "command": STEAL, "backend": backend}, backend=override)


@pytest.fixture(scope="module")
def team(module_live_servers: LiveServers) -> Team:
    server = _start(module_live_servers, "policy-sqlite")
    return Team(server, _users(server))


@pytest.fixture(autouse=True)
def _no_backends_file(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "team" in request.fixturenames:
        (request.getfixturevalue("team").server.home / "backends.yml").unlink(missing_ok=True)


def _project(prefix: str = "own") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _project_exists(team: Team, name: str) -> bool:
    with team.client("admin") as admin:
        return any(p["name"] == name for p in admin.list_projects())


# ------------------------------------------------------------------ local on a server with sign-in
def test_a_viewer_elsewhere_cannot_run_on_local_in_a_project_of_their_own(team: Team) -> None:
    project = _project()
    with pytest.raises(Forbidden) as e:
        team.submit("carol", project)
    # The refusal names the backend, why, and who can change it; and nothing was stored.
    assert "backend 'local'" in e.value.message and "admins only" in e.value.message
    assert "An admin can add you to `allow:` of backend local in backends.yml" in (e.value.hint or "")
    assert not _project_exists(team, project)


def test_an_admin_may_run_on_local(team: Team) -> None:
    assert team.submit("admin", _project())["backend"] == "local"


def test_allow_opens_local_only_together_with_run_as(team: Team) -> None:
    team.backends("local:\n  type: local\n  allow: {users: [carol]}\n")
    with pytest.raises(Forbidden) as e:
        team.submit("carol", _project())
    assert "no `run_as:`" in e.value.message and "run_as:" in (e.value.hint or "")
    team.backends("local:\n  type: local\n  allow: {users: [carol]}\n  run_as: shared\n")
    assert team.submit("carol", _project())["backend"] == "local"
    with pytest.raises(Forbidden, match="bob is not one of its users"):  # only the users it names
        team.submit("bob", _project())


def test_allow_by_project_glob_and_by_min_role(team: Team) -> None:
    team.backends("local:\n  type: local\n  allow: {projects: [\"vision-*\"]}\n  run_as: {pool: runyard-job, size: 2}\n")
    assert team.submit("carol", _project("vision"))["backend"] == "local"
    with pytest.raises(Forbidden, match="matches none of its projects"):
        team.submit("carol", _project("nlp"))
    team.backends("local:\n  type: local\n  allow: {min_role: owner}\n  run_as: shared\n")
    with pytest.raises(Forbidden, match="bob is editor of project 'shared', and it needs owner"):
        team.submit("bob", "shared")
    assert team.submit("alice", "shared")["backend"] == "local"


# ------------------------------------------------------------------ other backends
def test_a_backend_without_allow_keeps_the_editor_rule(team: Team) -> None:
    team.backends("hpc: {type: slurm, partition: debug}\n")
    assert team.submit("bob", "shared", "hpc")["backend"] == "hpc"  # an editor of the project
    with pytest.raises(Forbidden, match="carol is a viewer of project 'shared'; this needs editor"):
        team.submit("carol", "shared", "hpc")
    assert team.submit("carol", _project(), "hpc")["backend"] == "hpc"  # her own project


def test_allow_users_refuses_the_others(team: Team) -> None:
    team.backends("hpc:\n  type: slurm\n  allow: {users: [bob]}\n")
    with pytest.raises(Forbidden) as e:
        team.submit("alice", "shared", "hpc")
    assert "alice may not submit to backend 'hpc'" in e.value.message and "the users bob" in e.value.message
    assert "allow:` of backend hpc in backends.yml" in (e.value.hint or "")
    assert team.submit("bob", "shared", "hpc")["backend"] == "hpc"


def test_every_backend_of_a_list_must_admit_the_user(team: Team) -> None:
    team.backends("hpc: {type: slurm}\n")
    with pytest.raises(Forbidden, match="backend 'local'"):
        team.submit("bob", "shared", ["hpc", "local"])
    with pytest.raises(Forbidden, match="backend 'local'"):
        team.submit("bob", "shared", "hpc", override="hpc,local")
    assert team.submit("bob", "shared", ["hpc"])["backend"] == "hpc"


def test_a_restart_is_checked_against_the_policy_of_now(team: Team) -> None:
    team.backends("local: {type: local, allow: {}, run_as: shared}\n")
    exp = team.submit("bob", "shared")
    with team.client("bob") as bob:
        run = bob.create_run("shared", experiment_id=exp["id"])
        bob.update_run(run["id"], "running")
        bob.update_run(run["id"], "failed", exit_code=1)
        (team.server.home / "backends.yml").unlink()  # local closed again
        with pytest.raises(Forbidden, match="backend 'local'"):
            bob.restart_run(run["id"])
        assert bob.get_run(run["id"])["status"] == "failed"
    with team.client("admin") as admin:
        assert admin.restart_run(run["id"])["status"] == "queued"


def test_a_queued_run_added_to_an_experiment_is_checked(team: Team) -> None:
    # An admin's experiment on local: an editor of its project may not queue runs into it (the
    # scheduler would run them there), but may still record runs of their own by hand.
    exp = team.submit("admin", "shared")
    with team.client("bob") as bob:
        with pytest.raises(Forbidden, match="backend 'local'"):
            bob.create_run("shared", experiment_id=exp["id"], status="queued")
        assert bob.create_run("shared", experiment_id=exp["id"])["status"] == "running"


# ------------------------------------------------------------------ showing the policy
def test_the_api_lists_each_backends_policy(team: Team) -> None:
    team.backends("hpc:\n  type: slurm\n  partition: debug\n  allow: {users: [bob]}\n")
    r = httpx.get(team.server.url + "/api/v1/backends", params={"project": "shared"},
                  headers={"Authorization": f"Bearer {team.tokens['bob']}"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["sign_in"] is True
    by_name = {b["name"]: b for b in body["items"]}
    assert by_name["local"]["policy"].startswith("admins only") and by_name["local"]["admitted"] is False
    assert by_name["hpc"]["allow"] == {"users": ["bob"]} and by_name["hpc"]["admitted"] is True
    assert by_name["hpc"]["options"] is None  # options are for admins


def test_cli_lists_each_backends_policy(tmp_path: Path) -> None:
    (tmp_path / "backends.yml").write_text("hpc:\n  type: slurm\n  allow: {users: [alice], min_role: owner}\n"
                                           "local: {type: local, allow: {}, run_as: shared}\n")
    env = {**os.environ, "RUNYARD_HOME": str(tmp_path), "RUNYARD_AUTH": "required",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    out = subprocess.run([sys.executable, "-m", "runyard.cli", "backends", "list", "--json"], env=env, capture_output=True,
                         text=True, check=True, timeout=60).stdout
    by_name = {b["name"]: b for b in json.loads(out)}
    assert by_name["hpc"]["allow"] == {"users": ["alice"], "min_role": "owner"}
    assert by_name["hpc"]["policy"] == "admins, and the users alice owning the project"
    assert "run_as: shared" in by_name["local"]["policy"]
    (tmp_path / "backends.yml").unlink()
    out = subprocess.run([sys.executable, "-m", "runyard.cli", "backends", "list", "--json"], env=env, capture_output=True,
                         text=True, check=True, timeout=60).stdout
    assert json.loads(out)[0]["policy"] == "admins only (no allow:)"


# ------------------------------------------------------------------ bad allow: values
@pytest.mark.parametrize(("text", "expected"), [
    ("hpc:\n  type: slurm\n  allow:\n    userz: [a]\n",
     "backends.yml:4: hpc.allow.userz is not a key of allow. Did you mean 'users'?"),
    ("hpc:\n  type: slurm\n  allow:\n    min_role: edtor\n",
     "backends.yml:4: hpc.allow.min_role must be one of viewer, editor, owner (a role in the project), but got 'edtor'. "
     "Did you mean 'editor'?"),
    ("hpc:\n  type: slurm\n  allow:\n    users: alice\n",
     "backends.yml:4: hpc.allow.users must be a list of usernames, but got 'alice'."),
    ("hpc:\n  type: slurm\n  allow: [alice]\n",
     "backends.yml:3: hpc.allow must be a mapping of users, projects, min_role"),
    ("local:\n  type: local\n  run_as: ''\n", "backends.yml:3: local.run_as must be 'shared' or {pool: NAME, size: N}, but got ''"),
])
def test_bad_allow_values_name_their_line(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(SpecError) as e:
        parse_backends(text)
    assert expected in e.value.message
    path = tmp_path / "backends.yml"
    path.write_text(text)
    with pytest.raises(SpecError, match=f"{path}:"):
        load_backends(path)


# ------------------------------------------------------------------ PostgreSQL
def test_the_policy_holds_on_a_postgresql_server(live_servers: LiveServers, pg_url: str) -> None:
    server = _start(live_servers, "policy-pg", database_url=pg_url)
    team = Team(server, _users(server))
    project = _project()
    with pytest.raises(Forbidden, match="backend 'local'"):
        team.submit("carol", project)
    assert not _project_exists(team, project)
    assert team.submit("admin", project)["backend"] == "local"


# ------------------------------------------------------------------ the home's permissions
def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_database_and_home_are_this_accounts_only_under_umask_022(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from runyard import config
    from runyard.store import Store

    home = tmp_path / "fresh-home"
    monkeypatch.setenv("RUNYARD_HOME", str(home))
    old = os.umask(0o022)
    try:
        assert _mode(config.home()) == 0o700
        store = Store.open()
        try:
            store.ensure_project("p")  # a write: the WAL exists
            assert _mode(home / "runyard.db") == 0o600
            assert _mode(home / "runyard.db-wal") == 0o600
            assert _mode(home / "runyard.db-shm") == 0o600
        finally:
            store.close()
    finally:
        os.umask(old)


def test_the_server_tightens_a_home_others_could_read(live_servers: LiveServers, tmp_path: Path) -> None:
    home = tmp_path / "open-home"
    old = os.umask(0o022)
    try:
        home.mkdir(mode=0o755)
        (home / "backends.yml").write_text("hpc: {type: slurm}\n")  # 0644
        server = live_servers.start("open", home=home, env={"RUNYARD_SCHEDULER": "0"})
        with Client(server.url) as c:
            c.create_project("p")
    finally:
        os.umask(old)
    assert _mode(home) == 0o700
    assert _mode(home / "backends.yml") == 0o600
    assert _mode(home / "runyard.db") == 0o600
    assert _mode(home / "runyard.db-wal") == 0o600
    assert _mode(home / "artifacts") == 0o700
    # Each change is logged, naming the path and both modes.
    assert f"{home}: 0755 -> 0700" in server.log_path.read_text()
