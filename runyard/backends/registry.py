"""Backend names → backend classes, imported lazily.

``get_backend(name, options)`` builds the backend the server's configuration
names. Built-in names map to modules of this package and are imported only when
asked for (the Kubernetes and Ray clients are heavy); the entry-point group
``runyard.backends`` adds more (``name = "package.module:Class"``).

A backend class is built as ``cls(options)``: it validates ``options`` itself and
raises ``SpecError`` naming the valid keys.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from runyard.backends.base import Backend
from runyard.errors import SpecError

__all__ = ["BUILTIN_BACKENDS", "backend_class", "backend_names", "get_backend"]

# name → (module, class). A module that does not exist yet makes its name "not available yet".
BUILTIN_BACKENDS: dict[str, tuple[str, str]] = {
    "local": ("runyard.backends.local", "LocalBackend"),
    "ssh": ("runyard.backends.ssh", "SSHBackend"),
    "slurm": ("runyard.backends.slurm", "SlurmBackend"),
    "kubernetes": ("runyard.backends.kubernetes", "KubernetesBackend"),
    "ray": ("runyard.backends.ray", "RayBackend"),
}

ENTRY_POINT_GROUP = "runyard.backends"


def _entry_points() -> dict[str, Any]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def backend_names() -> list[str]:
    """Every name ``get_backend`` knows: built-in first, then entry points."""
    return list(BUILTIN_BACKENDS) + sorted(n for n in _entry_points() if n not in BUILTIN_BACKENDS)


def backend_class(name: str) -> type:
    """The class registered for ``name``.

    Raises:
        SpecError: unknown name (the message lists the known ones), a built-in
            backend not written yet, or a backend whose dependencies are missing.
    """
    if name in BUILTIN_BACKENDS:
        module_name, attr = BUILTIN_BACKENDS[name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name == module_name:
                raise SpecError(f"The backend {name!r} is not available yet in this version of Runyard.",
                                "Use the local backend for now: `backend: local`.") from e
            raise SpecError(f"The backend {name!r} needs the package {e.name!r}, which is not installed.",
                            f"Install it: `pip install {e.name}`.") from e
        return getattr(module, attr)
    eps = _entry_points()
    if name in eps:
        return eps[name].load()
    import difflib

    known = backend_names()
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    raise SpecError(f"Unknown backend {name!r}. Known backends: {', '.join(known)}.",
                    f"Did you mean {close[0]!r}?" if close else "Use one of the known backends.")


def get_backend(name: str, options: Mapping[str, Any] | None = None) -> Backend:
    """A ready backend for ``name`` built with ``options`` (its configuration entry)."""
    return backend_class(name)(dict(options or {}))
