"""run_models in the store (SQLite and PostgreSQL): pinning models: at submission, rows written with the queued runs,
runs recording the models they use, the lineage graph both ways, and the migration matching the model class."""

from __future__ import annotations

import pytest
from lineage_helpers import add_model_version, store_snapshot
from sqlalchemy import update

from runyard.errors import Conflict, InvalidInput, NotFound
from runyard.store import Store
from runyard.store import _models as m
from runyard.store._engine import make_engine, write_scope


def _experiment_runs(store: Store, project: str, models: dict[str, str], n: int = 2) -> list[int]:
    exp = store.create_experiment(project, "e", config={"project": project, "command": "x", "models": models})
    pid = store.get_project(project).id
    return store.create_queued_runs(exp.id, pid, [(i, f"e-{i}", {}) for i in range(n)], snapshot_id=None, backend="local",
                                    models=models)


def _archive(store: Store, project: str, model: str, version: int) -> None:
    with write_scope(store.engine) as conn:
        conn.execute(update(m.SqlModelVersion).where(m.SqlModelVersion.version == version,
                                                     m.SqlModelVersion.model_id.in_(
                                                         m.SqlModel.__table__.select().with_only_columns(m.SqlModel.id)
                                                         .where(m.SqlModel.name == model)))
                     .values(status="archived"))


def test_submission_pins_aliases_and_latest_and_a_moved_alias_changes_nothing(store: Store) -> None:
    snap = store_snapshot(store, {"model.bin": b"weights-1"})
    snap2 = store_snapshot(store, {"model.bin": b"weights-2"})
    add_model_version(store, "p", "digits", None, snap, alias="production")
    add_model_version(store, "p", "digits", None, snap2)
    add_model_version(store, "other", "bert", None, snap)
    pinned = store.resolve_run_models("p", {"base": "models:/digits@production", "last": "models:/digits/latest",
                                            "teacher": "models:/other/bert/1"})
    uris = {k: v.uri for k, v in pinned.items()}
    assert uris == {"base": "models:/p/digits/1", "last": "models:/p/digits/2", "teacher": "models:/other/bert/1"}
    assert pinned["base"].snapshot_id == snap and pinned["base"].n_files == 1
    runs = _experiment_runs(store, "p", uris)
    store.set_model_alias("p", "digits", "production", 2, actor="alice")  # after submission
    for rid in runs:
        got = {x.name: (x.project, x.model, x.version) for x in store.run_models(rid)}
        assert got == {"base": ("p", "digits", 1), "last": ("p", "digits", 2), "teacher": ("other", "bert", 1)}
    assert store.run_model_snapshot_ids(runs[0]) == sorted({snap, snap2})
    # A new submission now pins production to 2.
    assert store.resolve_run_models("p", {"base": "models:/digits@production"})["base"].version == 2


def test_unknown_and_archived_versions_are_refused_with_what_exists(store: Store) -> None:
    snap = store_snapshot(store, {"m": b"x"})
    add_model_version(store, "p", "digits", None, snap, alias="production")
    add_model_version(store, "p", "digits", None, snap)
    with pytest.raises(NotFound) as e:
        store.resolve_run_models("p", {"base": "models:/digits/7"})
    assert "has no version 7" in e.value.message and "its versions are: 1, 2" in e.value.message
    assert "production -> 1" in e.value.message and "models:/p/digits/2" in e.value.hint
    with pytest.raises(NotFound) as e:
        store.resolve_run_models("p", {"base": "models:/digits@staging"})
    assert "no alias 'staging'" in e.value.message and "production -> 1" in e.value.message
    with pytest.raises(NotFound) as e:
        store.resolve_run_models("p", {"base": "models:/nothing/1"})
    assert "has no model 'nothing'" in e.value.message
    _archive(store, "p", "digits", 2)
    with pytest.raises(InvalidInput) as e:
        store.resolve_run_models("p", {"base": "models:/digits/2"})
    assert "models.base" in e.value.message and "archived" in e.value.message and "unarchive" in e.value.hint
    assert store.resolve_run_models("p", {"base": "models:/digits/latest"})["base"].version == 1  # skips archived
    with pytest.raises(InvalidInput):
        store.resolve_run_models("p", {"bad name": "models:/digits/1"})


