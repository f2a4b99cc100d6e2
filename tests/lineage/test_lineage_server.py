"""The lineage routes on a server that requires sign-in: submission pins datasets, run tokens read their datasets'
blobs only, runs record what they read, and the graph shows each caller only what they may read."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from lineage_helpers import add_dataset_version, add_model_version, upload_snapshot

from runyard.client import Client
from runyard.errors import Conflict, Forbidden, InvalidInput, NotFound, RunyardError
from runyard.store import AuthStore, Store
from runyard.testing import LiveServer
from runyard.testing.pytest_plugin import LiveServers

ADMIN_PW = "admin-pw-0123456789"
USERS = {"alice": "alice-pw-123", "bob": "bob-pw-1234", "carol": "carol-pw-123"}
DATA = {"digits.csv": b"1,2,3\n4,5,6\n", "labels/y.txt": b"0\n1\n"}
OPEN_LOCAL = "local:\n  type: local\n  allow: {}\n  run_as: shared\n"


@dataclass
class Site:
    server: LiveServer
    tokens: dict[str, str] = field(default_factory=dict)

    def client(self, who: str) -> Client:
        return Client(self.server.url, self.tokens[who])

    def store(self) -> Store:
        return Store.open(f"sqlite:///{self.server.home / 'runyard.db'}", migrate=False)

    def run_token(self, run_id: int) -> str:
        store = AuthStore(self.store().engine)
        try:
            return store.create_token("run", run_id=run_id, name="test")[1]
        finally:
            store.engine.dispose()


def _token(url: str, user: str, pw: str) -> str:
    with Client(url) as c:
        c.login(user, pw)
        token = c.create_token(f"test {user}")["token"]
        c.logout()
    return token


@pytest.fixture(scope="module")
def site(module_live_servers: LiveServers) -> Iterator[Site]:
    server = module_live_servers.start("lineage-auth", env={"RUNYARD_AUTH": "required", "RUNYARD_ADMIN_PASSWORD": ADMIN_PW,
                                                            "RUNYARD_SCHEDULER": "0"})
    (server.home / "backends.yml").write_text(OPEN_LOCAL)
    s = Site(server)
    s.tokens["admin"] = _token(server.url, "admin", ADMIN_PW)
    with s.client("admin") as admin:
        for name, pw in USERS.items():
            admin.create_user(name, pw, email=f"{name}@example.org")
    for name, pw in USERS.items():
        s.tokens[name] = _token(server.url, name, pw)
    with s.client("alice") as alice:
        alice.create_project("lin")  # private: alice's, carol views
        alice.share_project("lin", "carol", "viewer")
        alice.create_project("pub", visibility="public")
        snap = upload_snapshot(alice, DATA)
    store = s.store()
    try:
        add_dataset_version(store, "lin", "digits", snapshot_id=snap, n_files=2, size=18)
        add_dataset_version(store, "lin", "digits", snapshot_id=snap, n_files=2, size=18)
        add_dataset_version(store, "pub", "open", snapshot_id=snap, n_files=2, size=18)
    finally:
        store.close()
    yield s


def test_submission_pins_latest_to_a_number_recorded_with_the_experiment(site: Site) -> None:
    with site.client("alice") as alice:
        exp = alice.create_experiment("lin", "pinned", {"project": "lin", "command": "python t.py",
                                                        "datasets": {"train": "digits", "first": "digits:1",
                                                                     "open": "pub/open@latest"}})
        assert exp["config"]["datasets"] == {"train": "lin/digits:2", "first": "lin/digits:1", "open": "pub/open:1"}
        with pytest.raises(NotFound) as e:
            alice.create_experiment("lin", "bad", {"project": "lin", "command": "x", "datasets": {"train": "digits:9"}})
        assert "lin/digits has no version 9; its versions are: 1, 2" in e.value.message
        with pytest.raises(NotFound) as e:
            alice.create_experiment("lin", "bad", {"project": "lin", "command": "x", "datasets": {"train": "scans"}})
        assert "No dataset 'scans' in project 'lin'" in e.value.message
        with pytest.raises(InvalidInput) as e:
            alice.create_experiment("lin", "bad", {"project": "lin", "command": "x", "datasets": {"train": "a/b/c"}})
        assert "datasets" in e.value.message
    with site.client("bob") as bob:
        bob.create_project("bobs")
        # bob cannot read lin: its dataset is as missing to him as a project that does not exist.
        for ref in ("lin/digits:1", "nowhere/digits:1"):
            with pytest.raises(NotFound) as e:
                bob.create_experiment("bobs", "x", {"project": "bobs", "command": "x", "datasets": {"train": ref}})
            assert "does not exist or you cannot read" in e.value.message
        exp = bob.create_experiment("bobs", "x", {"project": "bobs", "command": "x", "datasets": {"d": "pub/open"}})
        assert exp["config"]["datasets"] == {"d": "pub/open:1"}
        # A run added to the experiment by hand reads the experiment's pinned versions too.
        run = bob.create_run("bobs", experiment_id=exp["id"], status="queued")["id"]
        assert [(d["name"], d["project"], d["version"]) for d in bob.run_datasets(run)] == [("d", "pub", 1)]


def test_a_run_token_reads_its_datasets_blobs_and_another_runs_token_does_not(site: Site) -> None:
    with site.client("alice") as alice:
        reader = alice.create_run("lin", name="reader")["id"]
        other = alice.create_run("lin", name="other")["id"]
    reader_token, other_token = site.run_token(reader), site.run_token(other)
    digest = hashlib.sha256(DATA["digits.csv"]).hexdigest()
    url = site.server.url + "/api/v1"
    with Client(site.server.url, reader_token) as c:
        with pytest.raises(Forbidden):  # not recorded yet: not readable
            c.download_blob(digest, site.server.home / "x")
        item = c.record_run_dataset(reader, "train", "digits:latest")
        assert (item["project"], item["dataset"], item["version"], item["n_files"]) == ("lin", "digits", 2, 2)
        assert c.run_datasets(reader)[0]["name"] == "train"
        snapshot = c.get_snapshot(item["snapshot_id"])
        assert sorted(f[0] for f in snapshot["files"]) == ["digits.csv", "labels/y.txt"]
    assert httpx.get(f"{url}/blobs/{digest}", headers={"Authorization": f"Bearer {reader_token}"}).content == DATA["digits.csv"]
    denied = httpx.get(f"{url}/blobs/{digest}", headers={"Authorization": f"Bearer {other_token}"})
    assert denied.status_code == 403 and "its own snapshot and of its datasets" in denied.json()["message"]
    assert httpx.get(f"{url}/snapshots/{item['snapshot_id']}",
                     headers={"Authorization": f"Bearer {other_token}"}).status_code == 403
    with Client(site.server.url, other_token) as c:
        with pytest.raises(Forbidden):  # another run's datasets: neither listed nor recorded
            c.run_datasets(reader)
        with pytest.raises(Forbidden):
            c.record_run_dataset(reader, "x", "digits:1")


def test_a_run_records_datasets_of_its_project_or_public_ones_and_refuses_a_second_version_under_a_name(site: Site) -> None:
    with site.client("alice") as alice:
        run = alice.create_run("lin", name="recorder")["id"]
    with Client(site.server.url, site.run_token(run)) as c:
        c.record_run_dataset(run, "train", "digits:1")
        assert c.record_run_dataset(run, "train", "lin/digits:1")["version"] == 1  # the same again: unchanged
        with pytest.raises(Conflict):
            c.record_run_dataset(run, "train", "digits:2")
        assert c.record_run_dataset(run, "open", "pub/open")["project"] == "pub"
        with site.client("bob") as bob:
            bob.create_project("bobs-private")
        store = site.store()
        try:
            add_dataset_version(store, "bobs-private", "secret", refs=[["/data/s.bin", "0" * 64, 1, 1.0]])
        finally:
            store.close()
        with pytest.raises(Forbidden):
            c.record_run_dataset(run, "s", "bobs-private/secret:1")
        for name, ref in [("", "digits"), ("1x", "digits"), ("a\x00", "digits"), ("a", "x" * 700),
                          ("a", "digits:0"), ("n" * 65, "digits")]:
            with pytest.raises(InvalidInput):
                c.record_run_dataset(run, name, ref)
        with pytest.raises(NotFound):
            c.record_run_dataset(run, "missing", "digits:99")
        surrogate = httpx.post(f"{site.server.url}/api/v1/runs/{run}/datasets", content='{"name": "a", "ref": "d\\ud800"}',
                               headers={"Authorization": f"Bearer {site.run_token(run)}", "Content-Type": "application/json"})
        assert surrogate.status_code in (400, 422), surrogate.text
    with site.client("carol") as carol:  # a viewer reads the run's datasets but records none
        assert [d["name"] for d in carol.run_datasets(run)] == ["open", "train"]
        with pytest.raises(Forbidden):
            carol.record_run_dataset(run, "x", "digits:1")
    with site.client("bob") as bob, pytest.raises(NotFound):
        bob.run_datasets(run)


def test_the_graph_redacts_what_the_caller_cannot_read(site: Site) -> None:
    with site.client("alice") as alice:
        code = upload_snapshot(alice, {"train.py": b"print('train')\n"})
        exp = alice.create_experiment("pub", "sweep", {"project": "pub", "command": "python train.py"}, snapshot_id=code)
        run = alice.create_run("pub", experiment_id=exp["id"], params={"lr": 0.05})["id"]
        alice.record_run_dataset(run, "train", "lin/digits:2")  # private data, public model
        alice.record_run_dataset(run, "open", "pub/open:1")
    store = site.store()
    try:
        add_model_version(store, "pub", "clf", run, code, alias="production")
    finally:
        store.close()
    with site.client("alice") as alice:
        g = alice.lineage("models:/pub/clf@production")
        labels = {n["label"] for n in g["nodes"]}
        assert {"models:/pub/clf/1", "lin/digits:2", "pub/open:1"} <= labels
        run_node = next(n for n in g["nodes"] if n["kind"] == "run")
        assert run_node["data"]["params"] == {"lr": 0.05}
    with site.client("bob") as bob:
        g = bob.lineage("models:/pub/clf@production")
        nodes = {n["id"]: n for n in g["nodes"]}
        hidden = [n for n in g["nodes"] if n["data"].get("redacted")]
        assert [(n["kind"], n["label"], n["project"]) for n in hidden] == [("dataset_version", "not visible to you", None)]
        assert "lin/digits:2" not in str(g) and "pub/open:1" in {n["label"] for n in nodes.values()}
        # From the public dataset, bob sees the run and the model; the private one is not there for him at all.
        d = bob.lineage("datasets:/pub/open:1")
        assert {n["kind"] for n in d["nodes"]} == {"dataset_version", "run", "model_version"}
        with pytest.raises(NotFound):
            bob.lineage("datasets:/lin/digits:2")
        with pytest.raises(NotFound) as e:
            bob.lineage("datasets:/lin/digits:99")  # the same answer: nothing about lin's versions leaks
        assert "digits" not in e.value.message
        with pytest.raises(NotFound):
            bob.lineage("models:/lin/nothing/1")
        with pytest.raises(InvalidInput):
            bob.lineage("models:/clf/1")  # unqualified and no project
        assert bob.lineage("models:/clf/1", project="pub")["root"] == g["root"]
    with Client(site.server.url, site.run_token(run)) as c, pytest.raises(Forbidden):
        c.lineage(f"runs:/{run}")  # a run's token reports to its run; it reads no graphs


@pytest.mark.parametrize("uri", ["runs:/x", "nope:/1", "runs:/1\x00", "models:/a/b/c/1", "datasets:/a/b/c"])
def test_bad_uris_are_refused_with_400(site: Site, uri: str) -> None:
    with site.client("alice") as alice, pytest.raises(RunyardError) as e:
        alice.lineage(uri)
    assert isinstance(e.value, InvalidInput)
    too_long = httpx.get(site.server.url + "/api/v1/lineage", params={"uri": "runs:/" + "1" * 700},
                         headers={"Authorization": f"Bearer {site.tokens['alice']}"})
    assert too_long.status_code in (400, 422)
    huge = httpx.get(f"{site.server.url}/api/v1/runs/{2**70}/datasets", headers={"Authorization": f"Bearer {site.tokens['alice']}"})
    assert huge.status_code in (400, 404), huge.text
