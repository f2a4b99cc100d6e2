"""pytest fixtures of live Runyard servers: per test, per module, per session, each stopped by its pid.

Register it from a conftest with ``pytest_plugins = ["runyard.testing.pytest_plugin"]``.

Starting a server costs seconds (imports, migrations), so tests that keep apart by their own
projects and runs share one: ``shared_live_server`` for the session, or a server of their own
started from ``session_live_servers`` / ``module_live_servers`` when they need other settings.
Tests that stop, kill or restart their server, or need it empty, start one from ``live_servers``
(or take ``live_server``), which lives for that test alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runyard.testing._server import LiveServer

__all__ = ["LiveServers", "live_server", "live_servers", "module_live_servers", "session_live_servers",
           "shared_live_server"]


class LiveServers:
    """Starts live servers under ``root`` and stops every one of them, newest first, in ``stop_all``.

    Args:
        root: the directory holding each server's RUNYARD_HOME (``root/<name>``).
        env: environment every server gets, under each ``start``'s own ``env``.
        timeout_s: how long a server may take to answer its health check.
    """

    def __init__(self, root: Path, *, env: dict[str, str] | None = None, timeout_s: float = 30.0) -> None:
        self.root = Path(root)
        self.env = dict(env or {})
        self.timeout_s = timeout_s
        self.started: list[LiveServer] = []

    def start(self, name: str = "server", *, home: Path | None = None, port: int | None = None,
              database_url: str | None = None, env: dict[str, str] | None = None) -> LiveServer:
        """A started server with RUNYARD_HOME ``home`` (default ``root/name``)."""
        server = LiveServer(home or self.root / name, database_url=database_url, port=port,
                            env={**self.env, **(env or {})})
        self.started.append(server)
        server.start(timeout_s=self.timeout_s)
        return server

    def stop_all(self) -> None:
        for server in reversed(self.started):
            server.stop()


def _servers(root: Path) -> Iterator[LiveServers]:
    servers = LiveServers(root)
    try:
        yield servers
    finally:
        servers.stop_all()


@pytest.fixture
def live_servers(tmp_path: Path) -> Iterator[LiveServers]:
    """Servers of this test alone (free to stop, kill, restart): ``live_servers.start(name, env=...)``."""
    yield from _servers(tmp_path / "servers")


@pytest.fixture(scope="module")
def module_live_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServers]:
    """Servers shared by one test module's tests, stopped after its last test."""
    yield from _servers(tmp_path_factory.mktemp("module-servers"))


@pytest.fixture(scope="session")
def session_live_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServers]:
    """Servers shared by the whole session, stopped at its end."""
    yield from _servers(tmp_path_factory.mktemp("session-servers"))


@pytest.fixture
def live_server(live_servers: LiveServers) -> LiveServer:
    """A server of this test alone, with the default settings (SQLite, scheduler on)."""
    return live_servers.start()


@pytest.fixture(scope="session")
def shared_live_server(session_live_servers: LiveServers) -> LiveServer:
    """The session's server with the default settings (SQLite, scheduler on), shared by every test that
    asks for it: use runs and projects of your own, and never stop it."""
    return session_live_servers.start("shared")
