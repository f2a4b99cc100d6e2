"""The registry's store part on SQLite and PostgreSQL: models, versions from run artifacts or snapshots,
archive, aliases with their audit trail, references, concurrent registrations and bad input."""

from __future__ import annotations

import hashlib
import threading

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

import runyard.names as names
from runyard._manifest import manifest_id
from runyard.artifacts import ArtifactStorage
from runyard.errors import Conflict, InvalidInput, InvalidState, NotFound
from runyard.store import Artifact, Store
from runyard.store import _models as m
from runyard.store._engine import write_scope


def _put_artifact(store: Store, storage: ArtifactStorage, run_id: int, path: str, data: bytes) -> None:
    tmp, sink = storage.open_write(run_id, path)
    sink.write(data)
    sink.close()
    storage.commit(tmp)
    store.record_artifact(run_id, path, len(data), hashlib.sha256(data).hexdigest())


def _copier(storage: ArtifactStorage):
    def copy(run_id: int, art: Artifact) -> None:
        storage.copy_run_file_to_blob(run_id, art.path, art.sha256)
    return copy


def _blob_bytes(storage: ArtifactStorage, digest: str) -> bytes:
    return b"".join(storage.read_blob(digest))


def _upload_snapshot(store: Store, storage: ArtifactStorage, files: dict[str, bytes]) -> str:
    manifest = []
    for path, data in files.items():
        digest = hashlib.sha256(data).hexdigest()
        tmp, sink = storage.blob_writer(digest)
        sink.write(data)
        sink.close()
        storage.commit_blob(tmp, digest)
        store.record_blob(digest, len(data))
        manifest.append([path, digest, len(data), 0o644])
    return store.create_snapshot(manifest_id(manifest), manifest).id


@pytest.fixture
def run_with_model(store: Store, storage: ArtifactStorage) -> int:
    run = store.create_run("p")
    _put_artifact(store, storage, run.id, "model/model.skops", b"weights-1")
    _put_artifact(store, storage, run.id, "model/conf/params.json", b'{"C": 1}')
    _put_artifact(store, storage, run.id, "plots/loss.png", b"png")
    return run.id


def test_models_are_created_listed_read_and_updated(store: Store) -> None:
    store.ensure_project("p")
    made = store.create_model("p", "digits", description="Digits classifier", tags={"team": "vision"}, created_by="ana")
    assert (made.name, made.project, made.description, made.tags, made.created_by) == \
        ("digits", "p", "Digits classifier", {"team": "vision"}, "ana")
    assert (made.n_versions, made.latest_version, made.aliases) == (0, None, {})
    store.create_model("p", "Other.model_2")
    # A second model of the same name in the project is a conflict that names the way out.
    with pytest.raises(Conflict, match="already has a model 'digits'"):
        store.create_model("p", "digits")
    assert [x.name for x in store.list_models("p")] == ["Other.model_2", "digits"]
    assert [x.name for x in store.list_models("p", "DIG")] == ["digits"]
    assert [x.name for x in store.list_models("p", "%")] == []  # q is a substring, not a LIKE pattern
    updated = store.update_model("p", "digits", description="", tags={"stage": "beta"})
    assert (updated.description, updated.tags) == ("", {"stage": "beta"})
    assert updated.updated_at >= made.updated_at
    detail = store.get_model("p", "digits")
    assert (detail.versions, detail.alias_history) == ([], [])
    with pytest.raises(NotFound, match="has no model 'nope'"):
        store.get_model("p", "nope")
    with pytest.raises(NotFound, match="No project named 'q'"):
        store.list_models("q")


