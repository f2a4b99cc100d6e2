"""Server tests talk HTTP to real server subprocesses.

Starting a server costs seconds (imports, migrations), so the tests share one
session-wide server and keep apart by using their own project and runs. Its
settings:

- RUNYARD_SCHEDULER=0: these tests cover the store and the HTTP layer, so queued
  runs made here stay queued;
- RUNYARD_MAX_UPLOAD_MB=1: the upload limit is tested with 2 MB, not gigabytes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from runyard.client import Client
from runyard.testing import LiveServer
from runyard.testing.pytest_plugin import LiveServers


@pytest.fixture(scope="session")
def shared_server(session_live_servers: LiveServers) -> LiveServer:
    return session_live_servers.start("server-tests", env={"RUNYARD_SCHEDULER": "0", "RUNYARD_MAX_UPLOAD_MB": "1"})


@pytest.fixture
def client(shared_server: LiveServer) -> Iterator[Client]:
    with Client(shared_server.url) as c:
        yield c


@pytest.fixture
def project(client: Client) -> str:
    """A project of this test alone on the shared server."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    client.create_project(name)
    return name
