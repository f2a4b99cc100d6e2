"""SDK fixtures: one live server for all SDK tests, RUNYARD_SERVER pointing at it, no run left active."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import runyard
from runyard.testing import LiveServer


@pytest.fixture
def server(shared_live_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> LiveServer:
    """The session's shared server (each test makes its own runs), made the SDK's server through RUNYARD_SERVER."""
    monkeypatch.setenv("RUNYARD_SERVER", shared_live_server.url)
    return shared_live_server



@pytest.fixture(autouse=True)
def no_active_run(runyard_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """SDK settings from the outer environment are cleared; a run a test left active is finished."""
    for var in ("RUNYARD_PROJECT", "RUNYARD_SDK_BUFFER_POINTS", "RUNYARD_SDK_FLUSH_TIMEOUT_S"):
        monkeypatch.delenv(var, raising=False)
    yield
    run = runyard.active_run()
    if run is not None:
        monkeypatch.setenv("RUNYARD_SDK_FLUSH_TIMEOUT_S", "5")
        run.finish("failed")
