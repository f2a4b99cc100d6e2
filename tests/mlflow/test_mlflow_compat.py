"""The real MLflow client (its own virtualenv) against a live Runyard server: tracking, search, artifacts,
autolog, auth, errors. One client script per scenario group, one server per database per module."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from runyard.client import Client
from runyard.testing import LiveServer
from runyard.testing._postgres import fresh_postgres
from runyard.testing.peers import run_peer_script
from runyard.testing.pytest_plugin import LiveServers

pytestmark = pytest.mark.slow

ADMIN_PW = "admin-pw-0123456789"
PASSWORDS = {"alice": "alice-pw-123", "carol": "carol-pw-123", "dave": "dave-pw-1234"}
MLFLOW = "/api/2.0/mlflow"


@dataclass
class World:
    server: LiveServer
    tokens: dict[str, str]

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, who: str) -> Client:
        return Client(self.url, self.tokens[who])


def _token(url: str, username: str, password: str) -> str:
    with Client(url) as c:
        c.login(username, password)
        token = c.create_token(f"mlflow {username}")["token"]
        c.logout()
    return token


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A server that requires sign-in, on SQLite or PostgreSQL; alice owns project ``shared``, carol views it."""
    servers = LiveServers(tmp_path_factory.mktemp(f"mlflow-{request.param}"))
    with fresh_postgres() if request.param == "postgresql" else _no_database() as url:
        try:
            server = servers.start(request.param, database_url=url, env={
                "RUNYARD_AUTH": "required", "RUNYARD_ADMIN_PASSWORD": ADMIN_PW, "RUNYARD_SCHEDULER": "0"})
            tokens = {"admin": _token(server.url, "admin", ADMIN_PW)}
            with Client(server.url, tokens["admin"]) as admin:
                for name, pw in PASSWORDS.items():
                    admin.create_user(name, pw)
            for name, pw in PASSWORDS.items():
                tokens[name] = _token(server.url, name, pw)
            with Client(server.url, tokens["alice"]) as alice:
                alice.create_project("shared")
                alice.share_project("shared", "carol", "viewer")
            yield World(server, tokens)
        finally:
            servers.stop_all()


class _no_database:  # noqa: N801 - a context manager standing in for fresh_postgres()
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _run(python: Path, world: World, code: str, tmp_path: Path, **env: str) -> dict:
    base = {"MLFLOW_TRACKING_URI": world.url, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "GIT_PYTHON_REFRESH": "quiet"}
    return run_peer_script(python, code, env={**base, **env}, cwd=tmp_path)


