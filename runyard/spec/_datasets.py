"""The runyard.yml key ``datasets:``: the dataset versions each run reads, by a name of the run's own.

``datasets: {train: digits:3, raw: scans@latest}`` maps a name (a directory under the run's
``datasets/`` and the tail of ``RUNYARD_DATASET_<NAME>``) to a dataset reference
(:func:`runyard.names.parse_dataset_ref`). The server resolves each reference to one version at
submission and stores the experiment with the references pinned (``PROJECT/NAME:V``), so every
run of the experiment reads the same versions.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator

import runyard.names as names
from runyard.errors import InvalidInput
from runyard.spec._rules import Rule, bad, invalid, show

__all__ = ["MAX_DATASETS", "NAME_MAX", "DatasetsField", "env_name", "name_ok"]

MAX_DATASETS = 100
NAME_MAX = 64
_EXAMPLE = "`datasets: {train: digits:3, raw: scans@latest}`"


def env_name(name: str, prefix: str = "RUNYARD_DATASET_") -> str:
    """``RUNYARD_DATASET_<NAME>`` (or ``prefix`` + NAME): upper-cased, every character other than A-Z and 0-9 made ``_``."""
    return prefix + "".join(c if c.isascii() and c.isalnum() else "_" for c in name.upper())


def name_ok(name: Any) -> bool:
    """Whether ``name`` may name a run's dataset or model: a directory under ``datasets/`` or ``models/`` and the
    tail of its variable."""
    return (isinstance(name, str) and 0 < len(name) <= NAME_MAX and name.isascii()
            and (name[0].isalpha() or name[0] == "_") and all(c.isalnum() or c in "_.-" for c in name))


def _check_datasets(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise invalid()
    if len(value) > MAX_DATASETS:
        raise bad(f"names {len(value)} datasets, more than the {MAX_DATASETS} a run may read. "
                  "Combine them into fewer dataset versions.")
    out: dict[str, str] = {}
    by_env: dict[str, str] = {}
    for key, ref in value.items():
        if not name_ok(key):
            raise bad(f"has the name {show(key)}, but each name is 1-{NAME_MAX} letters, digits, '_', '.' or '-', starting with a "
                      "letter or '_' (it names the directory datasets/NAME and the variable RUNYARD_DATASET_NAME). "
                      f"Rename it, e.g. train; write {_EXAMPLE}.")
        if not isinstance(ref, str):
            raise bad(f"maps {key} to {show(ref)}, but the value is a dataset reference such as digits:3, digits:latest "
                      "or PROJECT/digits:3. Quote it if YAML reads it as something else, e.g. `train: 'digits:3'`.")
        try:
            parsed = names.parse_dataset_ref(ref)
        except InvalidInput as e:
            raise bad(f"maps {key} to {show(ref)}, which is not a dataset reference: {e.message} {e.hint}") from e
        var = env_name(key)
        if var in by_env:
            raise bad(f"names both {by_env[var]!r} and {key!r}, which share the variable {var}. Rename one of them.")
        by_env[var] = key
        pinned = f"{parsed.project + '/' if parsed.project else ''}{parsed.name}"
        out[key] = pinned if parsed.version is None else f"{pinned}:{parsed.version}"
    return out


DatasetsField = Annotated[
    dict[str, str],
    BeforeValidator(_check_datasets),
    Rule("a mapping from a name to a dataset reference (NAME, NAME:3, NAME:latest or PROJECT/NAME:3)",
         f"Write e.g. {_EXAMPLE}; each run finds them in datasets/NAME/ and RUNYARD_DATASET_NAME."),
]
