"""A small HTTP/1.1 client on the standard library's ``http.client``, for :mod:`runyard.client`.

It replaces httpx, whose import cost ~120 ms in every run and CLI command and whose
per-request CPU was most of the local agent's cost per run. It does what a client of
one Runyard server needs, and no more:

- A :class:`Session` talks to the one server of its base URL, so its cookies are kept
  by name, without domain or path matching.
- Keep-alive connections are pooled. A request takes an idle connection, discarding
  one the server closed while it sat idle, or opens a new one. The connection goes
  back once the answer was read to its end, unless the server said
  ``Connection: close``.
- A request that fails on a reused connection before any byte of the answer (the
  server closed it as we sent) is sent once more on a new connection, if its body
  can be sent again (none, or bytes).
- A body is bytes, a binary file (with ``Content-Length`` when its size is known,
  else chunked) or an iterable of bytes (chunked).
- Proxies come from the environment like httpx's (``HTTP_PROXY``, ``HTTPS_PROXY``,
  ``ALL_PROXY``, ``NO_PROXY``), except that loopback hosts never use one. HTTPS
  goes through ``CONNECT``.
- Every failure to connect, send or receive raises :class:`TransportError`.

Not supported, on purpose: HTTP/2, redirects (the API answers none), compressed
answers (requests say ``Accept-Encoding: identity``), and proxies that are not
``http://``, which fail with a message saying so.

Thread safety: a session may be shared by any number of threads; each request
uses a connection of its own.
"""

from __future__ import annotations

import http.client
import os
import select
import socket
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NamedTuple
from urllib.parse import quote, unquote, urlencode, urlsplit

__all__ = ["BodyError", "Cookies", "Response", "Session", "TransportError"]

MAX_IDLE = 20  # idle connections kept per session; more are closed when given back
SEND_BLOCK = 256 * 1024  # bytes read from a file body per send
_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})  # methods that announce Content-Length: 0 without a body
_PATH_SAFE = "/%:@!$&'()*+,;=~"  # kept as they are in a path; '%' keeps escapes the caller made
# What a reused connection fails with when the server closed it while it sat idle.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
_FAILURES = (OSError, http.client.HTTPException)


class TransportError(Exception):
    """No answer: connecting, sending or receiving failed (refused, timed out, reset, TLS, proxy).

    The message says what happened in words, then the original exception, which is
    also the ``__cause__``.
    """


class BodyError(ValueError):
    """A file body ended before the size it had when the request started (it shrank while sent).

    The request was aborted: the server got an incomplete body and stored nothing.
    """


class Response:
    """One answer of the server.

    ``content`` holds the whole body, except for the answers of :meth:`Session.stream`,
    whose body is read with :meth:`iter_bytes` or :meth:`read` first.

    Attributes:
        status_code: the HTTP status.
        headers: the answer's headers; ``get(name)``, ``[name]`` and ``in`` ignore case,
            ``get_all(name)`` gives every value of a repeated header.
    """

    __slots__ = ("_content", "_declared", "_raw", "_timeout_s", "headers", "status_code")

    def __init__(self, raw: http.client.HTTPResponse, content: bytes | None, declared: int | None = None,
                 timeout_s: float | None = None) -> None:
        self.status_code: int = raw.status
        self.headers: http.client.HTTPMessage = raw.msg
        self._content = content
        self._raw = raw if content is None else None
        self._declared = declared  # the Content-Length a streamed body must reach
        self._timeout_s = timeout_s

    def __repr__(self) -> str:
        return f"<Response [{self.status_code}]>"

    @property
    def content(self) -> bytes:
        if self._content is None:
            raise RuntimeError("This streamed answer's body was not read: call read() or iter_bytes() first.")
        return self._content

    @property
    def text(self) -> str:
        return self.content.decode(self.headers.get_content_charset() or "utf-8", "replace")

    def json(self) -> Any:
        try:
            import orjson
        except ImportError:  # pragma: no cover - orjson is a dependency
            import json

            return json.loads(self.content)
        return orjson.loads(self.content)

    def read(self) -> bytes:
        """The whole body of a streamed answer (its ``content`` from then on)."""
        if self._content is None:
            self._content = b"".join(self.iter_bytes())
        return self._content

    def iter_bytes(self, chunk_size: int = 64 * 1024) -> Iterator[bytes]:
        """The body in chunks of ``chunk_size`` bytes (the last may be shorter).

        Raises:
            TransportError: the connection broke, or the body ended before its Content-Length.
        """
        raw = self._raw
        if raw is None:
            if self._content:
                yield self._content
            return
        self._raw = None
        n_bytes = 0
        try:
            while chunk := raw.read(chunk_size):
                n_bytes += len(chunk)
                yield chunk
        except _FAILURES as e:
            raise _failure(e, f"reading the answer after {n_bytes} bytes", self._timeout_s) from e
        # http.client ends a short Content-Length body silently when it is read in parts.
        if self._declared is not None and n_bytes < self._declared:
            raise TransportError(f"the answer ended after {n_bytes} of its {self._declared} bytes: "
                                 "the server closed the connection")


