"""The REST API reference in docs/ is generated from OpenAPI and must match the code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_rest_api_reference_is_current() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_api_docs.py"), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr + "\nRegenerate with: .venv/bin/python scripts/gen_api_docs.py"


def test_readme_opens_with_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    first_commands = [line.strip() for line in text.splitlines() if line.strip().startswith("make ")][:2]
    assert first_commands == ["make demo", "make test"]
