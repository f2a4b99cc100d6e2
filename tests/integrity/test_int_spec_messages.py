"""runyard.yml and the CLI around it at the edge: every refusal names the field, the problem and the fix.

Before, a NUL in the command and -p values outside a param's range or choices were accepted and
failed later, {lr:.2f}, {0} and {} were all called a "lone '{'", a 200-character directory name was
blamed on a `name:` key the file does not have, and `runyard init` on a file or unwritable path and
a YAML alias bomb ended in "Unexpected ..., this is a bug".
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from runyard.errors import SpecError
from runyard.spec import load_spec, parse_spec, validate_config

BASE = "project: p\ncommand: {command}\nparams:\n  lr: {{uniform: [0.001, 0.1]}}\n  act: [relu, tanh]\n" \
       "search: {{max_runs: 2}}\n"


def _cli(*args: str) -> Result:
    from runyard.cli import app

    return CliRunner().invoke(app, list(args))


def _error(text: str, **kw: str) -> str:
    with pytest.raises(SpecError) as info:
        parse_spec(text, **kw)
    return info.value.message


def test_nul_in_the_command_names_the_field_and_the_fix() -> None:
    message = _error('project: p\ncommand: "echo a\\0b"\n')
    assert message == ("runyard.yml:2: command holds a NUL character at character 6, which databases cannot store. "
                       "Remove it: a command line cannot carry NUL characters (a program's arguments end at the first one).")
    with pytest.raises(SpecError, match="config: command holds a NUL character"):
        validate_config({"project": "p", "command": "echo a\x00b"})


@pytest.mark.parametrize(("field", "yaml_value", "needle"), [
    ("max_restarts", "100000000000000000000000", "max_restarts must be an integer from -9223372036854775808 to "
                                                 "9223372036854775807 (64 bits), but got 100000000000000000000000. "
                                                 "Use a smaller number."),
    ("max_restarts", "5000", "max_restarts must be at most 1000, but got 5000."),
    ("resources", "{time_limit: 99999999999h}", "resources.time_limit must be at most 3650d (ten years)"),
    ("resources", "{memory: 9999999T}", "resources.memory must be at most 1024T (1 PiB)"),
    ("resources", "{gpus: 100000}", "resources.gpus must be at most 1024"),
    ("search", "{parallel: 100000, max_runs: 2}", "search.parallel must be at most 10000"),
])
def test_numbers_beyond_what_runs_need_are_refused(field: str, yaml_value: str, needle: str) -> None:
    text = "project: p\ncommand: echo {lr}\nparams: {lr: [1, 2]}\n" + f"{field}: {yaml_value}\n"
    assert needle in _error(text)


@pytest.mark.parametrize(("command", "needle"), [
    ("echo {0}", "command has the positional placeholder '{0}' at character 6, but placeholders name a param: "
                 "write e.g. {lr} (or {lr:.2f} to format it)."),
    ("echo {}", "command has the positional placeholder '{}' at character 6"),
    ("echo {act:.2f}", "command uses {act:.2f}, but the format '.2f' cannot format 'relu', a value 'act' may take"),
    ("echo {lr!r}", "command has '{lr!r}' at character 6, which is not a placeholder: placeholders are {name} or "
                    "{name:format}"),
])
def test_placeholder_problems_are_named_for_what_they_are(command: str, needle: str) -> None:
    assert needle in _error(BASE.format(command=command))


def test_format_specs_are_applied() -> None:
    spec = parse_spec(BASE.format(command="python t.py --lr {lr:.2e} --act {act:>6} {{literal}}"))
    assert spec.render_command({"lr": 0.0123456, "act": "relu"}) == "python t.py --lr 1.23e-02 --act '  relu' {literal}"


def test_a_directory_name_too_long_for_a_name_is_blamed_on_the_directory(tmp_path: Path) -> None:
    directory = tmp_path / ("d" * 200)
    directory.mkdir()
    (directory / "runyard.yml").write_text("project: p\ncommand: echo hi\n")
    with pytest.raises(SpecError) as info:
        load_spec(directory)
    message = info.value.message
    assert "the file sets no `name:`, so the experiment is named after its directory" in message
    assert "(200 characters)" in message and "Add e.g. `name: " in message and "or rename the directory" in message
    (directory / "runyard.yml").write_text("project: p\nname: short\ncommand: echo hi\n")
    assert load_spec(directory).name == "short"


def test_a_yaml_alias_bomb_is_refused_quickly() -> None:
    lines = ["project: p", "command: echo hi", 'a: &a ["x","x","x","x","x","x","x","x","x"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    started = time.monotonic()
    message = _error("\n".join(lines) + "\n")
    assert time.monotonic() - started < 5
    assert "holds more than 100000 values once its aliases (*name) are expanded" in message


def test_run_p_values_outside_the_declared_param_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "runyard.yml").write_text(BASE.format(command="echo {lr} {act}"))
    monkeypatch.setenv("RUNYARD_SERVER", "http://127.0.0.1:9")  # never reached: the check comes first
    for arg, message in [
        ("lr=abc", "-p lr=abc: lr must be a number between 0.001 and 0.1, but got 'abc'."),
        ("lr=5", "-p lr=5: lr must be a number between 0.001 and 0.1, but got 5."),
        ("act=sigmoid", "-p act=sigmoid: act must be one of its choices 'relu', 'tanh', but got 'sigmoid'."),
    ]:
        result = _cli("run", str(tmp_path), "-p", arg, "--detach")
        assert result.exit_code != 0
        assert message in result.stderr, result.stderr


def test_init_on_a_file_or_an_unwritable_path_explains(tmp_path: Path) -> None:
    a_file = tmp_path / "train.py"
    a_file.write_text("print(1)\n")
    result = _cli("init", str(a_file))
    assert result.exit_code != 0 and f"{a_file} is a file, not a directory." in result.stderr, result.stderr
    result = _cli("init", str(a_file / "sub"))
    assert f"{a_file} is a file, so the directory {a_file / 'sub'} cannot be created in it." in result.stderr
    result = _cli("init", "/proc/runyard-nope")
    assert "Cannot write /proc/runyard-nope/runyard.yml" in result.stderr and "this is a bug" not in result.stderr
    result = _cli("init", str(tmp_path / "new" / "dir"))
    assert result.exit_code == 0 and (tmp_path / "new" / "dir" / "runyard.yml").is_file()
    result = _cli("init", str(tmp_path / "new" / "dir"))
    assert "already exists" in result.stderr and "--force" in result.stderr
