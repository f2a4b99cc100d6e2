"""Golden files: a rendered text (a script, a command line, a manifest) compared with the one checked in.

``check_golden(path, text, what, test_file)`` fails with both texts and the command that accepts an
intended change: ``RUNYARD_UPDATE_GOLDEN=1 .venv/bin/python -m pytest TEST_FILE``, which writes the
rendered text into the golden file (review it with ``git diff``).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["check_golden"]


def check_golden(golden: Path, text: str, what: str, test_file: str) -> None:
    """Assert ``text`` equals the golden file ``golden`` (or write it, with ``RUNYARD_UPDATE_GOLDEN=1``)."""
    if os.environ.get("RUNYARD_UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert golden.exists(), f"{golden} is missing. Create it: RUNYARD_UPDATE_GOLDEN=1 pytest {test_file}"
    expected = golden.read_text()
    assert text == expected, (
        f"{what} differs from {golden}.\n--- expected\n{expected}\n--- rendered\n{text}\n"
        f"If the change is intended, accept it: RUNYARD_UPDATE_GOLDEN=1 .venv/bin/python -m pytest {test_file} "
        f"and review `git diff {golden.parent}`.")
