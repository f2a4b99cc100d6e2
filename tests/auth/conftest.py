"""Fixtures of tests/auth (helpers in auth_helpers.py, so that they import under any test selection)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from auth_helpers import World, build_world, start_auth_server
from runyard.testing import LiveServer


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    server = start_auth_server(tmp_path_factory.mktemp("auth-server"))
    try:
        yield build_world(server)
    finally:
        server.stop()


@pytest.fixture
def auth_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A fresh server requiring sign-in (only the first admin exists)."""
    server = start_auth_server(tmp_path / "auth-home", RUNYARD_LOGIN_MAX_FAILURES="3", RUNYARD_LOGIN_WINDOW_S="60")
    try:
        yield server
    finally:
        server.stop()