TRACKING = r'''
import json, math, os, pathlib
import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

def code(fn):
    try:
        fn()
    except MlflowException as e:
        return e.error_code
    return "OK"

out = {}
c = MlflowClient()
exp_id = mlflow.set_experiment("compat").experiment_id
out["dup_experiment"] = code(lambda: c.create_experiment("compat"))
out["bad_name"] = code(lambda: c.create_experiment("Not A Project Name"))
ids = {}
with mlflow.start_run(run_name="first") as run:
    ids["first"] = run.info.run_id
    mlflow.log_params({"lr": 0.01, "opt": "adam"})
    for step in range(5):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    c.log_batch(run.info.run_id, metrics=[Metric("acc", 0.9, 1700000000000, 3), Metric("nan", float("nan"), 1700000000000, 0),
                                          Metric("inf", float("inf"), 1700000000000, 0)],
                params=[Param("layers", "3")], tags=[RunTag("team", "vision")])
    pathlib.Path("model.txt").write_text("weights")
    mlflow.log_artifact("model.txt", artifact_path="out")
    os.makedirs("dir/sub", exist_ok=True)
    pathlib.Path("dir/a.txt").write_text("a")
    pathlib.Path("dir/sub/b.txt").write_text("b")
    mlflow.log_artifacts("dir", artifact_path="many")
    out["param_change"] = code(lambda: mlflow.log_param("lr", 0.02))
with mlflow.start_run(run_name="second") as run:
    ids["second"] = run.info.run_id
    mlflow.log_params({"lr": 0.1, "opt": "sgd"})
    mlflow.log_metric("acc", 0.5)
    mlflow.set_tag("team", "audio")
with mlflow.start_run(run_name="third") as run:
    ids["third"] = run.info.run_id
    mlflow.log_param("opt", "Adam")
    mlflow.end_run("FAILED")
out["ids"] = ids
with mlflow.start_run(run_id=ids["first"]):  # resumed to log more: it may, and it stays FINISHED
    mlflow.log_metric("later", 1.0)

def names(filter_string="", order_by=None, view=None, **kw):
    from mlflow.entities import ViewType
    runs = c.search_runs([exp_id], filter_string, run_view_type=view or ViewType.ACTIVE_ONLY, order_by=order_by, **kw)
    return [r.info.run_name for r in runs]

out["search"] = {
    "acc>0.6": names("metrics.acc > 0.6"),
    "acc>=0.5 and lr": names("metrics.acc >= 0.5 AND params.lr = '0.1'"),
    "opt=adam": names("params.opt = 'adam'"),
    "lr=0.01": names("params.lr = '0.01'"),
    "like": sorted(names("params.opt LIKE 'ad%'")),
    "like_case": names("params.opt LIKE 'AD%'"),
    "ilike": sorted(names("params.opt ILIKE 'AD%'")),
    "tag!=": names("tags.team != 'vision'"),
    "quoted": names('tags."team" = \'vision\''),
    "failed": names("attributes.status = 'FAILED'"),
    "finished_in": sorted(names("status IN ('FINISHED', 'KILLED')")),
    "run_name_like": names("run_name LIKE 'fir%'"),
    "runName_tag": names("tags.mlflow.runName = 'second'"),
    "run_id_in": sorted(names(f"attributes.run_id IN ('{ids['first']}', '{ids['third']}')")),
    "acc_desc": names(order_by=["metrics.acc DESC"]),
    "lr_asc": names(order_by=["params.lr ASC"]),
    "start_desc": names(order_by=["attributes.start_time DESC"]),
    "start_after": sorted(names("attributes.start_time > 0")),
}
pages, token = [], None
while True:
    page = c.search_runs([exp_id], "", max_results=1, page_token=token)
    pages.append([r.info.run_name for r in page])
    token = page.token
    if not token:
        break
out["pages"] = pages
out["fluent"] = sorted(mlflow.search_runs([exp_id], "metrics.acc > 0.1")["tags.mlflow.runName"].tolist())
out["bad_filter"] = code(lambda: c.search_runs([exp_id], "metrics.acc > 'high'"))
out["or_filter"] = code(lambda: c.search_runs([exp_id], "metrics.acc > 1 OR metrics.acc < 0"))
out["history"] = [[m.step, m.value] for m in c.get_metric_history(ids["first"], "loss")]
run = c.get_run(ids["first"])
out["params"] = run.data.params
out["tags"] = {k: v for k, v in run.data.tags.items() if k in ("team", "mlflow.runName", "mlflow.user")}
import getpass
out["os_user"] = getpass.getuser()
out["nan"] = math.isnan(run.data.metrics["nan"])
out["later"] = run.data.metrics["later"]
out["inf"] = run.data.metrics["inf"]
out["status"] = [c.get_run(ids[n]).info.status for n in ("first", "second", "third")]
out["artifact_uri"] = run.info.artifact_uri
out["root"] = [(f.path, f.is_dir) for f in c.list_artifacts(ids["first"])]
out["many"] = [(f.path, f.is_dir, f.file_size) for f in c.list_artifacts(ids["first"], "many")]
local = mlflow.artifacts.download_artifacts(run_id=ids["first"], artifact_path="many", dst_path="dl")
out["downloaded"] = sorted(str(p.relative_to(local)) for p in pathlib.Path(local).rglob("*") if p.is_file())
out["content"] = pathlib.Path(mlflow.artifacts.download_artifacts(run_id=ids["first"], artifact_path="out/model.txt",
                                                                  dst_path="dl2")).read_text()
c.set_tag(ids["second"], "temp", "x")
c.delete_tag(ids["second"], "temp")
out["deleted_tag"] = "temp" in c.get_run(ids["second"]).data.tags
out["missing_tag"] = code(lambda: c.delete_tag(ids["second"], "never"))
c.update_run(ids["second"], name="second-renamed")
out["renamed"] = c.get_run(ids["second"]).info.run_name
c.delete_run(ids["third"])
from mlflow.entities import ViewType
out["after_delete"] = sorted(names())
out["deleted_only"] = names(view=ViewType.DELETED_ONLY)
out["lifecycle"] = c.get_run(ids["third"]).info.lifecycle_stage
c.restore_run(ids["third"])
out["after_restore"] = len(names())
c.set_experiment_tag(exp_id, "owner", "alice")
exp = c.get_experiment_by_name("compat")
out["experiment"] = {"id": exp.experiment_id, "tags": exp.tags, "artifact_location": exp.artifact_location}
out["search_experiments"] = [e.name for e in c.search_experiments(filter_string="name LIKE 'comp%'")]
out["missing_run"] = code(lambda: c.get_run("123456789"))
out["missing_experiment"] = code(lambda: c.get_experiment("987654"))
out["registry"] = code(lambda: c.search_registered_models())
out["default_before"] = c.get_experiment("0").name
mlflow.set_experiment(experiment_id="0")
with mlflow.start_run(run_name="no-experiment") as run:
    mlflow.log_metric("x", 1.0)
out["default"] = [c.get_run(run.info.run_id).info.experiment_id, [r.info.run_name for r in c.search_runs(["0"])]]
print(json.dumps(out))
'''