def test_a_run_records_the_models_it_uses_once_per_name(store: Store) -> None:
    snap = store_snapshot(store, {"m": b"x"})
    add_model_version(store, "p", "digits", None, snap, alias="production")
    add_model_version(store, "p", "digits", None, snap)
    run = store.create_run("p", name="r").id
    first = store.record_run_model(run, "base", "models:/digits@production")
    assert (first.uri, first.recorded_at is not None) == ("models:/p/digits/1", True)
    again = store.record_run_model(run, "base", "models:/p/digits/1")
    assert again.recorded_at == first.recorded_at
    with pytest.raises(Conflict) as e:
        store.record_run_model(run, "base", "models:/digits/2")
    assert "already uses models:/p/digits/1" in e.value.message
    for bad in ("", "\x00", "\ud800", "a" * 65, "1abc"):
        with pytest.raises(InvalidInput):
            store.record_run_model(run, bad, "models:/digits/1")
    for bad_uri in ("models:/", "models:/digits\x00", "models:/\ud800", "models:/" + "a" * 600):
        with pytest.raises(InvalidInput):
            store.record_run_model(run, "x", bad_uri)
    with pytest.raises(NotFound):
        store.record_run_model(2**62, "x", "models:/digits/1")
    assert [x.name for x in store.run_models(run)] == ["base"]
    from sqlalchemy import delete, func, select

    with write_scope(store.engine) as conn:  # the rows go with the run (ON DELETE CASCADE); the version stays
        conn.execute(delete(m.SqlRunEvent).where(m.SqlRunEvent.run_id == run))
        conn.execute(delete(m.SqlRun).where(m.SqlRun.id == run))
        assert conn.execute(select(func.count()).select_from(m.SqlRunModel)).scalar() == 0
    assert store.get_model_version("p", "digits", 1).version == 1


def test_lineage_shows_used_model_from_the_run_and_from_the_model(store: Store) -> None:
    snap = store_snapshot(store, {"m": b"x"})
    add_model_version(store, "p", "base", None, snap, alias="production")
    run = store.create_run("p", name="finetune").id
    store.record_run_model(run, "base", "models:/base@production")
    add_model_version(store, "p", "tuned", run, snap)  # the run registered a model of its own
    g = store.lineage(f"runs:/{run}")
    kinds = {(e.source, e.target, e.kind) for e in g.edges}
    base_node = next(n for n in g.nodes if n.kind == "model_version" and n.label == "models:/p/base/1")
    assert (f"run:{run}", base_node.id, "used_model") in kinds
    assert next(e for e in g.edges if e.kind == "used_model").data == {"name": "base"}
    # From the model version: the runs that used it, and what they registered, downstream.
    g = store.lineage("models:/p/base@production")
    assert g.root == base_node.id
    edges = {(e.source, e.target, e.kind) for e in g.edges}
    assert (f"run:{run}", g.root, "used_model") in edges
    tuned = next(n for n in g.nodes if n.label == "models:/p/tuned/1")
    assert (f"run:{run}", tuned.id, "registered_as") in edges
    # From the tuned model back: trained_from the run, which used the base model.
    g = store.lineage("models:/p/tuned/1")
    assert any(e.kind == "used_model" and e.target == base_node.id for e in g.edges)


def test_a_model_version_a_run_used_cannot_disappear_under_it(store: Store) -> None:
    """run_models' foreign key to model_versions has no cascade: the row keeps the version it names."""
    snap = store_snapshot(store, {"m": b"x"})
    add_model_version(store, "p", "digits", None, snap)
    run = store.create_run("p", name="r").id
    store.record_run_model(run, "base", "models:/digits/1")
    from sqlalchemy import delete
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError), write_scope(store.engine) as conn:
        conn.execute(delete(m.SqlModelVersion))
    assert [x.version for x in store.run_models(run)] == [1]


def test_the_migration_matches_the_model_class(db_url: str) -> None:
    """Alembic's autogenerate finds nothing to change for run_models after upgrading to head (SQLite and PostgreSQL)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from runyard.store._migrate import upgrade

    engine = make_engine(db_url)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), m.Base.metadata)
    finally:
        engine.dispose()
    mine = [d for d in diffs if "run_models" in repr(d)]
    assert mine == []
    with make_engine(db_url).connect() as conn:
        from sqlalchemy import inspect

        cols = {c["name"] for c in inspect(conn).get_columns("run_models")}
    assert cols == {"run_id", "name", "model_version_id", "recorded_at"}
