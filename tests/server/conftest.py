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


@pytest.fixture(scope="session")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path_factory.mktemp("shared-server-home"), env={"RUNYARD_SCHEDULER": "0", "RUNYARD_MAX_UPLOAD_MB": "1"})
    server.start()
    try:
        yield server
    finally:
        server.stop()


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
