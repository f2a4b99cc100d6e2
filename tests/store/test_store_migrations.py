"""Migrations carry stored data forward: points written under 0001's per-point table read back the same after 0002."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from runyard.store import Store
from runyard.store._engine import make_engine
from runyard.store._migrate import current_revision, head_revision, upgrade

pytestmark = pytest.mark.usefixtures("empty_database")


def _seed_0001(url: str) -> None:
    """Points as the 0001 schema stored them: one row per point plus per-block extremes."""
    engine = make_engine(url)
    try:
        assert upgrade(engine, "0001") == "0001"
        points = [(s, float(s % 7) if s != 5 else None, 1000.0 + s) for s in reversed(range(600))]  # written out of order
        points.append((300, 99.0, 2000.0))  # a second value for step 300, logged later
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO projects (id, name, description, visibility, created_at, updated_at) "
                              "VALUES (1, 'p', '', 'private', 0, 0)"))
            conn.execute(text("INSERT INTO runs (id, project_id, number, name, status, status_message, attempt, created_at) "
                              "VALUES (1, 1, 0, 'r', 'running', '', 1, 0)"))
            conn.execute(text("INSERT INTO metric_keys (id, name) VALUES (1, 'loss')"))
            conn.execute(text("INSERT INTO metrics (run_id, key_id, step, value, ts) VALUES (1, 1, :s, :v, :t)"),
                         [{"s": s, "v": v, "t": t} for s, v, t in points])
            conn.execute(text("INSERT INTO metric_summaries (run_id, key_id, last, last_step, last_ts, min, max, count) "
                              "VALUES (1, 1, 4, 599, 1599, 0, 99, 601)"))
            for block in range(3):
                conn.execute(text("INSERT INTO metric_blocks (run_id, key_id, block, count, min, min_step, min_ts, max, "
                                  "max_step, max_ts) VALUES (1, 1, :b, 1, 0, 0, 0, 6, 6, 6)"), {"b": block})
            conn.execute(text("INSERT INTO metric_blocks (run_id, key_id, block, count, min, min_step, min_ts, max, "
                              "max_step, max_ts) VALUES (1, 1, 9, 1, 0, 0, 0, 6, 6, 6)"))  # extremes without points
    finally:
        engine.dispose()


def test_upgrade_packs_every_point_and_downgrade_unpacks_them(db_url: str) -> None:
    _seed_0001(db_url)
    store = Store.open(db_url)  # applies 0002
    try:
        assert current_revision(store.engine) == head_revision()
        hist = store.metric_history(1, "loss")
        assert hist["steps"] == sorted(list(range(600)) + [300])
        expected = [None if s == 5 else float(s % 7) for s in range(600)]
        expected.insert(301, 99.0)  # both values of step 300, in the order they were logged
        assert hist["values"] == expected
        assert hist["timestamps"][301] == 2000.0
        with store.engine.connect() as conn:
            blocks = conn.execute(text("SELECT block FROM metric_blocks ORDER BY block")).scalars().all()
        assert blocks == [0, 1, 2]  # the block with no points left is gone
        # New points merge into the migrated blocks.
        store.ingest_metrics(1, ["loss"] * 2, [600, 10], [1.5, 2.5], [3000.0, 3001.0])
        hist = store.metric_history(1, "loss")
        assert (len(hist["steps"]), hist["steps"][-1], hist["values"][-1]) == (603, 600, 1.5)
        assert hist["steps"][10:13] == [10, 10, 11] and hist["values"][11] == 2.5
    finally:
        store.close()
    engine = make_engine(db_url)
    try:
        from alembic import command

        from runyard.store._migrate import _config

        command.downgrade(_config(engine), "0001")
        with engine.connect() as conn:
            n, nulls = conn.execute(text("SELECT count(*), sum(CASE WHEN value IS NULL THEN 1 ELSE 0 END) FROM metrics")).one()
        assert (n, nulls) == (603, 1)
    finally:
        engine.dispose()


def test_head_read_from_the_files_is_alembics_head() -> None:
    """The start-up check reads the head from the migration files as text; Alembic must agree."""
    from runyard.store._migrate import _alembic_head, _head_from_files

    assert _head_from_files() == _alembic_head() != ""


def test_current_revision_without_alembic(tmp_path) -> None:  # noqa: ANN001
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        assert current_revision(engine) is None
        assert upgrade(engine) == head_revision() == current_revision(engine)
        assert upgrade(engine) == head_revision()  # at head: nothing to apply
    finally:
        engine.dispose()
