"""Every route of the OpenAPI document × every principal: allowed or denied, as the table says.

A route without a rule in EXPECTED fails the test: whoever adds a route decides who may call it.
Allowed means a 2xx answer; denied means 401 (no or bad credentials), 403 (may see but not do,
or a run token outside its scope) or 404 (may not even see the project); creating something in
a project the caller may not see answers 409 "the name is taken or reserved", as creating a
project of that name does (so a private name is not confirmed).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from auth_helpers import BLOB, PASSWORDS, World, call

PRINCIPALS = ("anonymous", "stranger", "viewer", "editor", "owner", "admin", "run", "revoked", "expired")
USERS = {"stranger", "viewer", "editor", "owner", "admin"}
RULES: dict[str, set[str]] = {
    "anyone": set(PRINCIPALS),
    "signed_in": USERS | {"run"},
    "user": USERS,
    "admin": {"admin"},
    "self_or_admin": {"owner", "admin"},  # the target belongs to alice, the owner
    "project_viewer": {"viewer", "editor", "owner", "admin"},
    "project_editor": {"editor", "owner", "admin"},
    "project_owner": {"owner", "admin"},
    "viewer_or_run": {"viewer", "editor", "owner", "admin", "run"},
    "editor_or_run": {"editor", "owner", "admin", "run"},
    "user_or_run": USERS | {"run"},
}

_n = itertools.count()


def _fresh() -> int:
    return next(_n)


Req = tuple[str, dict[str, Any]]  # concrete path, httpx keyword arguments
Maker = Callable[[World], Req]


def _fresh_run(w: World) -> int:
    with w.admin() as c:
        return c.create_run(w.project, name="to-cancel")["id"]


def _failed_run(w: World) -> int:
    with w.admin() as c:
        run_id = c.create_run(w.project, name="to-restart")["id"]
        c.update_run(run_id, "failed", exit_code=1)
        return run_id


def _alice_token_id(w: World) -> int:
    with w.client("owner") as c:
        return c.create_token("to revoke")["info"]["id"]


def _tag(w: World) -> str:
    with w.admin() as c:
        c.set_tags(w.run_id, {"to-delete": "x"})
    return "to-delete"


def _project_tag(w: World) -> str:
    with w.admin() as c:
        c.set_project_tags(w.project, {"to-delete": "x"})
    return "to-delete"


def _member_erin(w: World) -> str:
    with w.admin() as c:
        c.share_project(w.project, "erin", "viewer")
    return "erin"


def _tensorboard_files(w: World) -> int:
    """The experiment, once one of its runs kept an (empty) event file under tensorboard/."""
    with w.admin() as c:
        if not c.list_artifacts(w.other_run_id, prefix="tensorboard/"):
            c.upload_artifact(w.other_run_id, "tensorboard/events.out.tfevents.0", b"")
    return w.experiment_id


def _table(w: World) -> str:
    """A CSV artifact of the run, for the table reader."""
    with w.admin() as c:
        if not c.list_artifacts(w.run_id, prefix="media/tables/t.csv"):
            c.upload_artifact(w.run_id, "media/tables/t.csv", b"a,b\n1,2\n")
    return "media/tables/t.csv"



# ---- versioned datasets (runyard/server/routers/datasets.py): viewers read, editors push, owners delete
def _dataset(w: World) -> str:
    """The world's dataset "ds" with at least one version (pushing the same content again makes none)."""
    with w.admin() as c:
        c.create_dataset_version(w.project, "ds", snapshot_id=w.snapshot_id)
    return "ds"


def _dataset_version(w: World) -> int:
    """A new version of "ds" to delete (each with other content: a file referenced in place)."""
    _dataset(w)
    with w.admin() as c:
        ref = [f"/shared/matrix/{_fresh()}.bin", w.digest, len(BLOB), 1.0]
        return int(c.create_dataset_version(w.project, "ds", snapshot_id=w.snapshot_id, refs=[ref])["version"]["version"])


