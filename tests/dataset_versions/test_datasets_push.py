"""Pushing, pulling, diffing and deleting datasets against a live server, through the client and the CLI."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from runyard.client import Client
from runyard.errors import Conflict, InvalidInput
from runyard.snapshot import create_snapshot, pull_dataset, push_dataset, reference_paths
from runyard.store import Store
from runyard.store import _models as m
from runyard.testing import LiveServer


def _write(root: Path, files: dict[str, bytes]) -> Path:
    """Write the files with an mtime an hour ago: settled data, whose hashes a push remembers."""
    past = time.time() - 3600
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        os.utime(p, (past, past))
    return root


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Counting:
    """Counts the blobs the client uploads (PUT /blobs/SHA256 one each, POST /blobs/batch many), then lets them through."""

    def __init__(self, client: Client) -> None:
        self.calls = 0
        self.bytes = 0
        self._upload, self._upload_many = client.upload_blob, client.upload_blobs

        def upload(digest: str, data: Any) -> None:
            self.calls += 1
            self._upload(digest, data)

        def upload_many(items: Any) -> dict[str, Any]:
            answer = self._upload_many(items)
            self.calls += answer["n_blobs"]
            return answer

        client.upload_blob = upload  # type: ignore[method-assign]
        client.upload_blobs = upload_many  # type: ignore[method-assign]


def _data(tmp_path: Path) -> Path:
    return _write(tmp_path / "data", {f"part-{i}.bin": os.urandom(1000 + i) for i in range(12)}
                  | {"nested/labels.csv": b"a,b\n1,2\n", ".hidden": b"kept too", "__pycache__/x.pyc": b"kept"})


def test_push_unchanged_makes_no_version_and_uploads_nothing(client: Client, project: str, tmp_path: Path,
                                                              blob_files: Callable[[], list[Path]], cli) -> None:
    data = _data(tmp_path)
    counter = _Counting(client)
    first = push_dataset(client, project, "digits", data, message="first", tags={"src": "scan"})
    # Every file is stored, also those the code snapshot's rules would leave out (.hidden, __pycache__).
    assert first.created and first.version is not None and first.version["version"] == 1
    assert first.version["n_files"] == 15 and counter.calls == 15 == first.n_uploaded
    stored = blob_files()

    again = push_dataset(client, project, "digits", data)
    assert not again.created and again.unchanged and again.version["version"] == 1
    assert (again.n_uploaded, again.bytes_uploaded, counter.calls) == (0, 0, 15)
    assert again.local.n_hashed == 0  # the files' size and mtime are those of the last scan: none read again
    assert blob_files() == stored

    # The CLI says so, in a fresh home (no hash cache: every file is read, none uploaded).
    res = cli("datasets", "push", str(data), "--name", "digits", "-p", project, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["unchanged"] and not out["created"] and out["bytes_uploaded"] == 0 and out["version"]["version"] == 1
    res = cli("datasets", "push", str(data), "--name", "digits", "-p", project)
    assert res.exit_code == 0 and "unchanged: version 1" in res.stdout, res.output
    assert client.get_dataset(project, "digits")["n_versions"] == 1


def test_changed_files_make_a_version_uploading_only_them(client: Client, project: str, tmp_path: Path, cli) -> None:
    data = _data(tmp_path)
    push_dataset(client, project, "digits", data)
    _write(data, {"part-0.bin": b"new bytes", "added.txt": b"added"})
    (data / "part-1.bin").unlink()
    counter = _Counting(client)
    second = push_dataset(client, project, "digits", data, message="fixed labels")
    assert second.created and second.version["version"] == 2
    assert counter.calls == 2 and second.n_uploaded == 2 and second.bytes_uploaded == len(b"new bytes") + len(b"added")
    assert second.changes["added"] == [["added.txt", 5]] and second.changes["removed"] == [["part-1.bin", 1001]]
    assert second.changes["changed"] == [["part-0.bin", 1000, 9]]

    res = cli("datasets", "diff", "digits", "1", "2", "-p", project, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"added": [["added.txt", 5]], "removed": [["part-1.bin", 1001]],
                                      "changed": [["part-0.bin", 1000, 9]], "unchanged": 13}
    res = cli("datasets", "ls", "-p", project, "--json")
    assert [(d["name"], d["latest_version"], d["n_versions"]) for d in json.loads(res.stdout)] == [("digits", 2, 2)]
    res = cli("datasets", "show", f"{project}/digits:1", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["message"] == "", res.output
    res = cli("datasets", "show", "digits", "-p", project)
    assert res.exit_code == 0 and "fixed labels" in res.stdout, res.output


def test_blobs_shared_with_snapshots_are_stored_once(client: Client, project: str, tmp_path: Path,
                                                     blob_files: Callable[[], list[Path]]) -> None:
    shared = os.urandom(4096)
    code = _write(tmp_path / "code", {"train.py": b"print(1)\n", "table.csv": shared})
    snap = create_snapshot(client, code)
    before = blob_files()
    data = _write(tmp_path / "data", {"table.csv": shared, "copy/same.csv": shared, "other.bin": b"other"})
    pushed = push_dataset(client, project, "tables", data)
    # The snapshot stored table.csv's blob: only other.bin is sent, and the shared content is one file on the server.
    assert pushed.n_uploaded == 1 and pushed.bytes_uploaded == 5
    after = blob_files()
    assert len(after) == len(before) + 1
    assert [p.name for p in after].count(_sha(shared)) == 1
    assert client.get_snapshot(snap.id)["files"]


def test_a_referenced_file_that_changed_is_reported(client: Client, project: str, tmp_path: Path, cli) -> None:
    shared = _write(tmp_path / "shared" / "scans", {"a.npy": b"A" * 100, "sub/b.npy": b"B" * 50})
    res = cli("datasets", "push", "--reference", str(shared), "--name", "scans", "-p", project, "--json")
    assert res.exit_code == 0, res.output
    v1 = client.get_dataset_version(project, "scans", 1)
    assert v1["files"] == [] and [r[0] for r in v1["refs"]] == [f"{shared.resolve()}/a.npy", f"{shared.resolve()}/sub/b.npy"]
    assert json.loads(res.stdout)["bytes_uploaded"] == 0  # references are never uploaded

    # Unchanged: status says so; the latest version's references are checked in place.
    res = cli("datasets", "status", "scans", "-p", project)
    assert res.exit_code == 0 and "unchanged: version 1" in res.stdout, res.output

    # Same size, new bytes and a new mtime: status reports the change, a push makes version 2.
    (shared / "a.npy").write_bytes(b"Z" * 100)
    os.utime(shared / "a.npy", (time.time() + 5, time.time() + 5))
    res = cli("datasets", "status", "scans", "-p", project, "--json")
    assert res.exit_code == 0, res.output
    status = json.loads(res.stdout)
    assert status["changed"] and status["changes"]["changed"] == [[f"{shared.resolve()}/a.npy", 100, 100]]
    res = cli("datasets", "push", "--reference", str(shared), "--name", "scans", "-p", project, "--dry-run")
    assert res.exit_code == 0 and "1 changed" in res.stdout, res.output
    assert client.get_dataset(project, "scans")["n_versions"] == 1  # a dry run makes nothing
    pushed = push_dataset(client, project, "scans", None, [str(shared)])
    assert pushed.created and pushed.version["version"] == 2
    # Only the file whose size or mtime changed was read again.
    assert pushed.local.n_hashed == 1

    # Touched but the same bytes: hashed again, no new version.
    os.utime(shared / "sub" / "b.npy", (time.time() + 9, time.time() + 9))
    touched = push_dataset(client, project, "scans", None, [str(shared)])
    assert not touched.created and touched.local.n_hashed == 1


def test_pull_writes_stored_files_and_links_references(client: Client, project: str, tmp_path: Path, cli) -> None:
    data = _write(tmp_path / "data", {"x/1.txt": b"one", "2.txt": b"two"})
    refs = _write(tmp_path / "refs", {"big.bin": b"big" * 10})
    push_dataset(client, project, "mixed", data, [str(refs / "big.bin")])
    res = cli("datasets", "pull", "mixed:1", str(tmp_path / "out"), "-p", project, "--json")
    assert res.exit_code == 0, res.output
    out = tmp_path / "out"
    assert (out / "x" / "1.txt").read_bytes() == b"one" and (out / "2.txt").read_bytes() == b"two"
    assert (out / "big.bin").is_symlink() and os.readlink(out / "big.bin") == str((refs / "big.bin").resolve())
    # Again: nothing downloaded (the blob cache has them).
    again = pull_dataset(client, project, "mixed", 1, out)
    assert again.n_downloaded == 0 and again.n_linked == 1
    # A referenced file that is gone is an error naming it, not a dangling link.
    (refs / "big.bin").unlink()
    with pytest.raises(InvalidInput, match="big.bin of .*mixed:1 is gone"):
        pull_dataset(client, project, "mixed", 1, tmp_path / "elsewhere")


def test_reference_paths_are_relative_to_what_they_share() -> None:
    assert reference_paths([["/shared/scans/a.npy", "", 0, 0]]) == {"/shared/scans/a.npy": "a.npy"}
    assert reference_paths([["/a/x", "", 0, 0], ["/b/y", "", 0, 0]]) == {"/a/x": "a/x", "/b/y": "b/y"}
    assert reference_paths([["/d/a", "", 0, 0], ["s3://bkt/k/v", "", 0, 0]]) == {"/d/a": "d/a", "s3://bkt/k/v": "s3:/bkt/k/v"}


def test_a_version_a_registered_model_depends_on_cannot_be_deleted(client: Client, project: str, tmp_path: Path,
                                                                    ds_server: LiveServer, cli) -> None:
    data = _write(tmp_path / "data", {"a.txt": os.urandom(64)})
    v1 = push_dataset(client, project, "digits", data).version
    _write(data, {"b.txt": b"b"})
    push_dataset(client, project, "digits", data)
    run = client.create_run(project)
    other = client.create_run(project)
    # The registry and lineage write these rows; here they are written through the store directly.
    store = Store.open(f"sqlite:///{ds_server.home / 'runyard.db'}", migrate=False)
    try:
        with store.engine.begin() as conn:
            pid = conn.execute(m.SqlProject.__table__.select().where(m.SqlProject.name == project)).one().id
            mid = conn.execute(insert(m.SqlModel).values(project_id=pid, name="clf", created_at=1.0, updated_at=1.0)
                               ).inserted_primary_key[0]
            conn.execute(insert(m.SqlModelVersion).values(model_id=mid, version=4, run_id=run["id"],
                                                          snapshot_id=v1["snapshot_id"], created_at=1.0))
            conn.execute(insert(m.SqlRunDataset).values(run_id=run["id"], name="train", version_id=v1["id"], recorded_at=1.0))
            v2_id = client.get_dataset_version(project, "digits", 2)["id"]
            conn.execute(insert(m.SqlRunDataset).values(run_id=other["id"], name="train", version_id=v2_id, recorded_at=1.0))
    finally:
        store.close()
    assert client.get_dataset_version(project, "digits", 1)["used_by_models"] == [
        {"project": project, "model": "clf", "version": 4}]

    with pytest.raises(Conflict, match=f"models:/{project}/clf/4"):
        client.delete_dataset_version(project, "digits", 1, force=True)
    res = cli("datasets", "delete", "digits:1", "-p", project)
    assert res.exit_code == 1 and f"models:/{project}/clf/4" in res.output
    res = cli("datasets", "show", "digits:1", "-p", project)
    assert f"models:/{project}/clf/4" in res.stdout, res.output

    # Read by a run (no model): refused unless forced, and the hint names --force.
    res = cli("datasets", "delete", "digits:2", "-p", project)
    assert res.exit_code == 1 and "--force" in res.output, res.output
    res = cli("datasets", "delete", "digits:2", "-p", project, "--force")
    assert res.exit_code == 0, res.output
    assert [v["version"] for v in client.get_dataset(project, "digits")["versions"]] == [1]
