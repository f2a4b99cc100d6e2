"""Fixtures for the backend tests: a local backend whose agent is stopped by pid.

``server``, ``client`` and ``make_launch`` come from the backend contract's plugin
(``runyard.testing.backend_contract``, loaded by ``tests/conftest.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runyard.backends.local import LocalBackend, agent_dir, stop_agent


@pytest.fixture
def local_backend(runyard_home: Path) -> Iterator[LocalBackend]:
    """A local backend with an injected inventory of two GPUs; its agent is stopped by pid afterwards."""
    backend = LocalBackend({"gpus": [0, 1]})
    try:
        yield backend
    finally:
        backend.close()
        stop_agent(agent_dir(runyard_home))
