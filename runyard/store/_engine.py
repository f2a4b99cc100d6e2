"""Engines and transaction scopes, with the database settings that make them fast.

SQLite runs in WAL mode with ``synchronous=NORMAL`` (~20x faster small
commits than the rollback journal). Write transactions start with ``BEGIN
IMMEDIATE`` so that two writers queue on the busy timeout instead of one failing
with "database is locked" when it upgrades a read lock.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DataError, OperationalError, ProgrammingError
from sqlalchemy.pool import StaticPool

from runyard import config
from runyard.errors import InvalidInput, RunyardError, ServerUnreachable

__all__ = ["make_engine", "read_scope", "write_scope"]


def make_engine(url: str | None = None) -> Engine:
    """Create an engine for ``url`` (default: ``config.database_url()``)."""
    url = url or config.database_url()
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    engine = create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
    return engine


def _sqlite_engine(url: str) -> Engine:
    memory = url in ("sqlite://", "sqlite:///:memory:")
    if not memory:
        path = url.split("///", 1)[1]
        if "?" not in path and not path.startswith("file:"):
            # This account only: the database holds every project and the password hashes. SQLite gives
            # the -wal and -shm files the database file's mode, so creating it 0600 covers them too.
            config.make_private_dir(Path(path).parent)
            config.make_private_file(path)
        else:
            Path(path.split("?", 1)[0].removeprefix("file:")).parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict = {"connect_args": {"check_same_thread": False, "timeout": 60}}
    if memory:
        kwargs["poolclass"] = StaticPool
    else:
        kwargs["pool_size"] = 8
        kwargs["max_overflow"] = 16
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # noqa: ANN001
        # Take transaction control away from the sqlite3 module so BEGIN is ours.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA cache_size=-65536")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


@contextlib.contextmanager
def write_scope(engine: Engine) -> Iterator[Connection]:
    """A write transaction: commits on success, rolls back on error, maps DB errors."""
    with _mapped_errors(engine), engine.connect() as conn:
        if _is_sqlite(engine):
            conn = conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin():
            yield conn


@contextlib.contextmanager
def read_scope(engine: Engine) -> Iterator[Connection]:
    """A read transaction (one consistent snapshot)."""
    with _mapped_errors(engine), engine.connect() as conn, conn.begin():
        yield conn


@contextlib.contextmanager
def _mapped_errors(engine: Engine) -> Iterator[None]:
    try:
        yield
    except RunyardError:
        raise
    except OverflowError as e:
        # SQLite's driver cannot bind integers beyond 64 bits (an id like 10**30 in a URL): bad input, not a 500.
        raise InvalidInput(f"A number is out of range: {e}.", "Keep ids and integers within 64 bits.") from e
    except DataError as e:
        # A value the database cannot hold (PostgreSQL: NUL in text, numbers out of range) is bad input, not a 500.
        text = (str(e.orig) if e.orig is not None else str(e)).strip().splitlines()[0]
        raise InvalidInput(
            f"The database refused a value: {text}.",
            "Remove NUL characters from text and keep integers within 64 bits.",
        ) from e
    except (OperationalError, ProgrammingError) as e:  # PostgreSQL reports a missing table as ProgrammingError
        url = config.mask_url(engine.url.render_as_string(hide_password=True))
        text = str(e.orig) if e.orig is not None else str(e)
        if "no such table" in text or "does not exist" in text and "relation" in text:
            raise RunyardError(
                f"The database at {url} has no Runyard tables or an old schema ({text}).",
                "Run `runyard db upgrade` (the server does it at start).",
            ) from e
        if "could not connect" in text or "Connection refused" in text or "unable to open" in text:
            raise ServerUnreachable(
                f"Cannot reach the database at {url}: {text.strip()}",
                "Check RUNYARD_DATABASE_URL and that the database server is up.",
            ) from e
        raise


_STATEMENTS: dict[str, Any] = {}


def statement(name: str, build: Callable[[], Any]) -> Any:
    """A statement of the hot paths (reports, dispatch, tokens), built once with bind parameters.

    Building a statement per call costs more CPU than running it on SQLite (coercions and
    the cache key, a fraction of a millisecond each); a statement object that is reused keeps both.
    """
    stmt = _STATEMENTS.get(name)
    if stmt is None:
        stmt = _STATEMENTS[name] = build()
    return stmt
