"""Scheduler unit tests: a real SQLite store in tmp_path, a FakeBackend and a FakeClock; no subprocess, no sleep."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runyard.backends.base import Resources
from runyard.scheduler import BackendPool, Scheduler, backend_names
from runyard.spec import validate_config
from runyard.store import Store
from runyard.testing import FakeBackend, FakeClock


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty store's SQLite file, migrated once; each test gets a copy (migrating costs ~0.4 s)."""
    path = tmp_path_factory.mktemp("scheduler-store") / "template.db"
    Store.open(f"sqlite:///{path}").close()
    return path


@pytest.fixture
def store(tmp_path: Path, migrated_db: Path) -> Iterator[Store]:
    db = tmp_path / "store.db"
    shutil.copyfile(migrated_db, db)
    s = Store.open(f"sqlite:///{db}", migrate=False)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake() -> FakeBackend:
    """The backend named ``fake``: room for 4 CPUs."""
    return FakeBackend(Resources(cpus=4.0, memory_mb=0, gpus=0))


@pytest.fixture
def make_scheduler(store: Store, clock: FakeClock, fake: FakeBackend) -> Iterator[Callable[..., Scheduler]]:
    """Schedulers on the shared store and clock; by default their pool holds ``fake``."""
    made: list[Scheduler] = []

    def make(backends: dict[str, Any] | None = None, **kwargs: Any) -> Scheduler:
        pool = BackendPool(instances=backends if backends is not None else {"fake": fake})
        sched = Scheduler(store, server_url="http://127.0.0.1:1", backends=pool, clock=clock, **kwargs)
        made.append(sched)
        return sched

    yield make
    for sched in made:
        sched.backends.close()


@pytest.fixture
def submit(store: Store) -> Callable[..., int]:
    """Store an experiment as the server does (validated config); returns its id."""

    def submit_experiment(values: list[Any] | None = None, *, parallel: int = 4, backend: str | list[str] = "fake",
                          **extra: Any) -> int:
        config = {"project": "sched", "command": "python train.py --a {a}",
                  "params": {"a": values if values is not None else [1, 2, 3]},
                  "search": {"parallel": parallel}, "backend": backend, "resources": {"cpus": 1}}
        for key, value in extra.items():
            if isinstance(value, dict) and isinstance(config.get(key), dict):
                config[key] = {**config[key], **value}
            else:
                config[key] = value
        spec = validate_config(config)
        exp = store.create_experiment("sched", spec.name or "sched", config=spec.to_config(),
                                      backend=",".join(backend_names(spec)))
        return exp.id

    return submit_experiment
