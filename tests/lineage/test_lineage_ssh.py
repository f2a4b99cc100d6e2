"""A run's datasets reach an SSH host: the backend stages their blobs into the host's blob cache with the run's
token, and the runner there materialises them read-only with RUNYARD_DATASET_<NAME> set.

Against the real dev sshd on 127.0.0.1:2222 (this machine is the SSH host), as tests/backends/test_ssh_backend.py.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from lineage_helpers import add_dataset_version, upload_snapshot

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backends"))  # the SSH tests' helpers
from ssh_helpers import LOADED_START_S, DevSSHD, dev_sshd_session, stop_ssh_jobs  # noqa: E402

from runyard.backends.base import EngineStatus  # noqa: E402
from runyard.backends.ssh import SSHBackend  # noqa: E402
from runyard.client import Client  # noqa: E402
from runyard.store import AuthStore, Store  # noqa: E402
from runyard.testing import LiveServer  # noqa: E402
from runyard.testing.backend_contract import stdout_of, wait_terminal  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DATA = {"digits.csv": b"7,8,9\n", "more/notes.txt": b"hello\n"}
CHECK = ('root=$(pwd -P)/datasets/train; test "$RUNYARD_DATASET_TRAIN" = "$root" || echo "BAD PATH $RUNYARD_DATASET_TRAIN"; '
         'cat "$RUNYARD_DATASET_TRAIN/digits.csv"; stat -c "%a" "$RUNYARD_DATASET_TRAIN/digits.csv" '
         '"$RUNYARD_DATASET_TRAIN/more" "$RUNYARD_DATASET_TRAIN"')


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


def test_an_ssh_run_reads_its_dataset_staged_through_the_hosts_blob_cache(dev_sshd: DevSSHD, work: Path, server: LiveServer,
                                                                           client: Client, make_launch) -> None:  # noqa: ANN001
    snap = upload_snapshot(client, DATA)
    store = Store.open(f"sqlite:///{server.home / 'runyard.db'}", migrate=False)
    try:
        add_dataset_version(store, "backend-tests", "ssh-digits", snapshot_id=snap, n_files=2, size=12)
        launch = make_launch(CHECK)
        client.record_run_dataset(launch.run_id, "train", "ssh-digits:latest")
        auth = AuthStore(store.engine)
        token = auth.create_token("run", run_id=launch.run_id, name="test")[1]
    finally:
        store.close()
    [item] = client.run_datasets(launch.run_id)
    launch = dataclasses.replace(launch, token=token, datasets={"train": {
        "project": item["project"], "dataset": item["dataset"], "version": item["version"],
        "snapshot_id": item["snapshot_id"], "refs": item["refs"]}})
    # The host's Python imports this checkout's Runyard (the runner that materialises datasets), as the server does.
    python = work.parent / "python-here"
    python.write_text(f"#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} \"$@\"\n")
    python.chmod(0o755)
    backend = SSHBackend({"hosts": [dev_sshd.host_options(work_dir=str(work), python=str(python))],
                          "start_timeout_s": LOADED_START_S})
    try:
        job = backend.submit(launch)
        state = wait_terminal(backend, job)
        out = stdout_of(client, launch.run_id)
        assert state.status is EngineStatus.SUCCEEDED, (state, out)
        # The file's bytes, then the modes: a read-only file in read-only directories.
        assert [ln for ln in out if not ln.startswith("[runyard]")] == ["7,8,9", "444", "555", "555"], out
        # The data's blobs are in the host's blob cache, where the backend stages them and the runner reads them.
        digests = {hashlib.sha256(b).hexdigest() for b in DATA.values()}
        assert digests <= {p.name for p in (work / "cache" / "blobs").rglob("*") if p.is_file()}
    finally:
        backend.close()
