"""The container fixtures' behaviour without an engine: a failure under CI, a loud skip elsewhere, and messages
that say what to run. No engine is started here."""

from __future__ import annotations

from pathlib import Path

import pytest

from runyard.testing._images import ImageError, podman_usable, rootfs_tar
from runyard.testing.containers import unavailable


def test_missing_engine_fails_under_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true but podman is gone. CI must run the podman tests"):
        unavailable("podman", "podman is gone")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="SKIPPING PODMAN TESTS: podman is gone"):
        unavailable("podman", "podman is gone")


def test_podman_missing_from_path_names_the_setup_script(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no podman on PATH
    problem = podman_usable()
    assert problem is not None
    assert "podman is not installed" in problem and "scripts/test-setup.sh" in problem


def test_rootfs_from_a_prefix_without_python_says_which_python_to_use(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"no CPython 3\.\d+ at .*run this with the tests' Python"):
        rootfs_tar(tmp_path / "rootfs.tar", prefix=str(tmp_path))