V1 = "/api/v1"
# (method, OpenAPI path) -> (rule, how to build a request that succeeds when allowed)
EXPECTED: dict[tuple[str, str], tuple[str, Maker]] = {
    ("GET", "/health"): ("anyone", lambda w: ("/health", {})),
    ("POST", "/auth/login"): ("anyone", lambda w: ("/auth/login", {"json": {"username": "erin", "password": PASSWORDS["erin"]}})),
    ("POST", "/auth/logout"): ("anyone", lambda w: ("/auth/logout", {})),
    ("GET", "/me"): ("signed_in", lambda w: ("/me", {})),
    ("GET", "/users"): ("admin", lambda w: ("/users", {})),
    ("POST", "/users"): ("admin", lambda w: ("/users", {"json": {"username": f"new{_fresh()}", "password": "long-enough-1"}})),
    ("GET", "/users/{username}"): ("self_or_admin", lambda w: ("/users/alice", {})),
    ("PATCH", "/users/{username}"): ("admin", lambda w: ("/users/erin", {"json": {"email": "erin@example.com"}})),
    ("PUT", "/users/{username}/password"): ("admin", lambda w: ("/users/erin/password", {"json": {"password": PASSWORDS["erin"]}})),
    ("GET", "/tokens"): ("user", lambda w: ("/tokens", {})),
    ("POST", "/tokens"): ("user", lambda w: ("/tokens", {"json": {"name": "matrix"}})),
    ("DELETE", "/tokens/{token_id}"): ("self_or_admin", lambda w: (f"/tokens/{_alice_token_id(w)}", {})),
    ("DELETE", "/runs/{run_id}/token"): ("project_owner", lambda w: (f"/runs/{_fresh_run(w)}/token", {})),
    ("GET", "/audit"): ("admin", lambda w: ("/audit", {})),
    ("GET", "/backends"): ("user", lambda w: ("/backends", {})),
    ("GET", "/images"): ("user", lambda w: ("/images", {})),
    ("POST", "/projects"): ("user", lambda w: ("/projects", {"json": {"name": f"p{_fresh()}"}})),
    ("GET", "/projects"): ("user", lambda w: ("/projects", {})),
    ("GET", "/projects/{name}"): ("project_viewer", lambda w: (f"/projects/{w.project}", {})),
    ("PATCH", "/projects/{name}"): ("project_editor", lambda w: (f"/projects/{w.project}", {"json": {"description": "d"}})),
    ("POST", "/projects/{name}/tags"): ("project_editor", lambda w: (
        f"/projects/{w.project}/tags", {"json": {"tags": {"problem": "classification"}}})),
    ("DELETE", "/projects/{name}/tags/{key}"): ("project_editor", lambda w: (f"/projects/{w.project}/tags/{_project_tag(w)}", {})),
    ("GET", "/projects/{name}/members"): ("project_viewer", lambda w: (f"/projects/{w.project}/members", {})),
    ("PUT", "/projects/{name}/members/{username}"): (
        "project_owner", lambda w: (f"/projects/{w.project}/members/erin", {"json": {"role": "viewer"}})),
    ("DELETE", "/projects/{name}/members/{username}"): (
        "project_owner", lambda w: (f"/projects/{w.project}/members/{_member_erin(w)}", {})),
    ("POST", "/experiments"): ("project_editor", lambda w: (
        "/experiments", {"json": {"project": w.project, "name": "m", "config": {"project": w.project, "command": "python t.py"}}})),
    ("GET", "/experiments"): ("user", lambda w: ("/experiments", {})),
    ("GET", "/experiments/{experiment_id}"): ("project_viewer", lambda w: (f"/experiments/{w.experiment_id}", {})),
    ("GET", "/experiments/{experiment_id}/keys"): ("project_viewer", lambda w: (f"/experiments/{w.experiment_id}/keys", {})),
    ("GET", "/experiments/{experiment_id}/columns"): ("project_viewer", lambda w: (
        f"/experiments/{w.experiment_id}/columns", {"params": {"fields": "params.lr"}})),
    ("GET", "/experiments/{experiment_id}/tensorboard"): ("project_viewer", lambda w: (
        f"/experiments/{w.experiment_id}/tensorboard", {})),
    ("POST", "/experiments/{experiment_id}/tensorboard"): ("project_viewer", lambda w: (
        f"/experiments/{_tensorboard_files(w)}/tensorboard", {})),
    ("POST", "/experiments/{experiment_id}/cancel"): ("project_editor", lambda w: (f"/experiments/{w.experiment_id}/cancel", {})),
    ("POST", "/runs"): ("project_editor", lambda w: ("/runs", {"json": {"project": w.project}})),
    ("GET", "/runs"): ("user", lambda w: ("/runs", {})),
    ("GET", "/runs/{run_id}"): ("viewer_or_run", lambda w: (f"/runs/{w.run_id}", {})),
    ("PATCH", "/runs/{run_id}"): ("editor_or_run", lambda w: (f"/runs/{w.run_id}", {"json": {}})),
    ("POST", "/runs/{run_id}/cancel"): ("project_editor", lambda w: (f"/runs/{_fresh_run(w)}/cancel", {})),
    ("POST", "/runs/{run_id}/restart"): ("project_editor", lambda w: (f"/runs/{_failed_run(w)}/restart", {})),
    ("POST", "/runs/{run_id}/heartbeat"): ("editor_or_run", lambda w: (f"/runs/{w.run_id}/heartbeat", {})),
    ("PUT", "/runs/{run_id}/tasks/{role}/{rank}"): ("editor_or_run", lambda w: (f"/runs/{w.run_id}/tasks/main/0", {"json": {"host": "h"}})),
    ("POST", "/runs/{run_id}/report"): ("editor_or_run", lambda w: (
        f"/runs/{w.run_id}/report", {"json": {"task": {"role": "main", "rank": 0, "host": "h"}}})),
    ("GET", "/runs/{run_id}/rendezvous"): ("viewer_or_run", lambda w: (f"/runs/{w.run_id}/rendezvous", {"params": {"attempt": 1}})),
    ("POST", "/runs/{run_id}/params"): ("editor_or_run", lambda w: (f"/runs/{w.run_id}/params", {"json": {"params": {"p": 1}}})),
    ("POST", "/runs/{run_id}/tags"): ("editor_or_run", lambda w: (f"/runs/{w.run_id}/tags", {"json": {"tags": {"t": "1"}}})),
    ("DELETE", "/runs/{run_id}/tags/{key}"): ("editor_or_run", lambda w: (f"/runs/{w.run_id}/tags/{_tag(w)}", {})),
    ("POST", "/runs/{run_id}/metrics"): ("editor_or_run", lambda w: (
        f"/runs/{w.run_id}/metrics", {"json": {"keys": ["acc"], "steps": [1], "values": [0.5], "timestamps": [1.0]}})),
    ("GET", "/runs/{run_id}/metrics"): ("viewer_or_run", lambda w: (f"/runs/{w.run_id}/metrics", {})),
    ("GET", "/runs/{run_id}/metrics/{key}"): ("viewer_or_run", lambda w: (f"/runs/{w.run_id}/metrics/loss", {})),
    ("POST", "/runs/{run_id}/logs"): ("editor_or_run", lambda w: (f"/runs/{w.run_id}/logs", {"json": {"lines": [{"text": "x"}]}})),
    ("GET", "/runs/{run_id}/logs"): ("viewer_or_run", lambda w: (f"/runs/{w.run_id}/logs", {})),
    ("GET", "/runs/{run_id}/logs/stream"): ("viewer_or_run", lambda w: (f"/runs/{w.run_id}/logs/stream", {})),
    ("PUT", "/runs/{run_id}/artifacts/{path}"): ("editor_or_run", lambda w: (
        f"/runs/{w.run_id}/artifacts/out.txt", {"content": b"x", "headers": {"Content-Type": "application/octet-stream"}})),
    ("GET", "/runs/{run_id}/artifacts"): ("viewer_or_run", lambda w: (f"/runs/{w.run_id}/artifacts", {})),
    ("GET", "/runs/{run_id}/artifacts/{path}"): ("viewer_or_run", lambda w: (f"/runs/{w.run_id}/artifacts/model.txt", {})),
    ("GET", "/runs/{run_id}/images"): ("viewer_or_run", lambda w: (f"/runs/{w.run_id}/images", {})),
    ("GET", "/runs/{run_id}/tables"): ("viewer_or_run", lambda w: (f"/runs/{w.run_id}/tables", {})),
    ("GET", "/runs/{run_id}/tables/content"): ("viewer_or_run", lambda w: (
        f"/runs/{w.run_id}/tables/content", {"params": {"path": _table(w)}})),
    ("GET", "/runs/{run_id}/note"): ("viewer_or_run", lambda w: (f"/runs/{w.run_id}/note", {})),
    ("PUT", "/runs/{run_id}/note"): ("editor_or_run", lambda w: (f"/runs/{w.run_id}/note", {"json": {"text": "n"}})),
    ("POST", "/blobs/missing"): ("user", lambda w: ("/blobs/missing", {"json": {"digests": [w.digest]}})),
    ("PUT", "/blobs/{digest}"): ("user", lambda w: (f"/blobs/{w.digest}", {"content": BLOB})),
    ("GET", "/blobs/{digest}"): ("user_or_run", lambda w: (f"/blobs/{w.digest}", {})),
    # batched blob uploads: the same access as PUT /blobs/{digest}
    ("POST", "/blobs/batch"): ("user", lambda w: (
        "/blobs/batch", {"content": w.digest.encode() + b"%020d" % len(BLOB) + BLOB})),
    ("POST", "/snapshots"): ("user", lambda w: ("/snapshots", {"json": {"files": [["a.py", w.digest, len(BLOB), 0o644]]}})),
    ("GET", "/snapshots/{snapshot_id}"): ("user_or_run", lambda w: (f"/snapshots/{w.snapshot_id}", {})),
    # versioned datasets
    ("GET", "/projects/{project}/datasets"): ("project_viewer", lambda w: (f"/projects/{w.project}/datasets", {})),
    ("GET", "/projects/{project}/datasets/{name}"): ("project_viewer", lambda w: (
        f"/projects/{w.project}/datasets/{_dataset(w)}", {})),
    ("POST", "/projects/{project}/datasets/{name}/versions"): ("project_editor", lambda w: (
        f"/projects/{w.project}/datasets/ds/versions", {"json": {"snapshot_id": w.snapshot_id}})),
    ("GET", "/projects/{project}/datasets/{name}/versions/{version}"): ("project_viewer", lambda w: (
        f"/projects/{w.project}/datasets/{_dataset(w)}/versions/latest", {})),
    ("GET", "/projects/{project}/datasets/{name}/diff"): ("project_viewer", lambda w: (
        f"/projects/{w.project}/datasets/{_dataset(w)}/diff", {"params": {"a": "1", "b": "latest"}})),
    ("DELETE", "/projects/{project}/datasets/{name}/versions/{version}"): ("project_owner", lambda w: (
        f"/projects/{w.project}/datasets/ds/versions/{_dataset_version(w)}", {})),
    # lineage: the datasets a run read, and the graph
    ("GET", "/runs/{run_id}/datasets"): ("viewer_or_run", lambda w: (f"/runs/{w.run_id}/datasets", {})),
    ("POST", "/runs/{run_id}/datasets"): ("editor_or_run", lambda w: (f"/runs/{w.run_id}/datasets",
                                                                      {"json": {"name": "train", "ref": f"{_dataset(w)}:1"}})),
    ("GET", "/lineage"): ("project_viewer", lambda w: ("/lineage", {"params": {"uri": f"runs:/{w.run_id}"}})),
}

