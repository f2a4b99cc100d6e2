"""Fixtures of tests/lineage: a store on SQLite and PostgreSQL (``db_url`` from tests/conftest.py)."""

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
