"""The backend contract on the Slurm backend, against a real single-node Slurm (scripts/dev-slurm.sh).

Jobs still queued or running after a test are cancelled by their Slurm job ids.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runyard.backends.slurm import SlurmBackend
from runyard.testing.backend_contract import BackendContract

pytestmark = pytest.mark.slow


@pytest.fixture
def backend(slurm_cluster: str, tmp_path: Path) -> Iterator[SlurmBackend]:
    b = SlurmBackend({"partition": slurm_cluster, "work_dir": str(tmp_path / "slurm"), "poll_min_s": 0.2,
                      "poll_max_s": 1.0}, home=tmp_path / "home")
    submitted: list[str] = []
    real_submit = b.submit

    def submit(launch):  # noqa: ANN001, ANN202 - records job ids to stop them afterwards
        job_id = real_submit(launch)
        submitted.append(job_id)
        return job_id

    b.submit = submit  # type: ignore[method-assign]
    try:
        yield b
    finally:
        for job_id in submitted:
            b.cancel(job_id)
        b.close()


@pytest.fixture
def unknown_job_id() -> str:
    return "99999999"


class TestSlurmContract(BackendContract):
    pass