# ---- run models: the registered model versions a run used (a run's token reads its project's models, above)
EXPECTED.update({
    ("GET", "/runs/{run_id}/models"): ("viewer_or_run", lambda w: (f"/runs/{w.run_id}/models", {})),
    ("POST", "/runs/{run_id}/models"): ("editor_or_run", lambda w: (
        f"/runs/{w.run_id}/models", {"json": {"name": "base", "uri": f"models:/{w.project}/{_registered(w)}/1"}})),
})



# ------------------------------------------------------------------ the model registry
def _registered(w: World) -> str:
    """The world's model ``mm``: versions 1 and 2 from the run's model.txt, registered once."""
    with w.admin() as c:
        if not any(m["name"] == "mm" for m in c.list_models(w.project)):
            for _ in range(2):
                c.create_model_version(w.project, "mm", run_id=w.run_id, paths=["model.txt"])
    return "mm"


def _alias_to_delete(w: World) -> str:
    with w.admin() as c:
        c.set_model_alias(w.project, _registered(w), "gone", 1)
    return "gone"


_MM = "/projects/{project}/models/{name}"
EXPECTED.update({
    ("GET", "/projects/{project}/models"): ("viewer_or_run", lambda w: (f"/projects/{w.project}/models", {})),
    ("POST", "/projects/{project}/models"): ("project_editor", lambda w: (
        f"/projects/{w.project}/models", {"json": {"name": f"m{_fresh()}"}})),
    ("GET", _MM): ("viewer_or_run", lambda w: (f"/projects/{w.project}/models/{_registered(w)}", {})),
    ("PATCH", _MM): ("project_editor", lambda w: (f"/projects/{w.project}/models/{_registered(w)}", {"json": {"description": "d"}})),
    ("POST", _MM + "/versions"): ("editor_or_run", lambda w: (
        f"/projects/{w.project}/models/{_registered(w)}/versions", {"json": {"run_id": w.run_id, "paths": ["model.txt"]}})),
    ("GET", _MM + "/versions/{version}"): ("viewer_or_run", lambda w: (f"/projects/{w.project}/models/{_registered(w)}/versions/1", {})),
    ("PATCH", _MM + "/versions/{version}"): ("project_editor", lambda w: (
        f"/projects/{w.project}/models/{_registered(w)}/versions/1", {"json": {"tags": {"k": "v"}}})),
    ("POST", _MM + "/versions/{version}/archive"): ("project_editor", lambda w: (
        f"/projects/{w.project}/models/{_registered(w)}/versions/2/archive", {})),
    ("POST", _MM + "/versions/{version}/unarchive"): ("project_editor", lambda w: (
        f"/projects/{w.project}/models/{_registered(w)}/versions/2/unarchive", {})),
    ("PUT", _MM + "/aliases/{alias}"): ("project_owner", lambda w: (
        f"/projects/{w.project}/models/{_registered(w)}/aliases/production", {"json": {"version": 1}})),
    ("DELETE", _MM + "/aliases/{alias}"): ("project_owner", lambda w: (
        f"/projects/{w.project}/models/{_registered(w)}/aliases/{_alias_to_delete(w)}", {})),
    ("GET", "/models/resolve"): ("viewer_or_run", lambda w: (
        "/models/resolve", {"params": {"uri": f"models:/{w.project}/{_registered(w)}/latest"}})),
})