def test_tracking_search_and_artifacts(mlflow_python: Path, world: World, tmp_path: Path) -> None:
    out = _run(mlflow_python, world, TRACKING, tmp_path, MLFLOW_TRACKING_TOKEN=world.tokens["alice"])
    # MLflow's own error codes for what Runyard refuses.
    assert out["dup_experiment"] == "RESOURCE_ALREADY_EXISTS"
    assert out["bad_name"] == "INVALID_PARAMETER_VALUE"
    assert out["param_change"] == "INVALID_PARAMETER_VALUE"
    assert out["bad_filter"] == out["or_filter"] == "INVALID_PARAMETER_VALUE"
    assert out["missing_run"] == out["missing_experiment"] == out["missing_tag"] == "RESOURCE_DOES_NOT_EXIST"
    assert out["registry"] == "ENDPOINT_NOT_FOUND"
    # Experiment "0" (none set) is the project "default", made by the first run logged to it.
    assert out["default_before"] == "default" and out["default"] == ["0", ["no-experiment"]]
    s = out["search"]
    assert s["acc>0.6"] == ["first"]
    assert s["acc>=0.5 and lr"] == ["second"]
    assert s["opt=adam"] == s["lr=0.01"] == ["first"]
    assert s["like"] == ["first"] and s["like_case"] == []  # LIKE is case-sensitive, ILIKE not
    assert s["ilike"] == ["first", "third"]
    assert s["tag!="] == ["second"] and s["quoted"] == ["first"]
    assert s["failed"] == ["third"] and s["finished_in"] == ["first", "second"]
    assert s["run_name_like"] == ["first"] and s["runName_tag"] == ["second"]
    assert s["run_id_in"] == ["first", "third"]
    assert s["acc_desc"] == ["first", "second", "third"]  # runs without the metric last
    assert s["lr_asc"] == ["first", "second", "third"]
    assert s["start_desc"] == ["third", "second", "first"]
    assert s["start_after"] == ["first", "second", "third"]
    assert out["pages"] == [["third"], ["second"], ["first"]]
    assert out["fluent"] == ["first", "second"]
    assert out["history"] == [[i, 1.0 / (i + 1)] for i in range(5)]
    assert out["params"] == {"lr": "0.01", "opt": "adam", "layers": "3"}
    # mlflow.user is what the client says (its login name), as MLflow's server keeps it.
    assert out["tags"] == {"team": "vision", "mlflow.runName": "first", "mlflow.user": out["os_user"]}
    assert out["nan"] is True and out["inf"] == math.inf
    assert out["status"] == ["FINISHED", "FINISHED", "FAILED"]
    assert out["later"] == 1.0
    exp_id = out["experiment"]["id"]
    first = out["ids"]["first"]
    assert out["artifact_uri"] == f"mlflow-artifacts:/{exp_id}/{first}/artifacts"
    assert sorted(out["root"]) == [["many", True], ["out", True]]
    assert out["many"] == [["many/a.txt", False, 1], ["many/sub", True, None]]
    assert out["downloaded"] == ["a.txt", "sub/b.txt"] and out["content"] == "weights"
    assert out["deleted_tag"] is False and out["renamed"] == "second-renamed"
    assert out["after_delete"] == ["first", "second-renamed"] and out["deleted_only"] == ["third"]
    assert out["lifecycle"] == "deleted" and out["after_restore"] == 3
    assert out["experiment"]["tags"] == {"owner": "alice"}
    assert out["experiment"]["artifact_location"] == f"mlflow-artifacts:/{exp_id}"
    assert out["search_experiments"] == ["compat"]
    # The same runs through Runyard's own API: project compat, numeric params, metric summaries, artifacts.
    with world.client("alice") as alice:
        run = alice.get_run(int(first))
        assert run["project"] == "compat" and run["name"] == "first" and run["status"] == "succeeded"
        assert run["params"] == {"lr": 0.01, "opt": "adam", "layers": 3}
        assert run["metrics"]["loss"]["last"] == 0.2 and run["metrics"]["acc"]["step"] == 3
        assert [a["path"] for a in alice.list_artifacts(int(first))] == ["many/a.txt", "many/sub/b.txt", "out/model.txt"]
        page = alice.list_runs(project="compat", filters=["params.lr > 0.05"])
        assert [r["name"] for r in page["items"]] == ["second-renamed"]
        assert alice.get_project("compat")["id"] == int(exp_id)


