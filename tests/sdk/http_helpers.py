"""A tiny HTTP/1.1 server on 127.0.0.1 for the client tests: it records every request and its connection.

Routes (any prefix, e.g. ``/api/v1``, is ignored: the last path segment picks the route):

- ``echo``, ``health``: a JSON echo of the request (``health`` adds ``"status": "ok"``).
- ``close-after``: answers, then closes the connection without saying ``Connection: close``.
- ``drop-next``: answers; the next request on the same connection is read and then
  dropped without an answer (a server that closed an idle connection as the request came).
- ``slow``: answers once the test sets ``release`` (or after 10 s).
- ``cookie-set?set=LINE&set=LINE``: answers with those ``Set-Cookie`` lines.
- ``download?n=N[&chunked=1]``: N bytes of a known pattern.
- ``truncated``: announces 1,000 bytes, sends 500 and closes.
- ``limit``: a body announced over 1,000 bytes gets 413 before it is read, then the close.
- ``CONNECT``: answered 502 (a proxy that refuses the tunnel).

A request line with an absolute URL (a proxied request) is recorded as it came.
"""

from __future__ import annotations

import hashlib
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

__all__ = ["Seen", "TestServer", "pattern"]


def pattern(n: int) -> bytes:
    """The N bytes ``download`` sends."""
    block = bytes(range(256))
    return (block * (n // 256 + 1))[:n]


class Seen(NamedTuple):
    connection: tuple[str, int]  # the client's address: one per TCP connection
    method: str
    target: str  # the request line's target, as sent
    headers: dict[str, str]  # lower-cased names
    body: bytes


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:
        body = b"" if self._route() == "limit" else self._read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.seen.append(Seen(self.client_address, self.command, self.path, headers, body))
        if getattr(self, "_drop", False):
            self.close_connection = True  # no answer at all
            return
        getattr(self, "_" + self._route().replace("-", "_"), self._echo)(body, headers)

    do_POST = do_PUT = do_DELETE = do_GET

    def do_CONNECT(self) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.seen.append(Seen(self.client_address, "CONNECT", self.path, headers, b""))
        self._answer(502, b"no tunnels here", close=True)

    def _route(self) -> str:
        return urlsplit(self.path).path.rstrip("/").rsplit("/", 1)[-1]

    def _query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.path).query, keep_blank_values=True)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _answer(self, status: int, body: bytes, *, headers: tuple[tuple[str, str], ...] = (), close: bool = False,
                content_type: str = "application/octet-stream") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _echo(self, body: bytes, headers: dict[str, str], **extra: Any) -> None:
        answer = {"method": self.command, "target": self.path, "query": self._query(), "headers": headers,
                  "n_bytes": len(body), "sha256": hashlib.sha256(body).hexdigest(), **extra}
        self._answer(200, json.dumps(answer).encode(), content_type="application/json")

    def _health(self, body: bytes, headers: dict[str, str]) -> None:
        self._echo(body, headers, status="ok")

    def _close_after(self, body: bytes, headers: dict[str, str]) -> None:
        self._echo(body, headers)
        self.close_connection = True  # closed after the answer, which did not announce it

    def _drop_next(self, body: bytes, headers: dict[str, str]) -> None:
        self._echo(body, headers)
        self._drop = True

    def _slow(self, body: bytes, headers: dict[str, str]) -> None:
        self.server.release.wait(10)
        self._echo(body, headers)

    def _cookie_set(self, body: bytes, headers: dict[str, str]) -> None:
        self._answer(200, b"{}", headers=tuple(("Set-Cookie", line) for line in self._query()["set"]))

    def _download(self, body: bytes, headers: dict[str, str]) -> None:
        data = pattern(int(self._query()["n"][0]))
        if self._query().get("chunked") != ["1"]:
            self._answer(200, data)
            return
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i in range(0, len(data), 100_000):
            piece = data[i : i + 100_000]
            self.wfile.write(b"%X\r\n%s\r\n" % (len(piece), piece))
        self.wfile.write(b"0\r\n\r\n")

    def _truncated(self, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b"x" * 500)
        self.close_connection = True

    def _limit(self, body: bytes, headers: dict[str, str]) -> None:
        if int(self.headers.get("Content-Length") or 0) > 1000:
            self._answer(413, b'{"code": "too_large", "message": "over 1000 bytes", "hint": null}', close=True,
                         content_type="application/json")
        else:
            self._echo(self._read_body(), headers)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, tls: ssl.SSLContext | None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.seen: list[Seen] = []
        self.release = threading.Event()
        self.closed = threading.Semaphore(0)  # released once per connection the server closed

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away mid-request is what several tests do

    def shutdown_request(self, request: Any) -> None:
        super().shutdown_request(request)
        self.closed.release()


class TestServer:
    """The server in a thread; ``with TestServer() as srv:`` starts it and stops it.

    Args:
        tls: serve HTTPS with this context.

    Attributes:
        url: ``http://127.0.0.1:PORT`` (``https://`` with ``tls``).
        seen: every request, in arrival order.
    """

    __test__ = False  # not a test class, whatever its name

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self._server = _Server(tls)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def seen(self) -> list[Seen]:
        return self._server.seen

    @property
    def release(self) -> threading.Event:
        return self._server.release

    def wait_closed(self, timeout_s: float = 5.0) -> bool:
        """Wait until the server closed one more connection."""
        return self._server.closed.acquire(timeout=timeout_s)

    def connections(self) -> list[tuple[str, int]]:
        """The distinct connections the requests came on, in order."""
        return list(dict.fromkeys(s.connection for s in self.seen))

    def __enter__(self) -> TestServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
