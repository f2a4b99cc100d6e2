"""Fixtures for the task runner tests: a client of the live server and launch factories."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from runyard.backends.base import RunLaunch
from runyard.client import Client
from runyard.testing import LiveServer


@pytest.fixture
def server(shared_live_server: LiveServer) -> LiveServer:
    """The session's shared server (starting one costs seconds); runs keep tests apart."""
    return shared_live_server


@pytest.fixture
def client(server: LiveServer) -> Iterator[Client]:
    with Client(server.url) as c:
        yield c


@pytest.fixture
def make_launch(server: LiveServer, client: Client) -> Callable[..., RunLaunch]:
    """A queued run on the live server and a launch of it; keyword arguments go to RunLaunch."""

    def make(command: str, **kwargs: Any) -> RunLaunch:
        run = client.create_run("runner-tests", status="queued")
        fields: dict[str, Any] = {"run_id": run["id"], "attempt": 1, "project": "runner-tests", "experiment_id": None,
                                  "command": command, "snapshot_id": None, "server_url": server.url,
                                  "grace_period_s": 2.0}
        fields.update(kwargs)
        return RunLaunch(**fields)

    return make
