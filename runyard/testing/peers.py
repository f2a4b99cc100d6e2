"""The peers' virtualenv (MLflow and scikit-learn, never in Runyard's own) and running client scripts in it.

``benchmarks/setup_peers.sh`` makes the virtualenv (``PEERS_VENV``, default ``.venv-peers`` at the
repository root) and does nothing when the pinned versions are there. Tests run one script per
scenario in one subprocess: importing ``mlflow`` alone takes seconds.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import threading
from pathlib import Path
from typing import Any

__all__ = ["ensure_peers", "peers_venv", "run_peer_script"]

ROOT = Path(__file__).resolve().parents[2]
_LOCK = threading.Lock()


def peers_venv() -> Path:
    """Where the peers' virtualenv is: PEERS_VENV (relative to the repository root), else ``.venv-peers``."""
    venv = Path(os.environ.get("PEERS_VENV", ".venv-peers"))
    return venv if venv.is_absolute() else ROOT / venv


def ensure_peers(timeout_s: float = 1200) -> Path:
    """Run ``benchmarks/setup_peers.sh`` (idempotent: seconds when it is done) and return the venv's python.

    Raises:
        RuntimeError: the setup failed; its output says why (no network, no ``python3 -m venv``...).
    """
    venv = peers_venv()
    venv.parent.mkdir(parents=True, exist_ok=True)
    # One setup at a time, across pytest-xdist workers too (a file lock beside the venv).
    with _LOCK, open(venv.parent / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        env = {**os.environ, "PEERS_VENV": str(venv)}
        res = subprocess.run(["bash", str(ROOT / "benchmarks" / "setup_peers.sh")], env=env, capture_output=True, text=True,
                             timeout=timeout_s, check=False)
        if res.returncode != 0:
            raise RuntimeError(f"benchmarks/setup_peers.sh failed ({res.returncode}):\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}\n"
                               "Run `make test-peers` to see it; it needs network access to PyPI once.")
    return peers_venv() / "bin" / "python"


def run_peer_script(python: Path, code: str, *, env: dict[str, str], cwd: Path, timeout_s: float = 300) -> Any:
    """Run ``code`` with the peers' python; it prints one JSON value on its last line of output, returned here.

    ``env`` is added to a clean environment (no RUNYARD_* or MLFLOW_* variables of this process).
    """
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RUNYARD_", "MLFLOW_", "PYTHON"))}
    script = cwd / "client_script.py"
    script.write_text(code)
    res = subprocess.run([str(python), str(script)], env={**base, **env}, cwd=cwd, capture_output=True, text=True,
                         timeout=timeout_s, check=False)
    lines = [line for line in res.stdout.splitlines() if line.strip()]
    if res.returncode != 0 or not lines:
        raise AssertionError(f"client script failed ({res.returncode}):\n{res.stdout[-4000:]}\n{res.stderr[-6000:]}")
    try:
        return json.loads(lines[-1])
    except ValueError as e:
        raise AssertionError(f"client script printed no JSON last:\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}") from e
