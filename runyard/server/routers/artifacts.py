"""Artifacts (files a run stored) and content-addressed snapshot blobs: streamed in and out."""

from __future__ import annotations

import asyncio
import hashlib
from typing import BinaryIO
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from runyard import config, media
from runyard._manifest import manifest_id
from runyard.artifacts import ArtifactStorage, check_sha256, clean_path
from runyard.errors import InvalidInput, PayloadTooLarge
from runyard.records.fields import LogText, SafeJson, SafeStr
from runyard.server._auth import require_blob, require_snapshot, require_user, run_reader, run_token_route, run_writer
from runyard.server._deps import get_store
from runyard.store import Artifact, Snapshot, Store

router = APIRouter(tags=["artifacts"])
_COMMIT_LOCK = asyncio.Lock()

_BINARY_BODY = {
    "requestBody": {"required": True, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
}


class ArtifactList(BaseModel):
    items: list[Artifact]


class BlobQuery(BaseModel):
    digests: list[str] = Field(max_length=100_000)


class BlobMissing(BaseModel):
    missing: list[str]


class SnapshotCreate(BaseModel):
    files: list[list[SafeJson]] = Field(description="[path, sha256, size, mode] per file")
    git_commit: SafeStr | None = None
    git_branch: SafeStr | None = None
    git_dirty: bool = False
    git_diff: LogText = Field("", description="program output: NUL characters and unpaired surrogates are stored as U+FFFD")


def _storage(request: Request) -> ArtifactStorage:
    return request.app.state.artifacts


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The upload is larger than the server's limit of {limit / 1048576:.0f} MiB.",
        "Store large files elsewhere, or raise RUNYARD_MAX_UPLOAD_MB on the server.",
    )


# Body chunks are gathered up to this size and written from a worker thread: a write to a remote
# store (s3fs uploads a multipart part once its block fills) never blocks the event loop.
_WRITE_BATCH = 1024 * 1024


async def _receive(request: Request, sink, limit: int,  # noqa: ANN001
                   probe: media.ImageProbe | media.CsvProbe | None = None) -> tuple[int, str]:
    """Stream the body into ``sink`` (never all of it in memory), then close it: its size and sha256.

    ``probe`` (an image or table upload, :func:`runyard.media.probe_for`) sees every chunk on the way."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    digest = hashlib.sha256()
    size = 0
    pending = bytearray()
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        digest.update(chunk)
        if probe is not None:
            probe.feed(chunk)
        pending += chunk
        if len(pending) >= _WRITE_BATCH:
            await run_in_threadpool(sink.write, bytes(pending))
            pending.clear()
    if pending:
        await run_in_threadpool(sink.write, bytes(pending))
    await run_in_threadpool(sink.close)  # a remote store completes its (multipart) upload here
    return size, digest.hexdigest()


async def _discard(storage: ArtifactStorage, tmp: str, sink) -> None:  # noqa: ANN001
    """Drop a failed upload's temporary file (an unfinished multipart upload is aborted, never completed)."""
    def drop() -> None:
        try:
            if getattr(sink, "mpu", None):  # s3fs: a multipart upload started; abort it instead of completing it
                sink.discard()
            else:
                sink.close()
        except Exception:  # noqa: BLE001 - the upload failed already; this is cleanup
            pass
        storage.discard(tmp)

    await run_in_threadpool(drop)


@router.put("/runs/{run_id}/artifacts/{path:path}", response_model=Artifact, status_code=201, openapi_extra=_BINARY_BODY,
            dependencies=[Depends(run_writer)])
@run_token_route
async def upload_artifact(run_id: int, path: str, request: Request) -> Artifact:
    return await receive_artifact(request, run_id, clean_path(path))


async def receive_artifact(request: Request, run_id: int, clean: str) -> Artifact:
    """Stream the request's body into run ``run_id``'s artifact ``clean`` (a path cleaned by ``clean_path``) and
    record it; the caller checked the right to write. Used by the MLflow-compatible artifact proxy too."""
    store: Store = request.app.state.store
    storage = _storage(request)
    await run_in_threadpool(store.get_run, run_id)
    tmp, sink = await run_in_threadpool(storage.open_write, run_id, clean)
    probe = media.probe_for(clean)
    try:
        size, sha = await _receive(request, sink, config.max_upload_bytes(), probe)
    except BaseException:
        await _discard(storage, tmp, sink)
        raise
    # Move and record as one step, so that of concurrent uploads of one path the same upload
    # wins both the file and its record (within this server process). The image or table list's
    # row is written with the artifact's, after its file is in place: a row never names a missing file.
    async with _COMMIT_LOCK:
        await run_in_threadpool(storage.commit, tmp)
        info = probe.result() if probe is not None else None
        if info is None and clean.endswith(".parquet"):
            info = await run_in_threadpool(_parquet_info, storage, run_id, clean)
        return await run_in_threadpool(store.record_artifact, run_id, clean, size, sha, info)


