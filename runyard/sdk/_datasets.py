"""``runyard.use_dataset``: read a dataset version from code, and record it as read by the current run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from runyard.errors import InvalidInput

__all__ = ["use_dataset"]


def _default_name(dataset: str) -> str:
    """The run's name for a dataset when none is given: its own name, made a valid one (``2024-scans`` → ``_2024-scans``)."""
    name = "".join(c if c.isascii() and (c.isalnum() or c in "_.-") else "_" for c in dataset)[:64]
    return name if name[:1].isalpha() or name[:1] == "_" else ("_" + name)[:64]


def _current_run_id() -> int | None:
    from runyard.sdk._api import active_run

    run = active_run()
    if run is not None and run.id is not None:
        return int(run.id)
    env = os.environ.get("RUNYARD_RUN_ID", "")
    return int(env) if env.isdigit() else None


def use_dataset(ref: str, name: str | None = None, *, project: str | None = None) -> Path:
    """Resolve a dataset version, record it as read by the current run, and return a read-only directory of its files.

    ``ref`` is ``NAME``, ``NAME:3``, ``NAME:latest`` (or ``NAME@latest``) or ``PROJECT/NAME:3``; an
    unqualified name is in ``project``, else ``RUNYARD_PROJECT``, else the run's project. Inside a run
    (the active run, or the run launched by Runyard) the version is recorded with the run under
    ``name`` (default: the dataset's name), which its lineage shows; ``latest`` is resolved once, so
    the run reads and records the same version. The files are materialised under
    ``$RUNYARD_HOME/cache/datasets/`` (stored files through the blob cache, references to local
    paths as symlinks, ``s3://`` ones downloaded), read-only, and reused by later calls.

    Returns:
        The directory holding the version's files.

    Raises:
        runyard.errors.InvalidInput: a malformed reference or name.
        runyard.errors.NotFound: no such dataset or version (the message lists the versions that exist).
        runyard.errors.Conflict: the run already reads another version under ``name``.

    Example:
        >>> path = runyard.use_dataset("digits:latest")  # doctest: +SKIP
        >>> sorted(p.name for p in path.iterdir())  # doctest: +SKIP
        ['digits.csv']
    """
    import runyard.names as names
    from runyard import config
    from runyard.client import Client
    from runyard.snapshot import materialize_dataset

    parsed = names.parse_dataset_ref(ref)
    label = name if name is not None else _default_name(parsed.name)
    run_id = _current_run_id()
    client = Client.from_env()
    if not isinstance(client, Client):
        raise InvalidInput("use_dataset needs the server, and this task writes to a spool (its node cannot reach the "
                           "server).", "Declare the dataset in runyard.yml (datasets:) instead: the runner materialises it.")
    with client:
        if run_id is not None:
            qualified = ref if parsed.project is not None or project is None else f"{project}/{ref}"
            item: dict[str, Any] = client.record_run_dataset(run_id, label, qualified)
        else:
            owner = parsed.project or project or os.environ.get("RUNYARD_PROJECT") or "default"
            item = {"project": owner, "dataset": parsed.name, **client.get_dataset_version(owner, parsed.name, parsed.version)}
        dataset = item.get("dataset", parsed.name)
        dest = (config.home() / "cache" / "datasets" / item["project"] / dataset
                / f"{item['version']}-{str(item['content_id'])[:16]}")
        materialize_dataset(client, item, dest)  # a version written there already is left as it is
    return dest
