"""The identity of a code snapshot: sha256 over its canonical manifest.

Shared by the client that builds a snapshot and the server that stores it, so both
agree on the id. A manifest is a list of ``[path, sha256, size, mode]`` entries.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

__all__ = ["dataset_content_id", "manifest_id"]


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
