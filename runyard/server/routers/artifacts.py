"""Artifacts (files a run stored) and content-addressed snapshot blobs: streamed in and out."""

from __future__ import annotations

import asyncio
import hashlib

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from runyard import config
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


async def _receive(request: Request, sink, limit: int) -> tuple[int, str]:  # noqa: ANN001
    """Stream the body into ``sink`` (never all of it in memory), then close it: its size and sha256."""
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
    try:
        size, sha = await _receive(request, sink, config.max_upload_bytes())
    except BaseException:
        await _discard(storage, tmp, sink)
        raise
    # Move and record as one step, so that of concurrent uploads of one path the same upload
    # wins both the file and its record (within this server process).
    async with _COMMIT_LOCK:
        await run_in_threadpool(storage.commit, tmp)
        return await run_in_threadpool(store.record_artifact, run_id, clean, size, sha)


@router.get("/runs/{run_id}/artifacts", response_model=ArtifactList, dependencies=[Depends(run_reader)])
@run_token_route
def list_artifacts(run_id: int, prefix: str = "", store: Store = Depends(get_store)) -> ArtifactList:
    return ArtifactList(items=store.list_artifacts(run_id, clean_path(prefix) if prefix else ""))


@router.get("/runs/{run_id}/artifacts/{path:path}", response_class=StreamingResponse,
            responses={200: {"content": {"application/octet-stream": {}}}}, dependencies=[Depends(run_reader)])
@run_token_route
def download_artifact(run_id: int, path: str, request: Request, store: Store = Depends(get_store),
                      view: bool = Query(False, description="an .html artifact (a notebook's rendering) as a page to "
                                         "read: text/html, still under the files' sandboxing Content-Security-"
                                         "Policy, so none of its scripts run and it has no origin of its own; "
                                         "other artifacts are sent as downloads whatever this says")
                      ) -> StreamingResponse:
    clean = clean_path(path)
    art = store.find_artifact(run_id, clean)
    if art is None:
        store.get_run(run_id)
        from runyard.errors import NotFound

        raise NotFound(f"Run {run_id} has no artifact {clean!r}.", f"List them with `runyard info {run_id}`.")
    # Every file answer carries FILE_CSP (runyard.server._guard): `sandbox` without allow-scripts, so a page
    # shown here runs no script and gets an opaque origin, never the UI's (no cookies, no API calls).
    page = view and clean.lower().endswith((".html", ".htm"))
    return StreamingResponse(
        _storage(request).read_run_file(run_id, clean),
        media_type="text/html; charset=utf-8" if page else "application/octet-stream",
        headers={"Content-Length": str(art.size), "X-Runyard-Sha256": art.sha256,
                 **({"Content-Disposition": "inline"} if page else {})},
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
