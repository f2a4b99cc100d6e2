"""The HTTP edge: one pure ASGI middleware in front of the whole app (error pages included).

On every request it:

- sets the security headers on every answer: ``X-Content-Type-Options: nosniff``,
  ``Referrer-Policy: no-referrer``, ``X-Frame-Options: DENY`` and a Content-Security-Policy
  (:data:`UI_CSP` on the web UI's pages, whose images may also come from the https hosts of
  RUNYARD_UI_IMAGE_HOSTS, :data:`API_CSP` on the API, :data:`DOCS_CSP` on the API
  docs, :data:`FILE_CSP` on the files of runs and snapshots, which a browser may only show sandboxed,
  :data:`TB_CSP` on the proxied TensorBoard under ``/tb/``, whose scripts run sandboxed in an opaque origin);
- in single-user local mode (no sign-in, see :class:`runyard.server._auth.Auth`) answers only
  requests whose ``Host`` is a name of this machine's loopback (127.0.0.1, localhost, ::1) or the
  host of RUNYARD_PUBLIC_URL: a web page that rebinds its own DNS name to 127.0.0.1 is refused (403);
- refuses writes that a web page of another site could send without the browser asking first
  (a "simple" cross-site request): without a bearer token, in local mode or with the session cookie, a body must be JSON
  or ``application/octet-stream`` (415 otherwise), and in local mode a write whose ``Origin``
  is another site is refused (403). Bearer-token requests (CLI, SDK, runners) are not affected;
- caps request bodies per route kind (:func:`body_limit`): a ``Content-Length`` over the cap is
  refused at once, a streamed body as soon as its bytes pass the cap (413, nothing buffered past it).

It keeps the metric ingest path cheap: a scan of the request's headers and two small wrappers.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

import orjson

from runyard.errors import RunyardError

__all__ = [
    "API_CSP",
    "image_hosts",
    "BATCH_BODY_LIMIT",
    "DOCS_CSP",
    "FILE_CSP",
    "TB_CSP",
    "JSON_BODY_LIMIT",
    "UI_CSP",
    "Guard",
    "body_limit",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MiB = 1024 * 1024
JSON_BODY_LIMIT = 1 * MiB
"""The cap on a JSON body (runs, projects, users, tokens, tags, params...)."""
BATCH_BODY_LIMIT = 16 * MiB
"""The cap on the batch routes: metric and log batches, reports, snapshot manifests, blob queries."""

UI_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
          "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-src 'self'; "
          "frame-ancestors 'none'")
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# Swagger UI sets inline styles and shows data: images; its scripts come from this server only.
DOCS_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
FILE_CSP = "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; frame-ancestors 'self'"
# TensorBoard under /tb/CAP/: its scripts run, but sandboxed without allow-same-origin, so in an opaque
# origin that holds none of the app's cookies and whose requests to the app carry no session.
TB_CSP = ("sandbox allow-scripts allow-popups allow-downloads; default-src 'self'; "
          "script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
          "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
          "frame-src 'self'; object-src 'none'; base-uri 'self'; form-action 'none'; frame-ancestors 'self'")

_COMMON = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
_HEADERS_UI = [*_COMMON, (b"x-frame-options", b"DENY"), (b"content-security-policy", UI_CSP.encode())]
_HEADERS_API = [*_COMMON, (b"x-frame-options", b"DENY"), (b"content-security-policy", API_CSP.encode())]
_HEADERS_DOCS = [*_COMMON, (b"x-frame-options", b"DENY"), (b"content-security-policy", DOCS_CSP.encode())]
_HEADERS_TB = [*_COMMON, (b"content-security-policy", TB_CSP.encode())]
_HEADERS_FILE = [*_COMMON, (b"x-frame-options", b"SAMEORIGIN"), (b"content-security-policy", FILE_CSP.encode())]

_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_BROWSER_SIMPLE_TYPES = frozenset({"text/plain", "application/x-www-form-urlencoded", "multipart/form-data"})
_LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1", "ip6-localhost", "localhost.localdomain"})
_API = "/api/v1/"
_TB = "/tb/"
_SESSION_COOKIE = b"runyard_session="


_MLFLOW = "/api/2.0/mlflow"  # the MLflow-compatible API (runyard.server.mlflow), and its artifact proxy
_MLFLOW_FILES = "/api/2.0/mlflow-artifacts/artifacts/"


def _is_file_path(path: str) -> bool:
    """Routes that carry the bytes of a user's file: artifacts and snapshot blobs (streamed, own cap)."""
    if path.startswith(_MLFLOW_FILES):
        return True
    if path.startswith("/api/v1/blobs/"):
        return path != "/api/v1/blobs/missing"
    return path.startswith("/api/v1/runs/") and "/artifacts/" in path


