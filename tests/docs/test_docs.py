"""Generated references in docs/ must match the code; the README opens with the two commands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_references_are_current() -> None:
    """docs/rest-api.md (OpenAPI) and docs/cli.md (Typer help) match the code."""
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_docs.py"), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr + "\nRegenerate with: .venv/bin/python scripts/gen_docs.py"


def test_readme_opens_with_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    first_commands = [line.strip() for line in text.splitlines() if line.strip().startswith("make ")][:2]
    assert first_commands == ["make demo", "make test"]
