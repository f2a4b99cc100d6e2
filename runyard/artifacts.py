"""Artifact and blob storage through fsspec (local directory by default, ``s3://`` etc. for teams).

Layout under ``RUNYARD_ARTIFACTS_URL``::

    runs/<run_id>/<path>     files a run stored
    blobs/<aa>/<sha256>      content-addressed snapshot blobs

Paths from clients are normalised by :func:`clean_path`; anything that could
escape the run's root (``..``, absolute paths, backslashes, NUL) is refused, and so are
paths over the limits (``MAX_NAME_BYTES`` per name, ``MAX_PATH_DEPTH`` levels,
``MAX_PATH_BYTES`` in all).
"""

from __future__ import annotations

import posixpath
import re
import uuid
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO

import fsspec

from runyard import config
from runyard.errors import Conflict, InvalidInput, NotFound

__all__ = ["ArtifactStorage", "clean_path"]

_SHA = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1024 * 1024
# Artifact path limits, below what file systems and object stores take: a file or directory
# name of at most 200 bytes (255 is the usual file system limit, and an upload's temporary
# name adds 18 bytes), at most 32 levels and 1024 bytes in all.
MAX_NAME_BYTES = 200
MAX_PATH_DEPTH = 32
MAX_PATH_BYTES = 1024


