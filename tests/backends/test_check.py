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


def test_local_check_tries_the_container_runtime_and_starts_the_test_image(tmp_path, podman_image):
    from runyard.backends.local import LocalBackend

    ok = {r.name: r for r in LocalBackend({"container_runtime": "podman", "test_image": podman_image}, home=tmp_path).check()}
    assert ok["container runtime"].ok and "podman version" in ok["container runtime"].detail
    assert ok["container start"].ok and podman_image in ok["container start"].detail

    bad = {r.name: r for r in LocalBackend({"container_runtime": "podman", "container_command": str(tmp_path / "nope")},
                                           home=tmp_path).check()}
    assert not bad["container runtime"].ok and "not found" in bad["container runtime"].detail
    assert "container_command" in bad["container runtime"].hint
    missing = {r.name: r for r in LocalBackend({"test_image": "localhost/no-such-image:1"}, home=tmp_path).check()}
    assert missing["container runtime"].ok and not missing["container start"].ok
    assert "localhost/no-such-image:1" in missing["container start"].hint


def test_a_backend_without_container_settings_checks_no_runtime(tmp_path):
    from runyard.backends.local import LocalBackend

    assert not {r.name for r in LocalBackend({}, home=tmp_path).check()} & {"container runtime", "container start"}
