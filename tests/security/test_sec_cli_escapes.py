"""The CLI never writes a server's text raw to the terminal: control characters and bidi overrides show as escapes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from raw_http import V1, raw

from runyard.cli._output import console, safe
from runyard.client import Client
from runyard.testing import LiveServer
from runyard.testing.pytest_plugin import LiveServers

ADMIN_PW = "admin-pw-0123456789"
# Clear the screen, set the window title, ring the bell, move the cursor up, reverse the text that follows.
EVIL = "mallory\x1b[2J\x1b]0;owned\x07\x1b[1A\u202egnp.exe\x9b31m"


@pytest.mark.parametrize(("text", "shown"), [
    ("plain text", "plain text"),
    ("tab\tand\nnewline", "tab\tand\nnewline"),
    ("\x1b[31mred", "\\x1b[31mred"),
    ("bell\x07 cr\r del\x7f", "bell\\x07 cr\\x0d del\\x7f"),
    ("csi\x9b", "csi\\x9b"),
    ("rlo\u202e lri\u2067 rlm\u200f", "rlo\\u202e lri\\u2067 rlm\\u200f"),
    ("ünïcödé ✓", "ünïcödé ✓"),
])
def test_safe(text: str, shown: str) -> None:
    assert safe(text) == shown
    assert safe(safe(text)) == safe(text)


def test_rich_tables_and_messages_are_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table()
    table.add_column("NAME")
    table.add_row(EVIL)
    table.add_row(Text("text\x1b[2J"))
    console().print(table)
    console().print(f"Run of {EVIL} done", markup=False)
    console().out("log line \x1b]8;;http://evil/\x1b\\link")
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out and "\x9b" not in out and "\x07" not in out
    assert "mallory\\x1b[2J\\x1b]0;owned" in out and "\\u202e" in out


@pytest.fixture(scope="module")
def team(module_live_servers: LiveServers) -> LiveServer:
    return module_live_servers.start("cli-escapes", env={"RUNYARD_AUTH": "required", "RUNYARD_ADMIN_PASSWORD": ADMIN_PW,
                                                          "RUNYARD_SCHEDULER": "0"})


def test_admin_audit_escapes_a_username(team: LiveServer, tmp_path: os.PathLike[str]) -> None:
    # Anyone may try to sign in: the attempted username lands in the audit log as sent.
    status, _, _ = raw(team, "POST", V1 + "/auth/login", json.dumps({"username": EVIL, "password": "x" * 12}).encode(),
                       {"Content-Type": "application/json"})
    assert status == 401
    with Client(team.url) as c:
        c.login("admin", ADMIN_PW)
        token = c.create_token("cli")["token"]
    env = {**os.environ, "RUNYARD_SERVER": team.url, "RUNYARD_TOKEN": token, "RUNYARD_HOME": str(tmp_path),
           "COLUMNS": "300"}
    table = subprocess.run([sys.executable, "-m", "runyard.cli", "admin", "audit", "--action", "login"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert table.returncode == 0, table.stderr
    assert "\x1b" not in table.stdout and "\u202e" not in table.stdout and "\x07" not in table.stdout
    assert "mallory\\x1b[2J\\x1b]0;owned\\x07\\x1b[1A\\u202egnp.exe\\x9b31m" in table.stdout
    # --json stays exact: the same string, escaped the JSON way.
    as_json = subprocess.run([sys.executable, "-m", "runyard.cli", "admin", "audit", "--action", "login", "--json"], env=env,
                             capture_output=True, text=True, timeout=120)
    assert as_json.returncode == 0, as_json.stderr
    assert "\x1b" not in as_json.stdout
    assert EVIL in [e["actor"] for e in json.loads(as_json.stdout)]
