"""Store contract: the image and table lists written with their artifacts, and run notes (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from runyard.errors import InvalidInput, NotFound
from runyard.media import MediaInfo
from runyard.store import Store
from runyard.store._engine import make_engine
from runyard.store._migrate import upgrade

SHA = "0" * 64


def _image(key: str, step: int, w: int = 4, h: int = 3, caption: str | None = None) -> MediaInfo:
    return MediaInfo("image", key, step, caption, w, h, "png")


def test_images_are_listed_by_key_then_step_and_follow_their_artifact(store: Store) -> None:
    run = store.create_run("p")
    other = store.create_run("p")
    for key, step, n in [("b", 2, 0), ("a/x", 10, 0), ("a/x", 9, 1), ("a/x", 9, 0), ("a/x", -(2**63), 0)]:
        path = f"media/images/{key}/{step}-{n}.png"
        store.record_artifact(run.id, path, 10, SHA, _image(key, step, caption=f"{key}@{step} ✓ \U0001f600"))
    store.record_artifact(other.id, "media/images/a/x/0-0.png", 10, SHA, _image("a/x", 0))
    items = store.list_run_images(run.id)
    assert [(i.key, i.step, i.path.rsplit("/", 1)[1]) for i in items] == [
        ("a/x", -(2**63), f"{-(2**63)}-0.png"), ("a/x", 9, "9-0.png"), ("a/x", 9, "9-1.png"), ("a/x", 10, "10-0.png"),
        ("b", 2, "2-0.png")]
    assert items[-1].caption == "b@2 ✓ \U0001f600" and (items[-1].width, items[-1].height) == (4, 3) and items[-1].time > 0
    assert [i.step for i in store.list_run_images(run.id, "b")] == [2]
    # A later upload of the path replaces the row; one that is no image any more removes it.
    store.record_artifact(run.id, "media/images/b/2-0.png", 20, SHA, _image("b", 2, w=99))
    assert [i.width for i in store.list_run_images(run.id, "b")] == [99]
    store.record_artifact(run.id, "media/images/b/2-0.png", 5, SHA, None)
    assert store.list_run_images(run.id, "b") == []
    # The row belongs to its artifact row: gone with it, whoever deletes it.
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM artifacts WHERE run_id = :r AND path = 'media/images/a/x/10-0.png'"), {"r": run.id})
    assert [i.step for i in store.list_run_images(run.id)] == [-(2**63), 9, 9]
    with pytest.raises(NotFound):
        store.list_run_images(999_999)
    with pytest.raises(NotFound):
        store.record_artifact(999_999, "media/images/a/0-0.png", 1, SHA, _image("a", 0))


def test_tables_are_listed_stepless_first_with_rows_and_columns(store: Store) -> None:
    run = store.create_run("p")
    store.record_artifact(run.id, "media/tables/t/3.csv", 10, SHA, MediaInfo("table", "t", 3, format="csv", n_rows=2,
                                                                              columns=("a", "b")))
    store.record_artifact(run.id, "media/tables/t.parquet", 10, SHA, MediaInfo("table", "t", None, format="parquet",
                                                                               n_rows=-1))
    store.record_artifact(run.id, "media/tables/s.csv", 10, SHA, MediaInfo("table", "s", None, format="csv", n_rows=0,
                                                                           columns=("ünï", "")))
    store.record_artifact(run.id, "media/images/t/0-0.png", 10, SHA, _image("t", 0))
    tables = store.list_run_tables(run.id)
    assert [(t.key, t.step, t.format, t.rows, t.columns) for t in tables] == [
        ("s", None, "csv", 0, ["ünï", ""]), ("t", None, "parquet", -1, []), ("t", 3, "csv", 2, ["a", "b"])]
    assert store.find_media_rows(run.id, "media/tables/t/3.csv") == 2
    assert store.find_media_rows(run.id, "media/tables/t.parquet") is None  # unknown
    assert store.find_media_rows(run.id, "media/images/t/0-0.png") is None  # not a table


def test_notes_are_set_read_and_checked(store: Store) -> None:
    run = store.create_run("p")
    note = store.get_note(run.id)
    assert (note.text, note.updated_at, note.updated_by) == ("", None, None)
    saved = store.set_note(run.id, "# Title\n\n✓ \U0001f600 **bold**", "alice")
    assert store.get_note(run.id) == saved and saved.updated_by == "alice" and saved.updated_at.endswith("Z")
    store.set_note(run.id, "x" * 100_000, "bob")
    assert len(store.get_note(run.id).text) == 100_000 and store.get_note(run.id).updated_by == "bob"
    for bad, words in [("a\x00b", "NUL"), ("\ud800", "unpaired surrogate"), ("x" * 100_001, "at most 100,000")]:
        with pytest.raises(InvalidInput, match=words):
            store.set_note(run.id, bad, "alice")
    assert store.get_note(run.id).updated_by == "bob"  # nothing written
    with pytest.raises(NotFound):
        store.get_note(999_999)
    with pytest.raises(NotFound):
        store.set_note(999_999, "x", "alice")


@pytest.mark.usefixtures("empty_database")
def test_0009_adds_and_removes_the_tables_around_existing_artifacts(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        assert upgrade(engine, "0008") == "0008"
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO projects (id, name, description, visibility, created_at, updated_at) "
                              "VALUES (1, 'p', '', 'private', 0, 0)"))
            conn.execute(text("INSERT INTO runs (id, project_id, number, name, status, status_message, attempt, created_at) "
                              "VALUES (1, 1, 0, 'r', 'running', '', 1, 0)"))
            conn.execute(text("INSERT INTO artifacts (run_id, path, size, sha256, created_at) "
                              "VALUES (1, 'media/images/k/0-0.png', 3, :s, 0)"), {"s": SHA})
    finally:
        engine.dispose()
    store = Store.open(db_url)  # applies 0009
    try:
        assert store.list_run_images(1) == []  # files stored before the index are not listed (upload them again)
        store.record_artifact(1, "media/images/k/0-0.png", 3, SHA, _image("k", 0))
        store.set_note(1, "n", "alice")
        assert len(store.list_run_images(1)) == 1
    finally:
        store.close()
    engine = make_engine(db_url)
    try:
        from alembic import command

        from runyard.store._migrate import _config

        command.downgrade(_config(engine), "0008")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM artifacts")).scalar() == 1
    finally:
        engine.dispose()