def _published(url: str) -> set[tuple[str, str]]:
    doc = httpx.get(url + "/api/v1/openapi.json", timeout=10).json()
    return {(m.upper(), p.removeprefix(V1)) for p, ops in doc["paths"].items() for m in ops}


def test_every_route_has_a_rule(world: World) -> None:
    published = _published(world.url)
    missing = sorted(published - set(EXPECTED))
    assert not missing, f"Routes without an authorization rule (add them to EXPECTED in {__file__}): {missing}"
    stale = sorted(set(EXPECTED) - published)
    assert not stale, f"Rules for routes that no longer exist: {stale}"


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_matrix(world: World, principal: str) -> None:
    token = world.tokens[principal]
    wrong = []
    for (method, route), (rule, make) in sorted(EXPECTED.items(), key=lambda kv: kv[0]):
        if (method, route) not in _published_cache(world):
            continue
        path, kw = make(world)
        if route.endswith("/logs/stream"):
            with httpx.stream(method, world.url + V1 + path, headers={"Authorization": f"Bearer {token}"} if token else {},
                              timeout=10) as resp:
                status = resp.status_code  # the run is still running: read no further than the status
        else:
            status = call(world.url, token, method, V1 + path, **kw).status_code
        allowed = principal in RULES[rule]
        denied = (401, 403, 404, 409) if (method, route) in _CREATE_IN_PROJECT else (401, 403, 404)
        ok = 200 <= status < 300 if allowed else status in denied
        if not ok:
            wrong.append(f"{method} {route} as {principal}: {status} (rule {rule}: {'allow' if allowed else 'deny'})")
        if not allowed and principal in ("anonymous", "revoked", "expired"):
            assert status == 401, (method, route, principal, status)
    assert not wrong, "\n".join(wrong)


