"""The account commands of the CLI run for real against a live server with users.

``runyard passwd``, ``runyard admin disable/enable/promote/demote/set-password``,
``runyard tokens revoke`` and ``runyard projects unshare``: each command's effect is
checked through the server (the disabled user is refused, the promoted one may act as
an admin...), its output and the audit entry it leaves, and each refuses bad input
with an ``Error:`` line on stderr and exit code 1.

The CLI runs in this process (Typer's CliRunner) with RUNYARD_SERVER and RUNYARD_TOKEN
naming the server and who acts; every user a test needs is created by that test.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from auth_helpers import ADMIN_PW, PASSWORDS, World, call, token_for
from typer.testing import CliRunner, Result

from runyard.cli import app
from runyard.client import Client
from runyard.errors import Conflict, Unauthorized
from runyard.testing import LiveServer

V1 = "/api/v1"


def cli(url: str, token: str | None, *args: str, stdin: str | None = None) -> Result:
    """``runyard ARGS`` as the owner of ``token`` (None: nobody signed in)."""
    env = {"RUNYARD_SERVER": url, "RUNYARD_TOKEN": token or ""}
    return CliRunner().invoke(app, list(args), input=stdin, env=env)


def ok(res: Result) -> str:
    assert res.exit_code == 0, res.output
    assert res.stderr == "", res.stderr
    return res.stdout


def refused(res: Result, message: str) -> str:
    """The command failed with ``Error: ...message...`` on stderr, exit code 1, and nothing on stdout."""
    assert res.exit_code == 1, res.output
    assert res.stderr.startswith("Error: ") and message in res.stderr, res.stderr
    assert res.stdout == ""
    return res.stderr


def new_user(world: World, name: str, password: str, *, is_admin: bool = False) -> str:
    """Create a user as the admin; returns a personal token of theirs."""
    with world.admin() as admin:
        admin.create_user(name, password, is_admin=is_admin)
    return token_for(world.url, name, password)


def can_sign_in(url: str, username: str, password: str) -> bool:
    with Client(url) as c:
        try:
            c.login(username, password)
        except Unauthorized:
            return False
    return True


def newest(world: World, action: str) -> dict:
    with world.admin() as admin:
        return admin.audit(action=action, limit=1)[0]


# -------------------------------------------------------------------- passwd
def test_passwd_changes_your_password(world: World) -> None:
    token = new_user(world, "pat", "pat-pw-1234")
    with httpx.Client(base_url=world.url + V1, timeout=10) as web:  # a web session of pat's, to see it end
        assert web.post("/auth/login", json={"username": "pat", "password": "pat-pw-1234"}).status_code == 200
        assert web.get("/me").status_code == 200

        out = ok(cli(world.url, token, "passwd", "--password-stdin", stdin="pat-pw-1234\nnew-pat-pw-99\n"))

        assert out == "Password changed.\n"
        assert web.get("/me").status_code == 401  # the web session ended
    assert not can_sign_in(world.url, "pat", "pat-pw-1234")
    assert can_sign_in(world.url, "pat", "new-pat-pw-99")
    assert call(world.url, token, "GET", V1 + "/me").status_code == 200  # tokens stay valid
    event = newest(world, "user.password")
    assert (event["actor"], event["target"], event["detail"]) == ("pat", "pat", {"by_admin": False})


def test_passwd_refuses_a_wrong_old_password_a_short_one_and_nobody(world: World) -> None:
    token = new_user(world, "quin", "quin-pw-1234")

    err = refused(cli(world.url, token, "passwd", "--password-stdin", stdin="not-my-pw-1\nquin-new-pw-1\n"),
                  "The old password is wrong.")
    assert "not-my-pw-1" not in err and "quin-new-pw-1" not in err
    refused(cli(world.url, token, "passwd", "--password-stdin", stdin="quin-pw-1234\nshort\n"),
            "Passwords need at least 8 characters.")
    refused(cli(world.url, token, "passwd", "--password-stdin", stdin="quin-pw-1234\n\n"), "--password-stdin got an empty line.")
    err = refused(cli(world.url, None, "passwd", "--password-stdin", stdin="quin-pw-1234\nquin-new-pw-1\n"),
                  "This server requires sign-in.")
    assert "Hint: Run `runyard login URL`" in err
    # None of these changed anything.
    assert can_sign_in(world.url, "quin", "quin-pw-1234")


# ---------------------------------------------------------- disable / enable
def test_admin_disable_stops_a_user_at_once_and_enable_lets_them_back(world: World) -> None:
    token = new_user(world, "rosa", "rosa-pw-1234")
    assert "rosa on " in ok(cli(world.url, token, "whoami"))

    assert ok(cli(world.url, world.tokens["admin"], "admin", "disable", "rosa")) == "rosa disabled.\n"

    refused(cli(world.url, token, "whoami"), "The API token is unknown, expired or revoked.")
    assert not can_sign_in(world.url, "rosa", "rosa-pw-1234")
    users = json.loads(ok(cli(world.url, world.tokens["admin"], "admin", "users", "--json")))
    assert {u["username"]: u["disabled"] for u in users}["rosa"] is True
    row = next(line for line in ok(cli(world.url, world.tokens["admin"], "admin", "users")).splitlines()
               if line.split()[:1] == ["rosa"])
    assert "disabled" in row.split()
    event = newest(world, "user.update")
    assert (event["actor"], event["target"], event["detail"], event["success"]) == ("admin", "rosa", {"disabled": True}, True)

    assert ok(cli(world.url, world.tokens["admin"], "admin", "enable", "rosa")) == "rosa enabled.\n"

    # Disabling ended the tokens for good: enabling lets the user sign in, not the old tokens back.
    refused(cli(world.url, token, "whoami"), "The API token is unknown, expired or revoked.")
    assert can_sign_in(world.url, "rosa", "rosa-pw-1234")
    row = next(line for line in ok(cli(world.url, world.tokens["admin"], "admin", "users")).splitlines()
               if line.split()[:1] == ["rosa"])
    assert "active" in row.split()
    assert newest(world, "user.update")["detail"] == {"disabled": False}


def test_admin_disable_and_enable_refuse_bad_input(world: World) -> None:
    token = new_user(world, "saul", "saul-pw-1234")
    refused(cli(world.url, world.tokens["admin"], "admin", "disable", "nobody"), "No user named 'nobody'.")
    refused(cli(world.url, world.tokens["admin"], "admin", "enable", "nobody"), "No user named 'nobody'.")
    err = refused(cli(world.url, token, "admin", "disable", "alice"), "Only admins may do this, and saul is not one.")
    assert "Hint: Ask an admin" in err
    assert can_sign_in(world.url, "alice", PASSWORDS["alice"])
    res = cli(world.url, world.tokens["admin"], "admin", "disable")
    assert res.exit_code == 2 and "Missing argument 'username'." in res.stderr


# ---------------------------------------------------------- promote / demote
def test_admin_promote_gives_admin_rights_and_demote_takes_them(world: World) -> None:
    token = new_user(world, "tess", "tess-pw-1234")
    refused(cli(world.url, token, "admin", "users"), "Only admins may do this, and tess is not one.")
    refused(cli(world.url, token, "projects", "members", world.project), f"No project named '{world.project}'.")

    assert ok(cli(world.url, world.tokens["admin"], "admin", "promote", "tess")) == "tess is an admin now.\n"

    assert ok(cli(world.url, token, "whoami")).startswith("tess (admin) on ")
    assert "alice" in [u["username"] for u in json.loads(ok(cli(world.url, token, "admin", "users", "--json")))]
    assert "owner alice" in ok(cli(world.url, token, "projects", "members", world.project))  # admins see every project
    row = next(line for line in ok(cli(world.url, world.tokens["admin"], "admin", "users")).splitlines()
               if line.split()[:1] == ["tess"])
    assert "yes" in row.split()
    event = newest(world, "user.update")
    assert (event["actor"], event["target"], event["detail"]) == ("admin", "tess", {"is_admin": True})
    # The new admin acts as one: they create a user, and demote themselves (another admin is left).
    ok(cli(world.url, token, "admin", "create-user", "tess-helper", "--password-stdin", stdin="helper-pw-123\n"))
    assert ok(cli(world.url, token, "admin", "demote", "tess")) == "tess is no longer an admin.\n"

    refused(cli(world.url, token, "admin", "users"), "Only admins may do this, and tess is not one.")
    assert ok(cli(world.url, token, "whoami")).startswith("tess on ")
    event = newest(world, "user.update")
    assert (event["actor"], event["target"], event["detail"]) == ("tess", "tess", {"is_admin": False})


def test_admin_promote_and_demote_refuse_bad_input(world: World) -> None:
    token = new_user(world, "uma", "uma-pw-1234")
    refused(cli(world.url, world.tokens["admin"], "admin", "promote", "nobody"), "No user named 'nobody'.")
    refused(cli(world.url, world.tokens["admin"], "admin", "demote", "nobody"), "No user named 'nobody'.")
    refused(cli(world.url, token, "admin", "promote", "uma"), "Only admins may do this, and uma is not one.")
    refused(cli(world.url, token, "admin", "demote", "admin"), "Only admins may do this, and uma is not one.")
    refused(cli(world.url, world.tokens["run"], "admin", "promote", "uma"), "A run's token may only report to its own run")
    assert ok(cli(world.url, token, "whoami")).startswith("uma on ")


def test_the_last_admin_can_neither_demote_nor_disable_themselves(auth_server: LiveServer) -> None:
    token = token_for(auth_server.url, "admin", ADMIN_PW)
    refused(cli(auth_server.url, token, "admin", "demote", "admin"), "admin is the last enabled admin; the server would have none.")
    err = refused(cli(auth_server.url, token, "admin", "disable", "admin"), "admin is the last enabled admin")
    assert "Hint: Promote another user first." in err
    assert ok(cli(auth_server.url, token, "whoami")).startswith("admin (admin) on ")
    # With a second admin, the first may step down.
    ok(cli(auth_server.url, token, "admin", "create-user", "vic", "--admin", "--password-stdin", stdin="vic-pw-12345\n"))
    assert ok(cli(auth_server.url, token, "admin", "demote", "admin")) == "admin is no longer an admin.\n"
    vic = token_for(auth_server.url, "vic", "vic-pw-12345")
    refused(cli(auth_server.url, vic, "admin", "disable", "vic"), "vic is the last enabled admin")


# -------------------------------------------------------------- set-password
def test_admin_set_password_resets_a_users_password(world: World) -> None:
    token = new_user(world, "walt", "walt-pw-1234")
    with httpx.Client(base_url=world.url + V1, timeout=10) as web:
        assert web.post("/auth/login", json={"username": "walt", "password": "walt-pw-1234"}).status_code == 200

        out = ok(cli(world.url, world.tokens["admin"], "admin", "set-password", "walt", "--password-stdin",
                     stdin="walt-reset-pw-1\n"))

        assert out == "Password of walt reset.\n"
        assert web.get("/me").status_code == 401  # walt's web session ended
    assert not can_sign_in(world.url, "walt", "walt-pw-1234")
    assert can_sign_in(world.url, "walt", "walt-reset-pw-1")
    assert call(world.url, token, "GET", V1 + "/me").status_code == 200
    event = newest(world, "user.password")
    assert (event["actor"], event["target"], event["detail"]) == ("admin", "walt", {"by_admin": True})
    assert "walt-reset-pw-1" not in json.dumps(event)


def test_admin_set_password_refuses_bad_input(world: World) -> None:
    token = new_user(world, "xena", "xena-pw-1234")
    admin = world.tokens["admin"]
    refused(cli(world.url, admin, "admin", "set-password", "nobody", "--password-stdin", stdin="nobody-pw-123\n"),
            "No user named 'nobody'.")
    err = refused(cli(world.url, admin, "admin", "set-password", "xena", "--password-stdin", stdin="tiny-pw\n"),
                  "Passwords need at least 8 characters.")
    assert "tiny-pw" not in err
    refused(cli(world.url, admin, "admin", "set-password", "xena", "--password-stdin", stdin="\n"),
            "--password-stdin got an empty line.")
    refused(cli(world.url, token, "admin", "set-password", "alice", "--password-stdin", stdin="hijacked-pw-1\n"),
            "You may change only your own password.")
    assert can_sign_in(world.url, "xena", "xena-pw-1234") and can_sign_in(world.url, "alice", PASSWORDS["alice"])
    # Your own password is changed with `runyard passwd`, which asks for the old one.
    err = refused(cli(world.url, admin, "admin", "set-password", "admin", "--password-stdin", stdin="admin-new-pw-1\n"),
                  "`runyard admin set-password` resets other users' passwords")
    assert "Hint: Change your own with `runyard passwd`" in err
    assert can_sign_in(world.url, "admin", ADMIN_PW)


# ------------------------------------------------------------- tokens revoke
def test_tokens_revoke_ends_a_token_at_once(world: World) -> None:
    new_user(world, "yuri", "yuri-pw-1234")
    keep = token_for(world.url, "yuri", "yuri-pw-1234")
    doomed = token_for(world.url, "yuri", "yuri-pw-1234")
    with Client(world.url, doomed) as c:
        doomed_id = c.me()["token_id"]
    assert ok(cli(world.url, doomed, "whoami")).startswith("yuri on ")

    assert ok(cli(world.url, keep, "tokens", "revoke", str(doomed_id))) == f"Token {doomed_id} revoked.\n"

    refused(cli(world.url, doomed, "whoami"), "The API token is unknown, expired or revoked.")
    assert call(world.url, doomed, "GET", V1 + "/me").status_code == 401
    items = {t["id"]: t for t in json.loads(ok(cli(world.url, keep, "tokens", "list", "--json")))}
    assert items[doomed_id]["revoked_at"] is not None
    assert items[_token_id(world.url, keep)]["revoked_at"] is None
    row = next(line for line in ok(cli(world.url, keep, "tokens", "list")).splitlines() if line.split()[:1] == [str(doomed_id)])
    assert row.split()[-1] == "revoked"
    event = newest(world, "token.revoke")
    assert (event["actor"], event["target"], event["detail"], event["success"]) == ("yuri", f"token:{doomed_id}",
                                                                                    {"owner": "yuri"}, True)
    # An admin may revoke anyone's personal token.
    keep_id = _token_id(world.url, keep)
    assert ok(cli(world.url, world.tokens["admin"], "tokens", "revoke", str(keep_id))) == f"Token {keep_id} revoked.\n"
    refused(cli(world.url, keep, "whoami"), "unknown, expired or revoked")
    event = newest(world, "token.revoke")
    assert (event["actor"], event["target"], event["detail"]) == ("admin", f"token:{keep_id}", {"owner": "yuri"})


def _token_id(url: str, token: str) -> int:
    with Client(url, token) as c:
        return c.me()["token_id"]


def test_tokens_revoke_refuses_bad_input(world: World) -> None:
    token = new_user(world, "zack", "zack-pw-1234")
    refused(cli(world.url, token, "tokens", "revoke", "999999"), "No token with id 999999.")
    # Another user's token answers like a missing one, and keeps working.
    alices = _token_id(world.url, world.tokens["owner"])
    refused(cli(world.url, token, "tokens", "revoke", str(alices)), f"No token with id {alices}.")
    assert call(world.url, world.tokens["owner"], "GET", V1 + "/me").status_code == 200
    res = cli(world.url, token, "tokens", "revoke", "three")
    assert res.exit_code == 2 and "Invalid value for 'token_id'" in res.stderr
    refused(cli(world.url, None, "tokens", "revoke", "1"), "This server requires sign-in.")
    assert ok(cli(world.url, token, "whoami")).startswith("zack on ")


# ---------------------------------------------------------- projects unshare
def test_projects_unshare_takes_access_away(world: World) -> None:
    alice = world.tokens["owner"]
    friend = new_user(world, "amos", "amos-pw-1234")
    ok(cli(world.url, alice, "projects", "create", "cli-shared"))
    ok(cli(world.url, alice, "projects", "share", "cli-shared", "amos", "--role", "editor"))
    assert "cli-shared" in [p["name"] for p in json.loads(ok(cli(world.url, friend, "projects", "--json")))]
    assert "amos  editor" in ok(cli(world.url, friend, "projects", "members", "cli-shared"))

    out = ok(cli(world.url, alice, "projects", "unshare", "cli-shared", "amos"))

    assert out == "amos is no longer a member of cli-shared.\n"
    refused(cli(world.url, friend, "projects", "members", "cli-shared"), "No project named 'cli-shared'.")
    assert "cli-shared" not in [p["name"] for p in json.loads(ok(cli(world.url, friend, "projects", "--json")))]
    # Creating in it answers as for any taken name: whether a private project exists is not told.
    with Client(world.url, friend) as c, pytest.raises(Conflict, match="'cli-shared' cannot be created: the name is taken"):
        c.create_run("cli-shared")
    members = json.loads(ok(cli(world.url, alice, "projects", "members", "cli-shared", "--json")))
    assert (members["owner"], members["items"]) == ("alice", [])
    assert ok(cli(world.url, alice, "projects", "members", "cli-shared")).endswith("  no members\n")
    event = newest(world, "project.unshare")
    assert (event["actor"], event["target"], event["detail"]) == ("alice", "cli-shared", {"user": "amos"})


def test_projects_unshare_refuses_bad_input(world: World) -> None:
    alice, bob = world.tokens["owner"], world.tokens["editor"]
    # A name no user has answers as a user who is not a member: usernames are not told.
    refused(cli(world.url, alice, "projects", "unshare", world.project, "nobody"),
            f"nobody is not a member of project '{world.project}'.")
    refused(cli(world.url, alice, "projects", "unshare", world.project, "dave"),
            f"dave is not a member of project '{world.project}'.")
    refused(cli(world.url, alice, "projects", "unshare", "no-such-project", "bob"), "No project named 'no-such-project'.")
    # Only owners unshare: the editor may not, and a stranger does not even see the project.
    refused(cli(world.url, bob, "projects", "unshare", world.project, "carol"),
            f"bob is an editor of project '{world.project}'; this needs owner.")
    refused(cli(world.url, world.tokens["stranger"], "projects", "unshare", world.project, "carol"),
            f"No project named '{world.project}'.")
    assert "carol  viewer" in ok(cli(world.url, alice, "projects", "members", world.project))


# ---------------------------------------------------------------------- audit
def test_admin_audit_shows_revoke_disable_and_promote(world: World) -> None:
    token = new_user(world, "ben", "ben-pw-12345")
    tid = _token_id(world.url, token)
    admin = world.tokens["admin"]
    ok(cli(world.url, token, "tokens", "revoke", str(tid)))
    ok(cli(world.url, admin, "admin", "promote", "ben"))
    ok(cli(world.url, admin, "admin", "demote", "ben"))
    ok(cli(world.url, admin, "admin", "disable", "ben"))

    events = json.loads(ok(cli(world.url, admin, "admin", "audit", "--json", "--limit", "4")))
    assert [(e["actor"], e["action"], e["target"], e["detail"]) for e in events] == [
        ("admin", "user.update", "ben", {"disabled": True}),
        ("admin", "user.update", "ben", {"is_admin": False}),
        ("admin", "user.update", "ben", {"is_admin": True}),
        ("ben", "token.revoke", f"token:{tid}", {"owner": "ben"}),
    ]
    assert all(e["success"] and e["address"] == "127.0.0.1" for e in events)
    revokes = json.loads(ok(cli(world.url, admin, "admin", "audit", "--json", "--action", "token.revoke", "--actor", "ben")))
    assert [e["target"] for e in revokes] == [f"token:{tid}"]
    table = ok(cli(world.url, admin, "admin", "audit", "--limit", "4")).splitlines()
    assert table[0].split() == ["TIME", "ACTOR", "ACTION", "TARGET", "ADDRESS", "OK", "DETAIL"]
    assert [row.split()[2:] for row in table[1:]] == [
        ["admin", "user.update", "ben", "127.0.0.1", "yes", "disabled=True"],
        ["admin", "user.update", "ben", "127.0.0.1", "yes", "is_admin=False"],
        ["admin", "user.update", "ben", "127.0.0.1", "yes", "is_admin=True"],
        ["ben", "token.revoke", f"token:{tid}", "127.0.0.1", "yes", "owner=ben"],
    ]
    # The same through the API, and not for non-admins.
    with world.admin() as c:
        assert [e["detail"] for e in c.audit(action="user.update", actor="admin", limit=3)] == [
            {"disabled": True}, {"is_admin": False}, {"is_admin": True}]
    refused(cli(world.url, world.tokens["owner"], "admin", "audit"), "Only admins may do this, and alice is not one.")


# -------------------------------------------------------------------- secrets
def test_cli_errors_never_echo_a_password_or_token(world: World, runyard_home: Path) -> None:
    wrong_pw = "wrong-" + PASSWORDS["alice"]
    res = CliRunner().invoke(app, ["login", world.url, "-u", "alice", "--password-stdin"], input=wrong_pw + "\n")
    refused(res, "Wrong username or password, or the account is disabled.")
    assert wrong_pw not in res.output and PASSWORDS["alice"] not in res.output
    for token in (world.tokens["revoked"], world.tokens["expired"], "ryp_" + "x" * 43):
        for debug in ([], ["--debug"]):
            res = CliRunner().invoke(app, [*debug, "login", world.url, "--token", token])
            assert res.exit_code == 1 and "The API token is unknown, expired or revoked." in res.stderr, res.output
            assert token not in res.output
            res = cli(world.url, token, *debug, "whoami")
            assert res.exit_code == 1 and "unknown, expired or revoked" in res.stderr
            assert token not in res.output
    # A run's token is refused by `login --token` without being shown.
    res = CliRunner().invoke(app, ["login", world.url, "--token", world.tokens["run"]])
    assert res.exit_code == 1 and world.tokens["run"] not in res.output
    # Passwords refused by the server are not echoed either.
    res = cli(world.url, world.tokens["admin"], "admin", "create-user", "newbie", "--password-stdin", stdin="sh0rt\n")
    refused(res, "at least 8 characters")
    assert "sh0rt" not in res.output
    res = cli(world.url, world.tokens["owner"], "passwd", "--password-stdin", stdin=wrong_pw + "\nalice-next-pw-1\n")
    refused(res, "The old password is wrong.")
    assert wrong_pw not in res.output and "alice-next-pw-1" not in res.output
    assert not (runyard_home / "credentials").exists()  # no failed login saved anything
