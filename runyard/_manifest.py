"""The identity of a code snapshot: sha256 over its canonical manifest.

Shared by the client that builds a snapshot and the server that stores it, so both
agree on the id. A manifest is a list of ``[path, sha256, size, mode]`` entries.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["dataset_changes", "dataset_content_id", "dataset_keys", "manifest_id"]


def manifest_id(files: Sequence[Sequence[Any]]) -> str:
    canonical = sorted([str(f[0]), str(f[1]), int(f[2]), int(f[3])] for f in files)
    return hashlib.sha256(json.dumps(canonical, separators=(",", ":")).encode()).hexdigest()


def dataset_content_id(snapshot_id: str | None, refs: Sequence[Sequence[Any]]) -> str:
    """The identity of a dataset version's content: sha256 over its snapshot id and its referenced files.

    ``refs`` are ``[uri, sha256, size, mtime]`` entries; the mtime is left out (touching a file does not change
    its content), and their order does not count. Client and server compute the same id.
    """
    canonical = {"snapshot": snapshot_id, "refs": sorted([str(r[0]), str(r[1]), int(r[2])] for r in refs)}
    return hashlib.sha256(json.dumps(canonical, separators=(",", ":"), sort_keys=True).encode()).hexdigest()


def dataset_changes(a: Mapping[str, tuple[str, int]], b: Mapping[str, tuple[str, int]]) -> dict[str, Any]:
    """What changed from ``a`` to ``b`` (each: path or uri -> (sha256, size)), in the form of the dataset diff API:
    ``{"added": [[key, size]], "removed": [[key, size]], "changed": [[key, size_a, size_b]], "unchanged": n}``."""
    both = a.keys() & b.keys()
    return {
        "added": [[k, b[k][1]] for k in sorted(b.keys() - a.keys())],
        "removed": [[k, a[k][1]] for k in sorted(a.keys() - b.keys())],
        "changed": [[k, a[k][1], b[k][1]] for k in sorted(both) if a[k][0] != b[k][0]],
        "unchanged": sum(1 for k in both if a[k][0] == b[k][0]),
    }


def dataset_keys(files: Sequence[Sequence[Any]], refs: Sequence[Sequence[Any]]) -> dict[str, tuple[str, int]]:
    """A dataset version's content keyed for :func:`dataset_changes`: stored files by path, references by uri."""
    out = {str(f[0]): (str(f[1]), int(f[2])) for f in files}
    out.update({str(r[0]): (str(r[1]), int(r[2])) for r in refs})
    return out