_CACHE: dict[str, set[tuple[str, str]]] = {}
_CREATE_IN_PROJECT = {("POST", "/experiments"), ("POST", "/runs")}
_CREATE_IN_PROJECT |= {("POST", "/projects/{project}/datasets/{name}/versions")}  # versioned datasets


def _published_cache(world: World) -> set[tuple[str, str]]:
    if world.url not in _CACHE:
        _CACHE[world.url] = _published(world.url)
    return _CACHE[world.url]


# ------------------------------------------------------------------ the MLflow-compatible API (not in the OpenAPI document)
def _exp(w: World) -> str:
    with w.admin() as c:
        return str(c.get_project(w.project)["id"])


def _fresh_project(w: World) -> str:
    """A project like the world's (alice owns it, bob edits, carol views): for the owner-only experiment changes."""
    name = f"mlf{_fresh()}"
    with w.client("owner") as alice:
        pid = alice.create_project(name)["id"]
        alice.share_project(name, "bob", "editor")
        alice.share_project(name, "carol", "viewer")
    return str(pid)


def _exp_tag(w: World) -> str:
    with w.admin() as c:
        c.set_project_tags(w.project, {"mlf-tag": "x"})
    return "mlf-tag"


def _model(w: World) -> str:
    """A logged model of the world's run, with a tag to delete."""
    status = call(w.url, w.tokens["admin"], "POST", "/api/2.0/mlflow/logged-models", json={
        "source_run_id": str(w.run_id), "name": "mm", "tags": [{"key": "gone", "value": "1"}]}).status_code
    assert status == 200
    return f"m-{w.run_id}-mm"


