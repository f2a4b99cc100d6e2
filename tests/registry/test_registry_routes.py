"""The registry's REST API through a real server process and the client: every route, the answers' shapes,
bad bodies and hostile names refused with 400 and the server's error format, and concurrent registrations."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import httpx
import pytest

from runyard.client import Client
from runyard.errors import Conflict, InvalidInput, InvalidState, NotFound
from runyard.testing import LiveServer

V1 = "/api/v1"
WEIGHTS = bytes(range(256)) * 64


@pytest.fixture
def run_id(client: Client, project: str) -> int:
    run = client.create_run(project, name="train")["id"]
    client.upload_artifact(run, "model/weights.bin", WEIGHTS)
    client.upload_artifact(run, "model/meta/config.json", b'{"layers": 2}')
    client.upload_artifact(run, "report.txt", b"acc 0.97\n")
    return int(run)


def test_model_routes_create_list_read_update(client: Client, project: str) -> None:
    made = client.create_model(project, "digits", description="Digits", tags={"team": "vision"})
    assert set(made) == {"name", "project", "description", "tags", "n_versions", "latest_version", "aliases", "created_by",
                         "created_at", "updated_at"}
    assert (made["name"], made["project"], made["created_by"], made["n_versions"]) == ("digits", project, "local", 0)
    with pytest.raises(Conflict, match="already has a model 'digits'"):
        client.create_model(project, "digits")
    client.create_model(project, "other")
    assert [m["name"] for m in client.list_models(project)] == ["digits", "other"]
    assert [m["name"] for m in client.list_models(project, "dig")] == ["digits"]
    assert [m["name"] for m in client.list_models(project, limit=1)] == ["digits"]
    changed = client.update_model(project, "digits", tags={"team": "nlp"})
    assert (changed["description"], changed["tags"]) == ("Digits", {"team": "nlp"})
    detail = client.get_model(project, "digits")
    assert (detail["versions"], detail["alias_history"]) == ([], [])
    with pytest.raises(NotFound, match="has no model 'nope'"):
        client.get_model(project, "nope")
    with pytest.raises(NotFound, match="No project named"):
        client.list_models("no-such-project")


def test_register_from_run_artifacts_then_download_the_blobs(client: Client, project: str, run_id: int,
                                                              tmp_path: Path) -> None:
    v = client.create_model_version(project, "digits", run_id=run_id, paths=["model/"], flavor="pytorch",
                                    requirements=["torch==2.5.1"], signature={"inputs": [{"shape": [-1, 64]}], "outputs": []},
                                    description="v1", tags={"acc": "0.97"})
    assert set(v) == {"model", "project", "version", "run_id", "source", "snapshot_id", "files", "n_files", "size", "flavor",
                      "signature", "requirements", "description", "tags", "status", "aliases", "created_by", "created_at",
                      "archived_at"}
    assert (v["model"], v["version"], v["run_id"], v["source"], v["status"]) == \
        ("digits", 1, run_id, f"runs:/{run_id}/model", "ready")
    assert sorted(f[0] for f in v["files"]) == ["meta/config.json", "weights.bin"]
    # The files are blobs now: downloadable by digest, the bytes the run stored.
    weights = next(f for f in v["files"] if f[0] == "weights.bin")
    assert weights[1] == hashlib.sha256(WEIGHTS).hexdigest()
    client.download_blob(weights[1], tmp_path / "w")
    assert (tmp_path / "w").read_bytes() == WEIGHTS
    assert client.get_model_version(project, "digits", 1) == v

    v2 = client.create_model_version(project, "digits", run_id=run_id, paths=["model/weights.bin", "report.txt"])
    assert (v2["version"], sorted(f[0] for f in v2["files"]), v2["flavor"]) == \
        (2, ["model/weights.bin", "report.txt"], "files")
    patched = client.update_model_version(project, "digits", 2, description="both", tags={"k": "v"})
    assert (patched["description"], patched["tags"], patched["files"]) == ("both", {"k": "v"}, v2["files"])
    model = client.get_model(project, "digits")
    assert (model["n_versions"], model["latest_version"]) == (2, 2)


def test_register_from_an_uploaded_snapshot(client: Client, project: str, run_id: int) -> None:
    data = b"onnx model bytes"
    digest = hashlib.sha256(data).hexdigest()
    client.upload_blob(digest, data)
    snap = client.create_snapshot([["model.onnx", digest, len(data), 0o644]])["id"]
    v = client.create_model_version(project, "net", snapshot_id=snap, flavor="onnx")
    assert (v["source"], v["run_id"], v["snapshot_id"], v["files"]) == ("upload", None, snap, [["model.onnx", digest, len(data), 420]])
    # With the run that uploaded them.
    v2 = client.create_model_version(project, "net", snapshot_id=snap, run_id=run_id)
    assert (v2["version"], v2["run_id"], v2["source"]) == (2, run_id, f"runs:/{run_id}")


def test_archive_aliases_and_the_resolver(client: Client, project: str, run_id: int) -> None:
    for _ in range(3):
        client.create_model_version(project, "m", run_id=run_id, paths=["report.txt"])
    assert client.set_model_alias(project, "m", "production", 1) == {"alias": "production", "version": 1, "from_version": None}
    assert client.set_model_alias(project, "m", "production", 2) == {"alias": "production", "version": 2, "from_version": 1}
    assert client.resolve_model("models:/m@production", project)["version"] == 2
    assert client.resolve_model(f"models:/{project}/m/latest")["version"] == 3
    assert client.resolve_model("models:/m/1", project)["version"] == 1
    with pytest.raises(InvalidState, match="alias\\(es\\) production name it"):
        client.archive_model_version(project, "m", 2)
    archived = client.archive_model_version(project, "m", 3)
    assert archived["status"] == "archived" and archived["archived_at"]
    assert client.resolve_model("models:/m", project)["version"] == 2
    with pytest.raises(InvalidState, match="is archived"):
        client.set_model_alias(project, "m", "staging", 3)
    assert client.archive_model_version(project, "m", 3, unarchive=True)["status"] == "ready"
    assert client.delete_model_alias(project, "m", "production") == {"alias": "production", "version": None, "from_version": 2}
    with pytest.raises(NotFound, match="has no alias 'production'"):
        client.resolve_model("models:/m@production", project)
    history = client.get_model(project, "m")["alias_history"]
    assert [(e["alias"], e["from_version"], e["to_version"], e["actor"]) for e in history] == [
        ("production", None, 1, "local"), ("production", 1, 2, "local"), ("production", 2, None, "local")]
    with pytest.raises(InvalidInput, match="names no project"):
        client.resolve_model("models:/m/1")


@pytest.mark.parametrize(("body", "match"), [
    ({}, "A version needs files"),
    ({"paths": ["model"]}, "run_id is missing"),
    ({"run_id": 1, "paths": []}, "paths is empty"),
    ({"run_id": 1, "paths": ["model"], "snapshot_id": "a" * 64}, "not both"),
    ({"run_id": 1, "paths": ["../etc/passwd"]}, "contains '..'"),
    ({"run_id": 1, "paths": ["/abs"]}, "is absolute"),
    ({"run_id": 1, "paths": ["a\x00b"]}, "NUL"),
    ({"snapshot_id": "a" * 64, "flavor": "tensorflow"}, "flavor"),
    ({"snapshot_id": "a" * 64, "favor": "files"}, "favor"),  # a misspelled field is refused, not ignored
    ({"snapshot_id": "a" * 64, "description": "\ud800"}, "surrogate"),
    ({"snapshot_id": "a" * 64, "tags": {"k": "v\x00"}}, "NUL"),
    ({"snapshot_id": "a" * 64, "run_id": 2**70}, "run_id"),
    ({"snapshot_id": "a" * 64, "requirements": ["x" * 2000]}, "pip requirement"),
])
def test_bad_version_bodies_are_400_in_the_error_format(registry_server: LiveServer, project: str, body: dict,
                                                         match: str) -> None:
    if body.get("run_id") == 1:
        with Client(registry_server.url) as c:
            body = {**body, "run_id": c.create_run(project)["id"]}
    import json

    resp = httpx.post(f"{registry_server.url}{V1}/projects/{project}/models/m/versions", timeout=30,
                      content=json.dumps(body, ensure_ascii=True), headers={"Content-Type": "application/json"})
    assert resp.status_code == 400, resp.text
    answer = resp.json()
    assert set(answer) >= {"code", "message", "hint"} and answer["code"] == "invalid_input"
    assert match in answer["message"] + str(answer.get("hint")), answer


@pytest.mark.parametrize(("route", "match"), [
    ("/models/a%00b", "NUL"),
    ("/models/" + "x" * 10_000, "10,000 characters"),
    ("/models/-x", "A model name must be"),
    ("/models/m/versions/0", "from 1 to"),
    ("/models/m/versions/99999999999999999999999", "from 1 to"),
    ("/models/m/versions/-1", "from 1 to"),
])
def test_hostile_names_in_urls_are_400(registry_server: LiveServer, client: Client, project: str, route: str,
                                       match: str) -> None:
    client.create_model(project, "m")
    resp = httpx.get(f"{registry_server.url}{V1}/projects/{project}{route}", timeout=30)
    assert resp.status_code == 400, resp.text
    assert match in resp.json()["message"]
    assert len(resp.json()["message"]) < 400  # a 10,000-character name is not echoed back


@pytest.mark.parametrize("uri", ["models:/", "../x", "models:/a\x00", "\ud800", "models:/" + "a" * 10_000, "models:/m@latest"])
def test_the_resolver_refuses_hostile_uris(client: Client, project: str, uri: str) -> None:
    with pytest.raises(InvalidInput):
        client.resolve_model(uri, project)


def test_alias_names_are_checked(client: Client, project: str, run_id: int) -> None:
    client.create_model_version(project, "m", run_id=run_id, paths=["report.txt"])
    for alias in ("latest", "1", "a.b", "x" * 200):
        with pytest.raises(InvalidInput):
            client.set_model_alias(project, "m", alias, 1)
    with pytest.raises(NotFound, match="has no version 5"):
        client.set_model_alias(project, "m", "production", 5)


def test_concurrent_registrations_over_http_get_distinct_numbers(registry_server: LiveServer, project: str,
                                                                  run_id: int) -> None:
    got: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def register() -> None:
        try:
            with Client(registry_server.url) as c:
                start.wait()
                got.append(c.create_model_version(project, "race", run_id=run_id, paths=["model"])["version"])
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=register) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(got) == [1, 2, 3, 4, 5, 6]


def test_the_routes_are_documented_under_the_models_tag(registry_server: LiveServer) -> None:
    doc = httpx.get(f"{registry_server.url}{V1}/openapi.json", timeout=30).json()
    ours = {(m.upper(), p) for p, ops in doc["paths"].items() for m, op in ops.items() if "models" in op.get("tags", [])}
    assert ours == {
        ("GET", f"{V1}/projects/{{project}}/models"), ("POST", f"{V1}/projects/{{project}}/models"),
        ("GET", f"{V1}/projects/{{project}}/models/{{name}}"), ("PATCH", f"{V1}/projects/{{project}}/models/{{name}}"),
        ("POST", f"{V1}/projects/{{project}}/models/{{name}}/versions"),
        ("GET", f"{V1}/projects/{{project}}/models/{{name}}/versions/{{version}}"),
        ("PATCH", f"{V1}/projects/{{project}}/models/{{name}}/versions/{{version}}"),
        ("POST", f"{V1}/projects/{{project}}/models/{{name}}/versions/{{version}}/archive"),
        ("POST", f"{V1}/projects/{{project}}/models/{{name}}/versions/{{version}}/unarchive"),
        ("PUT", f"{V1}/projects/{{project}}/models/{{name}}/aliases/{{alias}}"),
        ("DELETE", f"{V1}/projects/{{project}}/models/{{name}}/aliases/{{alias}}"),
        ("GET", f"{V1}/models/resolve"),
    }
