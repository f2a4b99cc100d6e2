"""An experiment on several backends (``backend: [a, b]``): each listed name is checked at submission.

The names are checked against the scheduler's backends, so these tests start a server of
their own with its scheduler (the shared one runs without); nothing here is dispatched.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from runyard.client import Client
from runyard.errors import SpecError
from runyard.testing import LiveServer


@pytest.fixture(scope="module")
def scheduling_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    server = LiveServer(tmp_path_factory.mktemp("backend-list-home"))
    server.start()
    try:
        with Client(server.url) as c:
            yield c
    finally:
        server.stop()


@pytest.fixture
def client(scheduling_client: Client) -> Client:
    return scheduling_client


@pytest.fixture
def project(client: Client) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    client.create_project(name)
    return name


def _config(project: str, backend: object) -> dict:
    return {"project": project, "command": "python -c pass", "backend": backend}


def test_every_listed_backend_must_be_configured(client: Client, project: str) -> None:
    with pytest.raises(SpecError, match="No backend named 'nowhere'"):
        client.create_experiment(project, "hybrid", _config(project, ["local", "nowhere"]))


def test_the_backend_override_may_list_several(client: Client, project: str) -> None:
    with pytest.raises(SpecError, match="No backend named 'elsewhere'"):
        client.create_experiment(project, "hybrid", _config(project, "local"), backend="local,elsewhere")
    with pytest.raises(SpecError, match="lists local more than once"):
        client.create_experiment(project, "hybrid", _config(project, "local"), backend="local,local")
