"""Answers that would tell a user what they may not see: private project names, usernames."""

from __future__ import annotations

import itertools

import httpx
import pytest
from sec_helpers import SecServer

V1 = "/api/v1"
_n = itertools.count()


@pytest.fixture(scope="module")
def people(sec_server: SecServer) -> dict[str, str]:
    """An owner with a private project ``hidden-…`` and a public one, and a stranger; their tokens."""
    k = next(_n)
    with sec_server.admin() as admin:
        admin.create_user(f"ow{k}", "owner-pw-1234")
        admin.create_user(f"st{k}", "strng-pw-1234")
    owner = sec_server.user_token(f"ow{k}", "owner-pw-1234")
    hidden, shown = f"hidden-{k}", f"shown-{k}"
    for name, visibility in ((hidden, "private"), (shown, "public")):
        r = _call(sec_server, owner, "POST", "/projects", json={"name": name, "visibility": visibility})
        assert r.status_code == 201, r.text
    return {"owner": owner, "stranger": sec_server.user_token(f"st{k}", "strng-pw-1234"), "hidden": hidden, "shown": shown,
            "owner_name": f"ow{k}", "stranger_name": f"st{k}"}


def _call(sec: SecServer, token: str, method: str, path: str, **kw: object) -> httpx.Response:
    return httpx.request(method, sec.url + V1 + path, headers={"Authorization": f"Bearer {token}"}, timeout=30, **kw)  # type: ignore[arg-type]


def _shape(resp: httpx.Response, name: str) -> tuple[int, str, str, str]:
    body = resp.json()
    return resp.status_code, body["code"], body["message"].replace(name, "NAME"), body["hint"].replace(name, "NAME")


def test_creating_a_project_answers_alike_for_a_private_and_a_visible_taken_name(sec_server: SecServer,
                                                                                 people: dict[str, str]) -> None:
    stranger, hidden, shown = people["stranger"], people["hidden"], people["shown"]
    private = _call(sec_server, stranger, "POST", "/projects", json={"name": hidden})
    visible = _call(sec_server, stranger, "POST", "/projects", json={"name": shown})
    assert _shape(private, hidden) == _shape(visible, shown)
    assert private.status_code == 409
    assert "cannot be created: the name is taken or reserved" in private.json()["message"]
    # Creating in a project by name (runs, experiments) answers the same as creating the project.
    for path, body in (("/runs", {"project": hidden}),
                       ("/experiments", {"project": hidden, "name": "e", "config": {"project": hidden, "command": "x"}})):
        assert _shape(_call(sec_server, stranger, "POST", path, json=body), hidden) == _shape(private, hidden), path
    # The owner's own name too; and nothing was created by the refusals.
    assert _shape(_call(sec_server, people["owner"], "POST", "/projects", json={"name": hidden}), hidden) == _shape(private, hidden)
    with sec_server.admin() as admin:
        assert admin.list_runs(project=hidden)["total"] == 0


def test_removing_a_member_answers_alike_for_a_non_member_and_a_missing_user(sec_server: SecServer,
                                                                             people: dict[str, str]) -> None:
    owner, hidden = people["owner"], people["hidden"]
    not_member = _call(sec_server, owner, "DELETE", f"/projects/{hidden}/members/{people['stranger_name']}")
    no_user = _call(sec_server, owner, "DELETE", f"/projects/{hidden}/members/nobody-{next(_n)}")
    assert not_member.status_code == no_user.status_code == 404
    strip = [(r, n) for r, n in ((not_member, people["stranger_name"]), (no_user, no_user.request.url.path.rsplit("/", 1)[1]))]
    assert _shape(*strip[0]) == _shape(*strip[1])