AUTOLOG = r'''
import json
import mlflow
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
mlflow.set_experiment("autolog")
mlflow.sklearn.autolog(log_input_examples=False, log_datasets=True)
X, y = load_iris(return_X_y=True)
with mlflow.start_run() as run:
    LogisticRegression(max_iter=300, C=0.5).fit(X, y)
model = mlflow.sklearn.load_model(f"runs:/{run.info.run_id}/model")
print(json.dumps({"run_id": run.info.run_id, "predictions": model.predict(X[:2]).tolist()}))
'''


def test_sklearn_autolog(mlflow_python: Path, world: World, tmp_path: Path) -> None:
    if world.server.env.get("RUNYARD_DATABASE_URL"):
        pytest.skip("autolog writes what the tracking test writes: once, on SQLite")
    out = _run(mlflow_python, world, AUTOLOG, tmp_path, MLFLOW_TRACKING_TOKEN=world.tokens["alice"])
    assert out["predictions"] == [0, 0]
    with world.client("alice") as alice:
        run = alice.get_run(int(out["run_id"]))
        assert run["project"] == "autolog" and run["status"] == "succeeded"
        assert run["params"]["C"] == 0.5 and run["params"]["max_iter"] == 300
        assert "training_accuracy_score" in run["metrics"]
        paths = [a["path"] for a in alice.list_artifacts(int(out["run_id"]))]
        assert "model/MLmodel" in paths and "model/model.pkl" in paths
        assert any(k.startswith("runyard.mlflow.input.") for k in run["tags"])  # the dataset it fit
    # And through the CLI: the run, its params and metrics, its model's files.
    cli = subprocess.run([sys.executable, "-m", "runyard.cli", "info", out["run_id"]], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "RUNYARD_SERVER": world.url, "RUNYARD_TOKEN": world.tokens["alice"], "COLUMNS": "200"},
                         check=False)
    assert cli.returncode == 0, cli.stderr
    for word in ("autolog", "succeeded", "max_iter", "training_accuracy_score", "model/MLmodel"):
        assert word in cli.stdout, (word, cli.stdout)


