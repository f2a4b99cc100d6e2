"""Helpers of tests/security: raw HTTP requests to a live server, with any Host, headers and body."""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit

from runyard.testing import LiveServer

V1 = "/api/v1"


def raw(server: LiveServer, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
        ) -> tuple[int, dict[str, str], bytes]:
    """One request over a fresh connection: (status, headers with lower-case names, body)."""
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    try:
        conn.putrequest(method, path, skip_host="host" in {k.lower() for k in (headers or {})}, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        if body is not None and not any(k.lower() in ("content-length", "transfer-encoding") for k in (headers or {})):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def raw_json(server: LiveServer, method: str, path: str, obj: Any = None, headers: dict[str, str] | None = None,
             ) -> tuple[int, Any]:
    status, _, body = raw(server, method, path, json.dumps(obj).encode() if obj is not None else None,
                          {"Content-Type": "application/json", **(headers or {})})
    return status, json.loads(body) if body else None


def send_large(server: LiveServer, method: str, path: str, size: int, *, chunked: bool = False,
               content_type: str = "application/json", fill: bytes = b"a", head: bytes = b"") -> tuple[int, bytes, int]:
    """Send a body of ``size`` bytes (``head`` then ``fill`` repeated), stopping as soon as the server answers.

    Returns (status, answer body, bytes sent). With ``chunked`` the length is not declared up front.
    """
    import select
    import socket

    parts = urlsplit(server.url)
    sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=60)
    try:
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{parts.port}", f"Content-Type: {content_type}",
                 "Connection: close"]
        lines.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}")
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        piece = fill * (65536 // len(fill))
        sent = 0
        first = True
        while sent < size:
            if select.select([sock], [], [], 0)[0]:
                break  # the server answered already
            data = (head + piece)[: min(65536, size - sent)] if first else piece[: size - sent]
            first = False
            try:
                sock.sendall(f"{len(data):x}\r\n".encode() + data + b"\r\n" if chunked else data)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(data)
        else:
            if chunked:
                try:
                    sock.sendall(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass
        answer = b""
        try:
            while True:
                got = sock.recv(65536)
                if not got:
                    break
                answer += got
                head_end = answer.find(b"\r\n\r\n")
                if head_end >= 0:
                    m = [ln for ln in answer[:head_end].split(b"\r\n") if ln.lower().startswith(b"content-length:")]
                    if m and len(answer) >= head_end + 4 + int(m[0].split(b":")[1]):
                        break
        except ConnectionResetError:
            pass
        status = int(answer.split(b" ", 2)[1]) if answer else 0
        return status, answer.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in answer else b"", sent
    finally:
        sock.close()


def rss_kib(pid: int) -> int:
    """The resident memory of process ``pid`` (VmRSS, KiB)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")
