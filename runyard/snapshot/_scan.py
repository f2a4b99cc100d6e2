"""Which files a snapshot holds: the walk, the ignore rules, the limits and the hashing (:func:`scan`)."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pathspec

from runyard._manifest import manifest_id
from runyard.errors import InvalidInput

__all__ = [
    "DEFAULT_IGNORE",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_FILES",
    "IGNORE_FILE",
    "FileEntry",
    "Known",
    "ScanResult",
    "hash_file",
    "ignore_spec",
    "scan",
]

DEFAULT_IGNORE: tuple[str, ...] = (
    ".git/",
    "__pycache__/",
    "*.pyc",
    ".venv/",
    "venv/",
    ".ipynb_checkpoints/",
    ".runyard/",
    "node_modules/",
    ".DS_Store",
)
"""Ignore rules applied before the user's own; a ``!`` rule in runyard.yml or .runyardignore re-includes."""

IGNORE_FILE = ".runyardignore"
"""The ignore file read at the root of the snapshotted directory (gitignore syntax)."""

DEFAULT_MAX_FILES = 2000
"""File limit when ``RUNYARD_SNAPSHOT_MAX_FILES`` is unset."""

DEFAULT_MAX_BYTES = 300 * 1024**2
"""Size limit when ``RUNYARD_SNAPSHOT_MAX_MB`` is unset."""

_CHUNK = 1024 * 1024  # read and copy size
_N_THREADS = 8  # blob uploads and downloads in parallel
_N_LARGEST = 10
_MODE_EXEC = 0o755
_MODE_PLAIN = 0o644


@dataclass(frozen=True)
class FileEntry:
    """One file of a snapshot.

    Attributes:
        path: relative POSIX path inside the snapshotted directory.
        sha256: hex digest of the content.
        size: bytes.
        mode: 0o755 if executable, else 0o644.
        source: absolute path the content was read from (the target, for a symlink).
        mtime: the file's modification time (seconds) when it was scanned.
    """

    path: str
    sha256: str
    size: int
    mode: int
    source: Path
    mtime: float = 0.0

    def entry(self) -> list[Any]:
        """The ``[path, sha256, size, mode]`` manifest entry."""
        return [self.path, self.sha256, self.size, self.mode]


@dataclass(frozen=True)
class ScanResult:
    """What :func:`scan` found: the files to snapshot, sorted by path, and what it skipped.

    Attributes:
        root: the scanned directory, resolved.
        files: one entry per file, sorted by path.
        warnings: one line per skipped entry (broken link, symlink loop, symlinked directory,
            special file such as a FIFO, socket or device, file that vanished while scanning),
            which ``runyard run`` and ``runyard validate`` print.
        ignored: what the ignore rules left out, as the walk met it (a pruned directory once,
            with a trailing ``/``; never the entries inside it), sorted.
    """

    root: Path
    files: tuple[FileEntry, ...]
    warnings: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()

    @property
    def n_files(self) -> int:
        return len(self.files)

    @property
    def size(self) -> int:
        """Total bytes of all files."""
        return sum(f.size for f in self.files)

    def manifest(self) -> list[list[Any]]:
        """The manifest sent to the server: ``[path, sha256, size, mode]`` per file."""
        return [f.entry() for f in self.files]

    @property
    def id(self) -> str:
        """The snapshot id this content gets (the server computes the same)."""
        return manifest_id(self.manifest())


def ignore_spec(directory: str | os.PathLike[str], ignore: Sequence[str] = ()) -> pathspec.GitIgnoreSpec:
    """The ignore rules for a directory: defaults, then ``ignore``, then its ``.runyardignore``.

    Pure apart from reading ``.runyardignore``. Match a directory as ``"path/"`` and a
    file as ``"path"``, both relative to ``directory`` with forward slashes.

    Args:
        directory: the project directory.
        ignore: gitignore-style patterns, e.g. the ``ignore:`` list of runyard.yml.

    Returns:
        A gitignore spec (git's own semantics, including ``!`` re-includes).

    Raises:
        InvalidInput: a pattern is not valid gitignore syntax, or ``ignore`` is a bare string.
    """
    if isinstance(ignore, (str, bytes)):
        raise InvalidInput(
            f"`ignore` must be a list of patterns, but got the string {ignore!r}.",
            f"Pass a list, e.g. ignore=[{ignore!r}].",
        )
    sources: list[tuple[str, str]] = [("built-in defaults", p) for p in DEFAULT_IGNORE]
    sources += [("`ignore:` in runyard.yml", str(p)) for p in ignore]
    ignore_file = Path(directory) / IGNORE_FILE
    if ignore_file.is_file():
        try:
            text = ignore_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise InvalidInput(f"Cannot read {ignore_file}: {e}.", f"Make {IGNORE_FILE} a readable UTF-8 text file.") from e
        sources += [(f"{IGNORE_FILE} line {i}", line) for i, line in enumerate(text.splitlines(), 1)]
    try:
        return pathspec.GitIgnoreSpec.from_lines([line for _, line in sources])
    except ValueError:
        pass
    # Find the culprit to name it; from_lines only says what failed, not where it came from.
    for where, line in sources:
        try:
            pathspec.GitIgnoreSpec.from_lines([line])
        except ValueError as e:
            raise InvalidInput(
                f"Invalid ignore pattern {line!r} ({where}): {e}.",
                "Use gitignore syntax, e.g. `data/`, `*.ckpt` or `/outputs/`.",
            ) from e
    raise InvalidInput("The ignore patterns are invalid.", "Use gitignore syntax, e.g. `data/`.")  # pragma: no cover


