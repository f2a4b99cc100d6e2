"""The registry's store tests run on SQLite and PostgreSQL (``db_url`` from tests/conftest.py).

As in tests/store, one PostgreSQL database per session is migrated once and each test gets it
emptied (TRUNCATE, identities restarted): migrating a new database per test costs seconds.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from runyard.artifacts import ArtifactStorage
from runyard.store import Store
from runyard.testing._postgres import drop_database, postgres_url

_HERE = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)  # before `-m` deselection, so `-m "not postgres"` sees the mark
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("db_url") == "postgresql" and _HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session")
def registry_pg_url() -> Iterator[str]:
    try:
        url, name = postgres_url()
    except ConnectionError as e:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {e}. CI must run the PostgreSQL tests.")
        pytest.skip(f"SKIPPING POSTGRESQL TESTS: {e}")
    Store.open(url).close()
    try:
        yield url
    finally:
        drop_database(name)


@pytest.fixture
def pg_url(registry_pg_url: str) -> str:
    import psycopg

    with psycopg.connect(registry_pg_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True,
                         connect_timeout=3) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'")]
        conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")
    return registry_pg_url


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store.open(db_url)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def storage(tmp_path: Path) -> ArtifactStorage:
    return ArtifactStorage(str(tmp_path / "artifacts"))


@pytest.fixture(scope="session")
def registry_server(session_live_servers):  # noqa: ANN001, ANN201
    """One live server (SQLite, no scheduler) shared by the registry's route and CLI tests; each test uses its own project."""
    return session_live_servers.start("registry", env={"RUNYARD_SCHEDULER": "0"})


@pytest.fixture
def client(registry_server):  # noqa: ANN001, ANN201
    from runyard.client import Client

    with Client(registry_server.url) as c:
        yield c


@pytest.fixture
def project(client) -> str:  # noqa: ANN001
    """A project of this test alone on the shared server."""
    import uuid

    name = f"r-{uuid.uuid4().hex[:10]}"
    client.create_project(name)
    return name
