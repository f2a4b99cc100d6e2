"""The Models and Datasets pages and the lineage view in a real headless Chromium, at 1,280 px.

The first test seeds a project through the real CLI and API the way a user would: a small dataset
pushed twice with a change (one file changed, one removed, one added), a sweep of one run from a
git repository that declares ``datasets: {train: digits:1}`` in ``runyard.yml`` and logs its model
as artifacts, two model versions registered from those artifacts, ``production`` moved from v1 to
v2. The pages must show the versions, the diff, the alias history and the lineage (model version →
run with its params → dataset version, code snapshot with the git commit), keep their state in the
URL, fit 1,280 px, and ask for nothing twice. An alias moved and a version archived from the page
change what the API answers.

The second test signs in as an owner, an editor and a viewer of a project: only the owner sees the
alias controls and deletes dataset versions, only editors and owners the archive button; a dataset of a project the viewer
cannot read shows in the lineage as "not visible to you".
"""

from __future__ import annotations

import collections
import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from e2e_helpers import Yard
from playwright.sync_api import expect
from ui_helpers import ARTIFACTS

from runyard.client import Client

pytestmark = pytest.mark.slow

WIDTH = 1280
ADMIN_PW = "admin-pw-0123456789"
PASSWORDS = {"alice": "alice-pw-123", "bob": "bob-pw-1234", "carol": "carol-pw-123"}

TRAIN_YML = """
project: {project}
command: python train.py
params:
  lr: 0.05
  depth: 3
datasets:
  train: digits:1
resources:
  cpus: 0.1
"""

TRAIN_PY = """
import os
from pathlib import Path
import runyard

runyard.init()
data = Path(os.environ["RUNYARD_DATASET_TRAIN"])
labels = (data / "labels.csv").read_text()
Path("model").mkdir()
Path("model/weights.txt").write_text("weights from " + str(len(labels)) + " bytes of labels")
Path("model/config.json").write_text('{"depth": 3}')
runyard.log_artifact("model")
runyard.finish()
"""


def _json(client: Client, method: str, path: str, body: Any = None) -> Any:  # noqa: ANN401
    resp = client.request(method, path, json=body)
    return json.loads(resp.content) if resp.content else None


def _git(cwd: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "PATH": "/usr/bin:/bin", "HOME": str(cwd)}
    res = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True, timeout=60)
    return res.stdout.strip()


class Requests:
    """The API requests a page makes, to check that none is made twice while a page loads."""

    def __init__(self, page, base: str) -> None:  # noqa: ANN001
        self.base = base
        self.seen: collections.Counter[str] = collections.Counter()
        page.on("request", self._record)

    def _record(self, request) -> None:  # noqa: ANN001
        if "/api/v1/" in request.url:
            self.seen[f"{request.method} {request.url.removeprefix(self.base)}"] += 1

    def reset(self) -> None:
        self.seen.clear()

    def twice(self) -> dict[str, int]:
        return {k: n for k, n in self.seen.items() if n > 1}


def goto_settled(page, url: str, requests: Requests) -> None:  # noqa: ANN001
    """Open a page fresh and wait until its requests are done; then nothing may have been asked twice.

    The previous page is left for a blank one first, so a request it was still making (late, on a loaded
    machine) is not counted as this page's."""
    page.goto("about:blank")
    requests.reset()
    page.goto(url)
    page.wait_for_load_state("networkidle")
    assert requests.twice() == {}, f"{url} asked twice: {requests.twice()}"
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= WIDTH, f"{url} is {width} px wide at a {WIDTH} px window"


def query(page) -> dict[str, list[str]]:  # noqa: ANN001
    return parse_qs(urlparse(page.url).query)


@pytest.fixture
def narrow(page) -> Iterator[Any]:  # noqa: ANN001
    page.set_viewport_size({"width": WIDTH, "height": 900})
    yield page