# ---------------------------------------------------------------------- scan
def hash_file(path: str | os.PathLike[str]) -> tuple[str, int]:
    """sha256 and size of a file, read in 1 MiB chunks.

    Args:
        path: the file (a symlink is followed).

    Returns:
        ``(hex digest, bytes read)``.
    """
    digest = hashlib.sha256()
    size = 0
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    with open(path, "rb") as f:
        while n := f.readinto(buf):
            digest.update(view[:n])
            size += n
    return digest.hexdigest(), size


def _env_limit(name: str, default: float, scale: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return int(default)
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise InvalidInput(f"{name} must be a positive number, but got {raw!r}.",
                           f"Unset it, or set e.g. {name}={int(default / scale) * 2}.")
    return int(value * scale)


def _limits(max_files: int | None, max_bytes: int | None) -> tuple[int, int]:
    files = max_files if max_files is not None else _env_limit("RUNYARD_SNAPSHOT_MAX_FILES", DEFAULT_MAX_FILES, 1)
    size = max_bytes if max_bytes is not None else _env_limit("RUNYARD_SNAPSHOT_MAX_MB", DEFAULT_MAX_BYTES, 1024**2)
    if files <= 0 or size <= 0:
        raise InvalidInput(f"Snapshot limits must be positive, but got max_files={files}, max_bytes={size}.",
                           "Pass positive limits, or leave them unset to use the defaults.")
    return files, size


@dataclass
class _Found:
    path: str
    source: str
    size: int
    mode: int
    mtime: float = 0.0


def _check_name(rel: str) -> None:
    # The server refuses backslashes (clean_path) and the manifest is JSON text, so refuse
    # here with the file's name rather than fail later with a 400 about "a path".
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(
            f"The file name {rel.encode('utf-8', 'surrogateescape')!r} is not valid UTF-8, so it cannot be stored in a snapshot.",
            f"Rename it, or ignore it in {IGNORE_FILE}.",
        ) from None
    if "\\" in rel:
        raise InvalidInput(f"The file name {rel!r} contains a backslash, which snapshots cannot store.",
                           f"Rename it, or ignore it in {IGNORE_FILE}.")


def _walk(root: Path, spec: pathspec.GitIgnoreSpec, stop_at: int, warnings: list[str],
          ignored: list[str] | None = None) -> tuple[list[_Found], bool]:
    """Stat every non-ignored file without hashing; stop after ``stop_at`` files (returns truncated=True).
    What the rules leave out goes to ``ignored`` (a pruned directory once, with its ``/``)."""
    if ignored is None:
        ignored = []
    found: list[_Found] = []
    stack: list[tuple[str, str]] = [("", str(root))]
    while stack:
        rel_dir, abs_dir = stack.pop()
        try:
            with os.scandir(abs_dir) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            raise InvalidInput(
                f"Cannot read the directory {rel_dir or '.'!r} of {root}: {e.strerror or e}.",
                f"Fix its permissions, or ignore it: add `{rel_dir or '.'}` to `ignore:` in runyard.yml or to {IGNORE_FILE}.",
            ) from e
        subdirs: list[tuple[str, str]] = []
        for entry in entries:
            rel = rel_dir + entry.name
            try:
                is_link = entry.is_symlink()
                is_dir = not is_link and entry.is_dir(follow_symlinks=False)
            except OSError as e:  # pragma: no cover - vanished between scandir and stat
                warnings.append(f"{rel}: skipped, it vanished while scanning ({e.strerror or e}).")
                continue
            if is_dir:
                if not spec.match_file(rel + "/"):
                    subdirs.append((rel + "/", entry.path))
                else:
                    ignored.append(rel + "/")
                continue
            if spec.match_file(rel):
                ignored.append(rel)
                continue
            try:
                st = os.stat(entry.path) if is_link else entry.stat(follow_symlinks=False)
            except OSError as e:
                if is_link and e.errno == errno.ELOOP:
                    warnings.append(f"{rel}: skipped, a symlink loop (it points to {os.readlink(entry.path)!r}, which leads back to it).")
                elif is_link:
                    warnings.append(f"{rel}: skipped, a broken symlink to {os.readlink(entry.path)!r}.")
                else:  # pragma: no cover - vanished between scandir and stat
                    warnings.append(f"{rel}: skipped, it vanished while scanning ({e.strerror or e}).")
                continue
            if stat.S_ISDIR(st.st_mode):
                if not spec.match_file(rel + "/"):
                    warnings.append(f"{rel}/: skipped, a symlink to a directory (not followed). "
                                    f"Copy the files in, or ignore it to silence this.")
                continue
            if not stat.S_ISREG(st.st_mode):
                kind = _special_kind(st.st_mode)
                via = f"a symlink to {os.readlink(entry.path)!r}, " if is_link else ""
                warnings.append(f"{rel}: skipped, {via}{kind}, not a regular file.")
                continue
            _check_name(rel)
            # Git's rule: the owner's execute bit decides; everything else is normalised away.
            mode = _MODE_EXEC if st.st_mode & stat.S_IXUSR else _MODE_PLAIN
            found.append(_Found(rel, entry.path, st.st_size, mode, st.st_mtime))
            if len(found) >= stop_at:
                return found, True
        stack.extend(reversed(subdirs))
    return found, False


def _special_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return kind
    return "a special file"


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{int(n)} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def _largest(found: list[_Found], by_bytes: bool) -> list[tuple[str, int, int]]:
    """The heaviest entries as ``(path, bytes, n_files)``: top-level entries, each drilled down
    while one child holds ≥90% of it, so ``src/`` becomes ``src/data/raw/`` when that is the weight."""
    totals: dict[str, list[int]] = {}
    children: dict[str, set[str]] = {"": set()}
    for f in found:
        parts = f.path.split("/")
        parent = ""
        for i in range(len(parts) - 1):
            d = "/".join(parts[: i + 1]) + "/"
            t = totals.setdefault(d, [0, 0])
            t[0] += f.size
            t[1] += 1
            children.setdefault(parent, set()).add(d)
            children.setdefault(d, set())
            parent = d
        totals[f.path] = [f.size, 1]
        children.setdefault(parent, set()).add(f.path)

    def weight(key: str) -> int:
        return totals[key][0] if by_bytes else totals[key][1]

    def rank(key: str) -> tuple[int, int, str]:  # the other measure breaks ties, then the name
        size, count = totals[key]
        return (-size, -count, key) if by_bytes else (-count, -size, key)

    picked = []
    for key in children[""]:
        while key.endswith("/") and children[key]:
            best = min(children[key], key=rank)
            if weight(best) < 0.9 * weight(key):
                break
            key = best
        picked.append(key)
    picked.sort(key=rank)
    return [(k, totals[k][0], totals[k][1]) for k in picked[:_N_LARGEST]]


def _over_limit(root: Path, found: list[_Found], truncated: bool, max_files: int, max_bytes: int) -> InvalidInput:
    n = len(found)
    total = sum(f.size for f in found)
    over_files = n > max_files
    over_bytes = total > max_bytes
    count = f"more than {n:,} files (scanning stopped there)" if truncated else f"{n:,} files"
    size = f"at least {_human(total)}" if truncated else _human(total)
    rules = []
    if over_files:
        rules.append(f"{count}, over the limit of {max_files:,} files")
    if over_bytes:
        rules.append(f"{size}, over the limit of {_human(max_bytes)}")
    largest = _largest(found, by_bytes=over_bytes and not over_files)
    width = max(len(p) for p, _, _ in largest)
    lines = "\n".join(f"  {p.ljust(width)}  {_human(b):>10}  {c:>7,} file{'s' if c != 1 else ''}" for p, b, c in largest)
    example = next((p for p, _, _ in largest if p.endswith("/")), "data/")
    return InvalidInput(
        f"The snapshot of {root} would hold {' and '.join(rules)}. Largest entries:\n{lines}",
        f"Ignore what the run does not need: add it to `ignore:` in runyard.yml or to {IGNORE_FILE} "
        f"(gitignore syntax), e.g. `{example}`. Or raise the limits with RUNYARD_SNAPSHOT_MAX_FILES "
        f"(now {max_files}) and RUNYARD_SNAPSHOT_MAX_MB (now {max_bytes / 1024**2:g}).",
    )


Known = Mapping[str, tuple[int, float, str]]
"""Hashes already known, by relative path: ``(size, mtime, sha256)``; a file whose size and mtime are these is not read."""


def scan(
    directory: str | os.PathLike[str],
    ignore: Sequence[str] = (),
    *,
    max_files: int | None = None,
    max_bytes: int | None = None,
    rules: bool = True,
    limited: bool = True,
    threads: int = 1,
    progress: Callable[[int, int], None] | None = None,
    known: Known | None = None,
) -> ScanResult:
    """Find, filter and hash the files of a project directory; uploads nothing.

    Walks without following symlinked directories, prunes ignored directories
    (see :func:`ignore_spec`), then hashes each kept file. Counting stops early once
    the directory is clearly over ``max_files``, so a stray dataset of a million
    files fails in seconds instead of being hashed.

    Args:
        directory: the project directory.
        ignore: extra gitignore patterns, e.g. the ``ignore:`` list of runyard.yml.
        max_files: file limit; default ``RUNYARD_SNAPSHOT_MAX_FILES`` or 2000.
        max_bytes: size limit; default ``RUNYARD_SNAPSHOT_MAX_MB`` (in MiB) or 300 MiB.
        rules: apply the code rules (:data:`DEFAULT_IGNORE` and ``.runyardignore``); False keeps only ``ignore``
            (a dataset holds every file).
        limited: apply the file and size limits, which are meant for code; False for data.
        threads: files hashed at once.
        progress: ``progress(bytes_hashed, bytes_total)``, once with ``(0, total)`` after the walk, then per file
            (serialised by a lock).
        known: hashes already known (:data:`Known`), e.g. from an earlier scan: such files are not read again.

    Returns:
        The files, sorted by path, with what was skipped in ``warnings``.

    Raises:
        InvalidInput: the directory does not exist or cannot be read, a pattern or a
            limit variable is invalid, a file name cannot be stored, or the directory is
            over a limit (the message lists the 10 largest entries; the hint says how
            to ignore them or raise the limits).
    """
    root = Path(directory).expanduser()
    if not root.is_dir():
        raise InvalidInput(f"Cannot snapshot {str(root)!r}: it is not a directory.",
                           "Pass the project directory, the one holding runyard.yml.")
    root = root.resolve()
    if limited:
        max_files, max_bytes = _limits(max_files, max_bytes)
    else:
        max_files = max_bytes = sys.maxsize
    spec = ignore_spec(root, ignore) if rules else _plain_spec(ignore)
    warnings: list[str] = []
    ignored: list[str] = []
    stop_at = max(2 * max_files, max_files + 10_000) if limited else sys.maxsize
    found, truncated = _walk(root, spec, stop_at, warnings, ignored)
    if truncated or len(found) > max_files or sum(f.size for f in found) > max_bytes:
        raise _over_limit(root, found, truncated, max_files, max_bytes)
    total = sum(f.size for f in found)
    lock = threading.Lock()
    done = 0

    def one(f: _Found) -> FileEntry | None:
        nonlocal done
        seen = known.get(f.path) if known else None
        try:
            if seen is not None and seen[0] == f.size and seen[1] == f.mtime:
                sha, size = seen[2], f.size
            else:
                sha, size = hash_file(f.source)
        except FileNotFoundError:
            warnings.append(f"{f.path}: skipped, it vanished while scanning.")
            return None
        except OSError as e:
            raise InvalidInput(f"Cannot read {f.path!r} in {root}: {e.strerror or e}.",
                               f"Fix its permissions, or ignore it in {IGNORE_FILE}.") from e
        if progress is not None:
            with lock:
                done += f.size
                progress(done, total)
        return FileEntry(f.path, sha, size, f.mode, Path(f.source), f.mtime)

    if progress is not None:
        progress(0, total)
    if threads > 1 and len(found) > 1:
        with ThreadPoolExecutor(max_workers=min(threads, len(found)), thread_name_prefix="runyard-hash") as pool:
            hashed = list(pool.map(one, found))
    else:
        hashed = [one(f) for f in found]
    files = [f for f in hashed if f is not None]
    # The size may have grown between stat and read; the limit holds for what is stored.
    if sum(f.size for f in files) > max_bytes:
        raise _over_limit(root, [_Found(f.path, str(f.source), f.size, f.mode) for f in files], False, max_files, max_bytes)
    files.sort(key=lambda f: f.path)
    return ScanResult(root, tuple(files), tuple(warnings), tuple(sorted(ignored)))


def _plain_spec(ignore: Sequence[str]) -> pathspec.GitIgnoreSpec:
    """Only the given patterns (no defaults, no ignore file): what a dataset push leaves out."""
    if isinstance(ignore, (str, bytes)):
        raise InvalidInput(f"`ignore` must be a list of patterns, but got the string {ignore!r}.",
                           f"Pass a list, e.g. ignore=[{ignore!r}].")
    try:
        return pathspec.GitIgnoreSpec.from_lines([str(p) for p in ignore])
    except ValueError as e:
        raise InvalidInput(f"Invalid ignore pattern in {list(ignore)!r}: {e}.", "Use gitignore syntax, e.g. `*.tmp`.") from e
