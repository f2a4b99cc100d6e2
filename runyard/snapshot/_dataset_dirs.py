"""The dataset versions a run reads, materialised read-only (:func:`materialize_dataset`).

The runner writes each of a launch's datasets into ``<workdir>/datasets/<name>/`` and ``runyard.use_dataset``
into the user's cache, both through :func:`runyard.snapshot.write_dataset_version` (what ``runyard datasets
pull`` writes: stored files from the verified blob cache, hard-linked where the file system allows; references
to local paths as symlinks; ``s3://`` ones downloaded into the blob cache and checked). The version is written
into a temporary directory beside the target, made read-only (files 0444, directories 0555), then renamed into
place: a run never sees half a dataset, and a program that tries to write into its data fails instead of
changing it (and the cache entries its files are hard links of). :func:`release_dataset_dirs` gives the
directories their owner's write bit back once the run ended, so the working directory can be removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard.snapshot._datasets import write_dataset_version

if TYPE_CHECKING:
    from runyard.client import Client

__all__ = ["DatasetMaterialized", "env_name", "materialize_dataset", "release_dataset_dirs"]

_READ_ONLY_FILE = 0o444
_READ_ONLY_DIR = 0o555


def env_name(name: str) -> str:
    """``RUNYARD_DATASET_<NAME>``: the run's name for the dataset upper-cased, every character other than A-Z and 0-9
    made ``_``."""
    return "RUNYARD_DATASET_" + "".join(c if c.isascii() and c.isalnum() else "_" for c in name.upper())


@dataclass(frozen=True)
class DatasetMaterialized:
    """What :func:`materialize_dataset` did: the directory, stored files written, references linked, bytes fetched."""

    dest: Path
    n_files: int
    n_linked_refs: int
    n_downloaded: int


def _writable(root: Path) -> None:
    """``root`` and the directories in it writable by their owner again (a re-materialisation, a removal)."""
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


def release_dataset_dirs(root: str | os.PathLike[str]) -> None:
    """After a run: its ``datasets/`` directories writable by their owner again (the files stay read-only), so that
    an agent that is not root can remove the working directory."""
    _writable(Path(root))


def _seal(root: Path) -> None:
    """Everything under ``root`` read-only: files 0444, directories 0555 (symlinks are left as they are)."""
    for folder, dirs, files in os.walk(root, topdown=False):
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, _READ_ONLY_FILE)
        for name in dirs:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, _READ_ONLY_DIR)


def _key(version: Mapping[str, Any]) -> str:
    """What identifies a version's content here: its snapshot and its references (uri, sha256, size)."""
    refs = sorted([str(r[0]), str(r[1]), int(r[2])] for r in version.get("refs") or ())
    return hashlib.sha256(json.dumps([version.get("snapshot_id"), refs]).encode()).hexdigest()


def _marked(marker: Path, key: str) -> bool:
    try:
        return marker.read_text().strip() == key
    except OSError:
        return False


def materialize_dataset(client: Client | Any, version: Mapping[str, Any], dest: str | os.PathLike[str],  # noqa: ANN401
                        cache_dir: str | os.PathLike[str] | None = None) -> DatasetMaterialized:
    """Write a dataset version into ``dest`` read-only, replacing what an earlier call wrote there.

    A marker beside ``dest`` (``.<name>.runyard-dataset``) names the content written: the same version again (a
    restarted attempt in the same working directory, another task of the run sharing it) is left as it is.

    Args:
        client: the server's client (``get_snapshot``, ``download_blob``); a run's token reads the blobs of the
            dataset versions recorded for its run.
        version: ``snapshot_id`` (or None), ``refs`` (``[[uri, sha256, size, mtime], ...]``), ``version``,
            ``project`` and ``dataset``, as ``GET /runs/{id}/datasets`` and ``RunLaunch.datasets`` give them.
        dest: the directory to create.
        cache_dir: the blob cache (default ``$RUNYARD_HOME/cache/blobs``).

    Raises:
        InvalidInput: a referenced file is gone or changed, or two files would land on one path.
        RunyardError: a blob does not match its digest.
    """
    root = Path(dest)
    marker = root.with_name(f".{root.name}.runyard-dataset")
    key = _key(version)
    if _marked(marker, key) and root.is_dir() and not root.is_symlink():  # written already: sealed again
        _seal(root)  # (a finished attempt gave the directories their write bit back)
        os.chmod(root, _READ_ONLY_DIR)
        return DatasetMaterialized(dest=root, n_files=0, n_linked_refs=0, n_downloaded=0)
    marker.unlink(missing_ok=True)
    if root.is_symlink() or (root.exists() and not root.is_dir()):
        root.unlink()
    elif root.exists():
        _writable(root)
        shutil.rmtree(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.with_name(f".{root.name}.{uuid.uuid4().hex}.runyard-tmp")
    try:
        done = write_dataset_version(client, version, tmp, cache_dir=cache_dir, link=True)
        _seal(tmp)
        try:
            os.replace(tmp, root)  # its content sealed already; the directory itself once in place
        except OSError:
            # Another task sharing this working directory (a multi-task run on a shared file system) put the same
            # version there first: theirs is as good.
            if not (root.is_dir() and _marked(marker, key)):
                raise
            _writable(tmp)
            shutil.rmtree(tmp, ignore_errors=True)
            return DatasetMaterialized(dest=root, n_files=0, n_linked_refs=0, n_downloaded=0)
        os.chmod(root, _READ_ONLY_DIR)
        marker.write_text(key + "\n")
    except BaseException:
        if tmp.exists():
            _writable(tmp)
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    return DatasetMaterialized(dest=root, n_files=done.n_files + done.n_linked + done.n_fetched,
                               n_linked_refs=done.n_linked, n_downloaded=done.n_downloaded + done.n_fetched)
