"""The backend contract on the Slurm backend, against a real single-node Slurm (scripts/dev-slurm.sh).

Jobs still queued or running after a test are cancelled by their Slurm job ids.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runyard.backends.slurm import SlurmBackend
from runyard.testing.backend_contract import BackendContract, canceling_submitted

pytestmark = pytest.mark.slow


@pytest.fixture
def backend(slurm_cluster: str, tmp_path: Path) -> Iterator[SlurmBackend]:
    b = SlurmBackend({"partition": slurm_cluster, "work_dir": str(tmp_path / "slurm"), "poll_min_s": 0.2,
                      "poll_max_s": 1.0}, home=tmp_path / "home")
    with canceling_submitted(b):
        yield b


@pytest.fixture
def unknown_job_id() -> str:
    return "99999999"


class TestSlurmContract(BackendContract):
    pass