AUTH = r'''
import json, os
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

def code(fn):
    try:
        fn()
    except MlflowException as e:
        return e.error_code
    return "OK"

def as_(bearer=None, user=None, password=None):
    for var in ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        os.environ.pop(var, None)
    if bearer:
        os.environ["MLFLOW_TRACKING_TOKEN"] = bearer
    if password:
        os.environ["MLFLOW_TRACKING_USERNAME"] = user
        os.environ["MLFLOW_TRACKING_PASSWORD"] = password
    return MlflowClient()

t = json.loads(os.environ["TOKENS"])
out = {}
alice = as_(user="alice", password=t["alice"])  # the token as the basic-auth password
exp_id = alice.get_experiment_by_name("shared").experiment_id
run = alice.create_run(exp_id, run_name="alice-run")
alice.log_metric(run.info.run_id, "acc", 0.7)
out["basic_write"] = alice.get_run(run.info.run_id).data.metrics
carol = as_(bearer=t["carol"])  # a viewer of the project
out["viewer_read"] = carol.get_run(run.info.run_id).info.run_name
out["viewer_search"] = len(carol.search_runs([exp_id]))
out["viewer_log"] = code(lambda: carol.log_metric(run.info.run_id, "acc", 0.1))
out["viewer_create"] = code(lambda: carol.create_run(exp_id))
out["viewer_tag"] = code(lambda: carol.set_experiment_tag(exp_id, "k", "v"))
dave = as_(bearer=t["dave"])  # signed in, not a member
out["stranger_run"] = code(lambda: dave.get_run(run.info.run_id))
out["stranger_experiment"] = code(lambda: dave.get_experiment(exp_id))
out["stranger_by_name"] = dave.get_experiment_by_name("shared")  # the client's None for "does not exist"
out["stranger_search"] = len(dave.search_runs([exp_id]))
out["anonymous"] = code(lambda: as_().search_experiments())
out["bad_token"] = code(lambda: as_(bearer="ryp_not-a-token").search_experiments())
out["bad_password"] = code(lambda: as_(user="alice", password="wrong").search_experiments())
print(json.dumps(out))
'''


def test_auth_and_roles(mlflow_python: Path, world: World, tmp_path: Path) -> None:
    out = _run(mlflow_python, world, AUTH, tmp_path, TOKENS=json.dumps(world.tokens))
    assert out["basic_write"] == {"acc": 0.7}
    assert out["viewer_read"] == "alice-run" and out["viewer_search"] >= 1
    assert out["viewer_log"] == out["viewer_create"] == out["viewer_tag"] == "PERMISSION_DENIED"
    # A project the caller may not see answers as a missing one (its name does not leak).
    assert out["stranger_run"] == out["stranger_experiment"] == "RESOURCE_DOES_NOT_EXIST"
    assert out["stranger_by_name"] is None
    assert out["stranger_search"] == 0
    assert out["anonymous"] == out["bad_token"] == out["bad_password"] == "UNAUTHENTICATED"


def _post(world: World, path: str, body: object, who: str = "alice") -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(world.url + MLFLOW + path, content=content, timeout=30,
                      headers={"Authorization": f"Bearer {world.tokens[who]}", "Content-Type": "application/json"})


def _run_id(world: World) -> str:
    r = _post(world, "/runs/create", {"experiment_id": str(_shared_id(world)), "run_name": "hostile"})
    assert r.status_code == 200, r.text
    return r.json()["run"]["info"]["run_id"]


def _shared_id(world: World) -> int:
    with world.client("alice") as alice:
        return alice.get_project("shared")["id"]


