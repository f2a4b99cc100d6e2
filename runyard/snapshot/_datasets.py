"""Materialising a dataset version read-only: its stored files through the blob cache, its references in place.

:func:`materialize_dataset` writes one version into a directory (the runner's
``<workdir>/datasets/<name>/``, or ``runyard.use_dataset``'s per-user cache):

- stored files (the version's snapshot) come from the same verified blob cache as code
  snapshots (:func:`runyard.snapshot.materialize`, hard links where the cache allows, else copies);
- a reference to a local path (``/shared/scans/a.npy``) becomes a symlink to that path;
- a reference to ``s3://…`` (any fsspec URL) is downloaded into the blob cache under its sha256
  (checked) and placed like a stored file.

References are placed at their path relative to the longest directory they all share
(``/shared/scans/a.npy`` and ``/shared/scans/x/b.npy`` → ``a.npy`` and ``x/b.npy``).
Then every file and directory is made read-only (files 0444, directories 0555): a program
that tries to write into its data fails instead of changing it (and the cache entries that
the files are hard links of). :func:`release_dataset_dirs` gives the directories back their write bit
once the run ended, so that the working directory can be removed.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard.errors import InvalidInput, RunyardError
from runyard.snapshot._materialize import _cache_dir, _cached_blob, _place, _safe_entries, materialize
from runyard.snapshot._scan import _MODE_PLAIN, hash_file

if TYPE_CHECKING:
    from runyard.client import Client

__all__ = ["DatasetMaterialized", "env_name", "materialize_dataset", "reference_paths", "release_dataset_dirs"]

_READ_ONLY_FILE = 0o444
_READ_ONLY_DIR = 0o555


def env_name(name: str) -> str:
    """``RUNYARD_DATASET_<NAME>``: the run's name for the dataset, upper-cased, every other character than
    A-Z and 0-9 made ``_``."""
    return "RUNYARD_DATASET_" + "".join(c if c.isascii() and c.isalnum() else "_" for c in name.upper())


@dataclass(frozen=True)
class DatasetMaterialized:
    """What :func:`materialize_dataset` did: the directory, files written, links to references, bytes downloaded."""

    dest: Path
    n_files: int
    n_linked_refs: int
    n_downloaded: int


def reference_paths(refs: Sequence[Sequence[Any]]) -> list[tuple[str, str, str, int]]:
    """``(relative path, uri, sha256, size)`` of each reference: its path below the directory all of them share.

    Raises:
        InvalidInput: a reference's uri is neither an absolute path nor a URL, or two land on one path.
    """
    parsed: list[tuple[list[str], str, str, int]] = []
    for r in refs:
        uri, digest, size = str(r[0]), str(r[1]), int(r[2])
        if uri.startswith("/"):
            parts = [p for p in posixpath.normpath(uri).split("/") if p]
        elif "://" in uri:
            scheme, _, rest = uri.partition("://")
            parts = [scheme] + [p for p in rest.split("/") if p]
        else:
            raise InvalidInput(f"The dataset reference {uri!r} is neither an absolute path nor a URL.",
                               "Reference files by their absolute path or s3:// URL.")
        if not parts or any(p in (".", "..") or "\x00" in p for p in parts):
            raise InvalidInput(f"The dataset reference {uri!r} has no file name or a '..' part.",
                               "Reference files by their normalised path.")
        parsed.append((parts, uri, digest, size))
    if not parsed:
        return []
    common = parsed[0][0][:-1]
    for parts, *_ in parsed[1:]:
        n = 0
        while n < min(len(common), len(parts) - 1) and common[n] == parts[n]:
            n += 1
        common = common[:n]
    out: list[tuple[str, str, str, int]] = []
    seen: set[str] = set()
    for parts, uri, digest, size in parsed:
        rel = "/".join(parts[len(common):])
        if rel in seen:
            raise InvalidInput(f"Two references of the dataset land on {rel!r}.", "Reference files with distinct paths.")
        seen.add(rel)
        out.append((rel, uri, digest, size))
    return out


def _writable(root: Path) -> None:
    """Give ``root`` and the directories in it their owner's write bit back (a re-materialisation, a removal)."""
    if not root.is_dir() or root.is_symlink():
        return
    for folder, dirs, _ in os.walk(root):
        with contextlib.suppress(OSError):
            os.chmod(folder, 0o755)
        for d in dirs:
            path = os.path.join(folder, d)
            if not os.path.islink(path):
                with contextlib.suppress(OSError):
                    os.chmod(path, 0o755)


def release_dataset_dirs(root: Path) -> None:
    """After a run: its ``datasets/`` directories writable by their owner again (files stay read-only), so the
    working directory can be removed by an agent that is not root."""
    _writable(Path(root))


