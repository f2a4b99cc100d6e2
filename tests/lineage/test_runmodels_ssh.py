"""A run's models reach an SSH host and a spooling Slurm cluster: the backend stages the model version's blobs as it
stages datasets', and the runner there materialises them read-only at models/<name>/ with RUNYARD_MODEL_<NAME> set.

Against the real dev sshd on 127.0.0.1:2222 and the real single-node Slurm of this machine, as test_lineage_ssh.py
and test_lineage_slurm.py.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from lineage_helpers import upload_snapshot

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backends"))  # the SSH tests' helpers
from ssh_helpers import LOADED_START_S, DevSSHD, dev_sshd_session, stop_ssh_jobs  # noqa: E402

from runyard.backends.base import EngineStatus, Resources  # noqa: E402
from runyard.client import Client  # noqa: E402
from runyard.store import AuthStore, Store  # noqa: E402
from runyard.testing import LiveServer  # noqa: E402
from runyard.testing.backend_contract import canceling_submitted, stdout_of, wait_terminal  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
WEIGHTS = {"weights.txt": b"0.5,0.25\n", "conf/meta.json": b"{}\n"}
CHECK = ('root=$(pwd -P)/models/base; test "$RUNYARD_MODEL_BASE" = "$root" || echo "BAD PATH $RUNYARD_MODEL_BASE"; '
         'cat "$RUNYARD_MODEL_BASE/weights.txt"; stat -c "%a" "$RUNYARD_MODEL_BASE/weights.txt" '
         '"$RUNYARD_MODEL_BASE/conf" "$RUNYARD_MODEL_BASE"')


@pytest.fixture(scope="session")
def dev_sshd() -> Iterator[DevSSHD]:
    yield from dev_sshd_session()


@pytest.fixture
def work(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "ssh-work"
    try:
        yield path
    finally:
        stop_ssh_jobs(path)


def _python(where: Path) -> Path:
    """The host's Python imports this checkout's Runyard (the runner that materialises models), as the server does."""
    python = where / "python-here"
    python.write_text(f"#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} \"$@\"\n")
    python.chmod(0o755)
    return python


def _model_launch(client: Client, make_launch, name: str, **options: object):  # noqa: ANN001, ANN202
    launch = make_launch(CHECK, **options)  # (its project, backend-tests, exists from here on)
    snap = upload_snapshot(client, WEIGHTS)
    client.create_model_version("backend-tests", name, snapshot_id=snap)
    item = client.record_run_model(launch.run_id, "base", f"models:/backend-tests/{name}/latest")
    models = {"base": {k: item[k] for k in ("project", "model", "version", "uri", "snapshot_id", "flavor")}}
    return dataclasses.replace(launch, models=models), snap


def test_an_ssh_run_gets_its_model_staged_through_the_hosts_blob_cache(dev_sshd: DevSSHD, work: Path, server: LiveServer,
                                                                        client: Client, make_launch) -> None:  # noqa: ANN001
    from runyard.backends.ssh import SSHBackend

    launch, _ = _model_launch(client, make_launch, "ssh-weights")
    store = Store.open(f"sqlite:///{server.home / 'runyard.db'}", migrate=False)
    try:
        token = AuthStore(store.engine).create_token("run", run_id=launch.run_id, name="test")[1]
    finally:
        store.close()
    launch = dataclasses.replace(launch, token=token)
    python = _python(work.parent)
    backend = SSHBackend({"hosts": [dev_sshd.host_options(work_dir=str(work), python=str(python))],
                          "start_timeout_s": LOADED_START_S})
    try:
        job = backend.submit(launch)
        state = wait_terminal(backend, job)
        out = stdout_of(client, launch.run_id)
        assert state.status is EngineStatus.SUCCEEDED, (state, out)
        assert [ln for ln in out if not ln.startswith("[runyard]")] == ["0.5,0.25", "444", "555", "555"], out
        digests = {hashlib.sha256(b).hexdigest() for b in WEIGHTS.values()}
        assert digests <= {p.name for p in (work / "cache" / "blobs").rglob("*") if p.is_file()}
    finally:
        backend.close()


@pytest.mark.slow
def test_a_spooling_slurm_run_gets_its_model_from_the_staged_blob_cache(slurm_cluster: str, tmp_path: Path,
                                                                        client: Client, make_launch) -> None:  # noqa: ANN001
    from runyard.backends.slurm import SlurmBackend

    launch, snap = _model_launch(client, make_launch, "slurm-weights", resources=Resources(cpus=1))
    work = tmp_path / "spool-work"
    b = SlurmBackend({"partition": slurm_cluster, "work_dir": str(work), "python": str(_python(tmp_path)),
                      "poll_min_s": 0.2, "poll_max_s": 1.0, "reach_server": False, "server_url": "http://127.0.0.1:9"},
                     home=tmp_path / "home")
    with canceling_submitted(b):
        state = wait_terminal(b, b.submit(launch))
        out = stdout_of(client, launch.run_id)
        assert state.status is EngineStatus.SUCCEEDED, (state, out)
        assert [ln for ln in out if not ln.startswith("[runyard]")] == ["0.5,0.25", "444", "555", "555"], out
        digest = hashlib.sha256(WEIGHTS["weights.txt"]).hexdigest()
        assert (work / "blobs" / digest[:2] / digest).is_file()
        assert (work / "blobs" / "snapshots" / f"{snap}.json").is_file()
