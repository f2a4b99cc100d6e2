"""One handler turns every failure into JSON ``{code, message, hint}`` with the right status.

Write failures of the server's storage are named, not a generic 500: a full disk (SQLite's
"database or disk is full", PostgreSQL's "could not extend file", ENOSPC from an artifact
write) answers 507 ``storage_full``, a database that does not answer 503 ``unavailable``.
Such failures are also noted (:class:`StorageProblems`) for ``/api/v1/health`` to report.
An exception no handler knows is answered 500 by :class:`CatchAll` and never reaches the
ASGI server.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import threading
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

import runyard.names as names
from runyard.errors import (
    RateLimited,
    RunyardError,
    ServiceUnavailable,
    StorageFull,
    Unauthorized,
    http_status,
)

__all__ = ["CatchAll", "StorageProblems", "install_error_handlers", "storage_error"]

log = logging.getLogger("runyard.server")

_HTTP_CODES = {400: "invalid_input", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
               409: "conflict", 413: "too_large", 429: "rate_limited", 415: "invalid_input", 422: "invalid_input"}


def _body(code: str, message: str, hint: str | None) -> dict:
    return {"code": code, "message": message, "hint": hint}


_FULL_WORDS = ("database or disk is full", "no space left on device", "could not extend file", "disk full",
               "diskfull", "quota exceeded")


def storage_error(exc: BaseException) -> RunyardError | None:
    """The named error for a write failure of the server's storage, ``None`` for anything else."""
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFull(f"The server's disk is full: writing {getattr(exc, 'filename', None) or 'a file'} failed "
                           f"({exc.strerror or 'No space left on device'}). Nothing was stored.",
                           "Free space on the server's disk (RUNYARD_HOME, the artifact store), then retry; "
                           "GET /api/v1/health tells when it is back.")
    if isinstance(exc, PoolTimeout):
        return ServiceUnavailable("The server's database did not answer: every connection is busy.",
                                  "Retry in a moment; if it lasts, look at the database and the server log.")
    if isinstance(exc, DBAPIError):
        text = str(exc.orig) if exc.orig is not None else str(exc)
        first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        if any(w in text.lower() or w in type(exc.orig).__name__.lower() for w in _FULL_WORDS):
            return StorageFull(f"The server's database cannot write: its disk is full ({first}). Nothing was stored.",
                               "Free space on the database's disk, then retry; GET /api/v1/health tells when it is back.")
        from sqlalchemy.exc import InterfaceError, OperationalError

        if isinstance(exc, (OperationalError, InterfaceError)) or exc.connection_invalidated:
            return ServiceUnavailable(f"The server's database is unavailable ({first}).",
                                      "Retry in a moment; check that the database runs and is reachable from the server "
                                      "(RUNYARD_DATABASE_URL), and the server log.")
    return None


class StorageProblems:
    """The storage failures seen lately (code → (when, message)), for the health check. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[float, str]] = {}

    def note(self, error: RunyardError) -> None:
        with self._lock:
            self._seen[error.code] = (time.monotonic(), error.message)

    def recent(self, within_s: float) -> list[str]:
        now = time.monotonic()
        with self._lock:
            return [f"{msg} ({now - at:.0f} s ago)" for at, msg in self._seen.values() if now - at <= within_s]


def _answer(app: Any, exc: BaseException) -> tuple[int, dict]:
    """Status and body for an exception escaping a route."""
    if isinstance(exc, RunyardError):
        return http_status(exc), exc.to_payload()
    named = storage_error(exc)
    if named is not None:
        problems = getattr(getattr(app, "state", None), "storage_problems", None)
        if problems is not None:
            problems.note(named)
        log.error("%s (%s: %s)", named.message, type(exc).__name__, exc)
        return http_status(named), named.to_payload()
    log.error("unexpected error", exc_info=exc)
    return 500, _body("internal", f"Internal server error ({type(exc).__name__}).", "Look at the server log; please report it.")


class CatchAll:
    """ASGI middleware: an exception from a route becomes an answer (:func:`storage_error`'s, else a 500)
    instead of escaping to the ASGI server; after the answer started, it is logged and the connection ends."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:  # noqa: BLE001 - the one place every unhandled exception ends
            status, body = _answer(scope.get("app"), exc)
            if started:
                log.error("answer of %s %s broke off: %s", scope.get("method"), scope.get("path"), body["message"])
                return
            payload = json.dumps(body).encode()
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
            await send({"type": "http.response.body", "body": payload})


def install_error_handlers(app: FastAPI) -> None:
    app.state.storage_problems = StorageProblems()
    app.add_middleware(CatchAll)

    @app.exception_handler(RunyardError)
    async def _runyard(_req: Request, exc: RunyardError) -> JSONResponse:
        headers = {}
        if isinstance(exc, RateLimited) and exc.retry_after_s is not None:
            headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
        if isinstance(exc, Unauthorized):
            headers["WWW-Authenticate"] = 'Bearer realm="runyard"'
        return JSONResponse(exc.to_payload(), status_code=http_status(exc), headers=headers or None)

    @app.exception_handler(RequestValidationError)
    async def _validation(_req: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors()[:5]:
            where = tuple(err.get("loc", ()))
            if where and where[0] in ("body", "query", "path", "header", "cookie"):  # where it came from, not a name
                where = where[1:]
            loc = ".".join(str(x) for x in where)
            msg = err.get("msg", "invalid")
            if err.get("type") == "string_unicode":  # pydantic's words for a str holding an unpaired surrogate
                msg = names.text_problem(err.get("input", "")) if isinstance(err.get("input"), str) else None
                msg = (msg or "holds an unpaired surrogate, which is not Unicode text") + \
                    "; remove it or replace it with a printable character"
            parts.append(f"{loc or 'request'}: {msg}")
        return JSONResponse(
            _body("invalid_input", "Invalid request: " + "; ".join(parts), "See the API reference at /api/v1/docs."),
            status_code=400,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "internal" if exc.status_code >= 500 else "invalid_input")
        message = exc.detail if isinstance(exc.detail, str) else "Request failed."
        hint = "See the API reference at /api/v1/docs." if exc.status_code == 404 else None
        return JSONResponse(_body(code, message, hint), status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(ClientDisconnect)
    async def _gone(_req: Request, _exc: ClientDisconnect) -> JSONResponse:
        # The body stopped before its end: the client left, or the HTTP edge cut a body over its limit
        # (and answers 413 itself). Nobody reads this answer; it is not a server error worth a traceback.
        return JSONResponse(_body("invalid_input", "The request body ended early.", "Send the whole body."),
                            status_code=400)

    @app.exception_handler(Exception)
    async def _unexpected(req: Request, exc: Exception) -> JSONResponse:
        status, body = _answer(req.app, exc)
        return JSONResponse(body, status_code=status)