def _parquet_info(storage: ArtifactStorage, run_id: int, path: str) -> media.MediaInfo | None:
    """The table list's row of a Parquet table (its footer, read once stored); rows -1 without pyarrow."""
    table = media.parse_table_path(path)
    if table is None:
        return None
    key, step, fmt = table
    with storage.open_run_file(run_id, path) as f:
        shape = media.parquet_shape(f)
    n_rows, columns = shape if shape is not None else (-1, ())
    return media.MediaInfo("table", key, step, format=fmt, n_rows=n_rows, columns=columns)


@router.get("/runs/{run_id}/artifacts", response_model=ArtifactList, dependencies=[Depends(run_reader)])
@run_token_route
def list_artifacts(run_id: int, prefix: str = "", store: Store = Depends(get_store)) -> ArtifactList:
    return ArtifactList(items=store.list_artifacts(run_id, clean_path(prefix) if prefix else ""))


# What a file may be shown as, by extension. Only types no browser runs code from are sent as what they are:
# raster images and plain text. HTML (a notebook's rendering) and SVG are shown only with ?view=true and only under
# FILE_CSP (runyard.server._guard), whose `sandbox` without allow-scripts runs none of their scripts and gives them
# an opaque origin; without ?view=true they, and everything else, are downloads of application/octet-stream.
_IMAGE_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp"}
_TEXT_EXTENSIONS = frozenset({"txt", "log", "md", "markdown", "csv", "tsv", "json", "jsonl", "yaml", "yml", "toml",
                              "ini", "cfg", "conf", "py", "r", "sh", "out", "err", "tex", "rst", "sql", "js", "ts"})
_TEXT = "text/plain; charset=utf-8"
_PAGE_TYPES = {"html": "text/html; charset=utf-8", "htm": "text/html; charset=utf-8", "svg": "image/svg+xml"}


def file_answer(path: str, view: bool) -> tuple[str, str]:
    """(Content-Type, Content-Disposition) of the run file at ``path``.

    >>> file_answer("media/images/x/0-0.png", True)
    ('image/png', 'inline')
    >>> file_answer("plot.svg", False)[0]
    'application/octet-stream'
    """
    name = path.rpartition("/")[2]
    ext = name.rpartition(".")[2].lower() if "." in name else ""
    if ext in _IMAGE_TYPES:
        kind = _IMAGE_TYPES[ext]
    elif ext in _TEXT_EXTENSIONS:
        kind = _TEXT
    elif view and ext in _PAGE_TYPES:
        kind = _PAGE_TYPES[ext]
    else:
        return "application/octet-stream", _attachment(name)
    return kind, "inline" if view else _attachment(name)


def _attachment(name: str) -> str:
    """``attachment`` with the file's name: an ASCII fallback and the exact UTF-8 name (RFC 6266)."""
    fallback = "".join(c if " " <= c < "\x7f" and c not in '"\\;' else "_" for c in name) or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


@router.get("/runs/{run_id}/artifacts/{path:path}", response_class=StreamingResponse,
            responses={200: {"content": {"application/octet-stream": {}}}}, dependencies=[Depends(run_reader)])
