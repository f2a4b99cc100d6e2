"""Raw JSON requests for the integrity tests (an importable module, unlike conftest).

Requests are sent as bytes (``json.dumps`` escapes a lone surrogate as ``\\ud800``), as a
client in any language can, so that what the server receives is exactly what the test means.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from runyard.testing import LiveServer


class Api:
    """Raw JSON requests to ``/api/v1`` of one server."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.http = httpx.Client(base_url=server.url + "/api/v1", timeout=30)

    def call(self, method: str, path: str, body: Any = None, **kw: Any) -> httpx.Response:
        content = None if body is None else json.dumps(body).encode()
        return self.http.request(method, path, content=content, headers={"Content-Type": "application/json"}, **kw)

    def ok(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        res = self.call(method, path, body, **kw)
        assert res.status_code < 300, f"{method} {path}: {res.status_code} {res.text}"
        return res.json() if res.content else None

    def refused(self, method: str, path: str, body: Any, *needles: str) -> str:
        """The request answers 400 whose message holds every needle; returns the message."""
        res = self.call(method, path, body)
        assert res.status_code == 400, f"{method} {path}: {res.status_code} {res.text}"
        payload = res.json()
        assert payload["code"] in ("invalid_input", "invalid_spec"), payload
        for needle in needles:
            assert needle in payload["message"], f"{needle!r} not in {payload['message']!r}"
        return payload["message"]

    def listings_work(self) -> None:
        """Every listing answers 200 with valid JSON (nothing stored that cannot be served)."""
        for path in ("/runs?limit=10000", "/experiments", "/projects"):
            res = self.http.get(path)
            assert res.status_code == 200, f"GET {path}: {res.status_code} {res.text[:500]}"
