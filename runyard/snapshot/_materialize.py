"""Rebuilding a snapshot's directory through a verified local blob cache (:func:`materialize`)."""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard import config
from runyard.errors import InvalidInput, RunyardError
from runyard.snapshot._scan import _CHUNK, _MODE_PLAIN, _N_THREADS, hash_file

if TYPE_CHECKING:
    from runyard.client import Client

__all__ = ["Materialized", "fetch_blobs", "materialize"]


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
    # Created with its mode; the temp name is this process's and thread's own, so O_TRUNC cannot clobber another's.
    copy_tmp = f"{dest.parent}/.{dest.name}.{os.getpid()}.{threading.get_ident()}.runyard-tmp"
    try:
        with open(src, "rb") as fin:
            fd = os.open(copy_tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            with open(fd, "wb") as fout:
                shutil.copyfileobj(fin, fout, _CHUNK)
        os.chmod(copy_tmp, mode)  # the umask may have cut bits off the mode given to open
        os.replace(copy_tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(copy_tmp)
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
