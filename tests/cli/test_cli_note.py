"""`runyard note` sets, appends, prints and clears a run's note; `runyard info` shows it; bad input is refused."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

Invoke = Callable[..., Any]  # the `cli` fixture of tests/cli/conftest.py: cli("info", "1") -> typer's Result


def test_note_set_append_print_and_info(fresh_seed: Any, cli: Invoke, tmp_path: Path) -> None:
    run = str(fresh_seed.done)
    res = cli("note", run, "# Baseline\n\nlr **0.1** \x1b[31mred")
    assert res.exit_code == 0, res.output
    assert f"Run {run}: note saved" in res.stdout
    assert cli("note", run, "Plateau after epoch 3.", "--append").exit_code == 0
    shown = cli("note", run).stdout
    assert "# Baseline\n\nlr **0.1** \\x1b[31mred\n\nPlateau after epoch 3." in shown  # control characters escaped
    info = cli("info", run).stdout
    assert "Note (local, " in info and "  Plateau after epoch 3." in info
    data = json.loads(cli("info", run, "--json").stdout)
    assert data["note"]["text"].endswith("Plateau after epoch 3.") and data["note"]["updated_by"] == "local"
    notes = tmp_path / "notes.md"
    notes.write_text("from a file ✓\n", encoding="utf-8")
    assert cli("note", run, "--file", str(notes)).exit_code == 0
    assert json.loads(cli("note", run, "--json").stdout)["text"] == "from a file ✓\n"
    assert cli("note", run, "").exit_code == 0  # clears it
    assert "has no note" in cli("note", run).stdout
    assert "Note" not in cli("info", run).stdout


def test_note_bad_input(fresh_seed: Any, cli: Invoke, tmp_path: Path) -> None:
    run = str(fresh_seed.done)
    for args, words in [
        ((run, "a\x00b"), "NUL"),
        ((run, "x" * 100_001), "at most 100,000 characters"),
        ((run, "t", "--file", "x.md"), "not both"),
        ((run, "--file", str(tmp_path / "missing.md")), "Cannot read the note"),
        (("999999", "x"), "999999"),
    ]:
        res = cli("note", *args)
        assert res.exit_code != 0 and words in res.output, (args[:2], res.output)
    latin1 = tmp_path / "latin1.md"
    latin1.write_bytes(b"caf\xe9")
    res = cli("note", run, "--file", str(latin1))
    assert res.exit_code != 0 and "is not UTF-8 text" in res.output
    assert "Traceback" not in res.output
