"""Text at the API's edge: NUL, unpaired surrogates, bidi overrides and over-long names are refused
with 400 naming the field, nothing is stored, and every listing keeps working (SQLite and PostgreSQL).

Before, a lone surrogate ("\\ud800") in a param value, a tag, a run name, an experiment's command
or a project description was stored, and from then on every listing failed with 500
(PydanticSerializationError) for every user.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from edge_helpers import Api

SURROGATE = "a\ud800b"
NUL = "a\x00b"
RLO = "invoice\u202egpj.exe"


def _project(api: Api) -> str:
    name = f"edge-{uuid.uuid4().hex[:8]}"
    api.ok("POST", "/projects", {"name": name})
    return name


def _run_names(api: Api, project: str) -> list[str]:
    return [r["name"] for r in api.ok("GET", f"/runs?project={project}")["items"]]


@pytest.mark.slow
@pytest.mark.parametrize(("what", "body", "needles"), [
    ("param value", {"params": {"lr": SURROGATE}}, ["params.lr", "unpaired surrogate"]),
    ("nested param value", {"params": {"opt": {"name": [1, NUL]}}}, ["params.opt", "name[1]", "NUL"]),
    ("param key", {"params": {SURROGATE: 1}}, ["param name", "unpaired surrogate"]),
    ("tag value", {"tags": {"stage": SURROGATE}}, ["tags.stage", "unpaired surrogate"]),
    ("run name surrogate", {"name": SURROGATE}, ["name", "run name", "unpaired surrogate"]),
    ("run name bidi", {"name": RLO}, ["name", "U+202E"]),
    ("run name control", {"name": "a\x1bb"}, ["name", "control character"]),
    ("run name too long", {"name": "x" * 300}, ["name", "at most 256 characters", "300 characters"]),
    ("huge int param", {"params": {"n": 10**30}}, ["params.n", "64 bits"]),
])
def test_bad_text_in_a_run_is_refused_and_nothing_is_stored(edge_api: Api, what: str, body: dict, needles: list[str]) -> None:
    project = _project(edge_api)
    edge_api.refused("POST", "/runs", {"project": project, **body}, *needles)
    assert _run_names(edge_api, project) == []
    edge_api.listings_work()


@pytest.mark.slow
def test_bad_text_on_an_existing_run_is_refused(edge_api: Api) -> None:
    project = _project(edge_api)
    run = edge_api.ok("POST", "/runs", {"project": project, "name": "ok"})
    rid = run["id"]
    edge_api.refused("POST", f"/runs/{rid}/params", {"params": {"lr": SURROGATE}}, "params.lr", "unpaired surrogate")
    edge_api.refused("POST", f"/runs/{rid}/tags", {"tags": {"t": NUL}}, "tags.t", "NUL")
    edge_api.refused("PATCH", f"/runs/{rid}", {"status": "failed", "message": SURROGATE}, "message", "unpaired surrogate")
    edge_api.refused("PATCH", f"/runs/{rid}", {"status": "failed", "exit_code": 2**70}, "exit_code")
    edge_api.refused("POST", f"/runs/{rid}/metrics", {"keys": ["loss"], "steps": [2**63], "values": [1.0],
                                                     "timestamps": [time.time()]}, "steps", "2**63-1")
    stored = edge_api.ok("GET", f"/runs/{rid}")
    assert (stored["params"], stored["tags"], stored["status"]) == ({}, {}, "running")
    edge_api.listings_work()


@pytest.mark.slow
def test_bad_text_in_a_project_is_refused(edge_api: Api) -> None:
    name = f"edge-{uuid.uuid4().hex[:8]}"
    edge_api.refused("POST", "/projects", {"name": name, "description": SURROGATE}, "description", "unpaired surrogate")
    edge_api.refused("POST", "/projects", {"name": name, "tags": {"team": NUL}}, "tags.team", "NUL")
    assert edge_api.call("GET", f"/projects/{name}").status_code == 404
    edge_api.ok("POST", "/projects", {"name": name, "description": "fine"})
    edge_api.refused("PATCH", f"/projects/{name}", {"description": SURROGATE}, "description", "unpaired surrogate")
    assert edge_api.ok("GET", f"/projects/{name}")["description"] == "fine"
    edge_api.listings_work()


@pytest.mark.slow
@pytest.mark.parametrize(("config", "needles"), [
    ({"command": "echo a\x00b"}, ["config.command", "NUL"]),
    ({"command": "echo " + SURROGATE}, ["config.command", "unpaired surrogate"]),
    ({"command": "echo {x}", "params": {"x": [SURROGATE]}}, ["config.params", "unpaired surrogate"]),
    ({"command": "echo hi", "env": {"K": NUL}}, ["config.env", "NUL"]),
    ({"command": "echo hi", "resources": {"time_limit": 10**20}}, ["time_limit", "64 bits"]),
    ({"command": "echo hi", "resources": {"memory": 10**24}}, ["memory", "64 bits"]),
    ({"command": "echo hi", "max_restarts": 10**23}, ["max_restarts", "64 bits"]),
    ({"command": "echo hi", "max_restarts": 10**6}, ["max_restarts must be at most 1000"]),
    ({"command": "echo hi", "resources": {"time_limit": "99999999h"}}, ["time_limit must be at most 3650d"]),
])
def test_bad_experiment_leaves_no_project_and_the_scheduler_keeps_running_others(
        edge_api: Api, config: dict, needles: list[str]) -> None:
    project = f"edge-{uuid.uuid4().hex[:8]}"  # created implicitly by a successful POST /experiments only
    edge_api.refused("POST", "/experiments", {"project": project, "name": "bad", "config": {"project": project, **config}},
                     *needles)
    assert edge_api.call("GET", f"/projects/{project}").status_code == 404
    edge_api.listings_work()


@pytest.mark.slow
def test_an_experiment_submitted_next_to_refused_ones_runs(edge_api: Api) -> None:
    project = f"edge-{uuid.uuid4().hex[:8]}"
    for config in ({"command": "echo a\x00b"}, {"command": "echo hi", "max_restarts": 10**23},
                   {"command": "echo hi", "resources": {"gpus": 10**20}}):
        edge_api.refused("POST", "/experiments", {"project": project, "name": "bad",
                                                  "config": {"project": project, **config}})
    good = edge_api.ok("POST", "/experiments", {"project": project, "name": "good", "config": {
        "project": project, "command": "echo {i}", "params": {"i": [1, 2]}, "resources": {"cpus": 0.1}}})
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        exp = edge_api.ok("GET", f"/experiments/{good['id']}")
        if exp["counts"].get("succeeded") == 2:
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"the good experiment did not finish: {exp}")
    assert [e["name"] for e in edge_api.ok("GET", f"/experiments?project={project}")["items"]] == ["good"]
    edge_api.listings_work()


@pytest.mark.slow
def test_log_lines_keep_bad_code_points_as_replacement_characters(edge_api: Api) -> None:
    project = _project(edge_api)
    rid = edge_api.ok("POST", "/runs", {"project": project})["id"]
    edge_api.ok("POST", f"/runs/{rid}/logs", {"lines": [{"text": "loss " + SURROGATE}, {"text": "nul " + NUL},
                                                        {"text": "ok \U0001f600"}]})
    texts = [ln["text"] for ln in edge_api.ok("GET", f"/runs/{rid}/logs")["lines"]]
    assert texts == ["loss a\ufffdb", "nul a\ufffdb", "ok \U0001f600"]
    edge_api.refused("POST", f"/runs/{rid}/logs", {"task": NUL, "lines": [{"text": "x"}]}, "task", "NUL")
    edge_api.listings_work()


@pytest.mark.slow
def test_a_refused_run_or_experiment_creates_no_project(edge_api: Api) -> None:
    """Creating a run or an experiment creates its project implicitly, only when it is stored."""
    for path, body, needles in [
        ("/runs", {"params": {"lr": NUL}}, ["params.lr", "NUL"]),
        ("/runs", {"name": RLO}, ["name", "U+202E"]),
        ("/experiments", {"name": RLO, "config": {"command": "echo hi"}}, ["experiment name", "U+202E"]),
        ("/experiments", {"name": "x" * 129, "config": {"command": "echo hi"}}, ["name"]),
        ("/experiments", {"name": "ok", "config": {"command": "echo {lr:.2f}", "params": {"lr": ["a", "b"]}}},
         ["format '.2f' cannot format 'a'"]),
    ]:
        project = f"edge-{uuid.uuid4().hex[:8]}"
        if path == "/experiments":
            body = {**body, "config": {"project": project, **body["config"]}}
        edge_api.refused("POST", path, {"project": project, **body}, *needles)
        assert edge_api.call("GET", f"/projects/{project}").status_code == 404, (path, body)
    edge_api.listings_work()


@pytest.mark.slow
def test_unpaired_surrogates_stored_by_older_versions_are_served_as_replacement_characters(edge_api: Api) -> None:
    """Params and configs stored before the edge refused them (JSON text escaping a lone surrogate)
    are read with U+FFFD in its place: every listing and the scheduler keep working."""
    from sqlalchemy import text

    from runyard.store import make_engine

    project = _project(edge_api)
    exp = edge_api.ok("POST", "/experiments", {"project": project, "name": "old", "config": {
        "project": project, "command": "echo {x}", "params": {"x": ["a"]}, "resources": {"cpus": 0.1}}})
    rid = edge_api.ok("POST", "/runs", {"project": project, "params": {"lr": "fine"}})["id"]
    server = edge_api.server
    url = server.env.get("RUNYARD_DATABASE_URL") or f"sqlite:///{server.home / 'runyard.db'}"
    engine = make_engine(url)
    try:
        with engine.begin() as conn:  # what an older server wrote: json.dumps escapes the surrogate as \ud800
            conn.execute(text("UPDATE params SET value = :v WHERE run_id = :r"), {"v": '"a\\ud800b"', "r": rid})
            config = json.dumps({"project": project, "command": "echo \udc00", "params": {"x": ["a"]}})
            assert "\\udc00" in config  # escaped, as json.dumps does
            conn.execute(text("UPDATE experiments SET config = :c WHERE id = :e"), {"c": config, "e": exp["id"]})
    finally:
        engine.dispose()
    edge_api.listings_work()
    assert edge_api.ok("GET", f"/runs/{rid}")["params"] == {"lr": "a\ufffdb"}
    assert edge_api.ok("GET", f"/experiments/{exp['id']}")["config"]["command"] == "echo \ufffd"
    assert edge_api.call("POST", f"/experiments/{exp['id']}/cancel").status_code == 200
