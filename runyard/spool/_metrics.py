"""Metric batches on disk while the server is away: ``$RUNYARD_HOME/spool/<run_id>/``.

The sender spills its oldest in-memory batches here when its buffer passes the cap,
and when ``finish()`` gives up waiting for the server. Each file holds the exact JSON
body of one metrics request, ``batch_id`` included, so a replay is byte-identical to
the first try: if a process dies after the server stored a batch but before the file
was deleted, the replay is recognised by its ``batch_id`` and stored once.

Layout and traps:

- Files are named ``<pid>-<seq>-<n_points>.json`` and written under a ``.tmp`` name,
  then renamed, so a reader never sees half a batch.
- The spool is always the *oldest* part of what a sender holds (it spills oldest
  first and replays the spool before memory), so points reach the server in order.
- Files left by an earlier process of the same run (a crash, a ``finish()`` that timed
  out) are adopted and replayed first. Several processes of one run (distributed
  ranks) may share the directory: each writes its own names, and a file sent twice
  or deleted by the other is harmless thanks to ``batch_id``.
- Run ids are unique per server, not per ``RUNYARD_HOME``: leftovers are replayed to
  whichever server the next process of run ``<run_id>`` talks to. The URL cannot tell
  servers apart (the embedded one may come back on another port), so this is a known
  limit for one home shared by two servers with unsent batches.

Beside the batches, a directory may hold an ad-hoc run's ``status.meta`` (its final
status, when the server was away at ``finish()``) and, for a run started while the
server was away (``local-<hex>``), ``create.meta``; :meth:`adopt` reads only ``*.json``
files, and ``runyard sync`` (``runyard.sdk._sync``) sends all three.

Not thread-safe: only the sender thread of one run uses a :class:`MetricSpool`.
"""

from __future__ import annotations

import os
from collections import deque
from pathlib import Path

__all__ = ["MetricSpool"]


class MetricSpool:
    """An ordered queue of metric request bodies, one file each.

    Args:
        directory: ``$RUNYARD_HOME/spool/<run_id>``; created on the first write.
    """

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.n_points = 0
        self._files: deque[tuple[Path, int]] = deque()
        self._seq = 0

    def __len__(self) -> int:
        return len(self._files)

    def adopt(self) -> int:
        """Queue files left by earlier processes of this run (before anything of ours). Returns their points.
        """
        try:
            found = [p for p in self.dir.iterdir() if p.suffix == ".json"]
        except FileNotFoundError:
            return 0
        found.sort(key=_age)
        n = 0
        for path in reversed(found):
            points = _points(path)
            self._files.appendleft((path, points))
            n += points
        self.n_points += n
        return n

    def write(self, body: bytes, n_points: int) -> None:
        """Append one batch. Raises OSError (disk full, read-only home); the caller keeps the batch."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        path = self.dir / f"{os.getpid()}-{self._seq:09d}-{n_points}.json"
        tmp = path.with_suffix(".tmp")
        try:
            tmp.write_bytes(body)
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        self._files.append((path, n_points))
        self.n_points += n_points

    def head(self) -> tuple[bytes, int] | None:
        """The oldest batch's body and points, or None when empty.

        A file that vanished (sent and deleted by another process of the run) is skipped.
        Raises OSError when the file cannot be read; the caller reports it and pops it.
        """
        while self._files:
            path, n = self._files[0]
            try:
                return path.read_bytes(), n
            except FileNotFoundError:
                self._files.popleft()
                self.n_points -= n
        return None

    def pop(self) -> None:
        """Delete the oldest batch (after the server acknowledged or rejected it)."""
        path, n = self._files.popleft()
        self.n_points -= n
        try:
            path.unlink(missing_ok=True)
        except OSError:  # e.g. a read-only spool: the batch is handled; a replay would be deduplicated
            pass
        if not self._files:
            self._remove_dir()

    def _remove_dir(self) -> None:
        try:
            self.dir.rmdir()
        except OSError:  # another process of the run still has batches here, or it is gone already
            pass


def _age(path: Path) -> tuple[int, str]:
    try:
        return path.stat().st_mtime_ns, path.name
    except FileNotFoundError:
        return 0, path.name


def _points(path: Path) -> int:
    try:
        return int(path.stem.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return 0