@run_token_route
def download_artifact(run_id: int, path: str, request: Request, store: Store = Depends(get_store),
                      view: bool = Query(False, description="show the file in the browser rather than download it: "
                                         "png, jpeg, gif and webp images as themselves, text files (.txt, .log, .md, "
                                         ".csv, .json, .yaml, .py ...) as text/plain, and .html (a notebook's "
                                         "rendering) and .svg as text/html and image/svg+xml, still under the files' "
                                         "sandboxing Content-Security-Policy, so none of their scripts run and they "
                                         "have no origin of their own. Other files are downloads (application/"
                                         "octet-stream) whatever this says")
                      ) -> StreamingResponse:
    clean = clean_path(path)
    art = store.find_artifact(run_id, clean)
    if art is None:
        store.get_run(run_id)
        from runyard.errors import NotFound

        raise NotFound(f"Run {run_id} has no artifact {clean!r}.", f"List them with `runyard info {run_id}`.")
    # Every file answer carries FILE_CSP and nosniff (runyard.server._guard): `sandbox` without allow-scripts, so a
    # page shown here runs no script and gets an opaque origin, never the UI's (no cookies, no API calls).
    content_type, disposition = file_answer(clean, view)
    return StreamingResponse(
        _storage(request).read_run_file(run_id, clean),
        media_type=content_type,
        headers={"Content-Length": str(art.size), "X-Runyard-Sha256": art.sha256, "Content-Disposition": disposition},
    )


@router.post("/blobs/missing", response_model=BlobMissing, dependencies=[Depends(require_user)])
def missing_blobs(body: BlobQuery, store: Store = Depends(get_store)) -> BlobMissing:
    """Which of these sha256 digests the server lacks: clients upload only those."""
    for d in body.digests:
        check_sha256(d)
    return BlobMissing(missing=store.missing_blobs(body.digests))


@router.put("/blobs/{digest}", status_code=204, openapi_extra=_BINARY_BODY, dependencies=[Depends(require_user)])
async def upload_blob(digest: str, request: Request) -> None:
    check_sha256(digest)
    store: Store = request.app.state.store
    storage = _storage(request)
    tmp, sink = await run_in_threadpool(storage.blob_writer, digest)
    try:
        size, sha = await _receive(request, sink, config.max_upload_bytes())
        if sha != digest:
            raise InvalidInput(f"The uploaded content hashes to {sha}, not {digest}.", "Send the file whose sha256 is in the URL.")
    except BaseException:
        await _discard(storage, tmp, sink)
        raise
    await run_in_threadpool(storage.commit_blob, tmp, digest)
    await run_in_threadpool(store.record_blob, digest, size)


@router.get("/blobs/{digest}", response_class=StreamingResponse, responses={200: {"content": {"application/octet-stream": {}}}})
@run_token_route
def download_blob(digest: str, request: Request) -> StreamingResponse:
    require_blob(request, digest)
    return StreamingResponse(_storage(request).read_blob(check_sha256(digest)), media_type="application/octet-stream")


@router.post("/snapshots", response_model=Snapshot, status_code=201, dependencies=[Depends(require_user)])
def create_snapshot(body: SnapshotCreate, store: Store = Depends(get_store)) -> Snapshot:
    for f in body.files:
        if len(f) != 4 or not isinstance(f[0], str) or not isinstance(f[2], int) or not isinstance(f[3], int):
            raise InvalidInput(f"Snapshot entry {f!r} is not [path, sha256, size, mode].", "Build manifests with runyard.snapshot.")
        clean_path(f[0])
        check_sha256(f[1])
    sid = manifest_id(body.files)
    return store.create_snapshot(sid, body.files, git_commit=body.git_commit, git_branch=body.git_branch,
                                 git_dirty=body.git_dirty, git_diff=body.git_diff)


@router.get("/snapshots/{snapshot_id}", response_model=Snapshot)
@run_token_route
def get_snapshot(snapshot_id: str, request: Request, store: Store = Depends(get_store)) -> Snapshot:
    require_snapshot(request, snapshot_id)
    return store.get_snapshot(snapshot_id)


# ---------------------------------------------------------------------------------------- blob batches
# POST /blobs/batch stores many small blobs in one request: a dataset of 10,000 files costs a few requests
# and one database transaction rather than 10,000 of each. The body is a stream of frames, one per blob:
#
#     64 ASCII characters   the blob's sha256, lowercase hex
#     20 ASCII digits       its size in bytes, decimal, zero-padded (00000000000000001234)
#     size bytes            its content
#
# and nothing else (an empty body is an empty batch). Fixed-width headers need no delimiter and no escaping:
# a reader always knows how many bytes come next, and the client knows each file's size from its scan.

BATCH_MAX_BLOBS = 10_000
"""The most blobs one POST /blobs/batch may hold."""
BATCH_MAX_BYTES = 256 * 1024 * 1024
"""The most bytes (frame headers included) one POST /blobs/batch body may hold."""
_FRAME_HEAD = 84  # 64 hex digits of sha256 + 20 decimal digits of size

