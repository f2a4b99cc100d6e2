"""Code versioning: snapshot a project directory, upload only new blobs, and materialize it back.

A snapshot is the content-addressed copy of a project directory taken at
submission. Its id is :func:`runyard._manifest.manifest_id` over the manifest, a
list of ``[path, sha256, size, mode]`` entries (``mode`` is 0o755 for executable
files, else 0o644), so the same content gives the same id whatever the mtimes or
the order on disk. File contents are stored once on the server as blobs named by
their sha256; :func:`create_snapshot` uploads only the blobs the server lacks.

What goes in (see :func:`scan`):

- Regular files under the directory, and symlinked files as their target's content.
  Symlinked directories are not followed; broken links and special files are
  skipped. Each skip is reported in ``ScanResult.warnings``.
- Minus the ignore rules, in gitignore syntax and in this order (a later ``!rule``
  can re-include what an earlier one excluded): :data:`DEFAULT_IGNORE`, the
  ``ignore:`` patterns of ``runyard.yml``, then ``.runyardignore`` at the root.
  Ignored directories are pruned, never walked.
- At most ``RUNYARD_SNAPSHOT_MAX_FILES`` files (default 2000) and
  ``RUNYARD_SNAPSHOT_MAX_MB`` MiB (default 300); over that, :func:`scan` raises
  :class:`~runyard.errors.InvalidInput` naming the largest entries to ignore.

:func:`git_info` records the git commit, branch, dirty flag and diff beside the
snapshot. :func:`materialize` rebuilds the directory from the server through a
local blob cache; :func:`diff_snapshots` and :func:`file_diff` compare two
snapshots.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import os
import posixpath
import shutil
import stat
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, NamedTuple

import pathspec

from runyard import config
from runyard._manifest import manifest_id
from runyard.errors import InvalidInput, NotFound, RunyardError

if TYPE_CHECKING:
    from runyard.client import Client

__all__ = [
    "DEFAULT_IGNORE",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_FILES",
    "GIT_DIFF_MAX_BYTES",
    "IGNORE_FILE",
    "Change",
    "FileEntry",
    "GitInfo",
    "Materialized",
    "ScanResult",
    "SnapshotInfo",
    "create_snapshot",
    "diff_snapshots",
    "fetch_blobs",
    "file_diff",
    "git_info",
    "hash_file",
    "ignore_spec",
    "materialize",
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

GIT_DIFF_MAX_BYTES = 1024 * 1024
"""The recorded ``git diff`` is cut at this many bytes, with a note saying so."""

_CHUNK = 1024 * 1024
_N_THREADS = 8
_MISSING_BATCH = 10_000  # the server accepts at most 100,000 digests per /blobs/missing call
_N_LARGEST = 10
_DIFF_MAX_BYTES = 1024 * 1024
_MODE_EXEC = 0o755
_MODE_PLAIN = 0o644


# --------------------------------------------------------------------- records
@dataclass(frozen=True)
class FileEntry:
    """One file of a snapshot.

    Attributes:
        path: relative POSIX path inside the snapshotted directory.
        sha256: hex digest of the content.
        size: bytes.
        mode: 0o755 if executable, else 0o644.
        source: absolute path the content was read from (the target, for a symlink).
    """

    path: str
    sha256: str
    size: int
    mode: int
    source: Path

    def entry(self) -> list[Any]:
        """The ``[path, sha256, size, mode]`` manifest entry."""
        return [self.path, self.sha256, self.size, self.mode]


@dataclass(frozen=True)
class ScanResult:
    """What :func:`scan` found: the files to snapshot, sorted by path, and what it skipped.

    Attributes:
        root: the scanned directory, resolved.
        files: one entry per file, sorted by path.
        warnings: one line per skipped entry (broken link, symlinked directory, special file,
            file that vanished while scanning), for the CLI to show.
    """

    root: Path
    files: tuple[FileEntry, ...]
    warnings: tuple[str, ...] = ()

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


@dataclass(frozen=True)
class GitInfo:
    """The git state of a directory; every field is None outside a git work tree or without git.

    Attributes:
        commit: full hash of HEAD (None in a repository without commits).
        branch: current branch (None when HEAD is detached).
        dirty: whether the directory differs from HEAD (modified, staged or untracked files).
        diff: ``git diff HEAD`` limited to the directory, then the untracked files' names;
            cut at :data:`GIT_DIFF_MAX_BYTES` with a note.
    """

    commit: str | None = None
    branch: str | None = None
    dirty: bool | None = None
    diff: str | None = None


@dataclass(frozen=True)
class SnapshotInfo:
    """What :func:`create_snapshot` did.

    Attributes:
        id: the snapshot id (checked equal on client and server).
        n_files: files in the snapshot.
        size: total bytes of those files.
        n_uploaded: blobs uploaded now (the server had the others).
        bytes_uploaded: bytes of those blobs.
        git_commit, git_branch, git_dirty, git_diff: as recorded by :func:`git_info`.
        warnings: what the scan skipped, from :attr:`ScanResult.warnings`.
    """

    id: str
    n_files: int
    size: int
    n_uploaded: int
    bytes_uploaded: int
    git_commit: str | None = None
    git_branch: str | None = None
    git_dirty: bool | None = None
    git_diff: str | None = None
    warnings: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Materialized:
    """What :func:`materialize` did.

    Attributes:
        snapshot_id: the snapshot written.
        dest: the directory written into.
        n_files: files written (or found already in place).
        n_downloaded: blobs fetched from the server (0 when the cache had them all).
        bytes_downloaded: bytes of those blobs.
        n_linked: files hard-linked from the cache; the others were copied.
    """

    snapshot_id: str
    dest: Path
    n_files: int
    n_downloaded: int
    bytes_downloaded: int
    n_linked: int


class Change(NamedTuple):
    """One difference between two snapshots: ``change`` is "added", "removed" or "modified"."""

    path: str
    change: str


# ------------------------------------------------------------------ ignoring
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


def _walk(root: Path, spec: pathspec.GitIgnoreSpec, stop_at: int, warnings: list[str]) -> tuple[list[_Found], bool]:
    """Stat every non-ignored file without hashing; stop after ``stop_at`` files (returns truncated=True)."""
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
                continue
            if spec.match_file(rel):
                continue
            try:
                st = os.stat(entry.path) if is_link else entry.stat(follow_symlinks=False)
            except OSError as e:
                if is_link:
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
                warnings.append(f"{rel}: skipped, not a regular file.")
                continue
            _check_name(rel)
            # Git's rule: the owner's execute bit decides; everything else is normalised away.
            mode = _MODE_EXEC if st.st_mode & stat.S_IXUSR else _MODE_PLAIN
            found.append(_Found(rel, entry.path, st.st_size, mode))
            if len(found) >= stop_at:
                return found, True
        stack.extend(reversed(subdirs))
    return found, False


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


def scan(
    directory: str | os.PathLike[str],
    ignore: Sequence[str] = (),
    *,
    max_files: int | None = None,
    max_bytes: int | None = None,
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
    max_files, max_bytes = _limits(max_files, max_bytes)
    spec = ignore_spec(root, ignore)
    warnings: list[str] = []
    stop_at = max(2 * max_files, max_files + 10_000)
    found, truncated = _walk(root, spec, stop_at, warnings)
    if truncated or len(found) > max_files or sum(f.size for f in found) > max_bytes:
        raise _over_limit(root, found, truncated, max_files, max_bytes)
    files = []
    for f in found:
        try:
            sha, size = hash_file(f.source)
        except FileNotFoundError:
            warnings.append(f"{f.path}: skipped, it vanished while scanning.")
            continue
        except OSError as e:
            raise InvalidInput(f"Cannot read {f.path!r} in {root}: {e.strerror or e}.",
                               f"Fix its permissions, or ignore it in {IGNORE_FILE}.") from e
        files.append(FileEntry(f.path, sha, size, f.mode, Path(f.source)))
    # The size may have grown between stat and read; the limit holds for what is stored.
    if sum(f.size for f in files) > max_bytes:
        raise _over_limit(root, [_Found(f.path, str(f.source), f.size, f.mode) for f in files], False, max_files, max_bytes)
    files.sort(key=lambda f: f.path)
    return ScanResult(root, tuple(files), tuple(warnings))


# ----------------------------------------------------------------------- git
_GIT_ENV = {"GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat", "LC_ALL": "C"}


def _git(directory: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    cmd = ["git", "-c", "core.quotepath=off", *args]
    try:
        # GIT_OPTIONAL_LOCKS=0: `git status` would otherwise refresh the index and take
        # index.lock, racing the user's own git commands.
        # https://git-scm.com/docs/git#Documentation/git.txt-codeGITOPTIONALLOCKScode
        proc = subprocess.run(cmd, check=False, cwd=directory, capture_output=True, timeout=120,
                              env={**os.environ, **_GIT_ENV}, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise RunyardError(f"`{' '.join(cmd)}` in {directory} did not finish in 120 s.",
                           "Check the repository (`git status`), or snapshot a directory outside it.") from e
    if check and proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace").strip()[-500:]
        raise RunyardError(f"`{' '.join(cmd)}` in {directory} failed with exit code {proc.returncode}: {tail}",
                           "Run the command yourself to see what git needs.")
    return proc


def _cap(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    cut = data[:limit]
    nl = cut.rfind(b"\n")
    if nl > 0:
        cut = cut[: nl + 1]
    head = cut.decode("utf-8", "ignore")
    return head + f"\n# [runyard: git diff truncated: kept {_human(len(cut))} of {_human(len(data))}]\n"


def git_info(directory: str | os.PathLike[str]) -> GitInfo:
    """The git commit, branch, dirty flag and diff of a directory, via the ``git`` CLI.

    ``dirty`` and ``diff`` cover only ``directory`` (the part of the repository the
    snapshot holds): ``git diff HEAD -- .`` followed by the names of untracked,
    not git-ignored files. The diff is cut at :data:`GIT_DIFF_MAX_BYTES`.

    Args:
        directory: any directory; need not be the repository root.

    Returns:
        The state; all fields None when ``directory`` is not in a git work tree, git
        refuses it (e.g. "dubious ownership"), or git is not installed.

    Raises:
        RunyardError: a git command hung for 120 s or failed inside a valid work tree.
    """
    d = Path(directory).expanduser().resolve()
    try:
        probe = _git(d, "rev-parse", "--is-inside-work-tree", check=False)
    except FileNotFoundError:
        return GitInfo()
    if probe.returncode != 0 or probe.stdout.strip() != b"true":
        return GitInfo()
    head = _git(d, "rev-parse", "--verify", "-q", "HEAD^{commit}", check=False)
    commit = head.stdout.decode().strip() if head.returncode == 0 else None
    ref = _git(d, "symbolic-ref", "--short", "-q", "HEAD", check=False)
    branch = ref.stdout.decode("utf-8", "replace").strip() if ref.returncode == 0 else None
    status = _git(d, "status", "--porcelain", "-z", "--untracked-files=normal", "--", ".")
    dirty = bool(status.stdout.strip(b"\0"))
    if commit is None:
        # No commit yet: diff the index and work tree against the empty tree.
        base = _git(d, "hash-object", "-t", "tree", "--stdin").stdout.decode().strip()
    else:
        base = commit
    diff = _git(d, "diff", base, "--no-color", "--no-ext-diff", "--no-textconv", "--", ".").stdout.decode("utf-8", "replace")
    untracked = _git(d, "ls-files", "--others", "--exclude-standard", "--full-name", "-z", "--", ".").stdout
    names = [n.decode("utf-8", "replace") for n in untracked.split(b"\0") if n]
    if names:
        diff += "# Untracked files (in the snapshot unless runyard ignores them):\n" + "".join(f"#   {n}\n" for n in names)
    return GitInfo(commit=commit, branch=branch, dirty=dirty, diff=_cap(diff, GIT_DIFF_MAX_BYTES))


# ------------------------------------------------------------------- upload
class _HashingReader:
    """A file body that hashes what the client reads from it and reports progress.

    ``seekable``/``tell``/``seek`` let the client send the file's size as Content-Length
    (the server refuses an upload over its limit before any byte of it); the client reads
    the body only through ``read``, so the hash covers exactly what was sent.
    """

    def __init__(self, f: BinaryIO, on_chunk: Callable[[int], None]) -> None:
        self._f = f
        self._on_chunk = on_chunk
        self.sha256 = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        chunk = self._f.read(n)
        if chunk:
            self.sha256.update(chunk)
            self._on_chunk(len(chunk))
        return chunk

    def seekable(self) -> bool:
        return self._f.seekable()

    def tell(self) -> int:
        return self._f.tell()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._f.seek(offset, whence)


def create_snapshot(
    client: Client,
    directory: str | os.PathLike[str],
    ignore: Sequence[str] = (),
    progress: Callable[[int, int], None] | None = None,
    *,
    max_files: int | None = None,
    max_bytes: int | None = None,
) -> SnapshotInfo:
    """Snapshot a directory on the server: scan it, upload the blobs the server lacks, store the manifest.

    Called by ``runyard run`` before it posts the experiment. Idempotent: the same
    content gives the same id and uploads nothing the second time.

    Args:
        client: the server's client.
        directory: the project directory.
        ignore: extra gitignore patterns (the ``ignore:`` list of runyard.yml).
        progress: ``progress(bytes_done, bytes_total)`` for the upload, called once with
            ``(0, total)`` before the first byte and then per chunk. Uploads run on
            several threads; calls are serialised by a lock.
        max_files: file limit, see :func:`scan`.
        max_bytes: size limit, see :func:`scan`.

    Returns:
        The id, counts, what was uploaded and the git state.

    Raises:
        InvalidInput: from :func:`scan`, or a file changed while it was uploaded.
        RunyardError: the server's id differs from the local one, or another server error.
    """
    result = scan(directory, ignore, max_files=max_files, max_bytes=max_bytes)
    git = git_info(result.root)
    by_digest: dict[str, FileEntry] = {}
    for f in result.files:
        by_digest.setdefault(f.sha256, f)
    digests = sorted(by_digest)
    missing: list[str] = []
    for i in range(0, len(digests), _MISSING_BATCH):
        missing += client.missing_blobs(digests[i : i + _MISSING_BATCH])
    to_send = [by_digest[d] for d in dict.fromkeys(missing) if d in by_digest]
    total = sum(f.size for f in to_send)
    lock = threading.Lock()
    done = 0

    def on_chunk(n: int) -> None:
        nonlocal done
        if progress is None:
            return
        with lock:
            done += n
            progress(done, total)

    def upload(f: FileEntry) -> None:
        try:
            with open(f.source, "rb") as fh:
                body = _HashingReader(fh, on_chunk)
                try:
                    client.upload_blob(f.sha256, body)  # type: ignore[arg-type]
                except InvalidInput as e:
                    if body.sha256.hexdigest() != f.sha256:
                        raise _changed(result.root, f) from e
                    raise
        except FileNotFoundError as e:
            raise _changed(result.root, f) from e

    if progress is not None:
        progress(0, total)
    if to_send:
        with ThreadPoolExecutor(max_workers=min(_N_THREADS, len(to_send)), thread_name_prefix="runyard-upload") as pool:
            for _ in pool.map(upload, to_send):
                pass
    snap = client.create_snapshot(result.manifest(), git_commit=git.commit, git_branch=git.branch,
                                  git_dirty=bool(git.dirty), git_diff=git.diff or "")
    if snap["id"] != result.id:
        raise RunyardError(
            f"The server stored snapshot {snap['id']} but this client computed {result.id} for the same manifest.",
            "Client and server disagree on the manifest format: use the same Runyard version on both (`runyard --version`).",
        )
    return SnapshotInfo(
        id=result.id, n_files=result.n_files, size=result.size, n_uploaded=len(to_send), bytes_uploaded=total,
        git_commit=git.commit, git_branch=git.branch, git_dirty=git.dirty, git_diff=git.diff, warnings=result.warnings,
    )


def _changed(root: Path, f: FileEntry) -> InvalidInput:
    return InvalidInput(f"{f.path!r} in {root} changed while the snapshot was being uploaded.",
                        "Retry once nothing writes into the project directory, or ignore the file in .runyardignore.")


# -------------------------------------------------------------- materialize
def _cache_dir(cache_dir: str | os.PathLike[str] | None) -> Path:
    return Path(cache_dir) if cache_dir is not None else config.home() / "cache" / "blobs"


def _blob_path(cache: Path, digest: str) -> Path:
    return cache / digest[:2] / digest


_VERIFIED: dict[str, tuple[int, int, int, int]] = {}  # cache path -> (inode, size, mtime_ns, ctime_ns) when its hash matched
_VERIFIED_MAX = 100_000
_SETTLED_NS = 200_000_000  # a file unchanged this long gets a new mtime on any later write (timestamps are coarse)


def _cached_blob(path: Path, digest: str) -> bool:
    """Whether the cache holds ``digest`` intact at ``path``; a damaged entry is removed.

    A cached blob is re-hashed on use: materialized files may be hard links to it, so a
    program that rewrote one in place rewrote the cache entry too. A blob this process
    already verified is not hashed again while its inode, size and timestamps are the same,
    which they cannot stay through a write: it is only remembered once its timestamps are
    older than the file system's timestamp granularity.
    """
    key = str(path)
    try:
        st = os.stat(path)
    except OSError:
        return False
    sig = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if _VERIFIED.get(key) == sig:
        return True
    try:
        ok = hash_file(path)[0] == digest
    except OSError:
        ok = False
    if ok:
        if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) > _SETTLED_NS:
            if len(_VERIFIED) >= _VERIFIED_MAX:
                _VERIFIED.clear()
            _VERIFIED[key] = sig
        return True
    _VERIFIED.pop(key, None)
    path.unlink(missing_ok=True)
    return False


def _ensure_blob(client: Client, digest: str, size: int, cache: Path) -> tuple[Path, int | None]:
    """The verified cache path of a blob; the second item is the bytes downloaded (None: was cached)."""
    path = _blob_path(cache, digest)
    if _cached_blob(path, digest):
        return path, None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{digest}.{uuid.uuid4().hex}.tmp")
    try:
        n = client.download_blob(digest, tmp)
        got, _ = hash_file(tmp)
        if got != digest:
            raise RunyardError(f"Blob {digest} downloaded from the server hashes to {got} ({n} bytes, expected {size}).",
                               "The server's copy is damaged; re-create the snapshot with `runyard run`, or check the artifact store.")
        os.chmod(tmp, _MODE_PLAIN)
        os.replace(tmp, path)  # atomic: concurrent materializers see the whole blob or none
    finally:
        tmp.unlink(missing_ok=True)
        tmp.with_name(tmp.name + ".part").unlink(missing_ok=True)  # Client.download_blob's own temp file
    return path, n


def _ensure_blobs(client: Client, sizes: dict[str, int], cache: Path) -> dict[str, tuple[Path, int | None]]:
    """``_ensure_blob`` for each digest: cached ones checked here, missing ones downloaded in parallel.

    A thread pool only when more than one blob is missing: a run of the local agent
    usually finds every blob cached, and a pool per run would cost a thread for nothing.
    """
    got: dict[str, tuple[Path, int | None]] = {}
    missing = []
    for digest in sorted(sizes):
        path = _blob_path(cache, digest)
        if _cached_blob(path, digest):
            got[digest] = (path, None)
        else:
            missing.append(digest)
    if len(missing) == 1:
        got[missing[0]] = _ensure_blob(client, missing[0], sizes[missing[0]], cache)
    elif missing:
        with ThreadPoolExecutor(max_workers=min(_N_THREADS, len(missing)), thread_name_prefix="runyard-fetch") as pool:
            for digest, result in zip(missing, pool.map(lambda d: _ensure_blob(client, d, sizes[d], cache), missing),
                                      strict=True):
                got[digest] = result
    return got


def _safe_entries(files: list[list[Any]], snapshot_id: str) -> list[tuple[str, str, int, int]]:
    out = []
    seen: set[str] = set()
    for f in files:
        path, digest, size, mode = str(f[0]), str(f[1]), int(f[2]), int(f[3])
        parts = path.split("/")
        if (not path or path.startswith("/") or "\\" in path or "\x00" in path
                or any(p in ("", ".", "..") for p in parts) or posixpath.normpath(path) != path):
            raise InvalidInput(f"Snapshot {snapshot_id[:12]} holds the path {path!r}, which would escape the destination.",
                               "Refusing to write it; the snapshot was not made by runyard.snapshot. Check the server.")
        if path in seen:
            raise InvalidInput(f"Snapshot {snapshot_id[:12]} lists {path!r} twice.", "Re-create the snapshot with `runyard run`.")
        seen.add(path)
        out.append((path, digest, size, mode & 0o777))
    for path, *_ in out:
        parts = path.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in seen:
                raise InvalidInput(f"Snapshot {snapshot_id[:12]} has both a file {'/'.join(parts[:i])!r} and {path!r} inside it.",
                                   "Re-create the snapshot with `runyard run`.")
    return out


def _place(src: Path, dest: Path, mode: int, link: bool) -> bool:
    """Put ``src``'s content at ``dest`` with ``mode``; True if hard-linked. Atomic per file."""
    if link and mode == _MODE_PLAIN:
        try:
            if dest.is_file() and not dest.is_symlink() and os.path.samefile(src, dest):
                return True
        except OSError:
            pass
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.runyard-tmp")
        try:
            os.link(src, tmp)
            os.replace(tmp, dest)
            return True
        except OSError:
            # EXDEV (cache on another file system), EPERM (no hard links there), EMLINK
            # (ext4 allows 65,000 links per inode: think of a shared empty __init__.py).
            tmp.unlink(missing_ok=True)
    # A copy for other modes: the cache entry is 0o644 and shares its mode with every link.
    # Created with its mode (O_EXCL: the temp name is this process's and thread's own).
    tmp = f"{dest.parent}/.{dest.name}.{os.getpid()}.{threading.get_ident()}.runyard-tmp"
    try:
        with open(src, "rb") as fin:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            with open(fd, "wb") as fout:
                shutil.copyfileobj(fin, fout, _CHUNK)
        os.chmod(tmp, mode)  # the umask may have cut bits off the mode given to open
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return False