def _seal(root: Path) -> None:
    """Everything under ``root`` read-only: files 0444, directories 0555 (symlinks are left as they are)."""
    for folder, dirs, files in os.walk(root, topdown=False):
        for f in files:
            path = os.path.join(folder, f)
            if not os.path.islink(path):
                os.chmod(path, _READ_ONLY_FILE)
        for d in dirs:
            path = os.path.join(folder, d)
            if not os.path.islink(path):
                os.chmod(path, _READ_ONLY_DIR)
    os.chmod(root, _READ_ONLY_DIR)


def _fetch_url(uri: str, digest: str, size: int, cache: Path) -> Path:
    """A referenced object (``s3://…``) in the blob cache under its sha256, downloaded through fsspec when missing."""
    path = cache / digest[:2] / digest
    if _cached_blob(path, digest):
        return path
    try:
        import fsspec
    except ImportError as e:  # pragma: no cover - fsspec is a dependency
        raise RunyardError("Reading s3:// references needs fsspec.", "pip install 'runyard[s3]'") from e
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{digest}.{uuid.uuid4().hex}.tmp")
    try:
        try:
            with fsspec.open(uri, "rb") as src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
        except (OSError, ValueError, ImportError) as e:
            raise RunyardError(f"Cannot read the dataset reference {uri}: {type(e).__name__}: {e}.",
                               "Check the URL and the credentials of the machine the run is on (AWS_* variables, "
                               "~/.aws/credentials); s3:// needs s3fs installed.") from e
        got, n = hash_file(tmp)
        if got != digest:
            raise RunyardError(f"The dataset reference {uri} changed since the version was pushed: it hashes to {got} "
                               f"({n} bytes), the version recorded {digest} ({size} bytes).",
                               "Push a new version of the dataset (`runyard datasets push`), then submit again.")
        os.chmod(tmp, _MODE_PLAIN)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def materialize_dataset(client: Client | Any, version: Mapping[str, Any], dest: str | os.PathLike[str],  # noqa: ANN401
                        cache_dir: str | os.PathLike[str] | None = None) -> DatasetMaterialized:
    """Write a dataset version into ``dest`` (replacing what a previous call wrote there), read-only.

    Args:
        client: the server's client (``get_snapshot``, ``download_blob``); the run's token must be
            allowed the version's blobs.
        version: ``snapshot_id`` (or None) and ``refs`` (``[[uri, sha256, size, mtime], ...]``), as
            ``GET /runs/{id}/datasets`` and the launch's ``datasets`` give them.
        dest: the directory, created.
        cache_dir: the blob cache (default ``$RUNYARD_HOME/cache/blobs``).

    Raises:
        InvalidInput: a manifest path or reference would escape ``dest``, or two land on one path.
        RunyardError: a blob or referenced object does not match its digest, or cannot be read.
    """
    root = Path(dest)
    if root.is_symlink() or (root.exists() and not root.is_dir()):
        root.unlink()
    elif root.exists():
        _writable(root)
        shutil.rmtree(root)
    tmp = root.with_name(f".{root.name}.{uuid.uuid4().hex}.runyard-tmp")
    cache = _cache_dir(cache_dir)
    n_files = n_downloaded = n_links = 0
    try:
        tmp.mkdir(parents=True)
        snapshot_id = version.get("snapshot_id")
        stored: set[str] = set()
        if snapshot_id:
            done = materialize(client, str(snapshot_id), tmp, cache_dir=cache, link=True)
            n_files, n_downloaded = done.n_files, done.n_downloaded
            stored = {e[0] for e in _safe_entries(client.get_snapshot(str(snapshot_id))["files"], str(snapshot_id))}
        for rel, uri, digest, size in reference_paths(version.get("refs") or []):
            if rel in stored or any(rel.startswith(s + "/") or s.startswith(rel + "/") for s in stored):
                raise InvalidInput(f"The reference {uri} lands on {rel!r}, where a stored file of the dataset is.",
                                   "Push the stored files and the references as separate datasets.")
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if uri.startswith("/"):
                os.symlink(uri, target)
                n_links += 1
            else:
                _place(_fetch_url(uri, digest, size, cache), target, _MODE_PLAIN, True)
                n_downloaded += 1
            n_files += 1
        _seal(tmp)
        os.chmod(tmp, 0o755)  # renamed while writable, sealed after
        os.replace(tmp, root)
        os.chmod(root, _READ_ONLY_DIR)
    except BaseException:
        if tmp.exists():
            _writable(tmp)
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    return DatasetMaterialized(dest=root, n_files=n_files, n_linked_refs=n_links, n_downloaded=n_downloaded)
