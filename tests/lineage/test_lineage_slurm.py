"""A Slurm run whose nodes cannot reach the server (spool mode) reads its dataset: the backend stages the dataset's
blobs and manifest into the cluster's blob cache beside the code's, and the runner materialises it from there.

Against the real single-node Slurm of this machine (scripts/dev-slurm.sh), as tests/backends/test_slurm_*.py.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
from pathlib import Path

import pytest
from lineage_helpers import add_dataset_version, upload_snapshot

from runyard.backends.base import EngineStatus, Resources
from runyard.backends.slurm import SlurmBackend
from runyard.client import Client
from runyard.testing import LiveServer
from runyard.testing.backend_contract import canceling_submitted, stdout_of, wait_terminal

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
DATA = {"digits.csv": b"4,5,6\n"}
CHECK = 'cat "$RUNYARD_DATASET_TRAIN/digits.csv"; stat -c "%a" "$RUNYARD_DATASET_TRAIN/digits.csv"'


def test_a_spooling_slurm_run_reads_its_dataset_from_the_staged_blob_cache(slurm_cluster: str, tmp_path: Path,
                                                                           server: LiveServer, client: Client,
                                                                           make_launch) -> None:  # noqa: ANN001
    from runyard.store import Store

    snap = upload_snapshot(client, DATA)
    store = Store.open(f"sqlite:///{server.home / 'runyard.db'}", migrate=False)
    try:
        add_dataset_version(store, "backend-tests", "slurm-digits", snapshot_id=snap, n_files=1, size=6)
    finally:
        store.close()
    launch = make_launch(CHECK, resources=Resources(cpus=1))
    item = client.record_run_dataset(launch.run_id, "train", "slurm-digits")
    launch = dataclasses.replace(launch, datasets={"train": {k: item[k] for k in ("project", "dataset", "version",
                                                                                  "snapshot_id", "refs")}})
    python = tmp_path / "python-here"  # the cluster's Python imports this checkout's Runyard, as the server does
    python.write_text(f"#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} \"$@\"\n")
    python.chmod(0o755)
    work = tmp_path / "spool-work"
    b = SlurmBackend({"partition": slurm_cluster, "work_dir": str(work), "python": str(python), "poll_min_s": 0.2,
                      "poll_max_s": 1.0, "reach_server": False, "server_url": "http://127.0.0.1:9"}, home=tmp_path / "home")
    with canceling_submitted(b):
        state = wait_terminal(b, b.submit(launch))
        out = stdout_of(client, launch.run_id)
        assert state.status is EngineStatus.SUCCEEDED, (state, out)
        assert [ln for ln in out if not ln.startswith("[runyard]")] == ["4,5,6", "444"], out
        # Staged on the cluster: the blob and the manifest the spooling runner reads instead of asking the server.
        digest = hashlib.sha256(DATA["digits.csv"]).hexdigest()
        assert (work / "blobs" / digest[:2] / digest).is_file()
        assert (work / "blobs" / "snapshots" / f"{snap}.json").is_file()