def body_limit(method: str, path: str, json_limit: int = JSON_BODY_LIMIT, batch_limit: int = BATCH_BODY_LIMIT) -> int | None:
    """The body cap of a request in bytes; None for the streamed file uploads (RUNYARD_MAX_UPLOAD_MB).

    >>> body_limit("POST", "/api/v1/runs/3/metrics") == BATCH_BODY_LIMIT
    True
    >>> body_limit("POST", "/api/v1/runs") == JSON_BODY_LIMIT
    True
    """
    if path.startswith("/api/v1/runs/"):
        if method == "PUT" and "/artifacts/" in path:
            return None
        if path.endswith(("/metrics", "/logs", "/report")):
            return batch_limit
    elif path in ("/api/v1/snapshots", "/api/v1/blobs/missing"):
        return batch_limit
    elif (method == "PUT" and path.startswith(("/api/v1/blobs/", _MLFLOW_FILES))
          or (method == "POST" and path == "/api/v1/blobs/batch")):  # a blob batch is streamed too, capped by its route
        return None
    elif path == "/api/2.0/mlflow/runs/log-batch":
        return batch_limit
    return json_limit


def image_hosts() -> list[str]:
    """RUNYARD_UI_IMAGE_HOSTS: hosts whose https images project descriptions may show (comma-separated)."""
    hosts = [h.strip().lower() for h in os.environ.get("RUNYARD_UI_IMAGE_HOSTS", "").split(",") if h.strip()]
    for h in hosts:
        if not all(c.isalnum() or c in ".-:" for c in h):
            raise RunyardError(f"RUNYARD_UI_IMAGE_HOSTS holds {h!r}, which is not a host name.",
                               "List host names only, comma-separated, e.g. RUNYARD_UI_IMAGE_HOSTS=img.shields.io,example.org.")
    return hosts


def _ui_headers(hosts: list[str]) -> list[tuple[bytes, bytes]]:
    if not hosts:
        return _HEADERS_UI
    csp = UI_CSP.replace("img-src 'self' data:", "img-src 'self' data: " + " ".join(f"https://{h}" for h in hosts))
    return [*_COMMON, (b"x-frame-options", b"DENY"), (b"content-security-policy", csp.encode())]


def _json_limit() -> int:
    return int(float(os.environ.get("RUNYARD_MAX_JSON_MB", "1")) * MiB)


def _batch_limit() -> int:
    return int(float(os.environ.get("RUNYARD_MAX_BATCH_MB", "16")) * MiB)


def _error(status: int, code: str, message: str, hint: str) -> tuple[int, bytes]:
    return status, orjson.dumps({"code": code, "message": message, "hint": hint})


def _too_large(limit: int) -> tuple[int, bytes]:
    size = f"{limit / MiB:g} MiB" if limit >= MiB else f"{limit // 1024} KiB"
    return _error(413, "too_large", f"The request body is larger than this route's limit of {size}.",
                  "Send less per request (split batches; store large files as artifacts), or raise "
                  "RUNYARD_MAX_JSON_MB / RUNYARD_MAX_BATCH_MB on the server.")


