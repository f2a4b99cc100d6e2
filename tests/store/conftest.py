"""The store contract runs on SQLite and PostgreSQL (``db_url`` from tests/conftest.py).

Here ``pg_url`` is overridden for speed: creating and migrating a PostgreSQL
database costs one to two seconds, most of a PostgreSQL test's time. Instead, one
database per session is migrated once and every test gets it emptied (TRUNCATE of
every table but ``alembic_version``, identities restarted), which is as good as
fresh for the contract. Tests that need an empty, unmigrated database request the
``empty_database`` fixture and get a new one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from runyard.store import Store
from runyard.testing._postgres import drop_database, postgres_url

_HERE = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)  # before `-m` deselection, so `-m "not postgres"` sees the mark
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("db_url") == "postgresql" and _HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.postgres)


def _unreachable(e: ConnectionError) -> NoReturn:
    # The same rule as tests/conftest.py: a failure in CI, a loud skip elsewhere.
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {e}. CI must run the PostgreSQL tests.")
    pytest.skip(f"SKIPPING POSTGRESQL TESTS: {e}")


@pytest.fixture(scope="session")
def pg_session_url() -> Iterator[str]:
    """A PostgreSQL database at the newest schema, shared by the session's store tests."""
    try:
        url, name = postgres_url()
    except ConnectionError as e:
        _unreachable(e)
    Store.open(url).close()
    try:
        yield url
    finally:
        drop_database(name)


def _empty_tables(url: str) -> None:
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True, connect_timeout=3) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'")]
        conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")


@pytest.fixture
def empty_database() -> None:
    """Marker fixture: this test's ``pg_url`` is a new empty database, not the migrated shared one."""


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if "empty_database" not in request.fixturenames:
        url = request.getfixturevalue("pg_session_url")
        _empty_tables(url)
        yield url
        return
    try:
        url, name = postgres_url()
    except ConnectionError as e:
        _unreachable(e)
    try:
        yield url
    finally:
        drop_database(name)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store.open(db_url)
    try:
        yield s
    finally:
        s.close()
