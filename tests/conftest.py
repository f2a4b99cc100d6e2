"""Shared fixtures: isolated RUNYARD_HOME, SQLite and PostgreSQL stores; live servers come from the plugin below."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runyard.testing import RayCluster
from runyard.testing._postgres import fresh_postgres

# The live-server fixtures (live_server, live_servers, shared_live_server, module_live_servers,
# session_live_servers) and the backend contract's (server, client, make_launch, BackendContract).
# The container fixtures (podman_image, wheelhouse, charliecloud_image_dir, rootless_podman).
pytest_plugins = ["runyard.testing.pytest_plugin", "runyard.testing.backend_contract", "runyard.testing.containers"]


# The tests of a shared engine (the dev Slurm, the dev sshd on port 2222, Ray clusters, podman and Charliecloud) and
# those whose jobs run as the pool accounts runyard-job-N (markers engines and job_accounts): `make test` runs them
# first, one at a time, then the rest on several workers. An engine is started once per session and never by two
# workers at once (with xdist they share the group "engines"); an agent kills what an account left running before the
# account serves another project, and rootless podman runs as those accounts, so two of them never run at once; and
# beside the rest of the suite on 2 cores, their engines' runners miss their start-up times.
_ENGINE_FIXTURES = frozenset({"slurm_cluster", "dev_sshd", "ray_cluster", "podman_image", "charliecloud_image_dir",
                              "rootless_podman"})
_ENGINE_MODULES = ("test_slurm", "test_ssh", "test_distributed_slurm", "test_distributed_ray",
                   "test_backends_cli_check", "test_ray_", "test_ctr_engines")
_POOL_MODULES = ("test_sec_job_isolation", "test_sec_policy")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        module = item.path.stem if item.path is not None else ""
        fixtures = set(getattr(item, "fixturenames", ()))
        if _ENGINE_FIXTURES & fixtures or module.startswith(_ENGINE_MODULES):
            item.add_marker(pytest.mark.xdist_group("engines"))
            item.add_marker(pytest.mark.engines)
        elif "job_accounts" in fixtures or module.startswith(_POOL_MODULES):
            item.add_marker(pytest.mark.xdist_group("engines"))
            item.add_marker(pytest.mark.job_accounts)


@pytest.fixture(autouse=True)
def runyard_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own RUNYARD_HOME and no configured server."""
    home = tmp_path / "runyard-home"
    home.mkdir()
    monkeypatch.setenv("RUNYARD_HOME", str(home))
    for var in ("RUNYARD_SERVER", "RUNYARD_TOKEN", "RUNYARD_RUN_ID", "RUNYARD_DATABASE_URL", "RUNYARD_ARTIFACTS_URL",
                "RUNYARD_PARAMS",
                # pytest-xdist's workers inherit a COLUMNS of the controller's terminal; the CLI's tables are
                # checked at the width a pipe gets.
                "COLUMNS", "LINES"):
        monkeypatch.delenv(var, raising=False)
    # An ad-hoc SDK run records the console and sys/* metrics by default; the tests count their runs' metrics and
    # log lines exactly. The capture's own tests (tests/sdk/test_sdk_capture.py) turn it on per run.
    monkeypatch.setenv("RUNYARD_SDK_CAPTURE", "0")
    return home


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database. Unreachable PostgreSQL: failure in CI, loud skip elsewhere."""
    with fresh_postgres() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Runs a test once on SQLite and once on PostgreSQL (the store contract)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[str]:
    """A real single-node Slurm (scripts/dev-slurm.sh): brought up if it is not, and down at the end only if we did.

    Yields the partition name. Needs the packages of scripts/test-setup.sh (make test installs them).
    """
    import shutil
    import subprocess

    script = Path(__file__).resolve().parent.parent / "scripts" / "dev-slurm.sh"
    if shutil.which("slurmctld") is None and not Path("/usr/sbin/slurmctld").exists():
        pytest.fail("Slurm is not installed: run `bash scripts/test-setup.sh` (or `make system-test-deps`) first.")
    started = False
    if subprocess.run(["bash", str(script), "status"], capture_output=True, check=False).returncode != 0:
        res = subprocess.run(["bash", str(script), "up"], capture_output=True, text=True, check=False, timeout=180)
        if res.returncode != 0:
            pytest.fail(f"scripts/dev-slurm.sh up failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
        started = True
    try:
        yield "debug"
    finally:
        if started:
            subprocess.run(["bash", str(script), "down"], capture_output=True, check=False, timeout=120)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    """A real single-node Ray cluster (2 CPUs, token auth, dashboard on 127.0.0.1), started once per session
    and stopped by its pids at the end. Its jobs import the Runyard under test (PYTHONPATH)."""
    import shutil
    import tempfile

    import runyard
    from runyard.testing import RayCluster

    pytest.importorskip("ray.job_submission", reason="the Ray tests need `pip install 'runyard[ray]'`")
    # Ray's Unix socket paths must stay under 107 bytes: a short directory of its own, not pytest's tmp_path.
    root = Path(tempfile.mkdtemp(prefix="ry", dir="/tmp"))
    source = str(Path(runyard.__file__).resolve().parents[1])
    cluster = RayCluster(root, num_cpus=2, env={"PYTHONPATH": source})
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)

