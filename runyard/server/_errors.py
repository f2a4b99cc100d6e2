"""One handler turns every failure into JSON ``{code, message, hint}`` with the right status."""

from __future__ import annotations

import logging
import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from runyard.errors import RateLimited, RunyardError, Unauthorized, http_status

__all__ = ["install_error_handlers"]

log = logging.getLogger("runyard.server")

_HTTP_CODES = {400: "invalid_input", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
               409: "conflict", 413: "too_large", 429: "rate_limited", 415: "invalid_input", 422: "invalid_input"}


def _body(code: str, message: str, hint: str | None) -> dict:
    return {"code": code, "message": message, "hint": hint}


def install_error_handlers(app: FastAPI) -> None:
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
            loc = ".".join(str(x) for x in err.get("loc", ()) if x not in ("body", "query", "path"))
            parts.append(f"{loc or 'request'}: {err.get('msg', 'invalid')}")
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
    async def _unexpected(_req: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return JSONResponse(
            _body("internal", f"Internal server error ({type(exc).__name__}).", "Look at the server log; please report it."),
            status_code=500,
        )