class Cookies:
    """The cookies the server set, by name; sent back with every request.

    One server per session, so no domain or path matching. A cookie whose
    ``Max-Age`` ran out or whose ``Expires`` is past is deleted; ``Secure``,
    ``HttpOnly`` and ``SameSite`` change nothing for a client of one server.
    Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jar: dict[str, tuple[str, float | None]] = {}  # name -> (value, expires_at or None)

    def get(self, name: str, default: str | None = None) -> str | None:
        with self._lock:
            item = self._jar.get(name)
        if item is None or (item[1] is not None and item[1] <= time.time()):
            return default
        return item[0]

    def set(self, name: str, value: str, *, expires_at: float | None = None) -> None:
        with self._lock:
            self._jar[name] = (value, expires_at)

    def delete(self, name: str) -> None:
        with self._lock:
            self._jar.pop(name, None)

    def clear(self) -> None:
        with self._lock:
            self._jar.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._jar)

    def _header(self) -> str | None:
        """The ``Cookie`` header to send (None without cookies); drops expired ones."""
        if not self._jar:
            return None
        now = time.time()
        with self._lock:
            for name in [n for n, (_, exp) in self._jar.items() if exp is not None and exp <= now]:
                del self._jar[name]
            return "; ".join(f"{name}={value}" for name, (value, _) in self._jar.items()) or None

    def _store(self, set_cookies: list[str] | None) -> None:
        """Apply an answer's ``Set-Cookie`` headers."""
        for line in set_cookies or ():
            pair, *attributes = line.split(";")
            name, eq, value = pair.partition("=")
            name = name.strip()
            if not eq or not name:
                continue  # RFC 6265 5.2: a set-cookie-string without a name=value pair is ignored
            expires_at = _expiry(attributes)
            if expires_at is not None and expires_at <= time.time():
                self.delete(name)
            else:
                self.set(name, value.strip(), expires_at=expires_at)


def _expiry(attributes: list[str]) -> float | None:
    """When a cookie expires (epoch seconds), from its Max-Age (which wins) or Expires; None: with the session."""
    max_age = expires = None
    for attribute in attributes:
        key, _, value = attribute.partition("=")
        key = key.strip().lower()
        if key == "max-age":
            try:
                max_age = int(value.strip())
            except ValueError:
                pass  # RFC 6265 5.2.2: an invalid Max-Age is ignored
        elif key == "expires":
            from email.utils import parsedate_to_datetime

            try:
                expires = parsedate_to_datetime(value.strip()).timestamp()
            except (TypeError, ValueError, IndexError):
                pass  # RFC 6265 5.2.1: an unparseable date is ignored
    if max_age is not None:
        return time.time() + max_age
    return expires


class _Proxy(NamedTuple):
    host: str
    port: int
    headers: dict[str, str]  # Proxy-Authorization, when the proxy URL has credentials


