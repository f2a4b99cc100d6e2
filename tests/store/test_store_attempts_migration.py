"""0008 (point attempts): points stored before it belong to attempt 1; a downgrade keeps each series' latest attempt."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from runyard.store import Store
from runyard.store._engine import make_engine
from runyard.store._migrate import upgrade

pytestmark = pytest.mark.usefixtures("empty_database")


def test_points_before_0008_are_attempt_1_and_restarts_keep_theirs_apart(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        assert upgrade(engine, "0007") == "0007"
    finally:
        engine.dispose()
    # Points as 0007 held them: one block row per (run, key, block), no attempt.
    from runyard.store._points import pack, stats_of

    engine = make_engine(db_url)
    try:
        steps, values, ts = list(range(10)), [float(s) for s in range(10)], [0.0] * 10
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO projects (id, name, description, visibility, created_at, updated_at) "
                              "VALUES (1, 'p', '', 'private', 0, 0)"))
            conn.execute(text("INSERT INTO runs (id, project_id, number, name, status, status_message, attempt, created_at) "
                              "VALUES (1, 1, 0, 'r', 'failed', '', 1, 0)"))
            conn.execute(text("INSERT INTO metric_keys (id, name) VALUES (1, 'loss')"))
            conn.execute(text("INSERT INTO metric_summaries (run_id, key_id, last, last_step, last_ts, min, max, count) "
                              "VALUES (1, 1, 9, 9, 0, 0, 9, 10)"))
            st = stats_of(steps, values, ts)
            conn.execute(text("INSERT INTO metric_blocks (run_id, key_id, block, count, min, min_step, min_ts, max, max_step, "
                              "max_ts, data) VALUES (1, 1, 0, 10, :a, :b, :c, :d, :e, :f, :data)"),
                         {"a": st[0], "b": st[1], "c": st[2], "d": st[3], "e": st[4], "f": st[5], "data": pack(steps, values, ts)})
    finally:
        engine.dispose()
    store = Store.open(db_url)  # applies 0008
    try:
        hist = store.metric_history(1, "loss")
        assert (hist["attempt"], hist["steps"]) == (1, list(range(10)))
        store.restart_run(1, "restarted")
        store.ingest_metrics(1, ["loss"] * 3, [0, 1, 2], [5.0, 4.0, 3.0], [1.0] * 3)
        hist = store.metric_history(1, "loss")
        assert (hist["attempt"], hist["steps"], hist["values"]) == (2, [0, 1, 2], [5.0, 4.0, 3.0])
        summary = store.get_run(1).metrics["loss"]
        assert (summary.count, summary.last, summary.min, summary.max) == (3, 3.0, 3.0, 5.0)
        every = store.metric_history(1, "loss", attempt="all")
        assert every["attempts"] == [1] * 10 + [2] * 3
    finally:
        store.close()
    engine = make_engine(db_url)
    try:
        from alembic import command

        from runyard.store._migrate import _config

        command.downgrade(_config(engine), "0007")
        with engine.connect() as conn:
            counts = conn.execute(text("SELECT count FROM metric_blocks")).scalars().all()
        assert counts == [3]  # the latest attempt's points
    finally:
        engine.dispose()
