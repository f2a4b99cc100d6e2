"""Comparing two snapshots: which files changed, and one file's unified diff (``runyard diff``)."""

from __future__ import annotations

import difflib
import os
from typing import TYPE_CHECKING, NamedTuple

from runyard.errors import NotFound
from runyard.snapshot._materialize import _cache_dir, _ensure_blob
from runyard.snapshot._scan import _human

if TYPE_CHECKING:
    from runyard.client import Client

__all__ = ["Change", "diff_snapshots", "file_diff"]

_DIFF_MAX_BYTES = 1024 * 1024


class Change(NamedTuple):
    """One difference between two snapshots: ``change`` is "added", "removed" or "modified"."""

    path: str
    change: str


def diff_snapshots(client: Client, a_id: str, b_id: str) -> list[Change]:
    """What changed from snapshot ``a_id`` to ``b_id``, sorted by path.

    A file is "modified" when its content or its executable bit changed.

    Args:
        client: the server's client.
        a_id: the older snapshot.
        b_id: the newer snapshot.

    Returns:
        ``Change(path, change)`` tuples with change "added", "removed" or "modified".

    Raises:
        NotFound: either snapshot does not exist.
    """
    a = {str(f[0]): (str(f[1]), int(f[3])) for f in client.get_snapshot(a_id)["files"]}
    b = {str(f[0]): (str(f[1]), int(f[3])) for f in client.get_snapshot(b_id)["files"]}
    changes = [Change(p, "removed") for p in a.keys() - b.keys()]
    changes += [Change(p, "added") for p in b.keys() - a.keys()]
    changes += [Change(p, "modified") for p in a.keys() & b.keys() if a[p] != b[p]]
    return sorted(changes)


def _text(data: bytes) -> str | None:
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def file_diff(
    client: Client,
    a_id: str,
    b_id: str,
    path: str,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    max_bytes: int = _DIFF_MAX_BYTES,
) -> str:
    """A unified diff of one file between two snapshots (empty when it did not change).

    A file present on one side only is diffed against nothing. Binary files (a NUL
    byte or not UTF-8) and files over ``max_bytes`` get a one-line note instead.
    Blobs come through the local cache, as in :func:`materialize`.

    Args:
        client: the server's client.
        a_id: the older snapshot.
        b_id: the newer snapshot.
        path: the file's path in the snapshots.
        cache_dir: the blob cache (default ``$RUNYARD_HOME/cache/blobs``).
        max_bytes: larger files are not diffed.

    Returns:
        The diff text with ``a/path`` and ``b/path`` headers, like ``git diff``.

    Raises:
        NotFound: a snapshot does not exist, or neither holds ``path``.
    """
    a = {str(f[0]): f for f in client.get_snapshot(a_id)["files"]}
    b = {str(f[0]): f for f in client.get_snapshot(b_id)["files"]}
    fa, fb = a.get(path), b.get(path)
    if fa is None and fb is None:
        raise NotFound(f"Neither snapshot {a_id[:12]} nor {b_id[:12]} holds {path!r}.",
                       "List the changed paths with runyard.snapshot.diff_snapshots.")
    if fa is not None and fb is not None and str(fa[1]) == str(fb[1]):
        if int(fa[3]) == int(fb[3]):
            return ""
        return f"mode change {int(fa[3]):o} => {int(fb[3]):o} {path}\n"
    cache = _cache_dir(cache_dir)
    sides = []
    for f in (fa, fb):
        if f is None:
            sides.append("")
            continue
        if int(f[2]) > max_bytes:
            return f"{path}: not diffed, {_human(int(f[2]))} is over the {_human(max_bytes)} limit.\n"
        blob, _ = _ensure_blob(client, str(f[1]), int(f[2]), cache)
        text = _text(blob.read_bytes())
        if text is None:
            return f"Binary files a/{path} and b/{path} differ\n"
        sides.append(text)
    out = []
    for line in difflib.unified_diff(sides[0].splitlines(keepends=True), sides[1].splitlines(keepends=True),
                                     fromfile=f"a/{path}" if fa is not None else "/dev/null",
                                     tofile=f"b/{path}" if fb is not None else "/dev/null"):
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)
