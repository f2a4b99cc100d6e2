"""Store contract of versioned datasets (SQLite and PostgreSQL): versions by content, diffs, deletion rules."""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import pytest
from sqlalchemy import insert

from runyard._manifest import dataset_content_id, manifest_id
from runyard.errors import Conflict, InvalidInput, NotFound
from runyard.store import Store
from runyard.store import _models as m


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _snapshot(store: Store, files: dict[str, bytes]) -> str:
    """Store these files' blobs and a snapshot of them: its id."""
    manifest: list[list[Any]] = []
    for path, data in sorted(files.items()):
        store.record_blob(_sha(data), len(data))
        manifest.append([path, _sha(data), len(data), 0o644])
    sid = manifest_id(manifest)
    store.create_snapshot(sid, manifest)
    return sid


def _ref(uri: str, data: bytes, mtime: float = 1.0) -> list[Any]:
    return [uri, _sha(data), len(data), mtime]


def _register_model(store: Store, project: str, model: str, version: int, run_id: int, snapshot_id: str) -> None:
    """A registered model version trained by run ``run_id`` (rows written directly: the registry is another part)."""
    with store.engine.begin() as conn:
        proj = conn.execute(m.SqlProject.__table__.select().where(m.SqlProject.name == project)).one()
        mid = conn.execute(insert(m.SqlModel).values(project_id=proj.id, name=model, created_at=1.0, updated_at=1.0)
                           ).inserted_primary_key[0]
        conn.execute(insert(m.SqlModelVersion).values(model_id=mid, version=version, run_id=run_id,
                                                      snapshot_id=snapshot_id, created_at=1.0))


def _read_by(store: Store, run_id: int, version_id: int, name: str = "train") -> None:
    with store.engine.begin() as conn:
        conn.execute(insert(m.SqlRunDataset).values(run_id=run_id, name=name, version_id=version_id, recorded_at=1.0))


def test_push_versions_by_content_and_reads_back(store: Store) -> None:
    store.create_project("p")
    s1 = _snapshot(store, {"a.txt": b"alpha", "sub/b.bin": b"beta"})
    first = store.create_dataset_version("p", "digits", snapshot_id=s1, message="first", tags={"src": "scan"},
                                         description="handwritten digits", created_by="alice")
    assert first.created and first.version.version == 1
    v1 = first.version
    assert (v1.n_files, v1.size, v1.snapshot_id, v1.created_by) == (2, 9, s1, "alice")
    assert v1.content_id == dataset_content_id(s1, [])
    assert [f[0] for f in v1.files] == ["a.txt", "sub/b.bin"]

    # The same content again: no new version, the latest returned.
    again = store.create_dataset_version("p", "digits", snapshot_id=s1, message="again")
    assert not again.created and again.version.version == 1 and again.version.message == "first"

    s2 = _snapshot(store, {"a.txt": b"alpha2", "c.txt": b"gamma"})
    second = store.create_dataset_version("p", "digits", snapshot_id=s2, refs=[_ref("/shared/x.npy", b"xx")])
    assert second.created and second.version.version == 2
    assert (second.version.n_files, second.version.size) == (3, 6 + 5 + 2)

    got = store.get_dataset_version("p", "digits", None)
    assert got.version == 2 and got.refs == [["/shared/x.npy", _sha(b"xx"), 2, 1.0]]
    assert store.get_dataset_version("p", "digits", 1).files == v1.files
    assert store.resolve_dataset_version("p", "digits", 1).id == v1.id

    detail = store.get_dataset("p", "digits")
    assert (detail.n_versions, detail.latest_version, detail.n_files, detail.size) == (2, 2, 3, 13)
    assert detail.description == "handwritten digits"
    assert [v.version for v in detail.versions] == [2, 1] and detail.versions[0].files == []
    listed = store.list_datasets("p")
    assert [(d.name, d.n_versions, d.latest_version, d.size) for d in listed] == [("digits", 2, 2, 13)]
    assert store.list_datasets("p", q="dig")[0].name == "digits" and store.list_datasets("p", q="zzz") == []
    assert store.list_datasets("p", q="%") == []  # LIKE wildcards are literal

    diff = store.diff_dataset_versions("p", "digits", 1, 2)
    assert diff.added == [["/shared/x.npy", 2], ["c.txt", 5]]
    assert diff.removed == [["sub/b.bin", 4]]
    assert diff.changed == [["a.txt", 5, 6]]
    assert diff.unchanged == 0


