"""Fixtures of the distributed-launch tests: the session's shared server (runs keep tests apart);
``client`` comes from the backend contract's plugin."""

from __future__ import annotations

import pytest

from runyard.testing import LiveServer


@pytest.fixture
def server(shared_live_server: LiveServer) -> LiveServer:
    return shared_live_server
