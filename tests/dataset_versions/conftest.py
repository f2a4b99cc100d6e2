"""Dataset tests: the store contract on SQLite and PostgreSQL, and a live server for routes, CLI and access."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from runyard.client import Client
from runyard.store import Store
from runyard.testing import LiveServer
from runyard.testing.pytest_plugin import LiveServers


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store.open(db_url)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def ds_server(module_live_servers: LiveServers) -> LiveServer:
    """A server of this module (local mode: every caller may do everything; no scheduler)."""
    return module_live_servers.start("datasets", env={"RUNYARD_SCHEDULER": "0"})


@pytest.fixture
def client(ds_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    """A client of the module's server, which the CLI uses too (RUNYARD_SERVER)."""
    monkeypatch.setenv("RUNYARD_SERVER", ds_server.url)
    with Client(ds_server.url) as c:
        yield c


@pytest.fixture
def project(client: Client) -> str:
    """A project of this test alone."""
    name = f"d-{uuid.uuid4().hex[:10]}"
    client.create_project(name)
    return name


@pytest.fixture
def blob_files(ds_server: LiveServer) -> Callable[[], list[Path]]:
    """The blob files in the server's artifact store (``.part`` files are uploads in progress)."""
    def files() -> list[Path]:
        root = ds_server.home / "artifacts" / "blobs"
        return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []

    return files


@pytest.fixture
def cli() -> Callable[..., Result]:
    """``cli("datasets", "ls", ...)`` runs ``runyard`` in this process."""
    def invoke(*args: str) -> Result:
        from runyard.cli import app

        return CliRunner().invoke(app, list(args))

    return invoke
