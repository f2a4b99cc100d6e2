"""The identity of a code snapshot: sha256 over its canonical manifest.

Shared by the client that builds a snapshot and the server that stores it, so both
agree on the id. A manifest is a list of ``[path, sha256, size, mode]`` entries.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

__all__ = ["manifest_id"]


def manifest_id(files: Sequence[Sequence[Any]]) -> str:
    canonical = sorted([str(f[0]), str(f[1]), int(f[2]), int(f[3])] for f in files)
    return hashlib.sha256(json.dumps(canonical, separators=(",", ":")).encode()).hexdigest()
