"""A fresh PostgreSQL schema per test on the local server (127.0.0.1:5432, user postgres, db test).

In CI (``CI=true``) an unreachable PostgreSQL is a failure; elsewhere the tests skip
with a loud reason.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

__all__ = ["drop_database", "fresh_postgres", "postgres_url"]

BASE = os.environ.get("RUNYARD_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def postgres_url() -> tuple[str, str]:
    """Create a new empty database; returns (url, name). Raises ConnectionError when unreachable."""
    import psycopg

    plain = BASE.replace("postgresql+psycopg://", "postgresql://")
    name = f"runyard_t_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(plain, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as e:
        raise ConnectionError(f"PostgreSQL at {plain} is unreachable: {e}") from e
    return BASE.rsplit("/", 1)[0] + "/" + name, name


def drop_database(name: str) -> None:
    import psycopg

    plain = BASE.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def fresh_postgres() -> Iterator[str]:
    """A new empty database for a test or fixture, dropped afterwards; yields its URL.

    An unreachable PostgreSQL fails the test under CI (``CI=true``: CI must run the PostgreSQL
    tests) and skips it loudly elsewhere.
    """
    import pytest

    try:
        url, name = postgres_url()
    except ConnectionError as e:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {e}. CI must run the PostgreSQL tests.")
        pytest.skip(f"SKIPPING POSTGRESQL TESTS: {e}")
    try:
        yield url
    finally:
        drop_database(name)
