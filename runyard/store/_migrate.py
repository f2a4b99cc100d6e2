"""Alembic migrations, applied programmatically (no alembic.ini needed).

``upgrade(engine)`` brings a database to the newest schema; the server calls it at
start and ``runyard db upgrade`` calls it by hand. Concurrent starts are safe on
PostgreSQL (an advisory lock serialises them) and on SQLite (BEGIN IMMEDIATE).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

__all__ = ["current_revision", "head_revision", "upgrade"]

_DIR = Path(__file__).parent / "migrations"


def _config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_DIR))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str:
    return ScriptDirectory(str(_DIR)).get_current_head() or ""


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, target: str = "head") -> str:
    """Apply every pending migration (up to ``target``); returns the revision the database is at."""
    if current_revision(engine) == head_revision():
        return head_revision()
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(7428801)"))
            try:
                cfg = _config(engine)
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, target)
                conn.commit()
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(7428801)"))
                conn.commit()
    else:
        command.upgrade(_config(engine), target)
    return current_revision(engine) or ""
