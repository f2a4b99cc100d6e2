"""Alembic migrations, applied programmatically (no alembic.ini needed).

``upgrade(engine)`` brings a database to the newest schema; the server calls it at
start and ``runyard db upgrade`` calls it by hand. Concurrent starts are safe on
PostgreSQL (an advisory lock serialises them) and on SQLite (BEGIN IMMEDIATE).

A database already at the newest revision (every start but the first after an
upgrade) is recognised without importing Alembic: the head is read from the
``revision``/``down_revision`` lines of the migration files, the database's revision
from its ``alembic_version`` table. Alembic (~0.3 s of import) loads only when there
is something to apply, or when the files do not name a single head plainly.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["current_revision", "head_revision", "upgrade"]

_DIR = Path(__file__).parent / "migrations"
_REVISION = re.compile(r"^(revision|down_revision)\s*=\s*(None|'[^']*'|\"[^\"]*\")\s*$", re.MULTILINE)


def _config(engine: Engine) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_DIR))
    cfg.attributes["engine"] = engine
    return cfg


@functools.cache
def head_revision() -> str:
    """The newest revision of the migration files."""
    return _head_from_files() or _alembic_head()


def _alembic_head() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(_DIR)).get_current_head() or ""


def _head_from_files() -> str | None:
    """The one revision no other file revises, read as text; None when the files are not that plain
    (a merge revision, a tuple of parents, a file without both lines): then Alembic decides."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (_DIR / "versions").glob("*.py"):
        found = dict(_REVISION.findall(path.read_text()))
        if set(found) != {"revision", "down_revision"} or found["revision"] == "None":
            return None
        revisions.add(found["revision"][1:-1])
        if found["down_revision"] != "None":
            parents.add(found["down_revision"][1:-1])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 and parents <= revisions else None


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; None for a database without Runyard's tables."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(rows) <= 1:
        return rows[0] if rows else None
    from alembic.runtime.migration import (
        MigrationContext,  # several heads: Alembic's own error
    )

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, target: str = "head") -> str:
    """Apply every pending migration (up to ``target``); returns the revision the database is at."""
    if current_revision(engine) == head_revision():
        return head_revision()
    from alembic import command

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
