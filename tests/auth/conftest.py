"""Fixtures of tests/auth (helpers in auth_helpers.py, so that they import under any test selection)."""

from __future__ import annotations

import pytest
from auth_helpers import World, build_world, start_auth_server

from runyard.testing import LiveServer
from runyard.testing.pytest_plugin import LiveServers


@pytest.fixture(scope="module")
def world(module_live_servers: LiveServers) -> World:
    return build_world(start_auth_server(module_live_servers, "auth-server"))


@pytest.fixture
def auth_server(live_servers: LiveServers) -> LiveServer:
    """A fresh server requiring sign-in (only the first admin exists)."""
    return start_auth_server(live_servers, "auth-home", RUNYARD_LOGIN_MAX_FAILURES="3", RUNYARD_LOGIN_WINDOW_S="60")