def test_refs_only_version_and_ref_changes(store: Store) -> None:
    store.create_project("p")
    refs = [_ref("s3://bucket/a", b"one"), _ref("/data/b", b"two")]
    v1 = store.create_dataset_version("p", "scans", refs=refs).version
    assert v1.snapshot_id is None and v1.files == [] and [r[0] for r in v1.refs] == ["/data/b", "s3://bucket/a"]
    # Touching a file (a new mtime) with the same bytes is no change; new bytes are.
    touched = [_ref("s3://bucket/a", b"one", mtime=99.0), _ref("/data/b", b"two", mtime=5.0)]
    assert not store.create_dataset_version("p", "scans", refs=touched).created
    changed = store.create_dataset_version("p", "scans", refs=[_ref("s3://bucket/a", b"ONE"), _ref("/data/b", b"two")])
    assert changed.created and changed.version.version == 2
    assert store.diff_dataset_versions("p", "scans", 1, 2).changed == [["s3://bucket/a", 3, 3]]


@pytest.mark.parametrize("n", [6])
def test_concurrent_pushes_number_versions_atomically(store: Store, n: int) -> None:
    store.create_project("p")
    snaps = [_snapshot(store, {"f": str(i).encode()}) for i in range(n)]
    same = _snapshot(store, {"same": b"content"})
    results: list[Any] = []
    errors: list[BaseException] = []

    def push(sid: str, name: str) -> None:
        try:
            results.append((name, store.create_dataset_version("p", name, snapshot_id=sid)))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=push, args=(s, "many")) for s in snaps]
    threads += [threading.Thread(target=push, args=(same, "one")) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    # Different contents at once: versions 1..n, each once.
    assert sorted(r.version.version for name, r in results if name == "many") == list(range(1, n + 1))
    # The same content at once: one version between them.
    ones = [r for name, r in results if name == "one"]
    assert sum(r.created for r in ones) == 1 and {r.version.version for r in ones} == {1}
    assert store.get_dataset("p", "one").n_versions == 1


def test_deletion_refused_while_a_model_or_run_depends_on_it(store: Store) -> None:
    store.create_project("p")
    sid = _snapshot(store, {"a": b"a"})
    v1 = store.create_dataset_version("p", "d", snapshot_id=sid).version
    v2 = store.create_dataset_version("p", "d", snapshot_id=_snapshot(store, {"a": b"b"})).version
    run = store.create_run("p")
    other = store.create_run("p")
    _read_by(store, run.id, v1.id)
    _register_model(store, "p", "digits", 3, run.id, sid)
    assert store.get_dataset_version("p", "d", 1).used_by_models[0].model == "digits"
    assert [(v.version, [u.model for u in v.used_by_models]) for v in store.get_dataset("p", "d").versions] == [
        (2, []), (1, ["digits"])]

    # A registered model's data: refused, even with force, naming the model version.
    for force in (False, True):
        with pytest.raises(Conflict, match=r"models:/p/digits/3"):
            store.delete_dataset_version("p", "d", 1, force=force)

    # Read by a run only: refused unless forced, and the message says how.
    _read_by(store, other.id, v2.id)
    with pytest.raises(Conflict, match=r"read by 1 run.*") as e:
        store.delete_dataset_version("p", "d", 2)
    assert "--force" in (e.value.hint or "")
    store.delete_dataset_version("p", "d", 2, force=True)
    with pytest.raises(NotFound):
        store.get_dataset_version("p", "d", 2)
    assert store.get_dataset("p", "d").latest_version == 1
    # The blobs stay: the other version's snapshot still names them.
    assert store.missing_blobs([_sha(b"a"), _sha(b"b")]) == []

    v3 = store.create_dataset_version("p", "free", snapshot_id=sid).version
    store.delete_dataset_version("p", "free", v3.version)
    assert store.get_dataset("p", "free").n_versions == 0


@pytest.mark.parametrize("bad", ["", "-x", "a b", "x\x00", "\ud800", "a/b", "../x", "x" * 129, "é"])
def test_bad_dataset_names_refused(store: Store, bad: str) -> None:
    store.create_project("p")
    sid = _snapshot(store, {"a": b"a"})
    with pytest.raises(InvalidInput, match="dataset name"):
        store.create_dataset_version("p", bad, snapshot_id=sid)


def test_bad_inputs_refused(store: Store) -> None:
    store.create_project("p")
    sid = _snapshot(store, {"a": b"a"})
    with pytest.raises(InvalidInput, match="needs files"):
        store.create_dataset_version("p", "d")
    with pytest.raises(NotFound, match="project"):
        store.create_dataset_version("nope", "d", snapshot_id=sid)
    with pytest.raises(NotFound, match="snapshot"):
        store.create_dataset_version("p", "d", snapshot_id="0" * 64)
    bad_refs: list[list[Any]] = [
        ["relative/path", _sha(b"x"), 1, 1.0],
        ["/a/../etc/passwd", _sha(b"x"), 1, 1.0],
        ["/a\x00b", _sha(b"x"), 1, 1.0],
        ["/a\ud800", _sha(b"x"), 1, 1.0],
        ["/a", "not-a-sha", 1, 1.0],
        ["/a", _sha(b"x"), -1, 1.0],
        ["/a", _sha(b"x"), 2**63, 1.0],
        ["/a", _sha(b"x"), 1, float("nan")],
        ["/a", _sha(b"x"), 1],
    ]
    for ref in bad_refs:
        with pytest.raises(InvalidInput):
            store.create_dataset_version("p", "d", refs=[ref])
    with pytest.raises(InvalidInput, match="twice"):
        store.create_dataset_version("p", "d", refs=[_ref("/a", b"1"), _ref("/a", b"2")])
    with pytest.raises(InvalidInput):
        store.create_dataset_version("p", "d", snapshot_id=sid, message="m\x00")
    with pytest.raises(InvalidInput):
        store.create_dataset_version("p", "d", snapshot_id=sid, tags={"k": "\ud800"})
    with pytest.raises(InvalidInput, match="at most 1,000"):
        store.create_dataset_version("p", "d", snapshot_id=sid, tags={"k": "v" * 1001})
    with pytest.raises(InvalidInput):
        store.create_dataset_version("p", "d", snapshot_id=sid, tags={"bad\nkey": "v"})
    with pytest.raises(InvalidInput, match="at most 64 tags"):
        store.create_dataset_version("p", "d", snapshot_id=sid, tags={f"k{i}": "v" for i in range(65)})
    # A manifest claiming 10 GB for a 1-byte blob is refused: sizes are the blobs'.
    store.record_blob(_sha(b"z"), 1)
    lie = [["big.bin", _sha(b"z"), 10 * 1024**3, 0o644]]
    store.create_snapshot(manifest_id(lie), lie)
    with pytest.raises(InvalidInput, match="claims 10737418240 bytes"):
        store.create_dataset_version("p", "d", snapshot_id=manifest_id(lie))
    assert store.list_datasets("p") == []  # nothing half-made
    store.create_dataset_version("p", "d", snapshot_id=sid)
    for v in (0, -1, 2**40, True):
        with pytest.raises((InvalidInput, NotFound)):
            store.get_dataset_version("p", "d", v)
    with pytest.raises(NotFound, match="no version 7"):
        store.get_dataset_version("p", "d", 7)
    with pytest.raises(NotFound, match="no dataset"):
        store.get_dataset("p", "other")


def test_a_deleted_versions_number_is_never_given_again(store: Store) -> None:
    """``digits:2`` names one content for good: after version 2 is deleted, the next push is version 3, and
    pushing version 2's content again makes version 3 too (a number pinned by an experiment never changes
    meaning)."""
    store.create_project("p")
    s1 = _snapshot(store, {"a.txt": b"one"})
    s2 = _snapshot(store, {"a.txt": b"two"})
    assert store.create_dataset_version("p", "digits", snapshot_id=s1).version.version == 1
    assert store.create_dataset_version("p", "digits", snapshot_id=s2).version.version == 2
    store.delete_dataset_version("p", "digits", 2)
    again = store.create_dataset_version("p", "digits", snapshot_id=s2)
    assert again.created and again.version.version == 3
    store.delete_dataset_version("p", "digits", 3)
    store.delete_dataset_version("p", "digits", 1)
    assert store.create_dataset_version("p", "digits", snapshot_id=s1).version.version == 4
