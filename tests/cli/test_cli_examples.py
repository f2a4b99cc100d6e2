"""Every ``$ runyard ...`` example in the CLI's help texts runs and succeeds against seeded data.

The examples assume the data of the ``fresh_seed`` fixture: project demo, run 1 (succeeded,
with artifacts under model/), run 2 (running) in experiment 1.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

import runyard.cli
from runyard import _local

# Examples that run the server in the foreground: they never return, so they are only parsed.
FOREGROUND = {
    ("server", "--port", "8765"),
    ("server", "--host", "127.0.0.1"),
}

# Experiment commands need a project directory and a scheduling server, which the seeded
# data here lacks; tests/e2e runs them for real. Here they are only parsed.
EXPERIMENT_COMMANDS = {"run", "follow", "rerun", "diff", "validate"}

# Account commands that need a server with users (the seeded one is in local mode) or a
# password prompt: only parsed here. They run against a live server with users in
# tests/auth/test_modes.py::test_cli_login_tokens_share_and_audit (login, tokens create/list,
# admin create-user, projects share) and tests/auth/test_cli_accounts.py (passwd, tokens revoke,
# admin disable/enable/promote/demote/set-password, projects unshare); tokens revoke-run in
# tests/security/test_sec_tokens.py. validate needs a project directory: tests/integrity/test_int_validate.py.
NEEDS_USERS = {("login",), ("passwd",), ("tokens", "create"), ("tokens", "list"), ("tokens", "revoke"), ("tokens", "revoke-run"),
               ("admin", "create-user"), ("admin", "disable"), ("admin", "enable"), ("admin", "promote"),
               ("admin", "demote"), ("admin", "set-password"), ("projects", "share"), ("projects", "unshare")}


# TensorBoard's commands need event files and serve in the foreground: they run for real in
# tests/e2e/test_tensorboard_e2e.py (import, and a TensorBoard stopped by its pid).
NEEDS_EVENT_FILES = {("tensorboard",), ("import", "tensorboard")}


def _parsed_only(args: tuple[str, ...]) -> bool:
    return (args[0] in EXPERIMENT_COMMANDS or args[:1] in NEEDS_USERS or args[:2] in NEEDS_USERS
            or args[:1] in NEEDS_EVENT_FILES or args[:2] in NEEDS_EVENT_FILES)


def _examples() -> list[tuple[dict[str, str], tuple[str, ...]]]:
    from typer.main import get_command

    texts = [runyard.cli.__doc__ or ""]

    def walk(cmd) -> None:
        texts.append(cmd.help or "")
        for sub in getattr(cmd, "commands", {}).values():
            walk(sub)

    walk(get_command(runyard.cli.app))
    found = []
    for text in texts:
        for line in text.splitlines():
            line = line.strip()
            if not line.startswith("$ "):
                continue
            words = shlex.split(line[2:])
            env = {}
            while "=" in words[0]:
                key, value = words.pop(0).split("=", 1)
                env[key] = value
            assert words[0] == "runyard", line
            found.append((env, tuple(words[1:])))
    return found


EXAMPLES = _examples()


def test_every_command_has_an_example() -> None:
    from typer.main import get_command

    commands = set()

    def walk(cmd, path: tuple[str, ...]) -> None:
        subs = getattr(cmd, "commands", {})
        if path and (not subs or getattr(cmd, "invoke_without_command", False)):
            commands.add(path)
        for name, sub in subs.items():
            walk(sub, (*path, name))

    walk(get_command(runyard.cli.app), ())
    covered = {args[: len(c)] for _, args in EXAMPLES for c in commands if args[: len(c)] == c}
    assert commands - covered == set()


@pytest.fixture
def examples_home(fresh_seed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        _local.stop_server()  # `runyard server start` starts the embedded one


def test_examples_run(examples_home: Path, cli) -> None:
    ran = []
    for env, args in EXAMPLES:
        if args in FOREGROUND:
            assert env.keys() <= {"RUNYARD_DATABASE_URL"}
            continue
        if _parsed_only(args):
            continue
        assert env == {}, args
        res = cli(*args)
        assert res.exit_code == 0, f"runyard {shlex.join(args)}:\n{res.output}"
        ran.append(args)
    skipped = sum(1 for _, args in EXAMPLES if _parsed_only(args))
    assert len(ran) == len(EXAMPLES) - len(FOREGROUND) - skipped
    assert (examples_home / "model" / "weights.bin").exists()  # `runyard download 1`
    assert (examples_home / "out" / "model" / "config.json").exists()  # `runyard download 1 model -o out`