class Session:
    """Requests to one server over a pool of keep-alive connections.

    Args:
        base_url: e.g. ``http://127.0.0.1:8765/api/v1``; request paths are appended to it.
        headers: sent with every request. ``headers`` stays a mutable dict: changes
            apply to the next requests (``runyard.client`` adds the CSRF header there).
        timeout_s: the default timeout of each connect, send and receive.

    A bad URL or an unsupported proxy does not fail here but at each request, with a
    :class:`TransportError`, like a server that does not answer.
    """

    def __init__(self, base_url: str, headers: Mapping[str, str] | None = None, timeout_s: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers: dict[str, str] = dict(headers or {})
        self.cookies = Cookies()
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._idle: list[http.client.HTTPConnection] = []
        self._closed = False
        self._pid = os.getpid()
        self._ssl_context: Any = None
        self._proxy: _Proxy | None = None
        self._problem: str | None = None  # why no request can be sent, raised as a TransportError
        try:
            parts = urlsplit(self.base_url)
            port = parts.port
        except ValueError:
            parts, port = urlsplit(""), None
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = port or (443 if self._https else 80)
        self._base_path = parts.path
        if parts.scheme not in ("http", "https") or not self._host:
            self._problem = f"the server URL {self.base_url!r} is not like http://HOST:PORT or https://HOST:PORT"
        else:
            self._authority = f"[{self._host}]:{self._port}" if ":" in self._host else f"{self._host}:{self._port}"
            self._proxy, self._problem = _proxy_for(parts.scheme, self._host, self._authority)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the idle connections; requests after this raise RuntimeError. Idempotent."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def request(self, method: str, path: str, *, params: Any = None, content: Any = None,
                headers: Mapping[str, str] | None = None, timeout_s: float | None = None) -> Response:
        """Send one request and read its whole answer.

        Args:
            method: ``GET``, ``POST``, ...
            path: appended to the base URL; may hold ``%`` escapes, other unsafe characters are escaped.
            params: the query, a dict or a sequence of pairs; a list value repeats its key,
                None values are left out, booleans are ``true``/``false``.
            content: bytes, a binary file object or an iterable of bytes.
            headers: added to (and overriding, ignoring case) the session's headers.
            timeout_s: this request's timeout instead of the session's.

        Returns:
            The answer, whatever its status.

        Raises:
            TransportError: the request could not be sent or its answer not received.
            BodyError: a file body ended early.
            RuntimeError: the session is closed.
        """
        timeout = self.timeout_s if timeout_s is None else timeout_s
        conn, raw, reusable = self._exchange(method, path, params, content, headers, timeout)
        try:
            body = raw.read()
        except BaseException as e:
            conn.close()
            if isinstance(e, _FAILURES):
                raise _failure(e, f"reading the answer to {method} {self.base_url}{path}", timeout) from e
            raise
        self._release(conn, raw, reusable)
        return Response(raw, body)

    @contextmanager
    def stream(self, method: str, path: str, *, params: Any = None, content: Any = None,
               headers: Mapping[str, str] | None = None, timeout_s: float | None = None) -> Iterator[Response]:
        """Like :meth:`request`, but the body is read through the answer's ``iter_bytes()`` or ``read()``.

        The connection returns to the pool only if the body was read to its end; leaving
        the block earlier closes it.
        """
        timeout = self.timeout_s if timeout_s is None else timeout_s
        conn, raw, reusable = self._exchange(method, path, params, content, headers, timeout)
        try:
            yield Response(raw, None, _declared_length(method, raw), timeout)
        finally:
            if raw.isclosed():
                self._release(conn, raw, reusable)
            else:
                raw.close()
                conn.close()

    # ---------------------------------------------------------------- plumbing
    def _exchange(self, method: str, path: str, params: Any, content: Any, headers: Mapping[str, str] | None,
                  timeout: float) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse, bool]:
        """Send the request and read the answer's head: ``(connection, answer, reusable)``."""
        if self._problem is not None:
            raise TransportError(self._problem)
        method = method.upper()
        target = self._target(path, params)
        merged = self._merged_headers(headers)
        body = _Body(content, method)
        conn = self._take(timeout)
        reused = conn is not None
        while True:
            if conn is None:
                conn = self._open(timeout)
            try:
                raw, reusable = _send(conn, method, target, merged, body)
                break
            except BaseException as e:
                conn.close()
                if isinstance(e, _STALE) and reused and body.replayable:
                    conn, reused = None, False  # once: on a new connection, which is not reused
                    continue
                if isinstance(e, _FAILURES):
                    raise _failure(e, f"{method} {self.base_url}{path}", timeout) from e
                raise
        self.cookies._store(raw.msg.get_all("Set-Cookie"))
        return conn, raw, reusable

    def _target(self, path: str, params: Any) -> str:
        path, _, query = path.partition("?")
        target = self._base_path + quote(path, safe=_PATH_SAFE)
        if params:
            extra = _query(params)
            query = f"{query}&{extra}" if query and extra else query or extra
        if query:
            target += "?" + query
        target = target or "/"
        if self._proxy is not None and not self._https:
            return f"http://{self._authority}{target}"  # a plain-HTTP proxy takes the absolute URL
        return target

    def _merged_headers(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        merged = dict(self.headers)
        if extra:
            if merged:
                lower = {k.lower() for k in extra}
                merged = {k: v for k, v in merged.items() if k.lower() not in lower}
            merged.update(extra)
        cookie = self.cookies._header()
        if cookie is not None and not any(k.lower() == "cookie" for k in merged):
            merged["Cookie"] = cookie
        if self._proxy is not None and not self._https:
            merged.update(self._proxy.headers)
        return merged

    def _take(self, timeout_s: float) -> http.client.HTTPConnection | None:
        """An idle connection the server did not close, with its timeout set; None if there is none."""
        while True:
            with self._lock:
                if self._closed:
                    raise RuntimeError(f"The HTTP session for {self.base_url} is closed; make a new one.")
                if self._pid != os.getpid():  # a forked child must not share its parent's sockets
                    stale, self._idle, self._pid = self._idle, [], os.getpid()
                else:
                    stale = []
                conn = self._idle.pop() if self._idle else None
            for old in stale:
                old.close()
            if conn is None:
                return None
            if not _dropped(conn.sock):
                conn.timeout = timeout_s
                conn.sock.settimeout(timeout_s)
                return conn
            conn.close()

    def _open(self, timeout_s: float) -> http.client.HTTPConnection:
        proxy = self._proxy
        host, port = (proxy.host, proxy.port) if proxy is not None else (self._host, self._port)
        conn: http.client.HTTPConnection
        if self._https:
            conn = http.client.HTTPSConnection(host, port, timeout=timeout_s, context=self._context())
            if proxy is not None:
                conn.set_tunnel(self._host, self._port, headers=proxy.headers)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
        try:
            conn.connect()
        except _FAILURES as e:
            conn.close()
            where = f"{host}:{port}" + (f" (the proxy for {self._authority})" if proxy is not None else "")
            raise _failure(e, f"connecting to {where}", timeout_s) from e
        return conn

    def _context(self) -> Any:
        """One TLS context per session: building one loads the CA certificates (SSL_CERT_FILE/SSL_CERT_DIR)."""
        with self._lock:
            if self._ssl_context is None:
                import ssl

                self._ssl_context = ssl.create_default_context()
            return self._ssl_context

    def _release(self, conn: http.client.HTTPConnection, raw: http.client.HTTPResponse, reusable: bool) -> None:
        """Pool a connection whose answer was read to its end, unless it cannot carry another request."""
        # http.client drops conn.sock when the server said `Connection: close` (or spoke HTTP/1.0).
        if reusable and raw.isclosed() and conn.sock is not None:
            with self._lock:
                if not self._closed and self._pid == os.getpid() and len(self._idle) < MAX_IDLE:
                    self._idle.append(conn)
                    return
        conn.close()


class _Body:
    """A request body: its framing header, whether it can be sent twice, and how to send it."""

    __slots__ = ("_chunks", "_data", "_file", "length", "replayable")

    def __init__(self, content: Any, method: str) -> None:
        self._data: bytes | bytearray | memoryview | None = None
        self._file: Any = None
        self._chunks: Iterable[bytes] | None = None
        self.length: int | None = None
        self.replayable = True
        if content is None:
            self.length = 0 if method in _WITH_BODY else None
        elif isinstance(content, (bytes, bytearray, memoryview, str)):
            self._data = content.encode() if isinstance(content, str) else content
            self.length = memoryview(self._data).nbytes
        elif hasattr(content, "read"):
            self._file, self.length, self.replayable = content, _remaining(content), False
        elif isinstance(content, Iterable):
            self._chunks, self.replayable = content, False
        else:
            raise TypeError(f"A request body is bytes, a binary file or an iterable of bytes, but got {type(content).__name__}.")

    def framing(self) -> tuple[str, str] | None:
        if self.length is not None:
            return "Content-Length", str(self.length)
        if self._file is not None or self._chunks is not None:
            return "Transfer-Encoding", "chunked"
        return None

    def send(self, conn: http.client.HTTPConnection) -> None:
        if self._data is not None:
            if self.length:
                conn.send(self._data)
        elif self._file is not None:
            if self.length is None:
                _send_chunked(conn, iter(lambda: self._file.read(SEND_BLOCK), b""))
            else:
                self._send_exactly(conn, self.length)
        elif self._chunks is not None:
            _send_chunked(conn, self._chunks)

    def _send_exactly(self, conn: http.client.HTTPConnection, length: int) -> None:
        left = length
        while left:
            block = self._file.read(min(left, SEND_BLOCK))
            if not block:
                raise BodyError(f"The file body ended after {length - left} of its {length} bytes: it shrank while it was sent.")
            conn.send(block)
            left -= len(block)
        # A file that grew is cut at the size it had: the server gets what was announced.


def _send_chunked(conn: http.client.HTTPConnection, chunks: Iterable[bytes]) -> None:
    for chunk in chunks:
        if chunk:  # an empty chunk would end the body
            conn.send(b"%X\r\n" % len(chunk) + chunk + b"\r\n")
    conn.send(b"0\r\n\r\n")


def _send(conn: http.client.HTTPConnection, method: str, target: str, headers: dict[str, str],
          body: _Body) -> tuple[http.client.HTTPResponse, bool]:
    """Write the request and read the answer's head: ``(answer, reusable)``."""
    conn.putrequest(method, target)
    for name, value in headers.items():
        conn.putheader(name, value)
    framing = body.framing()
    if framing is not None:
        conn.putheader(*framing)
    conn.endheaders()
    try:
        body.send(conn)
    except OSError as send_error:
        if isinstance(send_error, TimeoutError):
            raise
        # The server may have answered and closed before reading the whole body (413 on a
        # declared size over its limit): read that answer rather than report a broken pipe.
        try:
            return conn.getresponse(), False
        except _FAILURES:
            raise send_error from None
    return conn.getresponse(), True


def _declared_length(method: str, raw: http.client.HTTPResponse) -> int | None:
    """The Content-Length a body must reach (None: chunked, read to the close, or no body)."""
    length = raw.getheader("Content-Length")
    if (method == "HEAD" or raw.status in (204, 304) or length is None or not length.isdigit()
            or "chunked" in (raw.getheader("Transfer-Encoding") or "").lower()):
        return None
    return int(length)


def _remaining(f: Any) -> int | None:
    """Bytes left from a file's position to its end; None when unknown (a pipe, or a reader without seek)."""
    try:
        if not f.seekable():
            return None
        start = f.tell()
        f.seek(0, os.SEEK_END)
        end = f.tell()
        f.seek(start)
    except (AttributeError, OSError, ValueError):
        return None
    return max(end - start, 0)


def _query(params: Any) -> str:
    items = params.items() if isinstance(params, Mapping) else params
    pairs: list[tuple[str, str]] = []
    for key, value in items:
        for v in value if isinstance(value, (list, tuple)) else (value,):
            if v is not None:
                pairs.append((key, "true" if v is True else "false" if v is False else str(v)))
    return urlencode(pairs, quote_via=quote)


def _dropped(sock: socket.socket | None) -> bool:
    """Whether an idle connection is unusable: the server closed it (EOF readable) or sent bytes out of turn."""
    if sock is None:
        return True
    try:
        if getattr(sock, "pending", None) is not None and sock.pending():  # TLS bytes already decrypted
            return True
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


def _failure(e: BaseException, what: str, timeout_s: float | None = None) -> TransportError:
    """``{what} failed: {why in words} ({the exception})``; ``what`` names the step, e.g. ``connecting to HOST:PORT``."""
    if isinstance(e, TimeoutError) and timeout_s is not None:
        why = f"no answer within {timeout_s:g} s"
    elif isinstance(e, ConnectionRefusedError):
        why = "connection refused, nothing listens there"
    elif isinstance(e, socket.gaierror):
        why = "the host name does not resolve"
    elif isinstance(e, http.client.RemoteDisconnected):
        why = "the server closed the connection without answering"
    elif isinstance(e, (ConnectionResetError, BrokenPipeError)):
        why = "the connection was reset"
    elif type(e).__module__ == "ssl":
        why = "the TLS handshake or session failed"
    else:
        why = "the connection failed"
    return TransportError(f"{what} failed: {why} ({type(e).__name__}: {e})")


def _proxy_for(scheme: str, host: str, authority: str) -> tuple[_Proxy | None, str | None]:
    """The proxy of the environment for this server, or None; the second item says why it cannot be used."""
    if host in ("localhost", "::1") or host.startswith("127."):
        return None, None  # loopback never goes through a proxy, whatever NO_PROXY says
    if sys.platform not in ("darwin", "win32") and not any(k.lower().endswith("_proxy") for k in os.environ):
        return None, None  # no proxy variable: skip importing urllib.request (~10 ms)
    import urllib.request

    proxies = urllib.request.getproxies()
    url = proxies.get(scheme) or proxies.get("all")
    if not url or urllib.request.proxy_bypass(authority):
        return None, None
    parts = urlsplit(url if "://" in url else "http://" + url)
    try:
        port = parts.port or 80
    except ValueError:
        port = None
    where = f"{parts.scheme}://{parts.hostname}" + (f":{port}" if port else "")  # never the credentials
    if parts.scheme != "http" or not parts.hostname or port is None:
        return None, (f"the proxy {where} from the environment (HTTP_PROXY/HTTPS_PROXY/ALL_PROXY) is not usable: only "
                      f"http://HOST:PORT proxies are supported. Add {host} to NO_PROXY, or unset the variable")
    headers = {}
    if parts.username is not None:
        import base64

        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        headers["Proxy-Authorization"] = "Basic " + base64.b64encode(pair).decode()
    return _Proxy(parts.hostname, port, headers), None
