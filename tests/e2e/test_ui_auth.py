"""Sign-in and sharing in the UI, in a real headless Chromium against a server that requires
sign-in (RUNYARD_AUTH=required) with users alice and bob.

alice is sent to the login page (and back to the page she asked for afterwards), a wrong
password shows the server's error, she shares her project with bob as viewer from the
project's Sharing panel (writes with the session cookie and its CSRF header), changes a
role, removes a member and switches the visibility, and signs out;
bob signs in, sees the project in his list (not alice's other, private one), reads its
members without controls to change them, and cannot cancel its run (the buttons are disabled
and say why; a cancel made after his role dropped shows the server's 403 plainly); when his
session ends (an admin disables him) the live page goes to the login page.
"""

from __future__ import annotations

import re
import time
from urllib.parse import quote

import pytest
from playwright.sync_api import expect
from ui_helpers import ARTIFACTS

from runyard.client import Client

pytestmark = pytest.mark.slow

ADMIN_PW = "admin-pw-0123456789"
ALICE_PW = "alice-pw-123"
BOB_PW = "bob-pw-1234"


def sign_in(page, username: str, password: str) -> None:  # noqa: ANN001
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_sign_in_share_with_bob_and_bob_sees_it(servers, page) -> None:  # noqa: ANN001
    server = servers.start("auth-ui", env={"RUNYARD_AUTH": "required", "RUNYARD_ADMIN_PASSWORD": ADMIN_PW,
                                           "RUNYARD_SCHEDULER": "0"})
    url = server.url
    # On a server with sign-in, local is for admins only unless backends.yml opens it (allow: with run_as:).
    (server.home / "backends.yml").write_text("local: {type: local, allow: {}, run_as: shared}\n")
    with Client(url) as admin:
        admin.login("admin", ADMIN_PW)
        admin.create_user("alice", ALICE_PW)
        admin.create_user("bob", BOB_PW)
        admin.create_user("carol", "carol-pw-123")
    with Client(url) as alice:
        alice.login("alice", ALICE_PW)
        alice.create_project("vision", description="alice's **vision** models")
        alice.create_project("secret", description="not shared")
        exp = alice.create_experiment("vision", "sweep", {"project": "vision", "command": "python train.py"})  # running
        run = alice.create_run("vision", name="resnet-1", params={"lr": 0.1}, experiment_id=exp["id"])  # running too
        alice.log_metrics(run["id"], ["loss"], [0], [1.0], [time.time()])

        # Not signed in: the app goes to the login page, keeping where alice wanted to go.
        page.goto(f"{url}/projects/vision?sort=created_at%20desc")
        page.wait_for_url(re.compile(r"/login\?next="))
        assert page.url == f"{url}/login?next={quote('/projects/vision?sort=created_at%20desc', safe='')}"
        expect(page.get_by_test_id("user-menu")).to_have_count(0)

        # A wrong password shows the server's message and stays on the login page.
        sign_in(page, "alice", "not-her-password")
        expect(page.get_by_role("alert")).to_contain_text("Wrong username or password")
        assert "/login" in page.url

        # The right one goes back to the project page she asked for.
        sign_in(page, "alice", ALICE_PW)
        page.wait_for_url(f"{url}/projects/vision?sort=created_at%20desc")
        expect(page.get_by_test_id("username")).to_have_text("alice")
        expect(page.get_by_test_id("my-role")).to_have_text("your role: owner")
        sharing = page.get_by_test_id("sharing")
        expect(sharing.get_by_text("Not shared with anyone.")).to_be_visible()

        # Sharing with a user who does not exist shows the server's error and changes nothing.
        sharing.get_by_label("username to share with").fill("nobody")
        sharing.get_by_role("button", name="Share").click()
        expect(sharing.get_by_role("alert")).to_contain_text("No user named 'nobody'")
        assert alice.list_members("vision")["items"] == []

        # Share with bob as viewer (the role select's default is viewer; set it anyway).
        sharing.get_by_label("username to share with").fill("bob")
        sharing.get_by_label("role to give").select_option("viewer")
        sharing.get_by_role("button", name="Share").click()
        expect(sharing.locator('tr[data-member="bob"]')).to_be_visible()
        expect(sharing.get_by_label("role of bob")).to_have_value("viewer")
        assert [(m["username"], m["role"]) for m in alice.list_members("vision")["items"]] == [("bob", "viewer")]

        # carol: added as editor, made owner, then removed.
        sharing.get_by_label("username to share with").fill("carol")
        sharing.get_by_label("role to give").select_option("editor")
        sharing.get_by_role("button", name="Share").click()
        expect(sharing.get_by_label("role of carol")).to_have_value("editor")
        sharing.get_by_label("role of carol").select_option("owner")
        expect(sharing.get_by_role("status")).to_have_text("carol is owner now.")
        assert {m["username"]: m["role"] for m in alice.list_members("vision")["items"]} == {"bob": "viewer", "carol": "owner"}
        sharing.get_by_role("button", name="remove carol").click()
        expect(sharing.locator('tr[data-member="carol"]')).to_have_count(0)
        assert [m["username"] for m in alice.list_members("vision")["items"]] == ["bob"]

        # Visibility: public, then private again.
        sharing.get_by_label("visibility").select_option("public")
        expect(sharing.get_by_role("status")).to_have_text("The project is public now.")
        assert alice.get_project("vision")["visibility"] == "public"
        sharing.get_by_label("visibility").select_option("private")
        expect(sharing.get_by_role("status")).to_have_text("The project is private now.")
        assert alice.get_project("vision")["visibility"] == "private"
        expect(page.get_by_test_id("project-meta")).to_contain_text("visibility: private")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "test_ui_auth_alice_sharing.png"), full_page=True)

        # Sign out: the session ends on the server too, and pages need sign-in again.
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(f"{url}/login")
        expect(page.get_by_test_id("user-menu")).to_have_count(0)
        page.goto(f"{url}/")
        page.wait_for_url(f"{url}/login")

    # bob signs in and sees the project shared with him, and only that one of alice's.
    sign_in(page, "bob", BOB_PW)
    page.wait_for_url(f"{url}/")
    expect(page.get_by_test_id("username")).to_have_text("bob")
    row = page.locator('[data-testid="projects"] tr[data-project="vision"]')
    expect(row).to_contain_text("alice")
    expect(row).to_contain_text("private")
    expect(page.locator('[data-testid="projects"] tr[data-project="secret"]')).to_have_count(0)

    row.get_by_role("link", name="vision").click()
    page.wait_for_url(f"{url}/projects/vision")
    expect(page.get_by_test_id("my-role")).to_have_text("your role: viewer")
    sharing = page.get_by_test_id("sharing")
    expect(sharing.locator('tr[data-member="bob"]')).to_contain_text("viewer")
    expect(sharing.get_by_test_id("project-owner")).to_have_text("alice")
    expect(sharing.get_by_test_id("project-visibility")).to_have_text("private")
    expect(sharing.get_by_role("button", name="Share")).to_have_count(0)
    expect(sharing.get_by_role("combobox")).to_have_count(0)
    # The runs table's cancel button is there but disabled, saying why.
    table_cancel = page.locator(f'[data-testid="run-row"][data-run-id="{run["id"]}"]').get_by_role("button", name="cancel")
    expect(table_cancel).to_be_disabled()
    expect(table_cancel).to_have_attribute("title", re.compile("viewers cannot cancel runs"))

    page.goto(f"{url}/runs/{run['id']}")
    expect(page.locator("h1")).to_contain_text("resnet-1")
    cancel = page.get_by_role("button", name="Cancel run")
    expect(cancel).to_be_disabled()
    expect(cancel).to_have_attribute("title", re.compile("ask an owner of the project for the editor role"))
    page.screenshot(path=str(ARTIFACTS / "test_ui_auth_bob_run.png"), full_page=True)
    page.goto(f"{url}/experiments/{exp['id']}")
    expect(page.get_by_role("button", name="Cancel experiment")).to_be_disabled()

    # A 403 is shown plainly: bob's page loaded while he was an editor, and he is a viewer again
    # by the time he cancels. (The refusal is about his role, not the CSRF header: the UI sent it.)
    with Client(url) as alice:
        alice.login("alice", ALICE_PW)
        alice.share_project("vision", "bob", "editor")
        with page.expect_response(lambda r: r.url.endswith("/api/v1/projects/vision/members")) as members:
            page.goto(f"{url}/runs/{run['id']}")  # the page reads bob's role once, as it opens
        assert [(m["username"], m["role"]) for m in members.value.json()["items"]] == [("bob", "editor")]
        cancel = page.get_by_role("button", name="Cancel run")
        expect(cancel).to_be_enabled()
        alice.share_project("vision", "bob", "viewer")
    cancel.click()
    page.get_by_role("button", name="Yes, cancel run").click()
    expect(page.get_by_role("alert")).to_contain_text("Not allowed: bob is a viewer of project 'vision'; this needs editor.")
    with Client(url) as admin:
        admin.login("admin", ADMIN_PW)
        assert admin.get_run(run["id"])["status"] == "running"
        assert admin.get_experiment(exp["id"])["status"] == "running"
        # bob's session ends while he watches the live run: its next poll's 401 goes to the login page.
        admin.update_user("bob", disabled=True)
    run_path = quote(f"/runs/{run['id']}", safe="")
    page.wait_for_url(f"{url}/login?next={run_path}")
    expect(page.get_by_test_id("user-menu")).to_have_count(0)


def test_local_mode_has_no_sign_in(yard, page) -> None:  # noqa: ANN001
    """The shared server is in single-user local mode (no users): no login redirect, no user menu, no sharing."""
    yard.client.create_project("ui-local-mode", description="local")
    page.goto(f"{yard.url}/projects/ui-local-mode")
    expect(page.get_by_test_id("project-meta")).to_contain_text("visibility: private")
    expect(page.locator("h1")).to_have_text("ui-local-mode")
    assert page.url == f"{yard.url}/projects/ui-local-mode"
    expect(page.get_by_test_id("user-menu")).to_have_count(0)
    expect(page.get_by_test_id("sharing")).to_have_count(0)
    page.goto(f"{yard.url}/login")
    expect(page.get_by_text("single-user local mode")).to_be_visible()
    expect(page.get_by_label("Password")).to_have_count(0)
