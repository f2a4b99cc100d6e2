"""Schemathesis against the live server's OpenAPI: no 5xx, no answer that breaks the schema.

Bounded (a few examples per operation) so it stays within a minute or two. It calls the
API as the admin, so requests reach the handlers rather than stopping at the 401.
"""

from __future__ import annotations

import pytest
from auth_helpers import ADMIN_PW, start_auth_server, token_for

from runyard.testing.pytest_plugin import LiveServers

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance  # noqa: E402

# Not status_code_conformance: FastAPI documents 200 and 422 only, while every route also answers
# 400/401/403/404/409 with the one {code, message, hint} body (tests/server/test_server_errors.py).
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


@pytest.mark.slow
def test_fuzz_api_finds_no_server_errors(live_servers: LiveServers) -> None:
    server = start_auth_server(live_servers, "fuzz-server", RUNYARD_LOGIN_MAX_FAILURES="100000")
    token = token_for(server.url, "admin", ADMIN_PW)
    schema = schemathesis.openapi.from_url(server.url + "/api/v1/openapi.json")
    n_calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        path = operation.path
        if path.endswith("/logs/stream"):
            continue  # an endless event stream by design: covered by tests/server/test_server_logs.py

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

