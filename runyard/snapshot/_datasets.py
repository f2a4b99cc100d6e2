"""Versioned datasets on the client: hash a directory and files referenced in place, push only what changed, pull.

A dataset version is a snapshot of stored files (the same blobs and manifests as code snapshots: a file shared with
a snapshot or another version is stored once) plus references ``[uri, sha256, size, mtime]`` to files left where
they are (an absolute path on a shared file system, or ``s3://bucket/key``). Its content id
(:func:`runyard._manifest.dataset_content_id`) decides whether a push changed anything.

Hashing is the cost of a push, so it is avoided where the answer is known: a stored file whose size and mtime are
those of the last scan of the same directory (a cache under ``$RUNYARD_HOME/cache/datasets``), and a referenced file
whose size and mtime are those the latest version recorded, are not read again.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard import config
from runyard._manifest import dataset_changes, dataset_content_id, dataset_keys, manifest_id
from runyard.errors import InvalidInput, NotFound, RunyardError
from runyard.snapshot._materialize import _blob_path, _cache_dir, _cached_blob, _place, materialize
from runyard.snapshot._scan import _CHUNK, _MODE_PLAIN, FileEntry, Known, hash_file, scan
from runyard.snapshot._upload import upload_missing

if TYPE_CHECKING:
    from runyard.client import Client

__all__ = ["DatasetPushResult", "LocalDataset", "PulledDataset", "hash_references", "pull_dataset", "push_dataset",
           "reference_paths", "scan_dataset", "write_dataset_version"]

Progress = Callable[[str, int, int], None]
"""``progress(phase, bytes_done, bytes_total)``; phase is ``hashing DIR``, ``hashing REF`` or ``uploading``."""

_SETTLED_S = 2.0  # a file's hash is remembered only once its mtime is this old (a later write changes the mtime)


def _threads() -> int:
    return max(2, min(16, (os.cpu_count() or 2) * 2))


@dataclass(frozen=True)
class LocalDataset:
    """What a directory and references hold now, hashed.

    Attributes:
        root: the directory of the stored files (None: references only).
        files: the stored files, sorted by path.
        refs: the referenced files ``[uri, sha256, size, mtime]``, sorted by uri.
        n_hashed: files read to hash them (the others' hashes were known).
        warnings: what the scan skipped (broken links, special files).
    """

    root: Path | None
    files: tuple[FileEntry, ...]
    refs: list[list[Any]]
    n_hashed: int = 0
    warnings: tuple[str, ...] = ()

    def manifest(self) -> list[list[Any]]:
        return [f.entry() for f in self.files]

    @property
    def snapshot_id(self) -> str | None:
        return manifest_id(self.manifest()) if self.files else None

    @property
    def content_id(self) -> str:
        return dataset_content_id(self.snapshot_id, self.refs)

    @property
    def n_files(self) -> int:
        return len(self.files) + len(self.refs)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files) + sum(int(r[2]) for r in self.refs)


# ---------------------------------------------------------------------------------------------- hashing
def _hash_cache_file(root: Path) -> Path:
    key = hashlib.sha256(str(root).encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return config.home() / "cache" / "datasets" / f"{key}.json"


def _load_known(root: Path) -> dict[str, tuple[int, float, str]]:
    try:
        data = json.loads(_hash_cache_file(root).read_text())
        return {str(k): (int(v[0]), float(v[1]), str(v[2])) for k, v in data["files"].items()}
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return {}


def _save_known(root: Path, files: Sequence[FileEntry], started: float) -> None:
    """Remember the hashes of files whose mtime is settled (older than the scan by _SETTLED_S)."""
    path = _hash_cache_file(root)
    data = {"root": str(root), "files": {f.path: [f.size, f.mtime, f.sha256] for f in files
                                         if f.mtime < started - _SETTLED_S}}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(json.dumps(data, separators=(",", ":")))
        os.replace(tmp, path)
    except OSError:
        pass  # a cache: the next push hashes again


def _scan_dir(directory: Path, known: Known | None, progress: Progress | None, phase: str) -> tuple[Any, int]:
    """scan() for data: every file, no limits, hashed in parallel; and how many files were read (not known)."""
    def count(done: int, total: int) -> None:
        if progress is not None:
            progress(phase, done, total)

    known = known or {}
    result = scan(directory, rules=False, limited=False, threads=_threads(), progress=count, known=known)
    n_read = sum(1 for f in result.files if (k := known.get(f.path)) is None or k[0] != f.size or k[1] != f.mtime)
    return result, n_read


def scan_dataset(
    directory: str | os.PathLike[str] | None,
    references: Sequence[str] = (),
    *,
    previous_refs: Sequence[Sequence[Any]] = (),
    progress: Progress | None = None,
    use_cache: bool = True,
) -> LocalDataset:
    """Hash a directory's files (all of them: no ignore rules, no limits) and the referenced files.

    Args:
        directory: the files to store (None: references only).
        references: absolute or relative local paths (a file or a directory) and ``s3://`` URLs (an object or a prefix).
        previous_refs: the latest version's references: a referenced file with the same size and mtime is not re-hashed.
        progress: see :data:`Progress`.
        use_cache: skip hashing stored files unchanged since the last scan of this directory (size and mtime).

    Raises:
        InvalidInput: a path does not exist or cannot be read, a file name cannot be stored, s3fs is missing.
    """
    root: Path | None = None
    files: tuple[FileEntry, ...] = ()
    warnings: tuple[str, ...] = ()
    n_hashed = 0
    if directory is not None:
        root = Path(directory).expanduser()
        if not root.is_dir():
            raise InvalidInput(f"Cannot push {str(root)!r}: it is not a directory.",
                               "Pass the directory holding the data, or use --reference for files left in place.")
        root = root.resolve()
        started = time.time()
        known = _load_known(root) if use_cache else {}
        result, n_hashed = _scan_dir(root, known, progress, f"hashing {root.name or root}")
        files, warnings = result.files, result.warnings
        if use_cache:
            _save_known(root, files, started)
    refs, n_ref_hashed = hash_references(references, previous_refs, progress=progress)
    return LocalDataset(root, files, refs, n_hashed + n_ref_hashed, warnings)


def hash_references(references: Sequence[str], previous_refs: Sequence[Sequence[Any]] = (), *,
                    progress: Progress | None = None) -> tuple[list[list[Any]], int]:
    """``[uri, sha256, size, mtime]`` of every file under the references, and how many files were read to hash them.

    A file whose size and mtime equal those in ``previous_refs`` keeps its recorded hash.
    """
    previous = {str(r[0]): (int(r[2]), float(r[3]), str(r[1])) for r in previous_refs}
    out: dict[str, list[Any]] = {}
    n_hashed = 0
    for ref in references:
        if ref.startswith(("s3://", "s3a://")):
            entries, n = _s3_refs(ref, previous, progress)
        elif "://" in ref:
            raise InvalidInput(f"Cannot reference {ref!r}: only local paths and s3:// URLs can be referenced.",
                               "Reference a path on a shared file system, or an s3://bucket/prefix.")
        else:
            entries, n = _local_refs(ref, previous, progress)
        n_hashed += n
        for e in entries:
            out[e[0]] = e
    return [out[k] for k in sorted(out)], n_hashed


def _local_refs(ref: str, previous: Mapping[str, tuple[int, float, str]],
                progress: Progress | None) -> tuple[list[list[Any]], int]:
    path = Path(ref).expanduser()
    if not path.exists():
        raise InvalidInput(f"Cannot reference {ref!r}: no such file or directory.", "Give an existing path.")
    path = path.resolve()
    if path.is_file():
        st = path.stat()
        seen = previous.get(path.as_posix())
        if seen is not None and seen[0] == st.st_size and seen[1] == st.st_mtime:
            return [[path.as_posix(), seen[2], st.st_size, st.st_mtime]], 0
        if progress is not None:
            progress(f"hashing {path.name}", 0, st.st_size)
        sha, size = hash_file(path)
        if progress is not None:
            progress(f"hashing {path.name}", size, size)
        return [[path.as_posix(), sha, size, st.st_mtime]], 1
    prefix = path.as_posix().rstrip("/") + "/"
    known = {uri[len(prefix):]: v for uri, v in previous.items() if uri.startswith(prefix)}
    result, n = _scan_dir(path, known, progress, f"hashing {path.name or path}")
    return [[prefix + f.path, f.sha256, f.size, f.mtime] for f in result.files], n


def _s3_fs(uri: str) -> Any:
    try:
        import s3fs  # noqa: F401  (fsspec finds it; imported here to name the extra when it is missing)
    except ImportError as e:
        raise InvalidInput(f"Referencing {uri} needs s3fs, which is not installed.",
                           "Install Runyard's s3 extra: pip install 'runyard[s3]'.") from e
    import fsspec

    from runyard.artifacts import _storage_options

    # A fresh instance, no listing cached: a later push must see objects that changed since the last one.
    fs = fsspec.filesystem("s3", skip_instance_cache=True, **_storage_options(uri))
    fs.invalidate_cache()
    return fs


def _s3_refs(ref: str, previous: Mapping[str, tuple[int, float, str]],
             progress: Progress | None) -> tuple[list[list[Any]], int]:
    fs = _s3_fs(ref)
    bare = ref.split("://", 1)[1].rstrip("/")
    try:
        found = fs.find(bare, detail=True)
    except (OSError, ValueError) as e:
        raise InvalidInput(f"Cannot list {ref}: {e}.", "Check the URL and your AWS credentials (AWS_PROFILE, AWS_*).") from e
    if not found:
        raise InvalidInput(f"Cannot reference {ref}: no objects there.", "Check the bucket and prefix.")
    items = []
    for key, info in sorted(found.items()):
        if info.get("type", "file") != "file":
            continue
        modified = info.get("LastModified") or info.get("mtime")
        mtime = modified.timestamp() if hasattr(modified, "timestamp") else float(modified or 0.0)
        items.append((f"s3://{key}", key, int(info.get("size") or 0), mtime))
    todo = [it for it in items if not ((seen := previous.get(it[0])) and seen[0] == it[2] and seen[1] == it[3])]
    total = sum(it[2] for it in todo)
    done = 0
    lock = threading.Lock()
    phase = f"hashing {ref}"

    def one(item: tuple[str, str, int, float]) -> str:
        nonlocal done
        digest = hashlib.sha256()
        try:
            with fs.open(item[1], "rb") as f:
                while chunk := f.read(_CHUNK):
                    digest.update(chunk)
        except OSError as e:  # s3fs's FileExpired too: the object was replaced while it was read
            raise InvalidInput(f"Cannot read {item[0]}: {e}.", "Push again once nothing writes to these objects.") from e
        if progress is not None:
            with lock:
                done += item[2]
                progress(phase, done, total)
        return digest.hexdigest()

    if progress is not None:
        progress(phase, 0, total)
    with ThreadPoolExecutor(max_workers=_threads(), thread_name_prefix="runyard-s3hash") as pool:
        hashes = dict(zip([it[0] for it in todo], pool.map(one, todo), strict=True))
    out = [[uri, hashes.get(uri) or previous[uri][2], size, mtime] for uri, _, size, mtime in items]
    return out, len(todo)


# ---------------------------------------------------------------------------------------------- push
@dataclass(frozen=True)
class DatasetPushResult:
    """What :func:`push_dataset` did (or, with ``dry_run``, would do).

    Attributes:
        created: a new version was made.
        version: the new version, or the latest one when nothing changed (None: a dry run of a new dataset).
        changes: from the latest version to the pushed content (``{added, removed, changed, unchanged}``).
        n_uploaded, bytes_uploaded: blobs sent now (the server had the others).
        local: the hashed content.
        dry_run: nothing was uploaded or made.
    """

    created: bool
    version: dict[str, Any] | None
    changes: dict[str, Any]
    n_uploaded: int
    bytes_uploaded: int
    local: LocalDataset
    dry_run: bool = False
    previous: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def unchanged(self) -> bool:
        return self.previous is not None and self.previous["content_id"] == self.local.content_id


def find_latest_version(client: Client, project: str, name: str) -> dict[str, Any] | None:
    """The dataset's latest version, or None when it has none (or does not exist)."""
    try:
        return client.get_dataset_version(project, name, "latest")
    except NotFound:
        return None


def push_dataset(
    client: Client,
    project: str,
    name: str,
    directory: str | os.PathLike[str] | None = None,
    references: Sequence[str] = (),
    *,
    message: str = "",
    tags: dict[str, str] | None = None,
    description: str | None = None,
    progress: Progress | None = None,
    dry_run: bool = False,
) -> DatasetPushResult:
    """Make a new version of dataset ``name`` from a directory and/or references, unless nothing changed.

    Hashes the content (skipping files known unchanged), compares it with the latest version, and when it differs
    uploads the blobs the server lacks, stores the snapshot and makes the version. Unchanged content uploads nothing.
    A push interrupted half-way is completed by pushing again: blobs already stored are not sent twice.

    Raises:
        InvalidInput: nothing to push, a path or name is invalid, a file changed while it was uploaded.
        RunyardError: the server refused (access, a bad name), or it computed another snapshot id.
    """
    if directory is None and not references:
        raise InvalidInput("Nothing to push: give a directory, or --reference paths or s3:// URLs.",
                           "For example: runyard datasets push data/ --name digits")
    previous = find_latest_version(client, project, name)
    local = scan_dataset(directory, references, previous_refs=previous["refs"] if previous else (), progress=progress)
    if not local.files and not local.refs:
        raise InvalidInput(f"Nothing to push: {directory or ', '.join(references)} holds no files.",
                           "Push a directory that holds files.")
    before = dataset_keys(previous["files"], previous["refs"]) if previous else {}
    changes = dataset_changes(before, dataset_keys(local.manifest(), local.refs))
    if previous is not None and previous["content_id"] == local.content_id:
        return DatasetPushResult(False, previous, changes, 0, 0, local, dry_run, previous)
    if dry_run:
        return DatasetPushResult(False, previous, changes, 0, 0, local, True, previous)
    n_sent = n_bytes = 0
    if local.files:
        assert local.root is not None
        upload_progress = None if progress is None else (lambda done, total: progress("uploading", done, total))
        n_sent, n_bytes = upload_missing(client, local.root, local.files, upload_progress)
        snap = client.create_snapshot(local.manifest())
        if snap["id"] != local.snapshot_id:
            raise RunyardError(f"The server stored snapshot {snap['id']} but this client computed {local.snapshot_id}.",
                               "Use the same Runyard version on client and server (`runyard --version`).")
    pushed = client.create_dataset_version(project, name, snapshot_id=local.snapshot_id, refs=local.refs,
                                           message=message, tags=tags, description=description)
    return DatasetPushResult(bool(pushed["created"]), pushed["version"], changes, n_sent, n_bytes, local, False, previous)


# ---------------------------------------------------------------------------------------------- pull
def _ref_parts(uri: str) -> list[str]:
    if "://" in uri:
        scheme, rest = uri.split("://", 1)
        return [f"{scheme}:"] + [p for p in rest.split("/") if p]
    return [p for p in uri.split("/") if p]


def reference_paths(refs: Sequence[Sequence[Any]]) -> dict[str, str]:
    """Where each referenced file goes in a pulled (or mounted) dataset: its uri relative to the deepest directory
    all the version's references share. ``/shared/scans/a.npy`` alone → ``a.npy``; ``/a/x`` and ``/b/y`` → ``a/x``
    and ``b/y``; ``s3://bkt/k/v`` beside local files → ``s3:/bkt/k/v``.

    Raises:
        InvalidInput: a uri holds a ``.`` or ``..`` part (it would leave the directory).
    """
    parts = {str(r[0]): _ref_parts(str(r[0])) for r in refs}
    for uri, p in parts.items():
        if not p or any(x in (".", "..") for x in p):
            raise InvalidInput(f"The reference {uri!r} cannot be placed in a directory.", "Reference files by normalised paths.")
    dirs = [p[:-1] for p in parts.values()]
    common = 0
    if dirs:
        shortest = min(len(d) for d in dirs)
        while common < shortest and len({d[common] for d in dirs}) == 1:
            common += 1
    return {uri: "/".join(p[common:]) for uri, p in parts.items()}


@dataclass(frozen=True)
class PulledDataset:
    """What :func:`pull_dataset` wrote.

    Attributes:
        version: the version pulled.
        dest: the directory.
        n_files: stored files written.
        n_downloaded, bytes_downloaded: blobs fetched from the server (the cache had the others).
        n_linked: references linked to their path in place.
        n_fetched: referenced objects downloaded (s3://) into the blob cache.
    """

    version: dict[str, Any]
    dest: Path
    n_files: int
    n_downloaded: int
    bytes_downloaded: int
    n_linked: int
    n_fetched: int


def pull_dataset(client: Client, project: str, name: str, version: int | str | None, dest: str | os.PathLike[str], *,
                 cache_dir: str | os.PathLike[str] | None = None, link: bool = True) -> PulledDataset:
    """Write a dataset version into ``dest``: see :func:`write_dataset_version`.

    Raises:
        NotFound: no such dataset or version.
        InvalidInput: a referenced file is gone or changed since the version was pushed, or a path would collide.
    """
    v = client.get_dataset_version(project, name, version)
    return write_dataset_version(client, v, dest, cache_dir=cache_dir, link=link)


def write_dataset_version(client: Client, v: Mapping[str, Any], dest: str | os.PathLike[str], *,
                          cache_dir: str | os.PathLike[str] | None = None, link: bool = True) -> PulledDataset:
    """Write a dataset version (as ``GET .../versions/{v}`` answers it: ``snapshot_id``, ``files``, ``refs``; without
    ``files`` they are read from the snapshot, as for the versions ``GET /runs/{id}/datasets`` lists) into ``dest``:
    stored files through the blob cache (:func:`materialize`), local references as symlinks to their path, s3://
    references downloaded into the blob cache (and checked against the recorded sha256) then linked from it; where
    each reference lands: :func:`reference_paths`. Idempotent. The task runner and ``runyard.use_dataset`` write the
    versions a run reads with it.

    Raises:
        InvalidInput: a referenced file is gone or changed since the version was pushed, or a path would collide.
    """
    project, name = v.get("project", "?"), v.get("dataset", "?")
    dest_root = Path(dest).expanduser()
    dest_root.mkdir(parents=True, exist_ok=True)
    got = None
    files = v.get("files")
    if v.get("snapshot_id"):
        got = materialize(client, v["snapshot_id"], dest_root, cache_dir, link=link)
        if files is None:
            files = client.get_snapshot(v["snapshot_id"])["files"]
    stored = {str(f[0]) for f in files or []}
    refs = {str(r[0]): r for r in v.get("refs") or []}
    label = f"{project}/{name}:{v.get('version', '?')}"
    cache = _cache_dir(cache_dir)
    n_linked = n_fetched = 0
    fs = None
    for uri, rel in reference_paths(list(refs.values())).items():
        ref = refs[uri]
        if rel in stored:
            raise InvalidInput(f"Referenced {uri} would land on the stored file {rel!r}.", "Pull the references elsewhere.")
        target = dest_root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if "://" not in uri:
            if not os.path.exists(uri):
                raise InvalidInput(f"Referenced file {uri} of {label} is gone.",
                                   "Restore it, or push a new version without it.")
            if target.is_symlink() and os.readlink(target) == uri:
                n_linked += 1
                continue
            tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.runyard-tmp")
            os.symlink(uri, tmp)
            os.replace(tmp, target)
            n_linked += 1
            continue
        digest = str(ref[1])
        blob = _blob_path(cache, digest)
        if not _cached_blob(blob, digest):
            fs = fs or _s3_fs(uri)
            blob.parent.mkdir(parents=True, exist_ok=True)
            tmp_blob = blob.with_name(f"{digest}.{uuid.uuid4().hex}.tmp")
            try:
                fs.get_file(uri.split("://", 1)[1], str(tmp_blob))
                if hash_file(tmp_blob)[0] != digest:
                    raise InvalidInput(f"Referenced object {uri} changed since {label} was pushed.",
                                       f"Push a new version (`runyard datasets push --reference {uri} --name {name}`).")
                os.chmod(tmp_blob, _MODE_PLAIN)
                os.replace(tmp_blob, blob)
            finally:
                tmp_blob.unlink(missing_ok=True)
            n_fetched += 1
        _place(blob, target, _MODE_PLAIN, link)
    return PulledDataset(dict(v), dest_root, got.n_files if got else 0, got.n_downloaded if got else 0,
                         got.bytes_downloaded if got else 0, n_linked, n_fetched)