def materialize(
    client: Client,
    snapshot_id: str,
    dest_dir: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    link: bool = True,
) -> Materialized:
    """Write a snapshot's files into a directory, fetching only blobs missing from the local cache.

    Called by the task runner before it starts the command. Idempotent: running it
    again on the same directory changes nothing and downloads nothing. Files not in
    the snapshot (outputs, ``__pycache__``) are left alone, so write into an empty or
    previously materialized directory.

    Note:
        With ``link=True`` files of mode 0o644 are hard links into the cache (others
        are copies, since a mode is shared by all links). A program that rewrites such
        a file in place (``open(path, "w")``) rewrites the cache entry and every other
        directory linked to it; replacing the file (write elsewhere, then rename) is
        safe. The cache re-hashes entries before reuse and re-downloads damaged ones.
        Pass ``link=False`` for private copies when runs edit their own code in place.

    Args:
        client: the server's client.
        snapshot_id: the snapshot to write.
        dest_dir: the target directory, created if needed.
        cache_dir: the blob cache, default ``$RUNYARD_HOME/cache/blobs`` (``<aa>/<sha256>``).
        link: hard-link from the cache where possible (falls back to copying).

    Returns:
        Counts of files written, blobs downloaded and files linked.

    Raises:
        NotFound: no such snapshot.
        InvalidInput: a manifest path would escape ``dest_dir`` (absolute, ``..``, or
            through a symlink already in ``dest_dir``).
        RunyardError: a downloaded blob does not match its digest.
    """
    snap = client.get_snapshot(snapshot_id)
    entries = _safe_entries(snap["files"], snapshot_id)
    cache = _cache_dir(cache_dir)
    dest_root = Path(dest_dir).expanduser()
    dest_root.mkdir(parents=True, exist_ok=True)
    dest_real = os.path.realpath(dest_root)

    sizes: dict[str, int] = {}
    for _, digest, size, _ in entries:
        sizes.setdefault(digest, size)
    got = _ensure_blobs(client, sizes, cache)
    blobs = {d: p for d, (p, _) in got.items()}
    downloaded = [n for _, n in got.values() if n is not None]

    n_linked = 0
    checked: dict[str, str] = {"": dest_real}  # a manifest directory -> its real path, made and checked once
    for path, digest, _, mode in entries:
        target = dest_root / path
        folder = posixpath.dirname(path)
        parent_real = checked.get(folder)
        if parent_real is None:
            target.parent.mkdir(parents=True, exist_ok=True)
            parent_real = checked[folder] = os.path.realpath(target.parent)
        if parent_real != dest_real and not parent_real.startswith(dest_real + os.sep):
            raise InvalidInput(f"Writing {path!r} into {dest_root} would go through a symlink to {parent_real}.",
                               "Materialize into an empty directory.")
        if target.is_dir() and not target.is_symlink():
            raise InvalidInput(f"Cannot write {path!r}: {target} is a directory.", "Materialize into an empty directory.")
        n_linked += _place(blobs[digest], target, mode, link)
    return Materialized(snapshot_id=snapshot_id, dest=dest_root, n_files=len(entries), n_downloaded=len(downloaded),
                        bytes_downloaded=sum(downloaded), n_linked=n_linked)


def fetch_blobs(client: Client, snapshot_id: str, cache_dir: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, Path]]:
    """Put every blob of a snapshot into a blob cache (``<aa>/<sha256>``), without materialising it.

    Backends whose compute nodes cannot reach the server call this before submitting,
    with a cache on the shared file system; ``materialize`` there then downloads nothing.

    Returns:
        The snapshot (as ``client.get_snapshot`` gives it) and each digest's cache path.
    """
    snap = client.get_snapshot(snapshot_id)
    entries = _safe_entries(snap["files"], snapshot_id)
    cache = _cache_dir(cache_dir)
    sizes: dict[str, int] = {}
    for _, digest, size, _ in entries:
        sizes.setdefault(digest, size)
    return snap, {d: p for d, (p, _) in _ensure_blobs(client, sizes, cache).items()}


# --------------------------------------------------------------------- diffs
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