def _mlflow_batch(w: World) -> dict[str, Any]:
    return {"run_id": str(w.run_id), "metrics": [{"key": "acc", "value": 0.5, "timestamp": 1, "step": 1}],
            "params": [{"key": "lr", "value": "0.1"}], "tags": [{"key": "t", "value": "1"}]}


ML = "/api/2.0/mlflow"
MLA = "/api/2.0/mlflow-artifacts"
# (method, path under ML or MLA) -> (rule, how to build a request that succeeds when allowed); MLA paths start with MLA.
MLFLOW_EXPECTED: dict[tuple[str, str], tuple[str, Maker]] = {
    ("POST", "/experiments/create"): ("user", lambda w: ("/experiments/create", {"json": {"name": f"mlexp{_fresh()}"}})),
    ("GET", "/experiments/get"): ("project_viewer", lambda w: ("/experiments/get", {"params": {"experiment_id": _exp(w)}})),
    ("GET", "/experiments/get-by-name"): ("project_viewer", lambda w: (
        "/experiments/get-by-name", {"params": {"experiment_name": w.project}})),
    ("POST", "/experiments/search"): ("user", lambda w: ("/experiments/search", {"json": {}})),
    ("POST", "/experiments/update"): ("project_owner", lambda w: (
        "/experiments/update", {"json": {"experiment_id": _fresh_project(w), "new_name": f"renamed{_fresh()}"}})),
    ("POST", "/experiments/delete"): ("project_owner", lambda w: ("/experiments/delete", {"json": {"experiment_id": _fresh_project(w)}})),
    ("POST", "/experiments/restore"): ("project_owner", lambda w: ("/experiments/restore", {"json": {"experiment_id": _fresh_project(w)}})),
    ("POST", "/experiments/set-experiment-tag"): ("project_editor", lambda w: (
        "/experiments/set-experiment-tag", {"json": {"experiment_id": _exp(w), "key": "k", "value": "v"}})),
    ("POST", "/experiments/delete-experiment-tag"): ("project_editor", lambda w: (
        "/experiments/delete-experiment-tag", {"json": {"experiment_id": _exp(w), "key": _exp_tag(w)}})),
    ("POST", "/runs/create"): ("project_editor", lambda w: ("/runs/create", {"json": {"experiment_id": _exp(w)}})),
    ("GET", "/runs/get"): ("viewer_or_run", lambda w: ("/runs/get", {"params": {"run_id": str(w.run_id)}})),
    ("POST", "/runs/update"): ("editor_or_run", lambda w: ("/runs/update", {"json": {"run_id": str(w.run_id)}})),
    ("POST", "/runs/delete"): ("project_editor", lambda w: ("/runs/delete", {"json": {"run_id": str(_fresh_run(w))}})),
    ("POST", "/runs/restore"): ("project_editor", lambda w: ("/runs/restore", {"json": {"run_id": str(_fresh_run(w))}})),
    ("POST", "/runs/log-metric"): ("editor_or_run", lambda w: (
        "/runs/log-metric", {"json": {"run_id": str(w.run_id), "key": "acc", "value": 0.5, "timestamp": 1}})),
    ("POST", "/runs/log-parameter"): ("editor_or_run", lambda w: (
        "/runs/log-parameter", {"json": {"run_id": str(w.run_id), "key": "mp", "value": "1"}})),
    ("POST", "/runs/log-batch"): ("editor_or_run", lambda w: ("/runs/log-batch", {"json": _mlflow_batch(w)})),
    ("POST", "/runs/log-inputs"): ("editor_or_run", lambda w: ("/runs/log-inputs", {"json": {"run_id": str(w.run_id), "datasets": [
        {"dataset": {"name": "d", "digest": "x", "source_type": "local", "source": "{}"}}]}})),
    ("POST", "/runs/outputs"): ("editor_or_run", lambda w: ("/runs/outputs", {"json": {"run_id": str(w.run_id)}})),
    ("POST", "/runs/log-model"): ("editor_or_run", lambda w: (
        "/runs/log-model", {"json": {"run_id": str(w.run_id), "model_json": "{\"artifact_path\": \"m\"}"}})),
    ("POST", "/runs/set-tag"): ("editor_or_run", lambda w: (
        "/runs/set-tag", {"json": {"run_id": str(w.run_id), "key": "t", "value": "2"}})),
    ("POST", "/runs/delete-tag"): ("editor_or_run", lambda w: ("/runs/delete-tag", {"json": {"run_id": str(w.run_id), "key": _tag(w)}})),
    ("POST", "/runs/search"): ("user", lambda w: ("/runs/search", {"json": {"experiment_ids": [_exp(w)]}})),
    ("GET", "/metrics/get-history"): ("viewer_or_run", lambda w: (
        "/metrics/get-history", {"params": {"run_id": str(w.run_id), "metric_key": "loss"}})),
    ("GET", "/metrics/get-history-bulk-interval"): ("viewer_or_run", lambda w: (
        "/metrics/get-history-bulk-interval", {"params": {"run_ids": str(w.run_id), "metric_key": "loss"}})),
    ("POST", "/logged-models"): ("editor_or_run", lambda w: (
        "/logged-models", {"json": {"source_run_id": str(w.run_id), "name": "m2"}})),
    ("GET", "/logged-models/{model_id}"): ("viewer_or_run", lambda w: (f"/logged-models/{_model(w)}", {})),
    ("PATCH", "/logged-models/{model_id}"): ("editor_or_run", lambda w: (
        f"/logged-models/{_model(w)}", {"json": {"status": "LOGGED_MODEL_READY"}})),
    ("PATCH", "/logged-models/{model_id}/tags"): ("editor_or_run", lambda w: (
        f"/logged-models/{_model(w)}/tags", {"json": {"tags": [{"key": "k", "value": "v"}]}})),
    ("DELETE", "/logged-models/{model_id}/tags/{tag_key}"): ("editor_or_run", lambda w: (f"/logged-models/{_model(w)}/tags/gone", {})),
    ("POST", "/logged-models/{model_id}/params"): ("editor_or_run", lambda w: (
        f"/logged-models/{_model(w)}/params", {"json": {"params": [{"key": "p", "value": "1"}]}})),
    ("POST", "/logged-models/search"): ("user", lambda w: ("/logged-models/search", {"json": {"experiment_ids": [_exp(w)]}})),
    ("PUT", MLA + "/artifacts/{path}"): ("editor_or_run", lambda w: (
        f"{MLA}/artifacts/{_exp(w)}/{w.run_id}/artifacts/up.txt", {"content": b"x", "headers": {"Content-Type": "text/plain"}})),
    ("GET", MLA + "/artifacts/{path}"): ("viewer_or_run", lambda w: (f"{MLA}/artifacts/{_exp(w)}/{w.run_id}/artifacts/model.txt", {})),
    ("GET", MLA + "/artifacts"): ("viewer_or_run", lambda w: (f"{MLA}/artifacts", {"params": {"path": f"{_exp(w)}/{w.run_id}/artifacts"}})),
}


