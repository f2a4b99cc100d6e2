"""The backend contract on the Ray backend, against a real single-node Ray cluster (the session's ``ray_cluster``).

Jobs still running after a test are stopped by their submission ids (``stop_job``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from runyard.backends.ray import RayBackend
from runyard.testing import RayCluster
from runyard.testing.backend_contract import BackendContract, canceling_submitted

pytestmark = pytest.mark.slow


def ray_options(cluster: RayCluster, **more: object) -> dict[str, object]:
    """The options of a backend of ``cluster``: its dashboard, its token, and this interpreter on its node."""
    return {"address": cluster.dashboard_url, "token": cluster.token, "python": sys.executable, **more}


@pytest.fixture
def backend(ray_cluster: RayCluster) -> Iterator[RayBackend]:
    # The module's server counts runs from 1, like every server of the session on this cluster: a prefix of its own.
    b = RayBackend(ray_options(ray_cluster, name_prefix="contract"))
    cleanup = RayBackend(ray_options(ray_cluster))  # stops what the test left, whatever the test did to b
    try:
        with canceling_submitted(b, cancel=cleanup.cancel):
            yield b
    finally:
        cleanup.close()


@pytest.fixture
def unknown_job_id() -> str:
    return "contract-999999-1-main-0"


class TestRayContract(BackendContract):
    pass