_BATCH_BODY = {
    "requestBody": {"required": True, "content": {"application/octet-stream": {"schema": {
        "type": "string", "format": "binary",
        "description": "per blob: its sha256 (64 lowercase hex characters), its size (20 decimal digits, "
                       "zero-padded), then its bytes; frames follow each other with nothing between them"}}}},
}


class BlobBatchStored(BaseModel):
    n_blobs: int = Field(description="blobs stored by this request")
    size: int = Field(description="their bytes")


def _batch_too_large() -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The blob batch is larger than the limit of {BATCH_MAX_BYTES // 1048576} MiB per request.",
        "Send the blobs in several batches of at most that size (the Runyard client does), or large files one by one "
        "with PUT /api/v1/blobs/SHA256.",
    )


class _BatchReceiver:
    """Parses a POST /blobs/batch body as it arrives, checking each blob's sha256 and size before it is kept.

    Whole blobs of under ``_WRITE_BATCH`` bytes are kept in memory (verified) until about ``_WRITE_BATCH`` of
    them are waiting, then written together from one worker thread; a larger blob goes to its temporary file
    in ``_WRITE_BATCH`` pieces and is moved into place once its hash matched. So the event loop hands work
    to a thread about once per MiB, never per chunk nor per small blob, and memory stays near 2 MiB.
    """

    def __init__(self, storage: ArtifactStorage, blob_limit: int) -> None:
        self.storage = storage
        self.blob_limit = blob_limit
        self.head = bytearray()  # the current frame's header, until complete
        self.digest = ""  # the current blob ("" between blobs)
        self.size = 0
        self.remaining = 0
        self.hasher = hashlib.sha256()
        self.body = bytearray()  # the current blob's bytes not yet written
        self.tmp: str | None = None  # the current (large) blob's temporary file and its writer
        self.sink: BinaryIO | None = None
        self.ready: list[tuple[str, bytes]] = []  # whole, verified small blobs not yet written
        self.ready_bytes = 0
        self.n_blobs = 0
        self.stored: list[tuple[str, int]] = []  # (sha256, size) of the blobs in place

    async def feed(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            if not self.digest:
                need = _FRAME_HEAD - len(self.head)
                self.head += view[:need]
                view = view[need:]
                if len(self.head) == _FRAME_HEAD:
                    self._start()
                    if self.remaining == 0:
                        await self._end()
                continue
            piece = view[: self.remaining]
            view = view[len(piece):]
            self.hasher.update(piece)
            self.body += piece
            self.remaining -= len(piece)
            if self.remaining == 0:
                await self._end()
            elif len(self.body) >= _WRITE_BATCH:
                data = bytes(self.body)
                self.body.clear()
                await run_in_threadpool(self._write_piece, data)

    def _start(self) -> None:
        raw_digest, raw_size = bytes(self.head[:64]), bytes(self.head[64:])
        self.head.clear()
        shown = raw_digest.decode("ascii", "replace")
        if not all(c in b"0123456789abcdef" for c in raw_digest):
            raise InvalidInput(f"Blob {self.n_blobs + 1} of the batch starts with {shown[:64]!r}, not a sha256 digest "
                               "(64 lowercase hex characters).",
                               "Frame each blob as its sha256 in hex, its size in 20 decimal digits, then its bytes.")
        if not raw_size.isdigit():
            raise InvalidInput(f"Blob {shown} of the batch has the size field {raw_size[:20]!r}, not 20 decimal digits.",
                               "Frame each blob as its sha256 in hex, its size in 20 decimal digits (zero-padded), "
                               "then its bytes.")
        self.n_blobs += 1
        if self.n_blobs > BATCH_MAX_BLOBS:
            raise InvalidInput(f"The blob batch holds more than {BATCH_MAX_BLOBS:,} blobs, the limit per request.",
                               f"Send at most {BATCH_MAX_BLOBS:,} blobs per POST /api/v1/blobs/batch (the Runyard "
                               "client sends fewer).")
        size = int(raw_size)
        if size > self.blob_limit:
            raise PayloadTooLarge(
                f"Blob {shown} of the batch has {size:,} bytes, over the server's limit of "
                f"{self.blob_limit / 1048576:.0f} MiB per file.",
                "Store large files elsewhere, or raise RUNYARD_MAX_UPLOAD_MB on the server.")
        self.digest, self.size, self.remaining = shown, size, size
        self.hasher = hashlib.sha256()

    def _write_piece(self, data: bytes) -> None:
        """(Worker thread) The next piece of a large blob, into its temporary file (opened on the first piece)."""
        if self.sink is None:
            self.tmp, self.sink = self.storage.blob_writer(self.digest)
        self.sink.write(data)

    def _finish_large(self, digest: str, data: bytes) -> None:
        """(Worker thread) A large blob's last piece; close and move it into place."""
        assert self.sink is not None and self.tmp is not None  # noqa: S101 - set by _write_piece
        self.sink.write(data)
        self.sink.close()  # a remote store completes its (multipart) upload here
        self.storage.commit_blob(self.tmp, digest)
        self.tmp = self.sink = None

    async def _end(self) -> None:
        """The current blob is complete: check it, then keep it for the next write or finish its file."""
        digest, size = self.digest, self.size
        sha = self.hasher.hexdigest()
        if sha != digest:
            raise InvalidInput(
                f"Blob {digest} of the batch hashes to {sha} (its {size:,} bytes as framed): nothing of it was stored.",
                "Frame each file with the sha256 and size of the bytes sent; if the file changed since it was hashed, "
                "hash it again and resend.")
        data = bytes(self.body)
        self.body.clear()
        self.digest = ""
        if self.sink is not None:
            await run_in_threadpool(self._finish_large, digest, data)
            self.stored.append((digest, size))
            return
        self.ready.append((digest, data))
        self.ready_bytes += size
        if self.ready_bytes >= _WRITE_BATCH or len(self.ready) >= 256:
            await self._flush()

    async def _flush(self) -> None:
        ready, self.ready, self.ready_bytes = self.ready, [], 0
        if ready:
            await run_in_threadpool(self.storage.write_blobs, ready)
            self.stored += [(d, len(b)) for d, b in ready]

    async def finish(self) -> None:
        """The body ended: it must end between two frames."""
        if self.digest:
            raise InvalidInput(f"The batch body ends inside blob {self.digest}, {self.size - self.remaining:,} of its "
                               f"{self.size:,} bytes sent: nothing of that blob was stored.",
                               "Send each blob's whole content after its header (its size as framed).")
        if self.head:
            raise InvalidInput(f"The batch body ends inside a frame header ({len(self.head)} of {_FRAME_HEAD} bytes).",
                               "Send each blob's 84-byte header (sha256 and size) and its content, or nothing.")
        await self._flush()

    async def abort(self) -> None:
        """Drop the unfinished blob's temporary file (its multipart upload aborted) and the unwritten blobs."""
        self.ready, self.ready_bytes = [], 0
        if self.tmp is not None:
            tmp, sink, self.tmp, self.sink = self.tmp, self.sink, None, None
            await _discard(self.storage, tmp, sink)


@router.post("/blobs/batch", response_model=BlobBatchStored, openapi_extra=_BATCH_BODY, dependencies=[Depends(require_user)])
async def upload_blob_batch(request: Request) -> BlobBatchStored:
    """Store many blobs in one streamed request, recorded in one transaction at the end.

    The body is one frame per blob, with nothing between them: the blob's sha256 (64 lowercase hex
    characters), its size (20 decimal digits, zero-padded), then its bytes. An empty body stores nothing.
    Each blob's bytes must hash to its digest, else the request fails (400) naming it and nothing of that
    blob is stored (valid blobs before it in the body may be). A body cut short stores nothing of its
    unfinished blob. At most 10,000 blobs (400) and 256 MiB (413) per request, each blob at most
    RUNYARD_MAX_UPLOAD_MB (413); send larger files with PUT /blobs/{digest}."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > BATCH_MAX_BYTES:
        raise _batch_too_large()
    store: Store = request.app.state.store
    receiver = _BatchReceiver(_storage(request), config.max_upload_bytes())
    total = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > BATCH_MAX_BYTES:
                raise _batch_too_large()
            await receiver.feed(chunk)
        await receiver.finish()
    except BaseException:
        await receiver.abort()
        if receiver.stored:  # blobs already in place are valid: recorded, so they are not sent again
            try:
                await run_in_threadpool(store.record_blobs, receiver.stored)
            except Exception:  # noqa: BLE001, S110 - the request failed already; an unrecorded blob is sent again
                pass
        raise
    await run_in_threadpool(store.record_blobs, receiver.stored)
    return BlobBatchStored(n_blobs=len(receiver.stored), size=sum(s for _, s in receiver.stored))
