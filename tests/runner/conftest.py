"""Fixtures for the task runner tests: the session's shared server.

``client`` and ``make_launch`` come from the backend contract's plugin (``runyard.testing.backend_contract``)
and use this ``server``.
"""

from __future__ import annotations

import pytest

from runyard.testing import LiveServer


@pytest.fixture
def server(shared_live_server: LiveServer) -> LiveServer:
    """The session's shared server (starting one costs seconds); runs keep tests apart."""
    return shared_live_server

