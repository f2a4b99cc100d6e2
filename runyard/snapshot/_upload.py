"""Storing a snapshot on the server, uploading only the blobs it lacks (:func:`create_snapshot`)."""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from runyard._failpoints import pause
from runyard.errors import InvalidInput, NotFound, RunyardError
from runyard.snapshot._git import git_info
from runyard.snapshot._scan import _N_THREADS, FileEntry, scan

if TYPE_CHECKING:
    from runyard.client import Client

__all__ = ["SnapshotInfo", "create_snapshot", "upload_missing"]

_MISSING_BATCH = 10_000  # the server accepts at most 100,000 digests per /blobs/missing call
# Files under BATCH_FILE_BYTES go up together, in POST /blobs/batch requests of at most BATCH_BYTES and
# BATCH_FILES files (well under the server's 256 MiB and 10,000); larger files go one by one (PUT /blobs/SHA256).
BATCH_FILE_BYTES = 4 * 1024 * 1024
BATCH_BYTES = 32 * 1024 * 1024
BATCH_FILES = 2_000


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


class _HashingReader:
    """A file body that hashes what the client reads from it and reports progress.

    ``seekable``/``tell``/``seek`` let the client send the file's size as Content-Length
    (the server refuses an upload over its limit before any byte of it); the client reads
    the body only through ``read``, so the hash covers exactly what was sent.
    """

    def __init__(self, f: BinaryIO, on_chunk: Callable[[int], None]) -> None:
        self._f = f
        self._on_chunk = on_chunk
        self._started = False
        self.sha256 = hashlib.sha256()
        self.n_read = 0
        self.at_end = False  # a read found the end of the file

    def read(self, n: int = -1) -> bytes:
        if self._started:
            pause("snapshot.upload_chunk")  # tests: a push killed in the middle of a blob's body
        self._started = True
        chunk = self._f.read(n)
        if chunk:
            self.sha256.update(chunk)
            self.n_read += len(chunk)
            self._on_chunk(len(chunk))
        elif n != 0:
            self.at_end = True
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
    n_sent, total = upload_missing(client, result.root, result.files, progress)
    snap = client.create_snapshot(result.manifest(), git_commit=git.commit, git_branch=git.branch,
                                  git_dirty=bool(git.dirty), git_diff=git.diff or "")
    if snap["id"] != result.id:
        raise RunyardError(
            f"The server stored snapshot {snap['id']} but this client computed {result.id} for the same manifest.",
            "Client and server disagree on the manifest format: use the same Runyard version on both (`runyard --version`).",
        )
    return SnapshotInfo(
        id=result.id, n_files=result.n_files, size=result.size, n_uploaded=n_sent, bytes_uploaded=total,
        git_commit=git.commit, git_branch=git.branch, git_dirty=git.dirty, git_diff=git.diff, warnings=result.warnings,
    )


def upload_missing(
    client: Client,
    root: Path,
    files: Sequence[FileEntry],
    progress: Callable[[int, int], None] | None = None,
    *,
    threads: int = _N_THREADS,
) -> tuple[int, int]:
    """Upload the blobs of ``files`` that the server lacks, several requests at a time; each file's bytes are hashed
    as they are sent, and a file that changed since it was scanned is refused (the server would refuse it too).

    Files under ``BATCH_FILE_BYTES`` go in ``POST /blobs/batch`` requests (:meth:`Client.upload_blobs`) of at most
    ``BATCH_BYTES`` and ``BATCH_FILES`` files, the others one per ``PUT /blobs/SHA256``; a server without the batch
    route (it answers an empty batch with 404 or 405) gets every file by ``PUT``.

    Args:
        client: the server's client.
        root: the scanned directory (named in errors).
        files: the scanned files.
        progress: ``progress(bytes_done, bytes_total)`` as in :func:`create_snapshot`.
        threads: uploads at once.

    Returns:
        ``(blobs uploaded, bytes uploaded)``.

    Raises:
        InvalidInput: a file changed while it was uploaded.
    """
    by_digest: dict[str, FileEntry] = {}
    for f in files:
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
                        raise _changed(root, f) from e
                    raise
        except FileNotFoundError as e:
            raise _changed(root, f) from e

    def upload_batch(batch: list[FileEntry]) -> None:
        sent: list[tuple[FileEntry, _HashingReader]] = []

        def items() -> Iterator[tuple[str, int, BinaryIO]]:
            for f in batch:
                try:
                    fh = open(f.source, "rb")  # noqa: SIM115 - closed once the body moved past it
                except FileNotFoundError as e:
                    raise _changed(root, f) from e  # not an OSError: raised from the request's body as it is
                with fh:
                    body = _HashingReader(fh, on_chunk)
                    sent.append((f, body))
                    yield f.sha256, f.size, body  # type: ignore[misc]

        try:
            client.upload_blobs(items())
        except InvalidInput as e:
            for f, body in sent:  # the server refused a blob whose bytes are not those scanned, or one shrank
                if (body.n_read == f.size and body.sha256.hexdigest() != f.sha256) or (body.at_end and body.n_read < f.size):
                    raise _changed(root, f) from e
            raise

    large = [f for f in to_send if f.size >= BATCH_FILE_BYTES]
    batches = _batches([f for f in to_send if f.size < BATCH_FILE_BYTES], threads)
    if batches and not _takes_batches(client):
        large, batches = to_send, []  # an older server: every file by PUT
    jobs: list[Callable[[], None]] = [functools.partial(upload, f) for f in large]
    jobs += [functools.partial(upload_batch, b) for b in batches]
    if progress is not None:
        progress(0, total)
    if jobs:
        with ThreadPoolExecutor(max_workers=max(1, min(threads, len(jobs))), thread_name_prefix="runyard-upload") as pool:
            for _ in pool.map(lambda job: job(), jobs):
                pass
    return len(to_send), total


def _batches(files: Sequence[FileEntry], threads: int) -> list[list[FileEntry]]:
    """``files`` in groups of at most ``BATCH_FILES`` files and about ``BATCH_BYTES`` bytes, in their order; a few
    MiB in all are split into about ``threads`` groups (of at least 1 MiB), so that they go up side by side too."""
    out: list[list[FileEntry]] = []
    per_batch = min(BATCH_BYTES, max(1024 * 1024, sum(f.size for f in files) // max(1, threads) + 1))
    size = 0
    for f in files:
        if not out or len(out[-1]) >= BATCH_FILES or size + f.size > per_batch:
            out.append([])
            size = 0
        out[-1].append(f)
        size += f.size
    return out


def _takes_batches(client: Client) -> bool:
    """Whether the server has POST /blobs/batch: an empty batch is stored, an older server answers 404 or 405."""
    try:
        client.upload_blobs(())
    except NotFound:
        return False
    except RunyardError as e:
        if e.code == "method_not_allowed":
            return False
        raise
    return True


def _changed(root: Path, f: FileEntry) -> InvalidInput:
    return InvalidInput(f"{f.path!r} in {root} changed while the snapshot was being uploaded.",
                        "Retry once nothing writes into the project directory, or ignore the file in .runyardignore.")
