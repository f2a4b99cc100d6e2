"""Sign-in, rate limits, CSRF, revocation, public projects, run tokens and secrets kept out of logs."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from auth_helpers import ADMIN_PW, PASSWORDS, World, call, mint_run_token, token_for

from runyard.client import Client
from runyard.errors import Forbidden, NotFound, RateLimited, Unauthorized
from runyard.testing import LiveServer

V1 = "/api/v1"


def test_wrong_password_is_refused_and_audited(auth_server: LiveServer) -> None:
    with Client(auth_server.url) as c:
        with pytest.raises(Unauthorized, match="Wrong username or password") as err:
            c.login("admin", "not-the-password")
        assert "not-the-password" not in str(err.value)
        with pytest.raises(Unauthorized, match="Wrong username or password"):
            c.login("nobody", "whatever-123")
        c.login("admin", ADMIN_PW)
        events = c.audit(action="login")
    # Newest first: the success, then the two failures; the address is recorded, the password never.
    assert [(e["target"], e["success"]) for e in events] == [("admin", True), ("nobody", False), ("admin", False)]
    assert all(e["address"] == "127.0.0.1" for e in events)
    assert "not-the-password" not in json.dumps(events)


def test_brute_force_hits_the_rate_limit(auth_server: LiveServer) -> None:
    # The fixture allows 3 failures per user and address per minute.
    with Client(auth_server.url) as c:
        for i in range(3):
            with pytest.raises(Unauthorized):
                c.login("admin", f"guess-{i}-xx")
        # Even the right password is refused while the limit holds: guessing gains nothing.
        with pytest.raises(RateLimited, match="Too many failed sign-ins") as err:
            c.login("admin", ADMIN_PW)
        assert "Wait" in (err.value.hint or "")
    resp = httpx.post(auth_server.url + V1 + "/auth/login", json={"username": "admin", "password": ADMIN_PW},
                      timeout=10)
    assert resp.status_code == 429 and int(resp.headers["Retry-After"]) > 0


def test_session_cookie_and_csrf(auth_server: LiveServer) -> None:
    with httpx.Client(base_url=auth_server.url + V1, timeout=10) as http:
        resp = http.post("/auth/login", json={"username": "admin", "password": ADMIN_PW})
        assert resp.status_code == 200
        cookie = resp.headers.get_list("set-cookie")
        session = next(c for c in cookie if c.startswith("runyard_session="))
        assert "HttpOnly" in session and "SameSite=strict" in session
        csrf = resp.json()["csrf_token"]
        assert http.cookies["runyard_csrf"] == csrf
        # Reads need no CSRF token; writes with the cookie do.
        assert http.get("/me").json()["user"]["username"] == "admin"
        refused = http.post("/projects", json={"name": "csrf"})
        assert refused.status_code == 403 and "X-CSRF-Token" in refused.json()["message"]
        wrong = http.post("/projects", json={"name": "csrf"}, headers={"X-CSRF-Token": "0" * 64})
        assert wrong.status_code == 403
        assert http.post("/projects", json={"name": "csrf"}, headers={"X-CSRF-Token": csrf}).status_code == 201
        # Signing out ends the session at once, even for someone who copied the cookie.
        stolen = http.cookies["runyard_session"]
        assert http.post("/auth/logout", headers={"X-CSRF-Token": csrf}).json() == {"signed_out": True}
    again = httpx.get(auth_server.url + V1 + "/me", cookies={"runyard_session": stolen}, timeout=10)
    assert again.status_code == 401


def test_token_revocation_takes_effect_at_once(auth_server: LiveServer) -> None:
    token = token_for(auth_server.url, "admin", ADMIN_PW)
    with Client(auth_server.url, token) as c:
        assert c.me()["user"]["username"] == "admin"
        tid = c.me()["token_id"]
        assert [t["id"] for t in c.list_tokens() if t["revoked_at"] is None] == [tid]
        c.revoke_token(tid)
        with pytest.raises(Unauthorized, match="unknown, expired or revoked"):
            c.me()
    assert call(auth_server.url, token, "GET", V1 + "/projects").status_code == 401


def test_expired_token_is_refused(auth_server: LiveServer) -> None:
    token = token_for(auth_server.url, "admin", ADMIN_PW, expires_in_days=1.0 / 86400)
    time.sleep(1.2)  # the token's one-second life passes: the behaviour under test
    assert call(auth_server.url, token, "GET", V1 + "/me").status_code == 401


def test_disabled_user_loses_access(world: World) -> None:
    with world.admin() as admin:
        admin.create_user("frank", "frank-pw-123")
    token = token_for(world.url, "frank", "frank-pw-123")
    assert call(world.url, token, "GET", V1 + "/me").status_code == 200
    with world.admin() as admin:
        admin.update_user("frank", disabled=True)
    assert call(world.url, token, "GET", V1 + "/me").status_code == 401
    with Client(world.url) as c, pytest.raises(Unauthorized):
        c.login("frank", "frank-pw-123")


def test_public_project_readable_by_a_stranger_but_not_writable(world: World) -> None:
    with world.client("owner") as alice:
        alice.create_project("open", visibility="private")
        rid = alice.create_run("open", params={"a": 1})["id"]
    with world.client("stranger") as dave:
        assert "open" not in [p["name"] for p in dave.list_projects()]
        with pytest.raises(NotFound):
            dave.get_project("open")
        with pytest.raises(NotFound):
            dave.get_run(rid)
        with world.client("owner") as alice:
            alice.update_project("open", visibility="public")
        assert "open" in [p["name"] for p in dave.list_projects()]
        assert dave.get_run(rid)["params"] == {"a": 1}
        assert rid in [r["id"] for r in dave.list_runs(project="open")["items"]]
        with pytest.raises(Forbidden, match="viewer of project 'open'; this needs editor"):
            dave.create_run("open")
        with pytest.raises(Forbidden):
            dave.log_params(rid, {"b": 2})
        with pytest.raises(Forbidden):
            dave.update_project("open", visibility="private")
        with pytest.raises(Forbidden):
            dave.share_project("open", "dave", "owner")


def test_run_token_is_refused_outside_its_run(world: World) -> None:
    token = world.tokens["run"]
    with Client(world.url, token) as run:
        run.log_metrics(world.run_id, ["x"], [1], [1.0], [1.0])
        assert run.get_snapshot(world.snapshot_id)["id"] == world.snapshot_id
        with pytest.raises(Forbidden, match=f"belongs to run {world.run_id}"):
            run.get_run(world.other_run_id)
        with pytest.raises(Forbidden, match=f"belongs to run {world.run_id}"):
            run.log_metrics(world.other_run_id, ["x"], [1], [1.0], [1.0])
        with pytest.raises(Forbidden, match="only report to its own run"):
            run.list_projects()
        with pytest.raises(Forbidden, match="only report to its own run"):
            run.create_run(world.project)
        with pytest.raises(Forbidden, match="only report to its own run"):
            run.cancel_run(world.run_id)
    # Another snapshot, and a blob outside its own snapshot, are out of reach.
    other = b"secret training data\n"
    import hashlib

    digest = hashlib.sha256(other).hexdigest()
    with world.client("owner") as alice:
        alice.upload_blob(digest, other)
        snap = alice.create_snapshot([["data.txt", digest, len(other), 0o644]])["id"]
    assert call(world.url, token, "GET", f"{V1}/snapshots/{snap}").status_code == 403
    assert call(world.url, token, "GET", f"{V1}/blobs/{digest}").status_code == 403
    assert call(world.url, token, "GET", f"{V1}/blobs/{world.digest}").status_code == 200


def test_run_token_of_an_earlier_attempt_ends_when_a_new_one_is_minted(world: World) -> None:
    from runyard.store import AuthStore, make_engine

    first = mint_run_token(world.server, world.other_run_id)
    assert call(world.url, first, "GET", f"{V1}/runs/{world.other_run_id}").status_code == 200
    engine = make_engine(f"sqlite:///{world.server.home / 'runyard.db'}")
    try:
        # What the scheduler does before minting the next attempt's:
        AuthStore(engine).revoke_run_tokens(world.other_run_id)
    finally:
        engine.dispose()
    assert call(world.url, first, "GET", f"{V1}/runs/{world.other_run_id}").status_code == 401


def test_members_and_roles(world: World) -> None:
    with world.client("owner") as alice:
        members = alice.list_members(world.project)
        assert members["owner"] == "alice"
        assert {m["username"]: m["role"] for m in members["items"]}["bob"] == "editor"
    with world.client("editor") as bob:
        bob.log_params(world.run_id, {"by": "bob"})
        with pytest.raises(Forbidden, match="needs owner"):
            bob.share_project(world.project, "dave", "viewer")
    with world.client("viewer") as carol:
        assert carol.get_run(world.run_id)["id"] == world.run_id
        with pytest.raises(Forbidden, match="needs editor"):
            carol.set_tags(world.run_id, {"x": "y"})
    with world.admin() as admin:
        assert admin.audit(action="project.share")[-1]["target"] == world.project


def test_passwords_change_and_bad_inputs(world: World) -> None:
    with world.admin() as admin:
        admin.create_user("gina", "gina-pw-123")
        with pytest.raises(Exception, match="at least 8 characters"):
            admin.create_user("hank", "short")
        with pytest.raises(Exception, match="Invalid username"):
            admin.create_user("Bad Name", "long-enough-1")
        with pytest.raises(Exception, match="already exists"):
            admin.create_user("gina", "long-enough-1")
        with pytest.raises(Exception, match="last enabled admin"):
            admin.update_user("admin", is_admin=False)
    token = token_for(world.url, "gina", "gina-pw-123")
    with Client(world.url, token) as gina:
        with pytest.raises(Unauthorized, match="old password is wrong"):
            gina.set_password("gina", "new-gina-pw-1", old_password="nope-nope")
        gina.set_password("gina", "new-gina-pw-1", old_password="gina-pw-123")
        with pytest.raises(Forbidden):
            gina.set_password("alice", "hijacked-123")
    with Client(world.url) as c:
        with pytest.raises(Unauthorized):
            c.login("gina", "gina-pw-123")
        c.login("gina", "new-gina-pw-1")


def test_anonymous_is_refused_with_a_hint(world: World) -> None:
    resp = httpx.get(world.url + V1 + "/projects", timeout=10)
    assert resp.status_code == 401 and "runyard login" in resp.json()["hint"]
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert httpx.get(world.url + V1 + "/health", timeout=10).status_code == 200
    bad = httpx.get(world.url + V1 + "/projects", headers={"Authorization": "Basic abc"}, timeout=10)
    assert bad.status_code == 401


def test_secrets_never_reach_logs_or_errors(world: World) -> None:
    secrets = ([world.tokens[p] for p in ("admin", "owner", "run", "revoked", "expired")] + list(PASSWORDS.values())
               + [ADMIN_PW])
    # Errors about bad credentials do not echo them.
    for token in (world.tokens["revoked"], world.tokens["expired"]):
        assert token not in call(world.url, token, "GET", V1 + "/me").text
    resp = httpx.post(world.url + V1 + "/auth/login",
                      json={"username": "alice", "password": "wrong-" + PASSWORDS["alice"]}, timeout=10)
    assert PASSWORDS["alice"] not in resp.text
    with world.admin() as admin:
        audit_text = json.dumps(admin.audit(limit=10000))
    log_text = world.server.log_path.read_text()
    db_text = (world.server.home / "runyard.db").read_bytes().decode("latin-1")
    for secret in secrets:
        assert secret not in log_text, "a secret reached the server log"
        assert secret not in audit_text, "a secret reached the audit log"
        assert secret not in db_text, "a secret is stored in clear in the database"
