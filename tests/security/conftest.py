"""Fixtures of tests/security: live servers that require sign-in, on SQLite and on PostgreSQL.

Each module gets one server per database (``sec_server``), with short limits so the tests
are quick: a run's token lives 2 s past its run's end, 5 failed sign-ins per user and
address, 50 metric keys per run. Its scheduler is off; run tokens are minted by the same
store call the scheduler's dispatch makes (``Store.claim_runs``), on the server's database.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sec_helpers import SecServer, start_sec_server

from runyard.testing._postgres import fresh_postgres
from runyard.testing.pytest_plugin import LiveServers


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def sec_database(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None for SQLite in the server's home, else a fresh PostgreSQL database for the module."""
    if request.param == "sqlite":
        yield None
        return
    with fresh_postgres() as url:
        yield url


@pytest.fixture(scope="module")
def sec_server(module_live_servers: LiveServers, sec_database: str | None) -> SecServer:
    name = "sec-pg" if sec_database else "sec-sqlite"
    return start_sec_server(module_live_servers, name, sec_database)
