"""Local single-user mode, required sign-in off loopback, the first admin, and the CLI's credentials."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from auth_helpers import ADMIN_PW
from typer.testing import CliRunner

from runyard.cli import app
from runyard.client import Client
from runyard.errors import RunyardError
from runyard.server._auth import is_loopback
from runyard.server._serve import auth_mode_for
from runyard.testing import LiveServer


def test_loopback_detection() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "::1", "localhost", "127.0.0.2"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.5", "example.org"))


def test_modes_by_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNYARD_AUTH", raising=False)
    assert auth_mode_for("127.0.0.1") == "auto"
    assert auth_mode_for("0.0.0.0") == "required"
    monkeypatch.setenv("RUNYARD_AUTH", "off")
    assert auth_mode_for("127.0.0.1") == "off"
    with pytest.raises(RunyardError, match="Refusing to serve on 0.0.0.0 without sign-in"):
        auth_mode_for("0.0.0.0")
    monkeypatch.setenv("RUNYARD_AUTH", "maybe")
    with pytest.raises(RunyardError, match="Unknown auth mode 'maybe'"):
        auth_mode_for("127.0.0.1")


def test_server_off_loopback_refuses_to_start_without_auth(tmp_path: Path) -> None:
    env = {**os.environ, "RUNYARD_HOME": str(tmp_path), "RUNYARD_AUTH": "off"}
    proc = subprocess.run([sys.executable, "-m", "runyard.server", "--host", "0.0.0.0", "--port", "1"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "Refusing to serve on 0.0.0.0" in proc.stderr


def test_first_admin_password_is_generated_once_and_kept_out_of_the_log(tmp_path: Path) -> None:
    env = {"RUNYARD_AUTH": "required", "RUNYARD_SCHEDULER": "0", "RUNYARD_ADMIN_PASSWORD": ""}
    with LiveServer(tmp_path / "home", env=env) as server:
        secret_file = server.home / "initial-admin-password"
        password = secret_file.read_text().strip()
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600 and len(password) >= 16
        assert password not in server.log_path.read_text() and str(secret_file) in server.log_path.read_text()
        with Client(server.url) as c:
            assert c.login("admin", password)["user"]["is_admin"] is True
    # A restart creates no second admin and keeps the password.
    with LiveServer(tmp_path / "home", env=env) as server, Client(server.url) as c:
        c.login("admin", password)
        assert [u["username"] for u in c.list_users()] == ["admin"]


def test_local_mode_until_the_first_user(live_server: LiveServer) -> None:
    with Client(live_server.url) as c:
        me = c.me()
        assert (me["mode"], me["kind"], me["is_admin"]) == ("local", "local", True)
        c.create_project("mine")
        c.create_user("root", "root-pw-123", is_admin=True)
        with pytest.raises(RunyardError, match="requires sign-in"):
            c.list_projects()
        c.login("root", "root-pw-123")
        assert c.me()["mode"] == "auth"
        assert "mine" in [p["name"] for p in c.list_projects()]  # admins see projects from local mode


def test_cli_login_tokens_share_and_audit(tmp_path: Path, runyard_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    env = {"RUNYARD_AUTH": "required", "RUNYARD_ADMIN_PASSWORD": ADMIN_PW, "RUNYARD_SCHEDULER": "0"}
    with LiveServer(tmp_path / "srv", env=env) as server:
        res = runner.invoke(app, ["login", server.url, "-u", "admin", "--password-stdin"], input=ADMIN_PW + "\n")
        assert res.exit_code == 0, res.output
        creds = runyard_home / "credentials"
        assert stat.S_IMODE(creds.stat().st_mode) == 0o600 and ADMIN_PW not in creds.read_text()
        monkeypatch.setenv("RUNYARD_SERVER", server.url)  # the saved token is used for that same URL
        assert "admin (admin)" in runner.invoke(app, ["whoami"]).output
        res = runner.invoke(app, ["admin", "create-user", "bob", "--password-stdin"], input="bob-pw-1234\n")
        assert res.exit_code == 0, res.output
        assert runner.invoke(app, ["projects", "create", "shared"]).exit_code == 0
        res = runner.invoke(app, ["projects", "share", "shared", "bob", "--role", "editor"])
        assert res.exit_code == 0 and "as editor" in res.output
        assert "bob  editor" in runner.invoke(app, ["projects", "members", "shared"]).output
        res = runner.invoke(app, ["projects", "share", "shared", "bob", "--role", "boss"])
        assert res.exit_code == 1 and "Unknown role 'boss'" in res.output
        res = runner.invoke(app, ["tokens", "create", "--name", "ci", "--json"])
        assert res.exit_code == 0 and '"token": "ryp_' in res.output
        assert "ci" in runner.invoke(app, ["tokens", "list"]).output
        res = runner.invoke(app, ["admin", "audit", "--json"])
        assert res.exit_code == 0
        actions = {e["action"] for e in __import__("json").loads(res.output)}
        assert {"login", "token.create", "user.create", "project.share"} <= actions
        assert ADMIN_PW not in res.output and "bob-pw-1234" not in res.output
        monkeypatch.setenv("RUNYARD_TOKEN", "ryp_not-a-token")  # RUNYARD_TOKEN overrides the saved one
        res = runner.invoke(app, ["whoami"])
        assert res.exit_code == 1 and "unknown, expired or revoked" in res.output
        monkeypatch.delenv("RUNYARD_TOKEN")
        assert runner.invoke(app, ["logout"]).exit_code == 0
        assert not creds.exists()