def test_every_mlflow_route_has_a_rule() -> None:
    from runyard.server.mlflow import ARTIFACTS_SERVED, SERVED

    served = set(SERVED) | {(m, MLA + p) for m, p in ARTIFACTS_SERVED}
    assert sorted(served - set(MLFLOW_EXPECTED)) == [], f"MLflow routes without an authorization rule (add them to {__file__})"
    assert sorted(set(MLFLOW_EXPECTED) - served) == [], "Rules for MLflow routes that are no longer served"


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_mlflow_matrix(world: World, principal: str) -> None:
    token = world.tokens[principal]
    wrong = []
    for (method, route), (rule, make) in sorted(MLFLOW_EXPECTED.items(), key=lambda kv: kv[0]):
        path, kw = make(world)
        resp = call(world.url, token, method, path if path.startswith(MLA) else ML + path, **kw)
        allowed = principal in RULES[rule]
        ok = 200 <= resp.status_code < 300 if allowed else resp.status_code in (401, 403, 404)
        if not ok:
            wrong.append(f"{method} {route} as {principal}: {resp.status_code} {resp.text[:200]} (rule {rule})")
        if not allowed:
            # Refusals are in MLflow's format, and credentials that name nobody are UNAUTHENTICATED.
            assert set(resp.json()) == {"error_code", "message"}, (method, route, resp.text)
            if principal in ("anonymous", "revoked", "expired"):
                assert resp.json()["error_code"] == "UNAUTHENTICATED", (method, route, principal, resp.text)
    assert not wrong, "\n".join(wrong)
