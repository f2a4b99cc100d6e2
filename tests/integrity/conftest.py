"""Integrity tests: regressions of the store's histories, queries and experiment outcomes over live servers.

``store_server`` is a live server (scheduler off: runs made here stay as the test moves them)
on SQLite and on PostgreSQL, one per module and store.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from runyard.client import Client
from runyard.testing import LiveServer
from runyard.testing._postgres import drop_database, postgres_url
from runyard.testing.pytest_plugin import LiveServers


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store_server(request: pytest.FixtureRequest, module_live_servers: LiveServers) -> Iterator[LiveServer]:
    """A live server without a scheduler, on each store."""
    env = {"RUNYARD_SCHEDULER": "0"}
    if request.param == "sqlite":
        yield module_live_servers.start(f"int-sqlite-{uuid.uuid4().hex[:6]}", env=env)
        return
    try:
        url, name = postgres_url()
    except ConnectionError as e:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {e}. CI must run the PostgreSQL tests.")
        pytest.skip(f"SKIPPING POSTGRESQL TESTS: {e}")
    server = module_live_servers.start(f"int-pg-{name}", database_url=url, env=env)
    try:
        yield server
    finally:
        server.stop()
        drop_database(name)


@pytest.fixture
def store_client(store_server: LiveServer) -> Iterator[Client]:
    with Client(store_server.url) as c:
        yield c


@pytest.fixture
def own_project(store_client: Client) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    store_client.create_project(name)
    return name