def test_a_version_from_run_artifacts_copies_blobs_and_is_relative_to_the_prefix(store: Store, storage: ArtifactStorage,
                                                                                  run_with_model: int) -> None:
    store.ensure_project("p")
    v1 = store.create_model_version_from_run("p", "digits", run_with_model, ["model"], _copier(storage), flavor="sklearn",
                                             requirements=["scikit-learn==1.5.2"], signature={"inputs": [], "outputs": []},
                                             description="first", tags={"acc": "0.97"}, created_by="ana")
    # The model was created on the way; the version's paths are relative to the directory given.
    assert (v1.model, v1.version, v1.run_id, v1.source, v1.flavor, v1.status) == \
        ("digits", 1, run_with_model, f"runs:/{run_with_model}/model", "sklearn", "ready")
    assert sorted(f[0] for f in v1.files) == ["conf/params.json", "model.skops"]
    assert (v1.n_files, v1.size) == (2, len(b"weights-1") + len(b'{"C": 1}'))
    assert (v1.requirements, v1.signature, v1.tags, v1.created_by) == \
        (["scikit-learn==1.5.2"], {"inputs": [], "outputs": []}, {"acc": "0.97"}, "ana")
    # The artifacts' bytes now live as content-addressed blobs the snapshot names.
    for path, digest, size, mode in v1.files:
        assert _blob_bytes(storage, digest) == {"model.skops": b"weights-1", "conf/params.json": b'{"C": 1}'}[path]
        assert mode == 0o644 and size > 0
    assert store.missing_blobs([f[1] for f in v1.files]) == []
    assert store.get_snapshot(v1.snapshot_id).files == v1.files

    # A single file: relative to its own directory. Two paths: relative to their common directory.
    v2 = store.create_model_version_from_run("p", "digits", run_with_model, ["model/model.skops"], _copier(storage))
    assert [f[0] for f in v2.files] == ["model.skops"] and v2.version == 2 and v2.flavor == "files"
    v3 = store.create_model_version_from_run("p", "digits", run_with_model, ["model/model.skops", "plots"], _copier(storage))
    assert sorted(f[0] for f in v3.files) == ["model/model.skops", "plots/loss.png"]
    assert v3.source == f"runs:/{run_with_model}"

    model = store.get_model("p", "digits")
    assert (model.n_versions, model.latest_version) == (3, 3)
    assert [v.version for v in model.versions] == [1, 2, 3]


def test_registering_never_overwrites_a_version(store: Store, storage: ArtifactStorage, run_with_model: int) -> None:
    store.ensure_project("p")
    v1 = store.create_model_version_from_run("p", "m", run_with_model, ["model"], _copier(storage))
    # The run replaces its weights, and the model is registered again: a new number, the old one unchanged.
    _put_artifact(store, storage, run_with_model, "model/model.skops", b"weights-2")
    v2 = store.create_model_version_from_run("p", "m", run_with_model, ["model"], _copier(storage))
    assert v2.version == 2 and v2.snapshot_id != v1.snapshot_id
    again = store.get_model_version("p", "m", 1)
    assert again.files == v1.files and again.snapshot_id == v1.snapshot_id
    old = next(f for f in again.files if f[0] == "model.skops")
    assert _blob_bytes(storage, old[1]) == b"weights-1"
    # The database itself refuses a second row with a taken number.
    with pytest.raises(IntegrityError), write_scope(store.engine) as conn:
        model_id = conn.execute(m.SqlModel.__table__.select()).first().id
        conn.execute(insert(m.SqlModelVersion).values(model_id=model_id, version=1, snapshot_id=v2.snapshot_id,
                                                      created_at=0.0))


def test_a_version_from_an_uploaded_snapshot(store: Store, storage: ArtifactStorage) -> None:
    store.ensure_project("p")
    sid = _upload_snapshot(store, storage, {"model.onnx": b"onnx-bytes", "README.md": b"# m"})
    v = store.create_model_version("p", "net", snapshot_id=sid, source="upload", flavor="onnx")
    assert (v.version, v.run_id, v.source, v.snapshot_id, v.n_files) == (1, None, "upload", sid, 2)
    run = store.create_run("p")
    v2 = store.create_model_version("p", "net", snapshot_id=sid, run_id=run.id, source=f"runs:/{run.id}")
    assert (v2.version, v2.run_id) == (2, run.id)
    with pytest.raises(NotFound, match="No snapshot"):
        store.create_model_version("p", "net", snapshot_id="0" * 64)
    with pytest.raises(NotFound, match="No run with id 999"):
        store.create_model_version("p", "net", snapshot_id=sid, run_id=999)
    assert store.get_model("p", "net").n_versions == 2  # the refused ones wrote nothing


