"""Fixtures of the distributed-launch tests: the session's shared server (runs keep tests apart) and its client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runyard.client import Client
from runyard.testing import LiveServer


@pytest.fixture
def server(shared_live_server: LiveServer) -> LiveServer:
    return shared_live_server


@pytest.fixture
def client(server: LiveServer) -> Iterator[Client]:
    with Client(server.url) as c:
        yield c
