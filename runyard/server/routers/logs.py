"""Logs: append lines per task, read from an offset, long-poll, and follow with server-sent events."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from runyard.records.fields import LogText, SafeStr
from runyard.server._auth import run_reader, run_token_route, run_writer
from runyard.server._deps import get_store, run_ingest
from runyard.store import TERMINAL_STATUSES, LogLine, Store

router = APIRouter(prefix="/runs/{run_id}/logs", tags=["logs"])


class LogLineIn(BaseModel):
    stream: str = Field("stdout", pattern="^(stdout|stderr|system)$")
    text: LogText = Field(description="the line; NUL characters and unpaired surrogates are stored as U+FFFD")
    ts: float | None = None


class LogAppend(BaseModel):
    task: SafeStr = Field("main", min_length=1, max_length=64, description="task label, e.g. main, master-0, worker-1")
    lines: list[LogLineIn] = Field(max_length=10000)
    batch_id: str | None = Field(None, min_length=1, max_length=64,
                                 description="idempotency key: a batch sent again with the same id is stored once")


class LogAppendResult(BaseModel):
    offset: int
    duplicate: bool = Field(False, description="the batch_id was already stored: nothing was appended")


class LogPage(BaseModel):
    lines: list[LogLine]
    next_offset: int = Field(description="pass as offset to read on")
    run_status: str


@router.post("", response_model=LogAppendResult, dependencies=[Depends(run_writer)])
@run_token_route
async def append_logs(run_id: int, body: LogAppend, request: Request, store: Store = Depends(get_store)) -> LogAppendResult:
    now = time.time()
    offset, duplicate = await run_ingest(request, store.append_logs, run_id, body.task,
                                         [(ln.stream, ln.text, ln.ts or now) for ln in body.lines], batch_id=body.batch_id)
    if not duplicate:
        request.app.state.changes.bump(f"logs:{run_id}")
    return LogAppendResult(offset=offset, duplicate=duplicate)


@router.get("", response_model=LogPage, dependencies=[Depends(run_reader)])
@run_token_route
async def read_logs(
    run_id: int,
    request: Request,
    offset: int = Query(0, ge=0),
    limit: int = Query(1000, ge=1, le=10000),
    task: str | None = None,
    wait: float = Query(0, ge=0, le=60, description="long-poll: wait up to this many seconds for new lines"),
    tail: int | None = Query(None, ge=1, le=10000, description="the last TAIL lines instead of those after offset"),
    stream: Literal["stdout", "stderr", "system"] | None = Query(None, description="only this stream's lines"),
) -> LogPage:
    store: Store = request.app.state.store
    if tail is not None:
        run = await run_in_threadpool(store.get_run, run_id)
        lines = await run_in_threadpool(store.tail_logs, run_id, tail, task, stream)
        return LogPage(lines=lines, next_offset=lines[-1].offset if lines else offset, run_status=run.status)
    changes = request.app.state.changes
    deadline = time.monotonic() + wait
    while True:
        seen = changes.version(f"logs:{run_id}")
        # The status first, then the lines: a run seen ended has every line it wrote before ending in this read.
        run = await run_in_threadpool(store.get_run, run_id)
        lines = await run_in_threadpool(store.read_logs, run_id, offset=offset, limit=limit, task=task)
        remaining = deadline - time.monotonic()
        if lines or remaining <= 0 or run.status in TERMINAL_STATUSES:
            break
        await changes.wait(f"logs:{run_id}", seen, remaining)
    next_offset = lines[-1].offset if lines else offset
    return LogPage(lines=lines, next_offset=next_offset, run_status=run.status)


@router.get("/stream", response_class=StreamingResponse, responses={200: {"content": {"text/event-stream": {}}}},
            dependencies=[Depends(run_reader)])
@run_token_route
async def stream_logs(run_id: int, request: Request, offset: int = Query(0, ge=0), task: str | None = None) -> StreamingResponse:
    """Server-sent events: one ``line`` event per log line, then an ``end`` event when the run ends."""
    store: Store = request.app.state.store
    await run_in_threadpool(store.get_run, run_id)  # 404 before the stream starts
    changes = request.app.state.changes

    async def events() -> AsyncIterator[bytes]:
        pos = offset
        while True:
            seen = changes.version(f"logs:{run_id}")
            lines = await run_in_threadpool(store.read_logs, run_id, offset=pos, limit=1000, task=task)
            for ln in lines:
                yield b"event: line\nid: %d\ndata: %s\n\n" % (ln.offset, orjson.dumps(ln.model_dump()))
                pos = ln.offset
            if len(lines) == 1000:
                continue
            run = await run_in_threadpool(store.get_run, run_id)
            if run.status in TERMINAL_STATUSES:
                # Lines written just before the status changed are read once more.
                tail = await run_in_threadpool(store.read_logs, run_id, offset=pos, limit=10000, task=task)
                for ln in tail:
                    yield b"event: line\nid: %d\ndata: %s\n\n" % (ln.offset, orjson.dumps(ln.model_dump()))
                yield b"event: end\ndata: %s\n\n" % orjson.dumps({"status": run.status})
                return
            if await request.is_disconnected():
                return
            await changes.wait(f"logs:{run_id}", seen, 15.0)

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
