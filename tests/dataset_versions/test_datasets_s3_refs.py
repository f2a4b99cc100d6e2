"""Referencing s3:// objects in place (against moto's S3 server): hashed, change detected, pulled into the cache."""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runyard.client import Client
from runyard.errors import InvalidInput
from runyard.snapshot import pull_dataset, push_dataset
from runyard.testing.moto import MotoS3, moto_s3

BUCKET = "runyard-datasets"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3]:
    """moto's S3 in server mode with a bucket. Stopped by its pid."""
    pytest.importorskip("moto.server", reason="moto[server] is not installed (pip install -e '.[test]')")
    pytest.importorskip("s3fs", reason="s3fs is not installed (pip install -e '.[test]')")
    with moto_s3(tmp_path_factory.mktemp("moto"), BUCKET) as server:
        yield server


@pytest.fixture
def s3_env(s3: MotoS3, monkeypatch: pytest.MonkeyPatch) -> Any:
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    return s3.client()


def test_s3_references_hashed_changes_detected_and_pulled(client: Client, project: str, s3_env: Any, tmp_path: Path) -> None:
    prefix = f"scans-{project}"
    bodies = {f"{prefix}/a.bin": b"a" * 1000, f"{prefix}/sub/b.bin": b"b" * 10}
    for key, body in bodies.items():
        s3_env.put_object(Bucket=BUCKET, Key=key, Body=body)
    uri = f"s3://{BUCKET}/{prefix}/"
    first = push_dataset(client, project, "scans", None, [uri])
    assert first.created and first.n_uploaded == 0
    refs = first.version["refs"]
    assert [(r[0], r[1], r[2]) for r in refs] == [(f"s3://{BUCKET}/{k}", hashlib.sha256(b).hexdigest(), len(b))
                                                  for k, b in sorted(bodies.items())]
    again = push_dataset(client, project, "scans", None, [uri])
    assert not again.created and again.local.n_hashed == 0  # sizes and times unchanged: nothing read

    out = pull_dataset(client, project, "scans", 1, tmp_path / "out")
    assert out.n_fetched == 2 and (tmp_path / "out" / "a.bin").read_bytes() == b"a" * 1000
    assert (tmp_path / "out" / "sub" / "b.bin").read_bytes() == b"b" * 10

    time.sleep(1.1)  # S3's LastModified has one-second resolution
    s3_env.put_object(Bucket=BUCKET, Key=f"{prefix}/a.bin", Body=b"A" * 1000)
    status = push_dataset(client, project, "scans", None, [uri], dry_run=True)
    assert status.changes["changed"] == [[f"s3://{BUCKET}/{prefix}/a.bin", 1000, 1000]] and status.dry_run
    # Version 1's object changed in place: pulling it again into an empty cache refuses the different bytes.
    with pytest.raises(InvalidInput, match="changed since"):
        pull_dataset(client, project, "scans", 1, tmp_path / "again", cache_dir=tmp_path / "empty-cache")
    second = push_dataset(client, project, "scans", None, [uri])
    assert second.created and second.version["version"] == 2 and second.local.n_hashed == 1


def test_s3_references_without_s3fs_name_the_extra(client: Client, project: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "s3fs", None)  # as if it were not installed
    with pytest.raises(InvalidInput, match="needs s3fs") as e:
        push_dataset(client, project, "x", None, ["s3://bucket/prefix/"])
    assert "runyard[s3]" in (e.value.hint or "")
