"""CheckResult and the local backend's trivial check()."""

import dataclasses

import pytest

from runyard.backends.base import CheckResult
from runyard.backends.local import LocalBackend


def test_check_result_is_frozen_with_empty_hint_by_default():
    r = CheckResult("sbatch", False, "no sbatch on PATH")
    assert r.hint == ""
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.ok = True  # type: ignore[misc]


def test_local_check_reports_python_and_resources_without_starting_the_agent(tmp_path):
    backend = LocalBackend({"cpus": 3, "memory_mb": 1000, "gpus": []}, home=tmp_path)
    try:
        results = backend.check()
    finally:
        backend.close()
    assert [r.name for r in results] == ["python", "resources", "run_as"]
    assert all(r.ok for r in results)
    assert "3 CPUs, 1000 MB memory, 0 GPU(s)" in results[1].detail
    assert "jobs run as the server's account and can see each other" in results[2].detail  # run_as: shared
    assert backend.agent_pid is None
