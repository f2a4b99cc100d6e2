"""MLflow's error format, MLflow's way of reading a request, and who is asking.

Every failure of a route under ``/api/2.0/mlflow/`` and ``/api/2.0/mlflow-artifacts/`` answers
``{"error_code": ..., "message": ...}`` with the status MLflow's own server gives that code: the
MLflow client turns exactly that into an ``MlflowException``. Runyard's errors keep their message,
with the hint appended.

Statuses the MLflow client retries (429, 500, 502, 503, 504) are kept for failures worth a retry:
a refused request answers 4xx, so the client reports it at once instead of backing off for minutes.
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import ClientDisconnect

import runyard.names as names
from runyard.errors import RunyardError, Unauthorized, http_status
from runyard.server._auth import Principal, session_principal, token_principal
from runyard.server._errors import storage_error

__all__ = ["MlflowError", "MlflowRoute", "authenticate_mlflow", "json_response", "mlflow_error_response"]

log = logging.getLogger("runyard.server")

#: MLflow's error codes and the HTTP status MLflow's server answers with each.
STATUS_OF = {
    "INVALID_PARAMETER_VALUE": 400,
    "BAD_REQUEST": 400,
    "MALFORMED_REQUEST": 400,
    "RESOURCE_ALREADY_EXISTS": 400,
    "INVALID_STATE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "RESOURCE_DOES_NOT_EXIST": 404,
    "ENDPOINT_NOT_FOUND": 404,
    "REQUEST_LIMIT_EXCEEDED": 429,
    "INTERNAL_ERROR": 500,
    "TEMPORARILY_UNAVAILABLE": 503,
}

# Runyard's error codes (runyard.errors) as MLflow's.
_CODE_OF = {
    "invalid_input": "INVALID_PARAMETER_VALUE",
    "invalid_spec": "INVALID_PARAMETER_VALUE",
    "unauthorized": "UNAUTHENTICATED",
    "forbidden": "PERMISSION_DENIED",
    "not_found": "RESOURCE_DOES_NOT_EXIST",
    "conflict": "INVALID_PARAMETER_VALUE",  # a param logged again with another value: MLflow's own answer
    "invalid_state": "INVALID_STATE",
    "too_large": "INVALID_PARAMETER_VALUE",
    "rate_limited": "REQUEST_LIMIT_EXCEEDED",
    "unavailable": "TEMPORARILY_UNAVAILABLE",
    "unreachable": "TEMPORARILY_UNAVAILABLE",
    "storage_full": "TEMPORARILY_UNAVAILABLE",
}


class MlflowError(RunyardError):
    """An error with MLflow's own code (``RESOURCE_ALREADY_EXISTS``, ``ENDPOINT_NOT_FOUND``...)."""

    def __init__(self, error_code: str, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.error_code = error_code


def json_response(body: Mapping[str, Any], status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _error(code: str, message: str, hint: str | None, status: int | None = None) -> Response:
    text = message if not hint else f"{message} {hint}"
    return json_response({"error_code": code, "message": text}, status or STATUS_OF.get(code, 400))


def mlflow_error_response(exc: BaseException) -> Response:
    """MLflow's answer for an exception escaping a route."""
    if isinstance(exc, MlflowError):
        return _error(exc.error_code, exc.message, exc.hint)
    if isinstance(exc, RunyardError):
        status = http_status(exc)
        code = _CODE_OF.get(exc.code, "INTERNAL_ERROR")
        # Runyard's 409s are 400s in MLflow's table; its 503 and 507 keep their status (worth a retry or a look).
        return _error(code, exc.message, exc.hint, status if status >= 500 else None)
    if isinstance(exc, RequestValidationError):
        return _error("INVALID_PARAMETER_VALUE", "Invalid request: " + "; ".join(
            f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in exc.errors()[:5]), None)
    if isinstance(exc, ClientDisconnect):
        return _error("BAD_REQUEST", "The request body ended early.", "Send the whole body.")
    named = storage_error(exc)
    if named is not None:
        log.error("%s (%s: %s)", named.message, type(exc).__name__, exc)
        return _error(_CODE_OF.get(named.code, "INTERNAL_ERROR"), named.message, named.hint, http_status(named))
    log.error("unexpected error in the MLflow-compatible API", exc_info=exc)
    return _error("INTERNAL_ERROR", f"Internal server error ({type(exc).__name__}).", "Look at the server log; please report it.")


class MlflowRoute(APIRoute):
    """A route whose failures, those of its dependencies (authentication, access) included, answer in MLflow's format."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:  # noqa: BLE001 - every failure is answered in MLflow's format
                return mlflow_error_response(exc)

        return answer


def _basic_password(value: str) -> str:
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as e:
        raise Unauthorized("The Authorization header's Basic credentials are not base64 of 'USER:PASSWORD'.",
                           "Set MLFLOW_TRACKING_PASSWORD to a Runyard API token (`runyard tokens create`).") from e
    _, sep, password = decoded.partition(":")
    if not sep or not password:
        raise Unauthorized("Basic credentials need a password: a Runyard API token.",
                           "Set MLFLOW_TRACKING_PASSWORD to a token from `runyard tokens create`.")
    return password


def _resolve(request: Request) -> Principal | None:
    auth = request.app.state.auth
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return token_principal(auth, value.strip())
        if scheme.lower() == "basic":
            return token_principal(auth, _basic_password(value))
        raise Unauthorized("The Authorization header must be 'Bearer TOKEN' or Basic credentials with a token as the password.",
                           "Set MLFLOW_TRACKING_TOKEN to a Runyard API token (`runyard tokens create`).")
    return session_principal(request, auth)


async def authenticate_mlflow(request: Request) -> Principal:
    """The MLflow routes' dependency: a Runyard API token as MLflow's bearer token (MLFLOW_TRACKING_TOKEN)
    or as the basic-auth password (MLFLOW_TRACKING_USERNAME/PASSWORD; the username is not checked)."""
    auth = request.app.state.auth
    found = None
    if "authorization" in request.headers or request.cookies:
        found = await run_in_threadpool(_resolve, request)
    if found is None:
        found = Principal("local") if auth.local_mode() else Principal("anonymous")
    request.state.principal = found
    if found.kind == "anonymous":
        raise Unauthorized("This server requires sign-in.",
                           "Set MLFLOW_TRACKING_TOKEN to a Runyard API token (`runyard tokens create`).")
    return found


# ------------------------------------------------------------------ reading a request
async def request_fields(request: Request) -> dict[str, Any]:
    """A request's fields: the JSON body of a POST or PATCH, the query of a GET (lists for repeated names)."""
    if request.method in ("GET", "DELETE"):
        out: dict[str, Any] = {}
        for key, value in request.query_params.multi_items():
            if key in out:
                prev = out[key]
                out[key] = [*prev, value] if isinstance(prev, list) else [prev, value]
            else:
                out[key] = value
        return out
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise MlflowError("MALFORMED_REQUEST", f"The request body is not valid JSON: {e}.",
                          "Send a JSON object (text without NUL characters or unpaired surrogates).") from e
    if not isinstance(body, dict):
        raise MlflowError("MALFORMED_REQUEST", "The request body must be a JSON object.", None)
    return body


def _bad(field: str, rule: str, value: Any) -> MlflowError:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return MlflowError("INVALID_PARAMETER_VALUE", f"Invalid value {shown} for parameter '{field}': {rule}.")


def text(fields: Mapping[str, Any], name: str, *, required: bool = False, default: str | None = None) -> str | None:
    """A string field; NUL characters and unpaired surrogates are refused."""
    value = fields.get(name)
    if value is None:
        if required:
            raise MlflowError("INVALID_PARAMETER_VALUE", f"Missing value for required parameter '{name}'.",
                              "See docs/mlflow.md for the fields each endpoint takes.")
        return default
    if not isinstance(value, str):
        raise _bad(name, "it must be a string", value)
    problem = names.text_problem(value)
    if problem is not None:
        raise _bad(name, f"it {problem}", value)
    return value


def int64(fields: Mapping[str, Any], name: str, *, required: bool = False, default: int | None = None) -> int | None:
    """An int64 field: a JSON integer, or its decimal text (protobuf's JSON writes int64 as strings)."""
    value = fields.get(name)
    if value is None or value == "":
        if required:
            raise MlflowError("INVALID_PARAMETER_VALUE", f"Missing value for required parameter '{name}'.", None)
        return default
    if isinstance(value, str) and value.lstrip("-").isdigit() and len(value) <= 20:
        value = int(value)
    if type(value) is not int or not -(2**63) <= value < 2**63:
        raise _bad(name, "it must be a 64-bit integer", value)
    return value


_SPECIAL = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf, "nan": math.nan, "inf": math.inf,
            "-inf": -math.inf}


def double(fields: Mapping[str, Any], name: str) -> float:
    """A double field: a JSON number, or "NaN", "Infinity", "-Infinity" (protobuf's JSON for those)."""
    value = fields.get(name)
    if isinstance(value, str) and value in _SPECIAL:
        return _SPECIAL[value]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if value is None:
            raise MlflowError("INVALID_PARAMETER_VALUE", f"Missing value for required parameter '{name}'.", None)
        raise _bad(name, "it must be a number (or \"NaN\", \"Infinity\", \"-Infinity\")", value)
    try:
        return float(value)
    except OverflowError as e:
        raise _bad(name, "it is too large for a 64-bit float", value) from e


def entries(fields: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
    """A repeated message field: a list of JSON objects (absent: empty)."""
    value = fields.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise _bad(name, "it must be a list of objects", value)
    return value


def strings(fields: Mapping[str, Any], name: str) -> list[str]:
    """A repeated string field (a query may hold it once: a plain string)."""
    value = fields.get(name)
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(name, "it must be a list of strings", value)
    for v in value:
        text({name: v}, name)
    return value


def ms(seconds: float | None) -> int | None:
    return None if seconds is None else int(round(seconds * 1000))


def finite_or_text(value: float | None) -> float | str:
    """A double as protobuf's JSON writes it: NaN and the infinities as text (a missing value is NaN)."""
    if value is None or value != value:
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value