def test_hostile_input_is_refused_in_mlflow_format(world: World) -> None:
    run_id = _run_id(world)
    cases = [
        ("/runs/log-parameter", {"run_id": run_id, "key": "k\u0000", "value": "v"}, "INVALID_PARAMETER_VALUE"),
        ("/runs/log-parameter", {"run_id": run_id, "key": "k", "value": "v\u0000"}, "INVALID_PARAMETER_VALUE"),
        ("/runs/log-parameter", b'{"run_id": "%s", "key": "k", "value": "\\ud800"}' % run_id.encode(), "MALFORMED_REQUEST"),
        ("/runs/log-parameter", {"run_id": run_id, "key": "k", "value": "x" * 6001}, "INVALID_PARAMETER_VALUE"),
        ("/runs/log-metric", {"run_id": run_id, "key": "m", "value": 1, "timestamp": 1, "step": 2**70}, "INVALID_PARAMETER_VALUE"),
        ("/runs/log-metric", {"run_id": run_id, "key": "m", "value": "lots", "timestamp": 1}, "INVALID_PARAMETER_VALUE"),
        ("/runs/log-metric", b'{"run_id": "%s", "key": "m", "value": 1e999}' % run_id.encode(), "MALFORMED_REQUEST"),
        ("/runs/log-metric", {"run_id": run_id, "key": "m", "value": 10**400}, "MALFORMED_REQUEST"),
        ("/runs/set-tag", {"run_id": run_id, "key": "t", "value": "\ud800"}, "MALFORMED_REQUEST"),
        ("/runs/log-batch", {"run_id": run_id, "metrics": [{"key": "ok", "value": 1, "timestamp": 1, "step": 0}],
                             "params": [{"key": "fine", "value": "1"}], "tags": [{"key": "bad\u0000", "value": "x"}]},
         "INVALID_PARAMETER_VALUE"),
        ("/runs/log-batch", {"run_id": run_id, "metrics": [{"key": "m", "value": 1, "timestamp": 1}] * 1001},
         "INVALID_PARAMETER_VALUE"),
        ("/runs/search", {"experiment_ids": [str(_shared_id(world))], "filter": "params.x = 'unterminated"}, "INVALID_PARAMETER_VALUE"),
        ("/runs/search", {"experiment_ids": [], "filter": "datasets.name = 'd'"}, "INVALID_PARAMETER_VALUE"),
        ("/runs/search", {"experiment_ids": [], "page_token": "!!not-a-token"}, "INVALID_PARAMETER_VALUE"),
        ("/runs/create", {"experiment_id": "99999999999999999999"}, "RESOURCE_DOES_NOT_EXIST"),
        ("/runs/get", {}, "ENDPOINT_NOT_FOUND"),  # runs/get is a GET
        ("/runs/log-metric", b"[1, 2]", "MALFORMED_REQUEST"),
    ]
    for path, body, code in cases:
        r = _post(world, path, body)
        assert r.json().get("error_code") == code, (path, body if len(str(body)) < 200 else "...", r.status_code, r.text)
        assert r.status_code == {"INVALID_PARAMETER_VALUE": 400, "MALFORMED_REQUEST": 400, "RESOURCE_DOES_NOT_EXIST": 404,
                                 "ENDPOINT_NOT_FOUND": 404}[code]
        assert r.json()["message"]
    # Nothing of a refused batch was stored; NaN and the infinities are values MLflow allows.
    with world.client("alice") as alice:
        run = alice.get_run(int(run_id))
        assert run["params"] == {} and run["metrics"] == {} and "t" not in run["tags"]
    for value in ("NaN", "Infinity", "-Infinity"):
        assert _post(world, "/runs/log-metric", {"run_id": run_id, "key": value, "value": value, "timestamp": "1"}).status_code == 200
    got = httpx.get(world.url + MLFLOW + "/runs/get", params={"run_id": run_id},
                    headers={"Authorization": f"Bearer {world.tokens['alice']}"}).json()
    assert sorted((m["key"], m["value"]) for m in got["run"]["data"]["metrics"]) == [
        ("-Infinity", "-Infinity"), ("Infinity", "Infinity"), ("NaN", "NaN")]


def test_unserved_endpoints_answer_endpoint_not_found(world: World) -> None:
    headers = {"Authorization": f"Bearer {world.tokens['alice']}"}
    for method, path in (("GET", "/registered-models/search"), ("POST", "/model-versions/create"), ("GET", "/traces"),
                         ("POST", "/prompts/create"), ("GET", "/gateway/routes")):
        r = httpx.request(method, world.url + MLFLOW + path, headers=headers, json={}, timeout=30)
        assert r.status_code == 404 and r.json()["error_code"] == "ENDPOINT_NOT_FOUND", (path, r.text)
        assert "docs/mlflow.md" in r.json()["message"]
    r = httpx.get(world.url + "/api/2.0/mlflow-artifacts/artifacts", params={"path": "1/2/elsewhere"}, headers=headers)
    assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    # Without credentials on a server that requires sign-in: MLflow's UNAUTHENTICATED, not Runyard's format.
    r = httpx.get(world.url + MLFLOW + "/experiments/get", params={"experiment_id": "1"})
    assert r.status_code == 401 and r.json()["error_code"] == "UNAUTHENTICATED"
