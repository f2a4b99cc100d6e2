"""get_backend: lazy imports, the known names, and the errors for unknown or unwritten backends."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from runyard.backends.local import LocalBackend
from runyard.backends.registry import (
    BUILTIN_BACKENDS,
    backend_class,
    backend_names,
    get_backend,
)
from runyard.errors import SpecError


def test_local_is_built_with_its_options(runyard_home: Path) -> None:
    backend = get_backend("local", {"cpus": 3, "gpus": [0]})
    assert isinstance(backend, LocalBackend)
    assert backend.name == "local"
    assert (backend.total().cpus, backend.total().gpus) == (3.0, 1)


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(SpecError, match=r"Unknown backend 'slrum'\. Known backends: local, ssh, slurm, kubernetes, ray") as e:
        backend_class("slrum")
    assert e.value.hint == "Did you mean 'slurm'?"


@pytest.mark.parametrize("name", ["ssh", "slurm", "kubernetes", "ray"])
def test_written_backends_resolve_to_their_class(name: str) -> None:
    module, attr = BUILTIN_BACKENDS[name]
    assert backend_class(name) is getattr(importlib.import_module(module), attr)


def test_names() -> None:
    assert backend_names()[:5] == ["local", "ssh", "slurm", "kubernetes", "ray"]
