"""The ``runyard`` command line (Typer + Rich).

Each command group lives in its own private module and registers itself on
:data:`app`; importing this package imports them all. Heavy modules (the server,
the store, uvicorn) are imported inside the commands that need them, so
``runyard --help`` and the client commands start fast.

Example::

    $ runyard projects create mnist
    $ runyard ls --project mnist --json
"""

from __future__ import annotations

from runyard.cli import (  # noqa: F401  (they register their commands on app)
    _auth,
    _backends,
    _datasets,
    _experiments,
    _images,
    _lineage,  # noqa: F401  (runyard lineage)
    _models,  # noqa: F401  (the model registry: `runyard models`)
    _projects,
    _runs,
    _server,
    _sync,
    _tensorboard,
    _validate,
)
from runyard.cli._app import app

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the ``runyard`` console script."""
    app(prog_name="runyard")