def test_models_datasets_diff_alias_history_and_lineage(yard: Yard, narrow, tmp_path: Path) -> None:  # noqa: ANN001
    page = narrow
    project = "ui-registry"
    c = yard.client
    c.create_project(project)
    url = yard.url
    requests = Requests(page, url)

    # Empty pages say what to run.
    goto_settled(page, f"{url}/projects/{project}/datasets", requests)
    expect(page.get_by_test_id("empty").get_by_test_id("command")).to_have_text(
        f"runyard datasets push DIR --name NAME --project {project}")
    goto_settled(page, f"{url}/projects/{project}/models", requests)
    expect(page.get_by_test_id("empty").get_by_test_id("command")).to_contain_text("runyard models register")

    # A dataset pushed twice: labels.csv grows, images/old.txt goes, images/new.txt comes.
    data = tmp_path / "digits"
    (data / "images").mkdir(parents=True)
    first = {"labels.csv": "id,label\n1,3\n", "images/a.txt": "aaaa", "images/old.txt": "old!!"}
    second = {"labels.csv": "id,label\n1,3\n2,7\n3,1\n", "images/a.txt": "aaaa", "images/new.txt": "a new file"}
    # ... and a file too big to upload, referenced in place (the same in both versions).
    scan = tmp_path / "shared" / "scan.bin"
    scan.parent.mkdir()
    scan.write_bytes(b"\x00" * 4096)
    for files, more in ((first, ["-m", "first cut"]), (second, ["-m", "more labels", "--tag", "stage=clean"])):
        for old in data.rglob("*.txt"):
            old.unlink()
        for rel, text in files.items():
            (data / rel).write_text(text)
        res = yard.cli("datasets", "push", data, "--name", "digits", "--project", project, "--reference", scan, *more, "--quiet")
        assert res.returncode == 0, res.stdout + res.stderr
    assert [v["version"] for v in _json(c, "GET", f"/projects/{project}/datasets/digits")["versions"]] in ([1, 2], [2, 1])

    # A run from a git repository that reads digits:1 and logs its model as artifacts.
    code = tmp_path / "code"
    code.mkdir()
    (code / "runyard.yml").write_text(TRAIN_YML.format(project=project).strip() + "\n")
    (code / "train.py").write_text(TRAIN_PY.lstrip())
    _git(code, "init", "-q", "-b", "main")
    _git(code, "add", ".")
    _git(code, "commit", "-q", "-m", "train")
    commit = _git(code, "rev-parse", "HEAD")
    exp = yard.submit(code)
    done = yard.wait_experiment(exp["id"])
    assert done["status"] == "succeeded", yard.describe(exp["id"])
    run_id = yard.runs(exp["id"])[0]["id"]

    # Two versions registered from its artifacts; production set to v1, then moved to v2.
    for _ in range(2):
        _json(c, "POST", f"/projects/{project}/models/digits-clf/versions", {"run_id": run_id, "paths": ["model"], "flavor": "files"})
    _json(c, "PUT", f"/projects/{project}/models/digits-clf/aliases/production", {"version": 1})
    _json(c, "PUT", f"/projects/{project}/models/digits-clf/aliases/production", {"version": 2})

    # The project page links to its models; the list shows the latest version and the alias.
    goto_settled(page, f"{url}/projects/{project}", requests)
    page.get_by_test_id("project-nav").get_by_role("link", name="Models").click()
    page.wait_for_url(f"{url}/projects/{project}/models")
    row = page.locator('[data-testid="models"] tr[data-model="digits-clf"]')
    expect(row).to_contain_text("v2")
    expect(row.locator('[data-alias="production"]')).to_have_text("@production: v2")

    # The model page: both versions with flavor, run, status, size; production on v2.
    row.get_by_role("link", name="digits-clf").click()
    page.wait_for_url(f"{url}/projects/{project}/models/digits-clf")
    page.wait_for_load_state("networkidle")
    versions = page.get_by_test_id("model-versions")
    expect(versions.locator("tbody tr")).to_have_count(2)
    v2 = versions.locator('tr[data-version="2"]')
    expect(v2).to_contain_text("files")
    expect(v2.get_by_role("link", name=f"run {run_id}")).to_have_attribute("href", f"/runs/{run_id}")
    expect(v2).to_contain_text("ready")
    expect(v2.locator('[data-alias="production"]')).to_be_visible()
    expect(versions.locator('tr[data-version="1"] [data-alias]')).to_have_count(0)
    panel = page.get_by_test_id("model-version")
    expect(panel).to_have_attribute("data-version", "2")
    expect(page.get_by_test_id("model-files")).to_contain_text("weights.txt")

    # The alias history: who moved production from which version to which.
    history = page.get_by_test_id("alias-history")
    expect(history.locator("tbody tr")).to_have_count(2)
    expect(history.locator("tbody tr").nth(0)).to_contain_text("moved from v1 to v2")
    expect(history.locator("tbody tr").nth(1)).to_contain_text("set to v1")

    # The lineage of v2: the run with its params, the dataset version it read, the code with its commit.
    lineage = panel.get_by_test_id("lineage")
    run_node = lineage.locator('[data-kind="run"]')
    expect(run_node).to_contain_text(f"run {run_id}")
    expect(run_node.get_by_test_id("lineage-params")).to_contain_text("lr=0.05")
    expect(run_node.get_by_test_id("lineage-params")).to_contain_text("depth=3")
    ds_node = lineage.locator('[data-kind="dataset_version"]')
    expect(ds_node).to_contain_text(f"{project}/digits:1")
    expect(ds_node.get_by_role("link")).to_have_attribute("href", f"/projects/{project}/datasets/digits?version=1")
    expect(lineage.locator('[data-kind="snapshot"]')).to_contain_text(commit[:12])
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "test_ui_registry_model.png"), full_page=True)

    # Selecting v1 puts it in the URL; a fresh load of that URL shows v1 again.
    versions.locator('tr[data-version="1"]').get_by_role("link", name="v1").click()
    expect(panel).to_have_attribute("data-version", "1")
    assert query(page)["version"] == ["1"]
    goto_settled(page, page.url, requests)
    expect(page.get_by_test_id("model-version")).to_have_attribute("data-version", "1")

    # In local mode the caller owns everything: set staging to v1, remove it, archive v1, from the page.
    page.get_by_test_id("move-alias").get_by_label("alias").fill("staging")
    page.get_by_test_id("move-alias").get_by_label("to version").select_option("1")
    page.get_by_role("button", name="Move alias").click()
    expect(page.get_by_test_id("alias-history").locator("tbody tr").first).to_contain_text("staging")
    expect(page.get_by_test_id("alias-history").locator("tbody tr").first).to_contain_text("set to v1")
    assert _json(c, "GET", f"/projects/{project}/models/digits-clf")["aliases"] == {"production": 2, "staging": 1}
    lineage_root = page.get_by_test_id("model-version").get_by_test_id("lineage").locator('[data-depth="0"]')
    expect(lineage_root).to_contain_text("@staging")  # read again after the move
    # An alias never names an archived version: the page says so before the server would refuse.
    expect(page.get_by_test_id("model-version").get_by_role("button", name="Archive")).to_be_disabled()
    expect(page.get_by_test_id("archive-blocked")).to_contain_text("@staging")
    page.get_by_test_id("alias-list").locator('tr[data-alias="staging"]').get_by_role("button", name="remove").click()
    page.get_by_role("button", name="Yes, remove").click()
    expect(page.get_by_test_id("alias-history").locator("tbody tr").first).to_contain_text("removed from v1")
    assert _json(c, "GET", f"/projects/{project}/models/digits-clf")["aliases"] == {"production": 2}
    page.get_by_test_id("model-version").get_by_role("button", name="Archive").click()
    page.get_by_role("button", name="Yes, archive").click()
    expect(page.get_by_test_id("model-versions").locator('tr[data-version="1"]')).to_contain_text("archived")
    assert _json(c, "GET", f"/projects/{project}/models/digits-clf/versions/1")["status"] == "archived"
    page.get_by_test_id("model-version").get_by_role("button", name="Unarchive").click()
    page.get_by_role("button", name="Yes, unarchive").click()
    expect(page.get_by_test_id("model-versions").locator('tr[data-version="1"]')).to_contain_text("ready")
    assert _json(c, "GET", f"/projects/{project}/models/digits-clf/versions/1")["status"] == "ready"
    page.get_by_test_id("model-version").get_by_role("button", name="Archive").click()
    page.get_by_role("button", name="Yes, archive").click()
    expect(page.get_by_test_id("model-versions").locator('tr[data-version="1"]')).to_contain_text("archived")

    # Datasets: the list, then the dataset with both versions, v1's files and the models trained on it.
    goto_settled(page, f"{url}/projects/{project}/datasets", requests)
    drow = page.locator('[data-testid="datasets"] tr[data-dataset="digits"]')
    expect(drow).to_contain_text("v2")
    expect(drow.locator("td").nth(3)).to_have_text("4")  # files of the latest version: 3 stored, 1 referenced
    drow.get_by_role("link", name="digits").click()
    page.wait_for_url(f"{url}/projects/{project}/datasets/digits")
    dversions = page.get_by_test_id("dataset-versions")
    expect(dversions.locator("tbody tr")).to_have_count(2)
    expect(dversions.locator('tr[data-version="2"]')).to_contain_text("more labels")
    expect(dversions.locator('tr[data-version="2"]')).to_contain_text("stage: clean")
    expect(dversions.locator('tr[data-version="1"]')).to_contain_text("first cut")
    dversions.locator('tr[data-version="1"]').get_by_role("link", name="v1").click()
    dpanel = page.get_by_test_id("dataset-version")
    expect(dpanel).to_have_attribute("data-version", "1")
    expect(dpanel.get_by_test_id("version-message")).to_have_text("first cut")
    expect(page.get_by_test_id("dataset-files")).to_have_attribute("data-count", "3")
    expect(page.get_by_test_id("dataset-files")).to_contain_text("images/old.txt")
    dpanel.get_by_role("button", name="references (1)").click()
    expect(page.get_by_test_id("dataset-refs")).to_contain_text(str(scan))
    expect(page.get_by_test_id("dataset-refs")).to_contain_text("4.0 KiB")
    dpanel.get_by_role("button", name="models (2)").click()
    expect(page.get_by_test_id("used-by-models")).to_contain_text("digits-clf v1")
    expect(page.get_by_test_id("used-by-models")).to_contain_text("digits-clf v2")
    # Models were trained on v1: the owner's delete button says why it is off.
    expect(dpanel.get_by_role("button", name="Delete version")).to_be_disabled()
    expect(dpanel.get_by_test_id("delete-blocked")).to_be_visible()
    dpanel.get_by_role("button", name="lineage").click()
    assert query(page)["tab"] == ["lineage"]
    expect(dpanel.get_by_test_id("lineage").locator('[data-kind="run"]')).to_contain_text(f"run {run_id}")
    expect(dpanel.get_by_test_id("lineage").locator('[data-kind="model_version"]').first).to_be_visible()

    # The diff of v1 and v2 (the default pair), by kind, with sizes; the pair goes to the URL when chosen.
    diff = page.get_by_test_id("dataset-diff")
    expect(diff).to_have_attribute("data-a", "1")
    expect(diff).to_have_attribute("data-b", "2")
    grown = len(second["labels.csv"]) - len(first["labels.csv"])
    expect(diff.get_by_test_id("diff-summary")).to_contain_text(
        f"+1 file (+{len(second['images/new.txt'])} B), −1 file (−{len(first['images/old.txt'])} B), 1 changed (+{grown} B), 2 unchanged")
    rows = diff.get_by_test_id("diff-rows")
    expect(rows.locator('[data-path="images/new.txt"]')).to_be_visible()
    expect(rows.locator(".vrows-row", has=page.locator('[data-path="images/new.txt"]'))).to_contain_text("added")
    expect(rows.locator(".vrows-row", has=page.locator('[data-path="images/old.txt"]'))).to_contain_text("removed")
    changed = rows.locator(".vrows-row", has=page.locator('[data-path="labels.csv"]'))
    expect(changed).to_contain_text("changed")
    expect(changed).to_contain_text(f"{len(first['labels.csv'])} B")
    expect(changed).to_contain_text(f"{len(second['labels.csv'])} B")
    diff.get_by_role("button", name="removed (1)").click()
    expect(rows).to_have_attribute("data-count", "1")
    assert query(page)["show"] == ["removed"]
    diff.get_by_role("button", name="swap").click()
    expect(diff).to_have_attribute("data-a", "2")
    assert query(page)["a"] == ["2"] and query(page)["b"] == ["1"]
    expect(diff.get_by_test_id("diff-summary")).to_contain_text("v2 → v1")
    # The whole state survives a reload of the URL.
    goto_settled(page, page.url, requests)
    expect(page.get_by_test_id("dataset-diff")).to_have_attribute("data-a", "2")
    expect(page.get_by_test_id("dataset-version")).to_have_attribute("data-version", "1")
    expect(page.get_by_test_id("dataset-version").get_by_test_id("lineage")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "test_ui_registry_dataset.png"), full_page=True)

    # Nothing was trained on v2: the owner deletes it from the page.
    page.get_by_test_id("dataset-versions").locator('tr[data-version="2"]').get_by_role("link", name="v2").click()
    expect(page.get_by_test_id("dataset-version")).to_have_attribute("data-version", "2")
    page.get_by_test_id("dataset-version").get_by_role("button", name="Delete version").click()
    page.get_by_role("button", name="Yes, delete").click()
    expect(page.get_by_test_id("dataset-versions").locator("tbody tr")).to_have_count(1)
    expect(page.get_by_test_id("dataset-version")).to_have_attribute("data-version", "1")
    expect(page.get_by_test_id("dataset-diff")).to_have_count(0)
    assert [v["version"] for v in _json(c, "GET", f"/projects/{project}/datasets/digits")["versions"]] == [1]

    # The run page's lineage tab: the dataset it read under its own name, and the models made from it.
    goto_settled(page, f"{url}/runs/{run_id}?tab=lineage", requests)
    expect(page.get_by_test_id("run-datasets")).to_contain_text("train")
    expect(page.get_by_test_id("run-datasets")).to_contain_text(f"{project}/digits:1")
    run_lineage = page.get_by_test_id("lineage")
    expect(run_lineage.locator('[data-kind="dataset_version"]')).to_contain_text("read as train")
    expect(run_lineage.locator('[data-kind="model_version"]')).to_have_count(2)
    assert page.console_errors == []


