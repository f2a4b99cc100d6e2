"""ruff and mypy as tests (their configuration is in pyproject.toml), so `make test` and `make test-fast` run them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=300,
                          check=False)


def test_ruff_finds_nothing() -> None:
    res = _run("ruff", "check", "--no-cache", "runyard", "tests", "benchmarks")
    assert res.returncode == 0, (
        f"`ruff check runyard tests benchmarks` found problems (rules: [tool.ruff] in pyproject.toml; "
        f"`ruff check --fix` fixes the ones marked [*]):\n{res.stdout}{res.stderr}")


def test_mypy_passes_on_the_typed_seams() -> None:
    res = _run("mypy")
    assert res.returncode == 0, (
        "mypy failed on the typed seams (runyard.spec, runyard.launch, runyard.client; [tool.mypy] in "
        f"pyproject.toml):\n{res.stdout}{res.stderr}")
