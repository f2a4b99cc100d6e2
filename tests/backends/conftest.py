"""Fixtures for the backend tests: a live server per module, launches, and a local backend whose agent is stopped by pid."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runyard.backends.base import RunLaunch
from runyard.backends.local import LocalBackend, agent_dir, stop_agent
from runyard.client import Client
from runyard.testing import LiveServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    srv = LiveServer(tmp_path_factory.mktemp("server-home"))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def client(server: LiveServer) -> Iterator[Client]:
    with Client(server.url) as c:
        yield c


@pytest.fixture
def make_launch(server: LiveServer, client: Client) -> Callable[..., RunLaunch]:
    """A queued run on the live server and a launch of it; keyword arguments go to RunLaunch."""

    def make(command: str, **kwargs: Any) -> RunLaunch:
        url = kwargs.pop("server_url", server.url)
        run = Client(url).create_run("backend-tests", status="queued") if url != server.url else client.create_run(
            "backend-tests", status="queued")
        fields: dict[str, Any] = {"run_id": run["id"], "attempt": 1, "project": "backend-tests", "experiment_id": None,
                                  "command": command, "snapshot_id": None, "server_url": url, "grace_period_s": 2.0}
        fields.update(kwargs)
        return RunLaunch(**fields)

    return make


@pytest.fixture
def local_backend(runyard_home: Path) -> Iterator[LocalBackend]:
    """A local backend with an injected inventory of two GPUs; its agent is stopped by pid afterwards."""
    backend = LocalBackend({"gpus": [0, 1]})
    try:
        yield backend
    finally:
        backend.close()
        stop_agent(agent_dir(runyard_home))
