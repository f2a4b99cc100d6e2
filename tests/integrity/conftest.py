"""Fixtures of tests/integrity: a live server on SQLite and one on PostgreSQL (helpers in int_helpers.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from int_helpers import Api

from runyard.testing import LiveServer
from runyard.testing._postgres import drop_database, postgres_url
from runyard.testing.pytest_plugin import LiveServers


def _start(servers: LiveServers, name: str, database: str, env: dict[str, str]) -> tuple[LiveServer, str | None]:
    if database == "sqlite":
        return servers.start(name, env=env), None
    try:
        url, db = postgres_url()
    except ConnectionError as e:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {e}. CI must run the PostgreSQL tests.")
        pytest.skip(f"SKIPPING POSTGRESQL TESTS: {e}")
    return servers.start(name, database_url=url, env=env), db


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def edge_api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """A server of this module (scheduler on) on SQLite, then on PostgreSQL; its database dropped after it stops."""
    servers = LiveServers(Path(tmp_path_factory.mktemp("edge-servers")))
    db = None
    try:
        server, db = _start(servers, f"edge-{request.param}", request.param, {"RUNYARD_WARM_AGENT": "0"})
        api = Api(server)
        yield api
        api.http.close()
    finally:
        servers.stop_all()
        if db is not None:
            drop_database(db)
