"""Projects over HTTP: tags in the payloads, set/remove, the list's tag filter, and bad input."""

from __future__ import annotations

import uuid

import httpx
import pytest

from runyard.client import Client
from runyard.errors import InvalidInput, NotFound
from runyard.testing import LiveServer

V1 = "/api/v1"


def _name() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def test_tags_in_payloads_set_overwrite_remove(client: Client, project: str) -> None:
    assert client.get_project(project)["tags"] == {}
    tagged = client.set_project_tags(project, {"problem": "classification", "benchmark": ""})
    assert tagged["name"] == project and tagged["tags"] == {"benchmark": "", "problem": "classification"}
    assert client.get_project(project)["tags"] == tagged["tags"]
    listed = next(p for p in client.list_projects(project) if p["name"] == project)
    assert listed["tags"] == tagged["tags"]
    assert client.set_project_tags(project, {"problem": "regression"}, remove=["benchmark"])["tags"] == {"problem": "regression"}
    resp = httpx.delete(f"{client.base_url}{V1}/projects/{project}/tags/problem", timeout=10)
    assert resp.status_code == 200 and resp.json()["tags"] == {}


def test_create_with_tags(client: Client) -> None:
    name = _name()
    created = client.create_project(name, "with tags", tags={"problem": "classification", "gpu": ""})
    assert created["tags"] == {"gpu": "", "problem": "classification"}
    with pytest.raises(InvalidInput, match="A project tag key must be"):
        client.create_project(_name(), tags={"bad key": "x"})


def test_list_filters_by_tag(client: Client) -> None:
    run = uuid.uuid4().hex[:6]  # a tag of this test alone: the server is shared
    names = {kind: _name() for kind in ("cls", "cls-bench", "reg", "none")}
    client.create_project(names["cls"], tags={run: "classification"})
    client.create_project(names["cls-bench"], tags={run: "classification", f"bench-{run}": ""})
    client.create_project(names["reg"], tags={run: "regression", f"bench-{run}": ""})
    client.create_project(names["none"])

    def listed(*tags: str, q: str | None = None) -> set[str]:
        return {p["name"] for p in client.list_projects(q, tags=tags)}

    assert listed(run) == {names["cls"], names["cls-bench"], names["reg"]}
    assert listed(f"{run}:classification") == {names["cls"], names["cls-bench"]}
    assert listed(f"{run}=classification") == {names["cls"], names["cls-bench"]}
    assert listed(f"{run}:classification", f"bench-{run}") == {names["cls-bench"]}
    assert listed(f"{run}:classification", q=names["cls-bench"]) == {names["cls-bench"]}
    assert listed(f"{run}:nothing") == set()
    # The query string of the docs works as written.
    resp = httpx.get(f"{client.base_url}{V1}/projects", params={"tag": f"{run}:regression"}, timeout=10)
    assert [p["name"] for p in resp.json()["items"]] == [names["reg"]]


@pytest.mark.parametrize(("body", "message"), [
    ({"tags": {"bad key": "x"}}, "A project tag key must be 1-64 letters, digits"),
    ({"tags": {"": "x"}}, "A project tag key must be"),
    ({"tags": {"a:b": "x"}}, "A project tag key must be"),
    ({"tags": {"k" * 65: "x"}}, "A project tag key must be"),
    ({"tags": {"problem": "x" * 257}}, "must be one line of at most 256 characters"),
    ({"tags": {"problem": "two\nlines"}}, "must be one line"),
    ({"tags": {"problem": " padded"}}, "must not start or end with a space"),
    ({"tags": {"problem": 3}}, "Invalid request: tags.problem"),
    ({"tags": {"problem": "x"}, "remove": ["problem"]}, "'problem' is both set and removed"),
    ({"remove": ["bad key"]}, "A project tag key must be"),
    ({"tags": {f"t{i}": "" for i in range(51)}}, "at most 50 tags"),
    ({"tags": ["problem"]}, "Invalid request: tags"),
])
def test_bad_tags_are_refused_and_change_nothing(shared_server: LiveServer, client: Client, project: str,
                                                 body: dict, message: str) -> None:
    client.set_project_tags(project, {"keep": "me"})
    resp = httpx.post(f"{shared_server.url}{V1}/projects/{project}/tags", json=body, timeout=10)
    assert resp.status_code == 400, resp.text
    err = resp.json()
    assert err["code"] == "invalid_input" and message in err["message"] and err["hint"], err
    assert client.get_project(project)["tags"] == {"keep": "me"}


def test_unknown_tag_and_project(client: Client, project: str) -> None:
    client.set_project_tags(project, {"a": "1"})
    with pytest.raises(NotFound, match=f"Project '{project}' has no tag 'b'") as info:
        client.set_project_tags(project, {"c": "3"}, remove=["b"])
    assert info.value.hint == "Its tags are: a."
    assert client.get_project(project)["tags"] == {"a": "1"}
    with pytest.raises(NotFound, match="No project named 'ghost-project'"):
        client.set_project_tags("ghost-project", {"a": "1"})


@pytest.mark.parametrize("bad", ["", ":classification", "a b", "x" * 65])
def test_bad_tag_filter(client: Client, bad: str) -> None:
    with pytest.raises(InvalidInput, match="A tag filter is KEY or KEY:VALUE") as info:
        client.list_projects(tags=[bad])
    assert "problem:classification (or problem=classification)" in (info.value.hint or "")