def clean_path(path: str) -> str:
    """Normalise a client-given artifact path, refusing anything that leaves the run's root."""
    if not path or "\x00" in path or "\\" in path:
        raise InvalidInput(f"Invalid artifact path {path!r}: it is empty or holds a NUL or a backslash.",
                           "Use a relative path with forward slashes, e.g. model/weights.pt.")
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        raise InvalidInput(f"Artifact path {path!r} is absolute.", "Use a path relative to the run, e.g. model/weights.pt.")
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise InvalidInput(f"Artifact path {path[:80]!r}… is longer than {MAX_PATH_BYTES} bytes.",
                           f"Use a path of at most {MAX_PATH_BYTES} bytes (UTF-8).")
    parts = path.split("/")
    if len(parts) > MAX_PATH_DEPTH:
        raise InvalidInput(f"Artifact path {path[:80]!r}… has {len(parts)} levels; at most {MAX_PATH_DEPTH} are allowed.",
                           f"Use a path of at most {MAX_PATH_DEPTH} directories deep.")
    for part in parts:
        if len(part.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
            raise InvalidInput(f"A component of artifact path {path[:80]!r}… is longer than {MAX_NAME_BYTES} bytes.",
                               f"Keep each file and directory name to at most {MAX_NAME_BYTES} bytes (UTF-8).")
    if any(p == ".." for p in parts):
        raise InvalidInput(f"Artifact path {path!r} contains '..'.", "Use a path inside the run, e.g. plots/loss.png.")
    norm = posixpath.normpath(path)
    if norm in (".", "") or norm.startswith("../"):
        raise InvalidInput(f"Invalid artifact path {path!r}.", "Use a path relative to the run, e.g. model/weights.pt.")
    return norm


def check_sha256(digest: str) -> str:
    if not _SHA.match(digest or ""):
        raise InvalidInput(f"{digest!r} is not a sha256 digest (64 lowercase hex characters).", "Send hashlib.sha256(data).hexdigest().")
    return digest


def _storage_options(url: str) -> dict[str, Any]:
    """fsspec options from the environment: for ``s3://``, RUNYARD_S3_ENDPOINT_URL (an S3-compatible store:
    MinIO, Ceph, moto) and RUNYARD_S3_BLOCK_MB (the multipart part size, default 16 MiB: an upload holds
    about three parts in memory, and S3's 10,000 parts then allow objects of 160 GiB).
    Credentials and region come from the usual AWS settings (AWS_ACCESS_KEY_ID, AWS_PROFILE, AWS_REGION…),
    which s3fs reads itself; AWS_ENDPOINT_URL works too when RUNYARD_S3_ENDPOINT_URL is unset."""
    if not url.startswith(("s3://", "s3a://")):
        return {}
    import os

    options: dict[str, Any] = {}
    endpoint = os.environ.get("RUNYARD_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_S3") \
        or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        options["endpoint_url"] = endpoint
    block = os.environ.get("RUNYARD_S3_BLOCK_MB") or "16"
    if block:
        try:
            mb = float(block)
        except ValueError as e:
            raise InvalidInput(f"RUNYARD_S3_BLOCK_MB must be a number of MiB, but is {block!r}.",
                               "Set it to 5 or more (S3's smallest multipart part), e.g. RUNYARD_S3_BLOCK_MB=64.") from e
        if mb < 5:
            raise InvalidInput(f"RUNYARD_S3_BLOCK_MB is {block}, but S3 multipart parts are at least 5 MiB.",
                               "Set it to 5 or more, or unset it for the default (16 MiB).")
        options["default_block_size"] = int(mb * 1024 * 1024)
    return options


class ArtifactStorage:
    """Streams files in and out of the fsspec store."""

    def __init__(self, url: str | None = None) -> None:
        self.url = (url or config.artifacts_url()).rstrip("/")
        self.fs, self.root = fsspec.core.url_to_fs(self.url, **_storage_options(self.url))
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        if "file" in protocols:
            config.make_private_dir(self.root)  # a directory on this machine: this account only (0700)
        else:
            self.fs.makedirs(self.root, exist_ok=True)

    def _run_path(self, run_id: int, path: str) -> str:
        return f"{self.root}/runs/{run_id}/{clean_path(path)}"

    def _blob_path(self, digest: str) -> str:
        check_sha256(digest)
        return f"{self.root}/blobs/{digest[:2]}/{digest}"

    def open_write(self, run_id: int, path: str) -> tuple[str, BinaryIO]:
        target = self._run_path(run_id, path)
        # A file and a directory cannot share a path: without these checks "x" after "x/y" was
        # moved *into* x/ (an unreadable record), and "f/g" after "f" failed with a 500.
        if self.fs.isdir(target):
            raise Conflict(f"Run {run_id} already has artifacts under {path!r}/, so {path!r} cannot be a file.",
                           "Upload it under another path.")
        try:
            self.fs.makedirs(posixpath.dirname(target), exist_ok=True)
        except (FileExistsError, NotADirectoryError) as e:
            raise Conflict(f"Artifact path {path!r} of run {run_id} runs through an existing artifact file.",
                           "Upload it under another path.") from e
        # One temporary file per upload: concurrent uploads of one path must not write into the same file.
        tmp = f"{target}.{uuid.uuid4().hex[:12]}.part"
        return tmp, self.fs.open(tmp, "wb")

    def commit(self, tmp: str) -> None:
        self.fs.mv(tmp, tmp.rsplit(".", 2)[0])  # strip ".<hex>.part"

    def discard(self, tmp: str) -> None:
        if self.fs.exists(tmp):
            self.fs.rm(tmp)

    def open_run_file(self, run_id: int, path: str) -> BinaryIO:
        """A run's file opened for reading (seekable: Parquet readers jump to the footer); the caller closes it."""
        target = self._run_path(run_id, path)
        if not self.fs.exists(target):
            raise NotFound(f"Run {run_id} has no artifact {path!r}.",
                           "List what is stored with `runyard info RUN` or GET /api/v1/runs/RUN/artifacts.")
        f: BinaryIO = self.fs.open(target, "rb")
        return f

    def read_run_file(self, run_id: int, path: str) -> Iterator[bytes]:
        return self._iter(self._run_path(run_id, path), f"Run {run_id} has no artifact {path!r}.")

    def blob_writer(self, digest: str) -> tuple[str, BinaryIO]:
        target = self._blob_path(digest)
        self.fs.makedirs(posixpath.dirname(target), exist_ok=True)
        tmp = f"{target}.{uuid.uuid4().hex[:12]}.part"
        return tmp, self.fs.open(tmp, "wb")

    def commit_blob(self, tmp: str, digest: str) -> None:
        self.fs.mv(tmp, self._blob_path(digest))

    # ------------------------------------------------------------------ batched blob uploads
    def write_blobs(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Store whole small blobs, each under a temporary name then moved into place (POST /blobs/batch).

        The caller checked every digest against its bytes. A failure leaves no temporary file; the
        blobs moved into place before it stay (they are valid, content-addressed).
        """
        for digest, data in items:
            tmp, sink = self.blob_writer(digest)
            try:
                with sink:
                    sink.write(data)
                self.commit_blob(tmp, digest)
            except BaseException:
                self.discard(tmp)
                raise

    def has_blob(self, digest: str) -> bool:
        return self.fs.exists(self._blob_path(digest))

    def read_blob(self, digest: str) -> Iterator[bytes]:
        return self._iter(self._blob_path(digest), f"No blob {digest}.")

    def _iter(self, path: str, missing: str) -> Iterator[bytes]:
        if not self.fs.exists(path):
            raise NotFound(missing, "List what is stored with `runyard info RUN` or GET /api/v1/runs/RUN/artifacts.")
        f = self.fs.open(path, "rb")

        def chunks() -> Iterator[bytes]:
            with f:
                while True:
                    data = f.read(CHUNK)
                    if not data:
                        return
                    yield data

        return chunks()

    # ------------------------------------------------------------------ the model registry
    def copy_run_file_to_blob(self, run_id: int, path: str, digest: str) -> int:
        """Copy run ``run_id``'s artifact ``path`` into the blob ``digest`` (a model version's file); its size.

        The bytes are hashed on the way: an artifact replaced since its record was read (a new
        upload to the same path) does not match, and nothing is stored. The blob appears whole or
        not at all (written under a temporary name, then moved), so a copy cut short leaves no
        damaged blob.

        Raises:
            NotFound: the run has no such file.
            Conflict: the file's bytes no longer hash to ``digest``.
        """
        import hashlib

        check_sha256(digest)
        tmp, sink = self.blob_writer(digest)
        h = hashlib.sha256()
        size = 0
        try:
            with self.open_run_file(run_id, path) as src:
                while chunk := src.read(CHUNK):
                    h.update(chunk)
                    size += len(chunk)
                    sink.write(chunk)
            sink.close()
            if h.hexdigest() != digest:
                raise Conflict(f"Run {run_id}'s artifact {path!r} changed while it was being registered (it hashes to "
                               f"{h.hexdigest()[:12]}…, its record says {digest[:12]}…).",
                               "Register it again once the run stopped writing it.")
            self.commit_blob(tmp, digest)
        except BaseException:
            try:
                sink.close()
            except Exception:  # noqa: BLE001 - the copy failed already; this is cleanup
                pass
            self.discard(tmp)
            raise
        return size