def test_archive_keeps_number_and_files_and_latest_skips_it(store: Store, storage: ArtifactStorage) -> None:
    store.ensure_project("p")
    sid = _upload_snapshot(store, storage, {"w.bin": b"w"})
    for _ in range(3):
        store.create_model_version("p", "m", snapshot_id=sid)
    latest = names.ModelRef(None, "m")
    assert store.resolve_model("p", latest).version == 3
    archived = store.archive_model_version("p", "m", 3)
    assert archived.status == "archived" and archived.archived_at is not None and archived.files
    assert store.archive_model_version("p", "m", 3).archived_at == archived.archived_at  # idempotent
    assert store.resolve_model("p", latest).version == 2
    assert store.resolve_model("p", names.ModelRef(None, "m", 3)).status == "archived"  # by number: still there
    assert store.get_model("p", "m").latest_version == 2
    # A new registration never reuses the archived number.
    assert store.create_model_version("p", "m", snapshot_id=sid).version == 4
    back = store.archive_model_version("p", "m", 3, unarchive=True)
    assert (back.status, back.archived_at) == ("ready", None)
    for n in (1, 2, 3, 4):
        store.archive_model_version("p", "m", n)
    with pytest.raises(NotFound, match="no version that is not archived"):
        store.resolve_model("p", latest)
    with pytest.raises(NotFound, match="has no version 9"):
        store.archive_model_version("p", "m", 9)


def test_aliases_move_with_an_audit_trail_and_never_name_an_archived_version(store: Store, storage: ArtifactStorage) -> None:
    store.ensure_project("p")
    sid = _upload_snapshot(store, storage, {"w.bin": b"w"})
    for _ in range(3):
        store.create_model_version("p", "m", snapshot_id=sid)
    assert store.set_model_alias("p", "m", "production", 1, actor="ana").model_dump() == \
        {"alias": "production", "version": 1, "from_version": None}
    assert store.set_model_alias("p", "m", "production", 2, actor="bo").from_version == 1
    store.set_model_alias("p", "m", "production", 2, actor="bo")  # unchanged: no event
    store.set_model_alias("p", "m", "staging", 3, actor="ana")
    assert store.resolve_model("p", names.ModelRef(None, "m", alias="production")).version == 2
    model = store.get_model("p", "m")
    assert model.aliases == {"production": 2, "staging": 3}
    assert [v.aliases for v in model.versions] == [[], ["production"], ["staging"]]

    # An alias cannot point at an archived version, in either order.
    with pytest.raises(InvalidState, match="alias\\(es\\) staging name it") as e:
        store.archive_model_version("p", "m", 3)
    assert "runyard models alias m staging" in (e.value.hint or "")
    store.archive_model_version("p", "m", 1)
    with pytest.raises(InvalidState, match="Version 1 of model 'm' is archived") as e:
        store.set_model_alias("p", "m", "production", 1)
    assert "unarchive" in (e.value.hint or "")

    removed = store.delete_model_alias("p", "m", "staging", actor="cy")
    assert (removed.version, removed.from_version) == (None, 3)
    with pytest.raises(NotFound, match="has no alias 'staging'"):
        store.delete_model_alias("p", "m", "staging")
    with pytest.raises(NotFound, match="has no alias 'staging'"):
        store.resolve_model("p", names.ModelRef(None, "m", alias="staging"))
    with pytest.raises(NotFound, match="has no version 7"):
        store.set_model_alias("p", "m", "x", 7)
    history = store.get_model("p", "m").alias_history
    assert [(h.alias, h.from_version, h.to_version, h.actor) for h in history] == [
        ("production", None, 1, "ana"), ("production", 1, 2, "bo"), ("staging", None, 3, "ana"), ("staging", 3, None, "cy")]
    assert all(h.at > 0 for h in history)


def test_references_resolve_in_their_own_project(store: Store, storage: ArtifactStorage) -> None:
    store.ensure_project("p")
    store.ensure_project("q")
    sid = _upload_snapshot(store, storage, {"w.bin": b"w"})
    store.create_model_version("p", "m", snapshot_id=sid)
    store.create_model_version("q", "m", snapshot_id=sid)
    store.create_model_version("q", "m", snapshot_id=sid)
    assert store.resolve_model("p", names.parse_model_uri("models:/m/latest")).project == "p"
    found = store.resolve_model("p", names.parse_model_uri("models:/q/m"))
    assert (found.project, found.version) == ("q", 2)
    with pytest.raises(NotFound, match="has no model 'zz'"):
        store.resolve_model("p", names.parse_model_uri("models:/zz/1"))


def test_concurrent_registrations_get_distinct_numbers(store: Store, storage: ArtifactStorage) -> None:
    store.ensure_project("p")
    sid = _upload_snapshot(store, storage, {"w.bin": b"w"})
    n = 8
    start = threading.Barrier(n)
    got: list[int] = []
    errors: list[BaseException] = []

    def register() -> None:
        try:
            start.wait()
            # The model does not exist yet: its creation races too.
            got.append(store.create_model_version("p", "race", snapshot_id=sid).version)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=register) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(got) == list(range(1, n + 1))
    assert store.get_model("p", "race").n_versions == n