def test_a_version_of_10000_files_scrolls_and_filters(yard: Yard, narrow) -> None:  # noqa: ANN001
    """10,000 files (one blob at 10,000 paths, so the seeding is quick): rendered a screenful at a time."""
    page = narrow
    project = "ui-registry-big"
    c = yard.client
    c.create_project(project)
    blob = b"same bytes at every path"
    digest = hashlib.sha256(blob).hexdigest()
    c.upload_blob(digest, blob)
    manifest = [[f"shard{i // 1000}/file{i:05d}.bin", digest, len(blob), 0o644] for i in range(10_000)]
    snap = c.create_snapshot(manifest)
    _json(c, "POST", f"/projects/{project}/datasets/big/versions", {"snapshot_id": snap["id"], "message": "ten thousand"})
    requests = Requests(page, yard.url)
    goto_settled(page, f"{yard.url}/projects/{project}/datasets/big", requests)
    files = page.get_by_test_id("dataset-files")
    expect(files).to_have_attribute("data-count", "10000")
    expect(page.get_by_test_id("files-shown")).to_have_text("10,000 files")
    assert files.locator(".vrows-row").count() < 100  # only what is in view (and a little more)
    files.evaluate("el => { el.scrollTop = el.scrollHeight; }")
    expect(files.locator(".vrows-row", has_text="shard9/file09999.bin")).to_be_visible()
    page.get_by_label("filter files").fill("file0424")
    expect(files).to_have_attribute("data-count", "10")
    expect(page.get_by_test_id("files-shown")).to_have_text("10 of 10,000 files")
    expect(page.get_by_test_id("dataset-diff")).to_have_count(0)  # one version: nothing to compare yet
    assert page.console_errors == []


