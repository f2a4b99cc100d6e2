"""Dataset tests: the store contract on SQLite and PostgreSQL, and a live server for routes, CLI and access."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runyard.store import Store


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store.open(db_url)
    try:
        yield s
    finally:
        s.close()
