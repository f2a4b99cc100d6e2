"""Materialising a run's dataset version read-only: stored files through the blob cache, references linked in place,
s3:// ones downloaded (from moto's S3 server) and checked; a failure leaves nothing behind; the launch carries it."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from lineage_helpers import upload_snapshot

from runyard.client import Client
from runyard.errors import InvalidInput
from runyard.records.compute import RunLaunch
from runyard.runner import launch_from_dict, launch_to_dict
from runyard.snapshot import materialize_dataset, release_dataset_dirs
from runyard.snapshot._dataset_dirs import env_name
from runyard.testing import LiveServer
from runyard.testing.moto import MotoS3, moto_s3
from runyard.testing.pytest_plugin import LiveServers

DATA = {"a.csv": b"1,2\n", "deep/b.bin": bytes(range(256))}
OBJECT = b"an object in s3\n"


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's S3 in server mode with bucket ``lineage`` (holding ``raw/obj.txt``), stopped by its pid afterwards."""
    pytest.importorskip("moto.server", reason="moto[server] is not installed (pip install -e '.[test]')")
    pytest.importorskip("s3fs", reason="s3fs is not installed (pip install -e '.[test]')")
    with moto_s3(tmp_path_factory.mktemp("moto"), "lineage") as s3:
        s3.client().put_object(Bucket="lineage", Key="raw/obj.txt", Body=OBJECT)
        yield s3.endpoint


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for key, value in MotoS3(s3_endpoint, "lineage").env().items():
        monkeypatch.setenv(key, value)
    return s3_endpoint


@pytest.fixture(scope="module")
def server(module_live_servers: LiveServers) -> LiveServer:
    return module_live_servers.start("lineage-materialize", env={"RUNYARD_SCHEDULER": "0"})


def _version(client: Client, tmp_path: Path, s3_digest: str | None = None) -> dict:
    local = tmp_path / "shared" / "scan.npy"
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_bytes(b"scan")
    refs = [[str(local), hashlib.sha256(b"scan").hexdigest(), 4, local.stat().st_mtime],
            ["s3://lineage/raw/obj.txt", s3_digest or hashlib.sha256(OBJECT).hexdigest(), len(OBJECT), 1.0]]
    return {"project": "p", "dataset": "digits", "version": 3, "snapshot_id": upload_snapshot(client, DATA), "refs": refs}


def _modes(root: Path) -> dict[str, str]:
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder, name)
            out[str(path.relative_to(root))] = "link" if path.is_symlink() else oct(path.stat().st_mode & 0o777)
    return out


def test_a_version_is_written_read_only_with_its_references(server: LiveServer, s3_env: str, tmp_path: Path) -> None:
    cache = tmp_path / "blobs"
    with Client(server.url) as client:
        version = _version(client, tmp_path)
        dest = tmp_path / "work" / "datasets" / "train"
        done = materialize_dataset(client, version, dest, cache)
        assert (done.n_files, done.n_linked_refs) == (4, 1)
        # References sit below the directory they share: s3:/… beside a local path keeps its scheme as a directory.
        modes = _modes(dest)
        assert {k: modes[k] for k in ("a.csv", "deep", "deep/b.bin", "s3:", "s3:/lineage/raw/obj.txt")} == {
            "a.csv": "0o444", "deep": "0o555", "deep/b.bin": "0o444", "s3:": "0o555", "s3:/lineage/raw/obj.txt": "0o444"}
        assert set(modes.values()) == {"0o444", "0o555", "link"}  # nothing writable; the local reference a link
        assert oct(dest.stat().st_mode & 0o777) == "0o555"
        assert (dest / "a.csv").read_bytes() == DATA["a.csv"]
        assert (dest / "s3:" / "lineage" / "raw" / "obj.txt").read_bytes() == OBJECT
        scan = next(p for p in dest.rglob("scan.npy"))
        assert scan.is_symlink() and scan.read_bytes() == b"scan"
        # Stored files are hard links into the blob cache: a second run on this machine copies nothing.
        digest = hashlib.sha256(DATA["a.csv"]).hexdigest()
        assert os.path.samefile(dest / "a.csv", cache / digest[:2] / digest)
        # Again (a restarted attempt, another task in the same directory): left as it is.
        assert materialize_dataset(client, version, dest, cache).n_files == 0
        # Another version under the same name replaces it whole.
        other = {**version, "refs": version["refs"][:1]}
        assert materialize_dataset(client, other, dest, cache).n_files == 3
        assert sorted(p.name for p in dest.iterdir()) == ["a.csv", "deep", "scan.npy"]  # alone: at its file name
        # After the run the directories get their write bit back (the working directory can be removed).
        release_dataset_dirs(dest.parent)
        assert oct(dest.stat().st_mode & 0o777) == "0o755" and oct((dest / "a.csv").stat().st_mode & 0o777) == "0o444"
        # A restart in the same working directory finds it written, and seals it again.
        assert materialize_dataset(client, other, dest, cache).n_files == 0
        assert oct(dest.stat().st_mode & 0o777) == "0o555" and oct((dest / "deep").stat().st_mode & 0o777) == "0o555"


def test_a_changed_object_fails_and_leaves_nothing_behind(server: LiveServer, s3_env: str, tmp_path: Path) -> None:
    with Client(server.url) as client:
        version = _version(client, tmp_path, s3_digest="0" * 64)
        dest = tmp_path / "work" / "datasets" / "train"
        with pytest.raises(InvalidInput) as e:
            materialize_dataset(client, version, dest, tmp_path / "blobs")
        assert "changed since p/digits:3 was pushed" in e.value.message
        assert not dest.exists() and list(dest.parent.iterdir()) == []  # no half-written directory, no temporary one
        version["refs"] = [[str(tmp_path / "gone.bin"), "1" * 64, 1, 1.0]]
        with pytest.raises(InvalidInput) as e:
            materialize_dataset(client, version, dest, tmp_path / "blobs")
        assert "is gone" in e.value.message and list(dest.parent.iterdir()) == []


def test_the_launch_carries_the_datasets_and_each_gets_its_variable() -> None:
    datasets = {"train": {"project": "p", "dataset": "digits", "version": 3, "content_id": "c" * 64, "snapshot_id": "s" * 64,
                          "refs": [["/data/x", "0" * 64, 1, 1.5]]}}
    launch = RunLaunch(run_id=1, attempt=1, project="p", experiment_id=2, command="true", snapshot_id=None,
                       server_url="http://x", datasets=datasets)
    assert launch_from_dict(launch_to_dict(launch)) == launch
    assert launch_from_dict({k: v for k, v in launch_to_dict(launch).items() if k != "datasets"}).datasets == {}
    assert [env_name(n) for n in ("train", "raw-scans", "v1.2", "_x")] == [
        "RUNYARD_DATASET_TRAIN", "RUNYARD_DATASET_RAW_SCANS", "RUNYARD_DATASET_V1_2", "RUNYARD_DATASET__X"]
