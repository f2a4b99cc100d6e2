"""Files a run keeps (``outputs:``) and data it reads from outside its snapshot (``mounts:``).

:class:`OutputKeeper` uploads the files of the task's working directory that match the
``outputs:`` globs as the run's artifacts, through the upload path the SDK's ``log_artifact``
takes (``Client.upload_artifact``): when the task ends, however it ended (succeeded, failed,
pruned, canceled, over its time limit), and every ``outputs_every:`` while it runs. A file is
uploaded again only when its size or modification time changed. The log says what was kept,
with sizes.

Globs are relative to the working directory; ``**`` matches any depth, a matched directory
keeps every file below it, and a pattern starting with ``!`` excludes (gitignore-style, later
patterns win). A file reached through a symlink that leaves the working directory (a mount,
say) is not kept: it is not the run's output.

:func:`make_mounts` makes, for each ``mounts:`` entry, a symlink at the working-directory path
to the backend path; for a run in a container image it makes an empty directory there instead,
and the container runtime binds the backend path onto it (``TaskContainer.command``).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pathspec

__all__ = ["OutputKeeper", "format_size", "make_mounts"]

MAX_FILES = 1000  # per upload round: a glob that matches a dataset should not upload it file by file


def format_size(n: int) -> str:
    """``1536`` → ``1.5 KB`` (powers of 1024, one decimal)."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"  # pragma: no cover


def make_mounts(rundir: Path, mounts: Mapping[str, str], *, contained: bool = False) -> str:
    """Make each mount in ``rundir``; returns an error message for the run, or ``""``.

    Args:
        rundir: the task's working directory (the snapshot is in it).
        mounts: working-directory path → backend path (``Spec.mounts``, checked already).
        contained: the run is in a container image: make an empty directory to bind onto.
    """
    root = rundir.resolve()
    for key, source in mounts.items():
        where = f"mounts: {key}: {source}"
        if not os.path.exists(source):
            return (f"{where}: {source} does not exist on this backend ({os.uname().nodename}). Create it there, "
                    f"or map {key} to a path the backend has.")
        target = rundir / key
        parent = target.parent
        parent.mkdir(parents=True, exist_ok=True)
        if not parent.resolve().is_relative_to(root):
            return (f"{where}: {parent.relative_to(rundir)} leads out of the working directory (a symlink in the "
                    "snapshot). Mount at a path that is a directory of the snapshot, or remove the symlink.")
        if target.is_symlink() or target.exists():
            if target.is_dir() and not target.is_symlink() and not any(target.iterdir()):
                target.rmdir()
            else:
                return (f"{where}: the snapshot already has {key}. Add `{key}` to ignore: in runyard.yml so the "
                        "snapshot leaves it out, or mount at another path.")
        if contained:
            target.mkdir()
        else:
            os.symlink(source, target)
    return ""


class OutputKeeper:
    """Uploads a task's outputs. ``keep()`` is thread-safe (one round at a time).

    Args:
        client: the ``runyard.client.Client`` of the run.
        run_id: the run.
        rundir: the task's working directory.
        patterns: the ``outputs:`` globs (``!`` excludes).
        note: called with one ``[runyard]`` line for the run's log.
        prefix: put before each artifact path (a task of a multi-task run: its label and ``/``).
    """

    def __init__(self, client: Any, run_id: int, rundir: Path, patterns: Iterable[str],
                 note: Callable[[str], None], prefix: str = "") -> None:
        self._client = client
        self._run_id = run_id
        self._rundir = rundir
        self._patterns = list(patterns)
        self._note = note
        self._prefix = prefix
        self._sent: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def files(self) -> list[tuple[str, Path]]:
        """``(relative path, path)`` of every file the globs keep now, in order."""
        root = self._rundir.resolve()
        spec = pathspec.GitIgnoreSpec.from_lines(self._patterns)
        found: dict[str, Path] = {}
        for pattern in self._patterns:
            if pattern.startswith("!"):
                continue
            for match in sorted(self._rundir.glob(pattern)):
                candidates = [match] if not match.is_dir() else sorted(p for p in match.rglob("*") if not p.is_dir())
                for path in candidates:
                    rel = path.relative_to(self._rundir).as_posix()
                    if rel in found or not path.is_file():
                        continue
                    if not path.resolve().is_relative_to(root):  # a mount, or a symlink out: not the run's output
                        continue
                    if not spec.match_file(rel):  # excluded by a later ! pattern
                        continue
                    found[rel] = path
                    if len(found) >= MAX_FILES:
                        return list(found.items())
        return list(found.items())

    def keep(self, final: bool = False) -> list[tuple[str, int]]:
        """Upload the files that changed since the last round; returns ``(artifact path, size)`` of those sent.

        ``final``: the task ended; the log then lists everything kept (or says nothing matched).
        """
        with self._lock:
            sent: list[tuple[str, int]] = []
            failed: list[str] = []
            matched = self.files()
            for rel, path in matched:
                try:
                    st = path.stat()
                except OSError:
                    continue
                stamp = (st.st_size, st.st_mtime_ns)
                if self._sent.get(rel) == stamp:
                    continue
                name = self._prefix + rel
                try:
                    with path.open("rb") as f:
                        self._client.upload_artifact(self._run_id, name, f)
                except Exception as e:  # noqa: BLE001 - one file's failure is logged; the others are still kept
                    failed.append(f"{rel} ({type(e).__name__}: {getattr(e, 'message', e)})")
                    continue
                self._sent[rel] = stamp
                sent.append((name, st.st_size))
            if failed:
                self._note("[runyard] outputs: could not upload " + "; ".join(failed[:5])
                           + (f" and {len(failed) - 5} more" if len(failed) > 5 else ""))
            if final:
                if not matched:
                    self._note(f"[runyard] outputs: no file matched {', '.join(self._patterns)} in the working directory")
                elif len(matched) >= MAX_FILES:
                    self._note(f"[runyard] outputs: kept the first {MAX_FILES} files only; narrow the globs")
                if self._sent:
                    total = sum(size for size, _ in self._sent.values())
                    listing = ", ".join(f"{self._prefix}{rel} ({format_size(size)})"
                                        for rel, (size, _) in list(self._sent.items())[:20])
                    more = f" and {len(self._sent) - 20} more" if len(self._sent) > 20 else ""
                    self._note(f"[runyard] outputs kept: {listing}{more}; {len(self._sent)} file"
                               f"{'s' if len(self._sent) != 1 else ''}, {format_size(total)}")
            elif sent:
                self._note("[runyard] outputs uploaded: " + ", ".join(f"{n} ({format_size(s)})" for n, s in sent[:20]))
            return sent

    def start(self, every_s: float) -> None:
        """Upload every ``every_s`` seconds in a thread of its own until :meth:`close`."""

        def loop() -> None:
            while not self._stop.wait(every_s):
                try:
                    self.keep()
                except Exception:  # noqa: BLE001 - a round that failed is tried again next time
                    with contextlib.suppress(Exception):
                        self._note("[runyard] outputs: an upload round failed; trying again later")

        self._thread = threading.Thread(target=loop, name=f"runyard-outputs-{self._run_id}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30.0)