def sign_in(page, url: str, username: str, then: str) -> None:  # noqa: ANN001
    page.goto(f"{url}{then}")
    page.wait_for_url("**/login?next=*")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORDS[username])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{url}{then}")


def sign_out(page, url: str) -> None:  # noqa: ANN001
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{url}/login")


def push_files(client: Client, project: str, name: str, files: dict[str, bytes]) -> dict[str, Any]:
    """A dataset version through the API: the blobs, their snapshot, then the version."""
    manifest = []
    for path, data in sorted(files.items()):
        digest = hashlib.sha256(data).hexdigest()
        client.upload_blob(digest, data)
        manifest.append([path, digest, len(data), 0o644])
    snap = client.create_snapshot(manifest)
    return _json(client, "POST", f"/projects/{project}/datasets/{name}/versions", {"snapshot_id": snap["id"]})["version"]


def test_roles_decide_the_actions_and_hidden_lineage(servers, narrow) -> None:  # noqa: ANN001
    page = narrow
    server = servers.start("registry-ui-auth", env={"RUNYARD_AUTH": "required", "RUNYARD_ADMIN_PASSWORD": ADMIN_PW,
                                                    "RUNYARD_SCHEDULER": "0"})
    url = server.url
    with Client(url) as admin:
        admin.login("admin", ADMIN_PW)
        for user, pw in PASSWORDS.items():
            admin.create_user(user, pw)
    with Client(url) as alice:
        alice.login("alice", PASSWORDS["alice"])
        alice.create_project("team")
        alice.create_project("secret")  # alice's alone
        alice.share_project("team", "bob", "viewer")
        alice.share_project("team", "carol", "editor")
        push_files(alice, "secret", "raw", {"a.txt": b"secret data"})
        push_files(alice, "team", "labels", {"labels.csv": b"id,label\n"})
        run = alice.create_run("team", name="fit", params={"lr": 0.1})
        alice.upload_artifact(run["id"], "model/weights.bin", b"\x00\x01weights")
        _json(alice, "POST", f"/runs/{run['id']}/datasets", {"name": "raw", "ref": "secret/raw:1"})
        alice.update_run(run["id"], "succeeded", exit_code=0)
        _json(alice, "POST", "/projects/team/models/clf/versions", {"run_id": run["id"], "paths": ["model"], "flavor": "files"})
        _json(alice, "PUT", "/projects/team/models/clf/aliases/production", {"version": 1})
    model_page = "/projects/team/models/clf"

    # alice owns the project: the archive button and the alias controls; she sees the secret dataset.
    sign_in(page, url, "alice", model_page)
    expect(page.get_by_test_id("model-page")).to_have_attribute("data-role", "owner")
    panel = page.get_by_test_id("model-version")
    expect(panel.get_by_role("button", name="Archive")).to_be_visible()
    expect(page.get_by_test_id("move-alias")).to_be_visible()
    expect(page.get_by_test_id("alias-list").get_by_role("button", name="remove")).to_be_visible()
    expect(panel.get_by_test_id("lineage").locator('[data-kind="dataset_version"]')).to_contain_text("secret/raw:1")
    expect(page.get_by_test_id("alias-history")).to_contain_text("alice")
    page.goto(f"{url}/projects/team/datasets/labels")
    expect(page.get_by_test_id("dataset-page")).to_have_attribute("data-role", "owner")
    expect(page.get_by_test_id("dataset-version").get_by_role("button", name="Delete version")).to_be_enabled()
    sign_out(page, url)

    # carol edits: she may archive, not move aliases.
    sign_in(page, url, "carol", model_page)
    expect(page.get_by_test_id("model-page")).to_have_attribute("data-role", "editor")
    expect(page.get_by_test_id("model-version").get_by_role("button", name="Archive")).to_be_visible()
    expect(page.get_by_test_id("move-alias")).to_have_count(0)
    expect(page.get_by_test_id("alias-list").get_by_role("button", name="remove")).to_have_count(0)
    page.goto(f"{url}/projects/team/datasets/labels")
    expect(page.get_by_test_id("dataset-page")).to_have_attribute("data-role", "editor")
    expect(page.get_by_test_id("dataset-version")).to_contain_text("labels.csv")
    expect(page.get_by_role("button", name="Delete version")).to_have_count(0)
    sign_out(page, url)

    # bob views: no actions; the dataset of a project he cannot read is not visible to him.
    sign_in(page, url, "bob", model_page)
    goto_settled(page, f"{url}{model_page}", Requests(page, url))  # signed in: members and all, each asked once
    expect(page.get_by_test_id("model-page")).to_have_attribute("data-role", "viewer")
    panel = page.get_by_test_id("model-version")
    expect(panel.get_by_role("button", name="Archive")).to_have_count(0)
    expect(page.get_by_test_id("move-alias")).to_have_count(0)
    hidden = panel.get_by_test_id("lineage").locator('[data-kind="dataset_version"]')
    expect(hidden).to_have_attribute("data-redacted", "true")
    expect(hidden).to_contain_text("not visible to you")
    expect(hidden).not_to_contain_text("secret")
    expect(hidden.get_by_role("link")).to_have_count(0)
    expect(panel.get_by_test_id("lineage").locator('[data-kind="run"]')).to_contain_text("fit")
    page.screenshot(path=str(ARTIFACTS / "test_ui_registry_viewer.png"), full_page=True)
    # (the 401s are the pages opened before each sign-in)
    assert [e for e in page.console_errors if "status of 401" not in e] == []
