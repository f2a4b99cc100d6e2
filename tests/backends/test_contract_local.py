"""The backend contract on the local backend (its agent is stopped by pid afterwards)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runyard.backends.local import LocalBackend
from runyard.testing.backend_contract import BackendContract


@pytest.fixture
def backend(local_backend: LocalBackend) -> Iterator[LocalBackend]:
    yield local_backend


@pytest.fixture
def unknown_job_id() -> str:
    return "999999.1"


class TestLocalContract(BackendContract):
    pass