def _host_name(host: str) -> str:
    """The name part of a Host header: ``[::1]:8765`` -> ``::1``, ``LocalHost:80`` -> ``localhost``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def _allowed_hosts() -> frozenset[str]:
    names = set(_LOOPBACK_NAMES)
    public = os.environ.get("RUNYARD_PUBLIC_URL")
    if public:
        name = urlsplit(public).hostname
        if name:
            names.add(name.lower())
    return frozenset(names)


def _loopback_name(name: str) -> bool:
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class Guard:
    """The ASGI middleware described in the module docstring; wraps the app outermost."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.json_limit = _json_limit()
        self.batch_limit = _batch_limit()
        self.ui_headers = _ui_headers(image_hosts())
        self._hosts = _allowed_hosts()
        self._hosts_env = os.environ.get("RUNYARD_PUBLIC_URL")

    def _host_ok(self, name: str) -> bool:
        env = os.environ.get("RUNYARD_PUBLIC_URL")
        if env != self._hosts_env:  # `serve` sets it after the app is built; tests change it
            self._hosts, self._hosts_env = _allowed_hosts(), env
        return name in self._hosts or _loopback_name(name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        method: str = scope["method"]
        if path.startswith((_API, _MLFLOW)):
            if path.startswith("/api/v1/docs"):
                extra = _HEADERS_DOCS
            elif method in ("GET", "HEAD") and _is_file_path(path):
                extra = _HEADERS_FILE
            else:
                extra = _HEADERS_API
        elif path.startswith(_TB):
            extra = _HEADERS_TB
        else:
            extra = self.ui_headers

        host = content_type = origin = b""
        length = -1
        bearer = cookie = chunked = False
        for k, v in scope["headers"]:
            if k == b"host":
                host = v
            elif k == b"content-type":
                content_type = v
            elif k == b"content-length":
                length = int(v) if v.isdigit() else -1
            elif k == b"authorization":
                bearer = True
            elif k == b"cookie":
                cookie = cookie or _SESSION_COOKIE in v
            elif k == b"origin":
                origin = v
            elif k == b"transfer-encoding":
                chunked = True

        local = self._local_mode(scope)
        refusal: tuple[int, bytes] | None = None
        if local and not self._host_ok(_host_name(host.decode("latin-1"))):
            refusal = _error(403, "forbidden",
                             f"This server runs in single-user local mode and answers only on its loopback names, "
                             f"not as {host.decode('latin-1')!r}.",
                             "Open it as http://127.0.0.1:PORT or http://localhost:PORT; to reach it under another name, "
                             "set RUNYARD_PUBLIC_URL to that address, or create a user so that sign-in is required.")
        elif (method in _WRITE_METHODS and not bearer and (local or cookie) and extra is not _HEADERS_TB
              and not (method == "PUT" and path.startswith(_MLFLOW_FILES))):
            # (The MLflow client uploads artifacts with their own type, text/plain too: a PUT is never a page's
            # forged write, since browsers ask first and this server answers no CORS preflight.)
            # (Under /tb/ the capability in the path authorises and the session is never used: TensorBoard's
            # sandboxed page posts forms from an opaque origin.)
            # A page of another site cannot send an Authorization header without a preflight: bearer
            # requests (CLI, SDK, runners) are never a browser's forged write.
            refusal = self._cross_site_write(method, host, content_type, origin, length, chunked, local)
        limit = body_limit(method, path, self.json_limit, self.batch_limit) if method in _WRITE_METHODS else self.json_limit
        if refusal is None and limit is not None and length > limit:
            refusal = _too_large(limit)
        if refusal is not None:
            await _send_error(send, _in_mlflow_format(refusal) if path.startswith(_MLFLOW) else refusal, extra)
            return

        started = False
        over = False

        async def send_headers(message: Message) -> None:
            nonlocal started
            if over:
                # The body passed the cap: whatever the app answers (it saw a disconnect) becomes the 413.
                if message["type"] == "http.response.start" and not started:
                    started = True
                    assert limit is not None
                    status, body = _too_large(limit)
                    await send({"type": "http.response.start", "status": status,
                                "headers": [(b"content-type", b"application/json"),
                                            (b"content-length", str(len(body)).encode()), *extra]})
                    await send({"type": "http.response.body", "body": body})
                return
            if message["type"] == "http.response.start":
                started = True
                # The guard owns these headers: no route sets them.
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        if limit is None or (length >= 0 and not chunked):
            # No cap (streamed uploads count their own bytes), or the declared length is within it:
            # the server (h11/httptools) never hands over more than Content-Length bytes.
            await self.app(scope, receive, send_headers)
            return

        seen = 0

        async def counted_receive() -> Message:
            nonlocal seen, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    over = True
                    return {"type": "http.disconnect"}
            return message

        try:
            await self.app(scope, counted_receive, send_headers)
        except Exception:
            if not over:
                raise
            # The app failed on the cut-off body (a disconnect to it): the 413 below is the answer.
        if over and not started:
            refusal = _too_large(limit)
            await _send_error(send, _in_mlflow_format(refusal) if path.startswith(_MLFLOW) else refusal, extra)

    @staticmethod
    def _local_mode(scope: Scope) -> bool:
        app = scope.get("app")
        auth = getattr(getattr(app, "state", None), "auth", None)
        return bool(auth is not None and auth.local_mode())

    @staticmethod
    def _cross_site_write(method: str, host: bytes, content_type: bytes, origin: bytes, length: int, chunked: bool,
                          local: bool) -> tuple[int, bytes] | None:
        media = content_type.split(b";", 1)[0].strip().lower().decode("latin-1")
        # A body without a type: refused on POST, the one write method a page can send cross-site without a
        # preflight (PUT, PATCH and DELETE always ask first, and this server answers no CORS preflight).
        has_body = method == "POST" and (length > 0 or chunked)
        if media in _BROWSER_SIMPLE_TYPES or (not media and has_body):
            what = f"Content-Type {media!r}" if media else "a body without a Content-Type"
            return _error(415, "invalid_input",
                          f"Writes in local mode or with a session cookie must not send {what}: a web page of another "
                          "site can send that without asking, so it is refused.",
                          "Send JSON with 'Content-Type: application/json' (files: 'application/octet-stream').")
        if local and origin:
            sent = urlsplit(origin.decode("latin-1"))
            if origin == b"null" or (sent.netloc or "").lower() != host.decode("latin-1").lower():
                return _error(403, "forbidden",
                              f"A write from the web page at {origin.decode('latin-1')!r} to this local server is refused.",
                              "Use the Runyard UI served by this server, the CLI or the SDK.")
        return None


_MLFLOW_CODES = {"forbidden": "PERMISSION_DENIED", "too_large": "INVALID_PARAMETER_VALUE", "invalid_input": "INVALID_PARAMETER_VALUE"}


def _in_mlflow_format(refusal: tuple[int, bytes]) -> tuple[int, bytes]:
    """A refusal of the MLflow-compatible API's paths in MLflow's format (``error_code``, ``message``)."""
    status, body = refusal
    parsed = orjson.loads(body)
    message = parsed["message"] + (f" {parsed['hint']}" if parsed.get("hint") else "")
    code = _MLFLOW_CODES.get(parsed["code"], "INVALID_PARAMETER_VALUE" if status < 500 else "INTERNAL_ERROR")
    return status, orjson.dumps({"error_code": code, "message": message})


async def _send_error(send: Send, refusal: tuple[int, bytes], extra: list[tuple[bytes, bytes]]) -> None:
    status, body = refusal
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *extra]})
    await send({"type": "http.response.body", "body": body})
