"""Registering from run artifacts when the artifact store is S3 (moto's S3 server on 127.0.0.1): the bytes
are copied into blobs in the bucket, and a copy whose bytes do not match leaves no object behind."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator

import pytest

from runyard.artifacts import ArtifactStorage
from runyard.errors import Conflict
from runyard.store import Artifact, Store
from runyard.testing import free_port

pytestmark = pytest.mark.slow

BUCKET = "runyard-registry"


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    pytest.importorskip("moto.server", reason="moto[server] is not installed (pip install -e '.[test]')")
    pytest.importorskip("s3fs", reason="s3fs is not installed (pip install -e '.[test]')")
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                     region_name="us-east-1").create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        server.stop()


@pytest.fixture
def s3_storage(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> ArtifactStorage:
    for key, value in {"RUNYARD_S3_ENDPOINT_URL": moto_endpoint, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    return ArtifactStorage(f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}")


def _put(store: Store, storage: ArtifactStorage, run_id: int, path: str, data: bytes) -> None:
    tmp, sink = storage.open_write(run_id, path)
    sink.write(data)
    sink.close()
    storage.commit(tmp)
    store.record_artifact(run_id, path, len(data), hashlib.sha256(data).hexdigest())


def _blob_keys(storage: ArtifactStorage) -> list[str]:
    root = f"{storage.root}/blobs"
    storage.fs.invalidate_cache()
    return sorted(storage.fs.find(root)) if storage.fs.exists(root) else []


def test_a_version_from_artifacts_on_s3(tmp_path, s3_storage: ArtifactStorage) -> None:  # noqa: ANN001
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        run = store.create_run("p").id
        weights = bytes(range(256)) * 1000
        _put(store, s3_storage, run, "model/weights.bin", weights)
        _put(store, s3_storage, run, "model/config.json", b"{}")

        def copy(run_id: int, art: Artifact) -> None:
            s3_storage.copy_run_file_to_blob(run_id, art.path, art.sha256)

        v = store.create_model_version_from_run("p", "digits", run, ["model"], copy)
        assert sorted(f[0] for f in v.files) == ["config.json", "weights.bin"]
        digest = hashlib.sha256(weights).hexdigest()
        assert b"".join(s3_storage.read_blob(digest)) == weights
        assert len(_blob_keys(s3_storage)) == 2

        # A record whose bytes changed under it: refused, and no object (not even a temporary one) is left.
        store.record_artifact(run, "model/config.json", 3, hashlib.sha256(b"new").hexdigest())
        with pytest.raises(Conflict, match="changed while it was being registered"):
            store.create_model_version_from_run("p", "digits", run, ["model"], copy)
        assert len(_blob_keys(s3_storage)) == 2
        assert store.get_model("p", "digits").n_versions == 1
    finally:
        store.close()
