"""Helpers of the integrity tests: the CLI in a fresh process, and a project directory with entries a snapshot cannot store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def cli(*args: str, server: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m runyard.cli ARGS`` with this tree first on the path; RUNYARD_SERVER is ``server`` (or none)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(Path(__file__).resolve().parents[2]),
                                                                    os.environ.get("PYTHONPATH", "")) if p)}
    env.pop("RUNYARD_SERVER", None)
    if server:
        env["RUNYARD_SERVER"] = server
    return subprocess.run([sys.executable, "-m", "runyard.cli", *args], capture_output=True, text=True, timeout=120,
                          env=env, cwd=cwd, check=False)


def awkward_project(root: Path, project: str) -> Path:
    """A small grid project with a symlink loop, a broken link, a FIFO, a link to a device and an ignored directory."""
    root.mkdir(parents=True)
    (root / "runyard.yml").write_text(
        f"project: {project}\nname: sweep\ncommand: python train.py --lr {{lr}} --depth {{depth}}\n"
        "params:\n  lr: [0.1, 0.01]\n  depth: [2, 4, 8]\nsearch:\n  algorithm: grid\n  parallel: 2\n"
        "ignore:\n  - data/\n")
    (root / "train.py").write_text("print('hi')\n")
    (root / "data").mkdir()
    (root / "data" / "big.bin").write_bytes(b"\0" * 200_000)
    os.symlink("loop-b", root / "loop-a")
    os.symlink("loop-a", root / "loop-b")
    os.symlink("missing.txt", root / "dangling")
    os.mkfifo(root / "pipe")
    os.symlink("/dev/null", root / "null-device")
    return root
