"""models: in runyard.yml and runs using registered models, on a server that requires sign-in: submission pins the
URIs (an alias moved later changes nothing), run tokens read the models of their project and of public projects
(never another project's private ones, and they still write nothing in the registry), runs record what they use
and read those versions' files, and bad input is refused."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from lineage_helpers import upload_snapshot

from runyard.client import Client
from runyard.errors import Conflict, Forbidden, InvalidInput, NotFound, RunyardError, SpecError
from runyard.store import AuthStore, Store
from runyard.testing import LiveServer
from runyard.testing.pytest_plugin import LiveServers

ADMIN_PW = "admin-pw-0123456789"
USERS = {"alice": "alice-pw-123", "bob": "bob-pw-1234", "carol": "carol-pw-123"}
WEIGHTS = {"model.bin": b"weights-one", "meta/info.txt": b"v1\n"}
WEIGHTS2 = {"model.bin": b"weights-two"}
OPEN_LOCAL = "local:\n  type: local\n  allow: {}\n  run_as: shared\n"


@dataclass
class Site:
    server: LiveServer
    tokens: dict[str, str] = field(default_factory=dict)

    def client(self, who: str) -> Client:
        return Client(self.server.url, self.tokens[who])

    def run_token(self, run_id: int) -> str:
        store = Store.open(f"sqlite:///{self.server.home / 'runyard.db'}", migrate=False)
        try:
            return AuthStore(store.engine).create_token("run", run_id=run_id, name="test")[1]
        finally:
            store.close()


def _token(url: str, user: str, pw: str) -> str:
    with Client(url) as c:
        c.login(user, pw)
        token = c.create_token(f"test {user}")["token"]
        c.logout()
    return token


@pytest.fixture(scope="module")
def site(module_live_servers: LiveServers) -> Iterator[Site]:
    server = module_live_servers.start("runmodels-auth", env={"RUNYARD_AUTH": "required",
                                                              "RUNYARD_ADMIN_PASSWORD": ADMIN_PW, "RUNYARD_SCHEDULER": "0"})
    (server.home / "backends.yml").write_text(OPEN_LOCAL)
    s = Site(server)
    s.tokens["admin"] = _token(server.url, "admin", ADMIN_PW)
    with s.client("admin") as admin:
        for name, pw in USERS.items():
            admin.create_user(name, pw, email=f"{name}@example.org")
    for name, pw in USERS.items():
        s.tokens[name] = _token(server.url, name, pw)
    with s.client("alice") as alice:
        alice.create_project("rm")  # private: alice's, carol views
        alice.share_project("rm", "carol", "viewer")
        alice.create_project("rmpub", visibility="public")
        one, two = upload_snapshot(alice, WEIGHTS), upload_snapshot(alice, WEIGHTS2)
        alice.create_model_version("rm", "digits", snapshot_id=one)
        alice.create_model_version("rm", "digits", snapshot_id=two)
        alice.create_model_version("rm", "digits", snapshot_id=two)
        alice.set_model_alias("rm", "digits", "production", 1)
        alice.archive_model_version("rm", "digits", 3)
        alice.create_model_version("rmpub", "open", snapshot_id=one)
    with s.client("bob") as bob:
        bob.create_project("bobs")
        bob.create_model_version("bobs", "secret", snapshot_id=upload_snapshot(bob, {"s.bin": b"bob-secret"}))
    yield s


def test_submission_pins_models_and_a_moved_alias_changes_nothing(site: Site) -> None:
    with site.client("alice") as alice:
        exp = alice.create_experiment("rm", "pinned", {"project": "rm", "command": "python t.py", "models": {
            "base": "models:/digits@production", "last": "models:/digits/latest", "open": "models:/rmpub/open/1"}})
        assert exp["config"]["models"] == {"base": "models:/rm/digits/1", "last": "models:/rm/digits/2",
                                           "open": "models:/rmpub/open/1"}
        run = alice.create_run("rm", experiment_id=exp["id"], status="queued")["id"]
        alice.set_model_alias("rm", "digits", "production", 2)
        try:
            got = {x["name"]: x["uri"] for x in alice.run_models(run)}
            assert got == exp["config"]["models"]  # still version 1 under base
            assert alice.get_experiment(exp["id"])["config"]["models"]["base"] == "models:/rm/digits/1"
            run2 = alice.create_run("rm", experiment_id=exp["id"], status="queued")["id"]
            assert {x["name"]: x["version"] for x in alice.run_models(run2)}["base"] == 1
        finally:
            alice.set_model_alias("rm", "digits", "production", 1)


def test_submission_refuses_archived_unknown_unreadable_and_clashing_models(site: Site) -> None:
    def submit(who: str, project: str, models: dict[str, str], snapshot_id: str | None = None) -> None:
        with site.client(who) as c:
            c.create_experiment(project, "bad", {"project": project, "command": "x", "models": models},
                                snapshot_id=snapshot_id)

    with pytest.raises(InvalidInput) as e:
        submit("alice", "rm", {"base": "models:/digits/3"})
    assert "archived" in e.value.message and "models.base" in e.value.message
    with pytest.raises(NotFound) as e:
        submit("alice", "rm", {"base": "models:/digits/9"})
    assert "no version 9" in e.value.message and "1, 2, 3 (archived)" in e.value.message
    assert "production -> 1" in e.value.message
    with pytest.raises(NotFound) as e:
        submit("alice", "rm", {"base": "models:/digits@staging"})
    assert "no alias 'staging'" in e.value.message
    with pytest.raises(NotFound) as e:
        submit("alice", "rm", {"base": "models:/nothing/1"})
    assert "no model 'nothing'" in e.value.message
    for uri in ("models:/rm/digits/1", "models:/nowhere/digits/1"):  # bob cannot read rm: as missing as nowhere
        with pytest.raises(NotFound) as e:
            submit("bob", "bobs", {"base": uri})
        assert "does not exist or you cannot read" in e.value.message
    with pytest.raises(RunyardError) as e:
        submit("alice", "rm", {"base": "models:/"})
    assert isinstance(e.value, (InvalidInput, SpecError)) and "models" in e.value.message
    with site.client("alice") as alice:
        code = upload_snapshot(alice, {"train.py": b"print(1)\n", "models/base/old.pt": b"mine"})
    with pytest.raises(SpecError) as e:
        submit("alice", "rm", {"base": "models:/digits/1"}, snapshot_id=code)
    assert "models/base/old.pt" in e.value.message and "models/base/" in e.value.hint
    with site.client("alice") as alice:
        a_file = upload_snapshot(alice, {"models": b"not a folder"})
    with pytest.raises(SpecError) as e:
        submit("alice", "rm", {"base": "models:/digits/1"}, snapshot_id=a_file)
    assert "'models'" in e.value.message
    with site.client("alice") as alice:  # another name does not clash
        exp = alice.create_experiment("rm", "ok", {"project": "rm", "command": "x", "models": {"teacher": "models:/digits/1"}},
                                      snapshot_id=code)
        assert exp["config"]["models"] == {"teacher": "models:/rm/digits/1"}


def test_a_run_token_reads_models_of_its_project_and_public_ones_and_records_them(site: Site) -> None:
    with site.client("alice") as alice:
        run = alice.create_run("rm", name="loader")["id"]
        other = alice.create_run("rm", name="other")["id"]
    token, other_token = site.run_token(run), site.run_token(other)
    url = site.server.url + "/api/v1"
    digest = hashlib.sha256(WEIGHTS["model.bin"]).hexdigest()
    with Client(site.server.url, token) as c:
        found = c.resolve_model("models:/rm/digits@production")
        assert (found["version"], found["project"]) == (1, "rm")
        assert c.resolve_model("models:/digits/latest", project="rm")["version"] == 2
        assert c.get_model_version("rm", "digits", 2)["version"] == 2
        assert [x["name"] for x in c.list_models("rm")] == ["digits"]
        assert c.get_model("rm", "digits")["name"] == "digits"
        assert c.resolve_model("models:/rmpub/open/1")["project"] == "rmpub"  # public: readable
        for uri in ("models:/bobs/secret/1", "models:/nowhere/x/1"):
            with pytest.raises(Forbidden):
                c.resolve_model(uri)
        with pytest.raises(Forbidden):
            c.get_model_version("bobs", "secret", 1)
        with pytest.raises(Forbidden):
            c.record_run_model(run, "secret", "models:/bobs/secret/1")
        with pytest.raises(Forbidden):  # not recorded yet: its files are not the run's to read
            c.download_blob(digest, site.server.home / "x")
        item = c.record_run_model(run, "digits", "models:/digits@production")
        assert (item["uri"], item["n_files"], item["flavor"]) == ("models:/rm/digits/1", 2, "files")
        assert c.record_run_model(run, "digits", "models:/rm/digits/1")["recorded_at"] == item["recorded_at"]
        with pytest.raises(Conflict):
            c.record_run_model(run, "digits", "models:/digits/2")
        assert c.record_run_model(run, "open", "models:/rmpub/open/1")["project"] == "rmpub"
        assert [x["name"] for x in c.run_models(run)] == ["digits", "open"]
        assert sorted(f[0] for f in c.get_snapshot(item["snapshot_id"])["files"]) == ["meta/info.txt", "model.bin"]
        # Writes stay as they were: a run's token changes nothing in the registry.
        for call in (lambda: c.create_model("rm", "new"), lambda: c.set_model_alias("rm", "digits", "production", 2),
                     lambda: c.archive_model_version("rm", "digits", 2), lambda: c.update_model("rm", "digits", description="x")):
            with pytest.raises(Forbidden):
                call()
    assert httpx.get(f"{url}/blobs/{digest}", headers={"Authorization": f"Bearer {token}"}).content == WEIGHTS["model.bin"]
    denied = httpx.get(f"{url}/blobs/{digest}", headers={"Authorization": f"Bearer {other_token}"})
    assert denied.status_code == 403 and "models" in denied.json()["message"]
    with Client(site.server.url, other_token) as c:
        with pytest.raises(Forbidden):
            c.run_models(run)
        with pytest.raises(Forbidden):
            c.record_run_model(run, "x", "models:/digits/1")
    with site.client("carol") as carol:  # a viewer lists a run's models but records none
        assert [x["name"] for x in carol.run_models(run)] == ["digits", "open"]
        with pytest.raises(Forbidden):
            carol.record_run_model(run, "x", "models:/digits/1")
    with site.client("bob") as bob, pytest.raises(NotFound):
        bob.run_models(run)
    with site.client("alice") as alice:  # lineage both ways
        g = alice.lineage(f"runs:/{run}")
        used = {(e["source"], e["target"]) for e in g["edges"] if e["kind"] == "used_model"}
        labels = {n["id"]: n["label"] for n in g["nodes"]}
        assert {labels[t] for _, t in used} == {"models:/rm/digits/1", "models:/rmpub/open/1"}
        g = alice.lineage("models:/rm/digits/1")
        assert (f"run:{run}", g["root"]) in {(e["source"], e["target"]) for e in g["edges"] if e["kind"] == "used_model"}
    with site.client("bob") as bob:  # from the public model bob sees the runs' model use only as redacted
        g = bob.lineage("models:/rmpub/open/1")
        assert all(n["label"] == "not visible to you" for n in g["nodes"] if n["kind"] == "run")


@pytest.mark.parametrize(("name", "uri"), [("", "models:/digits/1"), ("1x", "models:/digits/1"), ("a\x00", "models:/digits/1"),
                                           ("n" * 65, "models:/digits/1"), ("a", "models:/"), ("a", "models:/digits\x00/1"),
                                           ("a", "models:/" + "d" * 600), ("a", "digits/1"), ("a", "models:/digits/0")])
def test_bad_run_model_input_is_refused(site: Site, name: str, uri: str) -> None:
    with site.client("alice") as alice:
        run = alice.create_run("rm", name="bad-input")["id"]
    with Client(site.server.url, site.run_token(run)) as c, pytest.raises(InvalidInput):
        c._json("POST", f"/runs/{run}/models", json={"name": name, "uri": uri})


def test_bad_run_model_input_over_http(site: Site) -> None:
    with site.client("alice") as alice:
        run = alice.create_run("rm", name="bad-http")["id"]
    headers = {"Authorization": f"Bearer {site.run_token(run)}", "Content-Type": "application/json"}
    base = f"{site.server.url}/api/v1/runs/{run}/models"
    for body in ('{"name": "a", "uri": "models:/d\\ud800/1"}', '{"name": "a\\ud800", "uri": "models:/d/1"}',
                 '{"name": "a"}', '{"name": "a", "uri": 5}'):
        res = httpx.post(base, content=body, headers=headers)
        assert res.status_code in (400, 422), (body, res.text)
    assert httpx.get(f"{site.server.url}/api/v1/runs/{2**70}/models", headers=headers).status_code in (400, 403, 404)
