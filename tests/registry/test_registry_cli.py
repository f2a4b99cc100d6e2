"""``runyard models``: register, ls, show, alias, archive, unarchive and download against a real server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from runyard.client import Client
from runyard.testing import LiveServer

WEIGHTS = bytes(range(256)) * 100


def cli(*args: str) -> Result:
    from runyard.cli import app

    return CliRunner().invoke(app, list(args))


@pytest.fixture
def run_id(registry_server: LiveServer, client: Client, project: str, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("RUNYARD_SERVER", registry_server.url)
    run = client.create_run(project, name="train")["id"]
    client.upload_artifact(run, "model/weights.bin", WEIGHTS)
    client.upload_artifact(run, "model/sub/config.json", b'{"k": 1}')
    client.upload_artifact(run, "report.txt", b"acc 0.9\n")
    return int(run)


def test_register_list_show_alias_archive(project: str, run_id: int) -> None:
    res = cli("models", "register", str(run_id), "model", "--name", "digits", "--flavor", "sklearn",
              "--description", "first one")  # the project: the run's own
    assert res.exit_code == 0, res.output
    assert "Registered digits version 1 (2 files" in res.output and f"models:/{project}/digits/1" in res.output
    res = cli("models", "register", str(run_id), "report.txt", "--name", "digits", "-p", project, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["version"] == 2

    res = cli("models", "ls", "-p", project)
    assert res.exit_code == 0 and "digits" in res.output and "first one" not in res.output  # the model has no description
    listed = json.loads(cli("models", "ls", "--project", project, "--json").stdout)
    assert [(m["name"], m["n_versions"], m["latest_version"]) for m in listed] == [("digits", 2, 2)]

    assert cli("models", "alias", "digits", "production", "1", "-p", project).output.strip() == \
        "digits@production now names version 1."
    assert cli("models", "alias", "digits", "production", "2", "-p", project).output.strip() == \
        "digits@production moved from version 1 to 2."
    assert "names version 2 already" in cli("models", "alias", "digits", "production", "2", "-p", project).output
    res = cli("models", "alias", "digits", "production", "--delete", "-p", project)
    assert res.output.strip() == "Removed alias production of digits (it named version 2)."
    cli("models", "alias", "digits", "staging", "1", "-p", project)

    res = cli("models", "show", f"{project}/digits")
    assert res.exit_code == 0, res.output
    for text in ("versions", "alias history", "staging", "sklearn", "removed", "local", "first one"):
        assert text in res.output, (text, res.output)
    shown = json.loads(cli("models", "show", "digits", "-p", project, "--json").stdout)
    assert [(e["alias"], e["from_version"], e["to_version"], e["actor"]) for e in shown["alias_history"]] == [
        ("production", None, 1, "local"), ("production", 1, 2, "local"), ("production", 2, None, "local"),
        ("staging", None, 1, "local")]
    version = json.loads(cli("models", "show", "digits@staging", "-p", project, "--json").stdout)
    assert (version["version"], sorted(f[0] for f in version["files"])) == (1, ["sub/config.json", "weights.bin"])
    res = cli("models", "show", "digits/1", "-p", project)
    assert "weights.bin" in res.output and "staging" in res.output
    assert json.loads(cli("models", "show", "digits/latest", "-p", project, "--json").stdout)["version"] == 2

    res = cli("models", "archive", "digits", "1", "-p", project)
    assert res.exit_code == 1 and "alias(es) staging name it" in res.output and "Hint:" in res.output
    assert cli("models", "archive", "digits", "2", "-p", project).output.strip() == "digits version 2 is archived."
    assert json.loads(cli("models", "show", "digits/latest", "-p", project, "--json").stdout)["version"] == 1
    assert json.loads(cli("models", "unarchive", "digits", "2", "-p", project, "--json").stdout)["status"] == "ready"


def test_download_materialises_the_version(project: str, run_id: int, tmp_path: Path) -> None:
    assert cli("models", "register", str(run_id), "model", "--name", "digits", "-p", project).exit_code == 0
    cli("models", "alias", "digits", "production", "1", "-p", project)
    dest = tmp_path / "out"
    res = cli("models", "download", f"models:/{project}/digits@production", str(dest))
    assert res.exit_code == 0, res.output
    assert "Downloaded" in res.output and "2 files" in res.output
    assert (dest / "weights.bin").read_bytes() == WEIGHTS
    assert (dest / "sub" / "config.json").read_bytes() == b'{"k": 1}'
    # A directory with files in it is refused unless --force.
    res = cli("models", "download", "models:/digits/1", str(dest), "-p", project)
    assert res.exit_code == 1 and "is not empty" in res.output and "--force" in res.output
    (dest / "weights.bin").write_bytes(b"edited")
    assert cli("models", "download", "models:/digits/1", str(dest), "-p", project, "--force").exit_code == 0
    assert (dest / "weights.bin").read_bytes() == WEIGHTS


@pytest.mark.parametrize(("args", "message"), [
    (("models", "ls"), "No project given"),
    (("models", "show", "digits"), "No project given"),
    (("models", "show", "\ud800", "-p", "x"), "unpaired surrogate"),
    (("models", "show", "a" * 10_000, "-p", "x"), "longer than 512 characters"),
    (("models", "show", "../x"), "the project '..' must be"),
    (("models", "download", "runs:/1/model", "d", "-p", "x"), "does not start with 'models:/'"),
    (("models", "download", "models:/", "d", "-p", "x"), "names no model"),
    (("models", "alias", "digits", "production", "-p", "x"), "either the VERSION"),
    (("models", "alias", "digits", "production", "1", "--delete", "-p", "x"), "either the VERSION"),
    (("models", "alias", "digits/3", "production", "1", "-p", "x"), "names a version"),
    (("models", "register", "1", "model", "--name", "d", "--flavor", "keras", "-p", "x"), "Unknown flavor"),
])
def test_bad_input_prints_error_and_hint(registry_server: LiveServer, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...],
                                         message: str) -> None:
    monkeypatch.setenv("RUNYARD_SERVER", registry_server.url)
    monkeypatch.delenv("RUNYARD_PROJECT", raising=False)
    res = cli(*args)
    assert res.exit_code == 1, res.output
    assert message in res.output and "Hint:" in res.output and "Traceback" not in res.output


def test_the_project_comes_from_runyard_project(project: str, run_id: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNYARD_PROJECT", project)
    assert cli("models", "register", str(run_id), "model", "--name", "m").exit_code == 0
    assert [m["name"] for m in json.loads(cli("models", "ls", "--json").stdout)] == ["m"]
    res = cli("models", "ls", "-p", "no-such-project")
    assert res.exit_code == 1 and "No project named 'no-such-project'" in res.output
