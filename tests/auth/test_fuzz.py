"""Schemathesis against the live server's OpenAPI: no 5xx, no answer that breaks the schema.

Bounded (a few examples per operation) so it stays within a minute or two. It calls the
API as the admin, so requests reach the handlers rather than stopping at the 401.

The edge pass then sends each operation's generated requests again with one value at a time
replaced by what no store can hold (an unpaired surrogate, a NUL, a bidi override, an integer
beyond 64 bits), into a seeded project, run and experiment so that the values reach the
handlers: every answer must be below 500, and afterwards every listing must still answer
(nothing unservable was stored).

The body pass sends every operation that takes a body one over its size cap (the server runs
with caps of 1 MiB for JSON, 2 MiB for batches and uploads), which must get a 4xx, and one
nested 100,000 levels deep, which must get no 5xx; the server must still answer afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from auth_helpers import ADMIN_PW, start_auth_server, token_for

from runyard.testing import LiveServer
from runyard.testing.pytest_plugin import LiveServers

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance  # noqa: E402

# Not status_code_conformance: FastAPI documents 200 and 422 only, while every route also answers
# 400/401/403/404/409 with the one {code, message, hint} body (tests/server/test_server_errors.py).
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]

EVIL_STRINGS = ["a\ud800b", "a\x00b", "x\u202eexe.txt"]
EVIL_INTS = [2**63, -(2**63) - 1, 10**30]
MAX_LEAVES = 8  # values replaced per generated request, one at a time


@pytest.fixture(scope="module")
def fuzz_server(module_live_servers: LiveServers) -> tuple[LiveServer, str]:
    server = start_auth_server(module_live_servers, "fuzz-server", RUNYARD_LOGIN_MAX_FAILURES="100000",
                               RUNYARD_MAX_JSON_MB="1", RUNYARD_MAX_BATCH_MB="2", RUNYARD_MAX_UPLOAD_MB="2")
    return server, token_for(server.url, "admin", ADMIN_PW)


def _operations(server: LiveServer) -> Iterator[Any]:
    schema = schemathesis.openapi.from_url(server.url + "/api/v1/openapi.json")
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path.endswith("/logs/stream"):
            continue  # an endless event stream by design: covered by tests/server/test_server_logs.py
        yield operation


@pytest.mark.slow
def test_fuzz_api_finds_no_server_errors(fuzz_server: tuple[LiveServer, str]) -> None:
    server, token = fuzz_server
    n_calls = 0
    for operation in _operations(server):

        @settings(max_examples=5, deadline=None, phases=[Phase.generate], derandomize=True,
                  suppress_health_check=list(HealthCheck), database=None)
        @given(operation.as_strategy())
        def check(case) -> None:  # noqa: ANN001
            nonlocal n_calls
            n_calls += 1
            response = case.call(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
            case.validate_response(response, checks=CHECKS)  # raises naming the failure and a curl to reproduce it

        check()
    assert n_calls > 100


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaves(v, (*path, i))
    elif isinstance(value, (str, int)) and not isinstance(value, bool):
        yield path, value


def _replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replaced(copy[path[0]], path[1:], new)
    return copy


@pytest.mark.slow
def test_fuzz_edge_values_are_refused_and_nothing_unservable_is_stored(fuzz_server: tuple[LiveServer, str]) -> None:
    server, token = fuzz_server
    http = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    # A project, experiment and run for the generated requests to land in.
    http.post("/api/v1/projects", json={"name": "fuzz-edge"}).raise_for_status()
    exp = http.post("/api/v1/experiments", json={"project": "fuzz-edge", "name": "e", "config": {
        "project": "fuzz-edge", "command": "echo hi"}}).json()
    run = http.post("/api/v1/runs", json={"project": "fuzz-edge", "experiment_id": exp["id"]}).json()
    seeded = {"run_id": run["id"], "experiment_id": exp["id"], "name": "fuzz-edge", "project": "fuzz-edge"}
    failures: list[str] = []
    n_calls = 0

    def send(case: Any, path_params: dict[str, Any], body: Any) -> None:
        nonlocal n_calls
        n_calls += 1
        path = case.path
        for key, val in path_params.items():
            path = path.replace("{" + key + "}", str(val))
        content = None if body is None else json.dumps(body).encode()  # ASCII: a lone surrogate as \ud800
        res = http.request(case.method, "/api/v1" + path.removeprefix("/api/v1"), params=case.query or None,
                           content=content, headers={"Content-Type": "application/json"} if content else None)
        if res.status_code >= 500:
            failures.append(f"{case.method} {path} {content!r:.300}: {res.status_code} {res.text[:300]}")

    for operation in _operations(server):
        if operation.method.upper() == "DELETE" or operation.path.endswith(("/cancel", "/logout")):
            continue  # keep the seeded project, run and session

        @settings(max_examples=2, deadline=None, phases=[Phase.generate], derandomize=True,
                  suppress_health_check=list(HealthCheck), database=None)
        @given(operation.as_strategy())
        def check(case) -> None:  # noqa: ANN001
            params = {k: seeded.get(k, v) for k, v in (case.path_parameters or {}).items()}
            body = case.body if isinstance(case.body, (dict, list)) else None
            if isinstance(body, dict):
                body = {k: seeded.get(k, v) if k in ("project", "experiment_id") else v for k, v in body.items()}
            for i, (where, old) in enumerate(list(_leaves(body))[:MAX_LEAVES]):
                evil = EVIL_STRINGS[i % len(EVIL_STRINGS)] if isinstance(old, str) else EVIL_INTS[i % len(EVIL_INTS)]
                send(case, params, _replaced(body, where, evil))
            for key, old in params.items():
                if isinstance(old, int) and not isinstance(old, bool):
                    send(case, {**params, key: EVIL_INTS[0]}, body)

        check()
    for path in ("/api/v1/runs?limit=10000", "/api/v1/experiments", "/api/v1/projects", f"/api/v1/runs/{run['id']}",
                 f"/api/v1/runs/{run['id']}/logs"):
        res = http.get(path)
        if res.status_code != 200:
            failures.append(f"after the edge pass GET {path}: {res.status_code} {res.text[:300]}")
    http.close()
    assert not failures, "\n".join(failures)
    assert n_calls > 100


@pytest.mark.slow
def test_fuzz_oversized_bodies_get_4xx_and_deeply_nested_ones_no_5xx(fuzz_server: tuple[LiveServer, str]) -> None:
    server, token = fuzz_server
    http = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    http.post("/api/v1/projects", json={"name": "fuzz-bodies"}).raise_for_status()
    run = http.post("/api/v1/runs", json={"project": "fuzz-bodies"}).json()
    seeded = {"run_id": run["id"], "name": "fuzz-bodies", "project": "fuzz-bodies"}
    oversized = b'{"name": "' + b"x" * (3 * 1024 * 1024) + b'"}'  # over every cap the server has
    nested = b"[" * 100_000 + b"]" * 100_000
    failures: list[str] = []
    n_sent = 0
    for operation in _operations(server):
        method = operation.method.upper()
        if method not in ("POST", "PUT", "PATCH") or operation.path.endswith(("/cancel", "/logout")):
            continue
        path = operation.path
        for param in operation.path_parameters:
            path = path.replace("{" + param.name + "}", str(seeded.get(param.name, 1)))
        for label, body, content_type in (("oversized", oversized, "application/json"),
                                          ("oversized upload", oversized, "application/octet-stream"),
                                          ("nested", nested, "application/json")):
            n_sent += 1
            try:
                res = http.request(method, "/api/v1" + path.removeprefix("/api/v1"), content=body,
                                   headers={"Content-Type": content_type})
            except httpx.TransportError:
                continue  # the server answered (413) and closed before the whole body was sent: a refusal
            # Oversized: refused. Nested: never a 5xx (a route that ignores its body, or stores bytes as a file, may take it).
            if res.status_code >= 500 or (label != "nested" and not 400 <= res.status_code < 500):
                failures.append(f"{label} {method} {path}: {res.status_code} {res.text[:300]}")
    assert http.get("/api/v1/health").status_code == 200
    for path in ("/api/v1/runs?limit=10000", "/api/v1/projects"):
        res = http.get(path)
        if res.status_code != 200:
            failures.append(f"after the body pass GET {path}: {res.status_code} {res.text[:300]}")
    http.close()
    assert not failures, "\n".join(failures)
    assert n_sent > 30