def test_a_registration_whose_copy_fails_stores_no_version(store: Store, storage: ArtifactStorage, run_with_model: int) -> None:
    store.ensure_project("p")
    # The artifact's record claims other bytes than the file holds (it was replaced mid-way): refused, nothing stored.
    store.record_artifact(run_with_model, "model/model.skops", 9, hashlib.sha256(b"something").hexdigest())
    with pytest.raises(Conflict, match="changed while it was being registered"):
        store.create_model_version_from_run("p", "m", run_with_model, ["model"], _copier(storage))
    with pytest.raises(NotFound):
        store.get_model("p", "m")
    assert store.missing_blobs([hashlib.sha256(b"something").hexdigest()]) != []

    # A copy that dies half-way (the process is stopped in the middle): no model, no version.
    def dies(run_id: int, art: Artifact) -> None:
        raise KeyboardInterrupt

    _put_artifact(store, storage, run_with_model, "model/model.skops", b"weights-3")
    with pytest.raises(KeyboardInterrupt):
        store.create_model_version_from_run("p", "m", run_with_model, ["model"], dies)
    assert store.list_models("p") == []


@pytest.mark.parametrize(("call", "match"), [
    (lambda s, sid: s.create_model("p", "\ud800"), "A model name must be"),
    (lambda s, sid: s.create_model("p", "a\x00b"), "NUL character"),
    (lambda s, sid: s.create_model("p", "x" * 10_000), "10,000 characters"),
    (lambda s, sid: s.create_model("p", "../x"), "A model name must be"),
    (lambda s, sid: s.create_model("p", "-x"), "A model name must be"),
    (lambda s, sid: s.create_model("p", "ok", description="\ud800"), "unpaired surrogate"),
    (lambda s, sid: s.create_model("p", "ok", tags={"k": "v\x00"}), "NUL character"),
    (lambda s, sid: s.create_model("p", "ok", tags={"a\nb": "v"}), "A tag name must be"),
    (lambda s, sid: s.create_model_version("p", "ok", snapshot_id=sid, flavor="tensorflow"), "Unknown model flavor"),
    (lambda s, sid: s.create_model_version("p", "ok", snapshot_id=sid, requirements=["x\x00"]), "NUL character"),
    (lambda s, sid: s.create_model_version("p", "ok", snapshot_id=sid, requirements=[""]), "pip requirement"),
    (lambda s, sid: s.create_model_version("p", "ok", snapshot_id=sid, signature={"inputs": ["\ud800"]}), "signature"),
    (lambda s, sid: s.create_model_version("p", "ok", snapshot_id=sid, signature=[1]), "must be an object"),
    (lambda s, sid: s.get_model_version("p", "ok", 0), "from 1 to"),
    (lambda s, sid: s.get_model_version("p", "ok", 2**40), "from 1 to"),
    (lambda s, sid: s.set_model_alias("p", "ok", "latest", 1), "'latest' cannot be an alias"),
    (lambda s, sid: s.set_model_alias("p", "ok", "123", 1), "An alias must be"),
    (lambda s, sid: s.set_model_alias("p", "ok", "a" * 129, 1), "An alias must be"),
    (lambda s, sid: s.model_files_from_run(1, []), "at least one artifact path"),
])
def test_bad_input_is_refused_with_the_rule(store: Store, storage: ArtifactStorage, call, match: str) -> None:
    store.ensure_project("p")
    sid = _upload_snapshot(store, storage, {"w.bin": b"w"})
    with pytest.raises(InvalidInput, match=match) as e:
        call(store, sid)
    assert e.value.hint
    assert store.list_models("p") == []


def test_unknown_paths_and_runs_are_not_found(store: Store, storage: ArtifactStorage, run_with_model: int) -> None:
    with pytest.raises(NotFound, match="has no artifact or directory of artifacts 'mod'"):
        store.model_files_from_run(run_with_model, ["mod"])  # a prefix of a name is not a directory
    with pytest.raises(NotFound, match="No run with id 4242"):
        store.model_files_from_run(4242, ["model"])
    # A LIKE wildcard in a path matches only itself.
    with pytest.raises(NotFound):
        store.model_files_from_run(run_with_model, ["mode_"])
