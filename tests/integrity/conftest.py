"""Fixtures of tests/integrity: moto's S3 server on 127.0.0.1 for the session (RUNYARD_ARTIFACTS_URL=s3://… for real);
a live server on SQLite and one on PostgreSQL for the edge tests (their requests in edge_helpers.py); and
``store_server``, a live server (scheduler off: runs made here stay as the test moves them) on SQLite and on
PostgreSQL, one per module and store, for the regressions of histories, queries and experiment outcomes."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from edge_helpers import Api

from runyard.backends.local import agent_dir, stop_agent
from runyard.client import Client
from runyard.testing import LiveServer
from runyard.testing._postgres import fresh_postgres
from runyard.testing.moto import MotoS3
from runyard.testing.moto import moto_s3 as start_moto_s3
from runyard.testing.pytest_plugin import LiveServers


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3]:
    """moto's S3 in server mode (``python -m moto.server``), stopped by its pid at the end of the session."""
    pytest.importorskip("moto.server", reason="moto[server] is not installed (pip install -e '.[test]')")
    pytest.importorskip("s3fs", reason="s3fs is not installed (pip install -e '.[test]')")
    with start_moto_s3(tmp_path_factory.mktemp("moto")) as s3:
        yield s3


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def edge_api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """A server of this module (scheduler on) on SQLite, then on PostgreSQL; its database dropped after it stops."""
    servers = LiveServers(Path(tmp_path_factory.mktemp("edge-servers")))
    env = {"RUNYARD_WARM_AGENT": "0"}
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(fresh_postgres()) if request.param == "postgresql" else None
        home = servers.root / f"edge-{request.param}"
        # The edge tests' runs start the server's local agent, which outlives the server by design: stopped by
        # its pid once the server has stopped (the callbacks run last first).
        stack.callback(stop_agent, agent_dir(home), 30.0)
        stack.callback(servers.stop_all)  # runs before the database is dropped
        server = servers.start(f"edge-{request.param}", home=home, database_url=url, env=env)
        api = Api(server)
        yield api
        api.http.close()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store_server(request: pytest.FixtureRequest, module_live_servers: LiveServers) -> Iterator[LiveServer]:
    """A live server without a scheduler, on each store."""
    env = {"RUNYARD_SCHEDULER": "0"}
    if request.param == "sqlite":
        yield module_live_servers.start(f"int-sqlite-{uuid.uuid4().hex[:6]}", env=env)
        return
    with fresh_postgres() as url:
        server = module_live_servers.start(f"int-pg-{uuid.uuid4().hex[:6]}", database_url=url, env=env)
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def store_client(store_server: LiveServer) -> Iterator[Client]:
    with Client(store_server.url) as c:
        yield c


@pytest.fixture
def own_project(store_client: Client) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    store_client.create_project(name)
    return name
