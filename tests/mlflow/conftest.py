"""The peers' virtualenv with the real MLflow client (benchmarks/setup_peers.sh), made once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from runyard.testing.peers import ensure_peers


@pytest.fixture(scope="session")
def mlflow_python() -> Path:
    """The python of the peers' virtualenv, with mlflow and scikit-learn (installed on first use: needs PyPI once)."""
    return ensure_peers()
