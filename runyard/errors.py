"""The one error tree of Runyard, and the one table from error code to HTTP status.

    RunyardError                      code            HTTP
    ├── InvalidInput (ValueError)     invalid_input   400
    │   └── SpecError                 invalid_spec    400
    ├── Unauthorized                  unauthorized    401
    ├── Forbidden                     forbidden       403
    ├── NotFound (LookupError)        not_found       404
    ├── Conflict                      conflict        409
    │   └── InvalidState              invalid_state   409
    ├── PayloadTooLarge               too_large       413
    ├── RateLimited                   rate_limited    429
    ├── ServerUnreachable             unreachable     503
    ├── ServiceUnavailable            unavailable     503
    ├── StorageFull                   storage_full    507
    ├── BackendError                  backend_error   502
    │   └── SubmitError               submit_error    502
    └── (anything else)               internal        500

Every error carries a message (what went wrong, the rule, the value) and a hint
(the fix, ideally a command). The server answers every failure with JSON
``{code, message, hint}``; the SDK and CLI rebuild the same class from it with
:func:`from_payload`. Messages may reach HTTP clients: never put secrets in them.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BackendError",
    "Conflict",
    "Forbidden",
    "InvalidInput",
    "InvalidState",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "RunyardError",
    "ServerUnreachable",
    "ServiceUnavailable",
    "SpecError",
    "StorageFull",
    "SubmitError",
    "Unauthorized",
    "from_payload",
    "http_status",
]


class RunyardError(Exception):
    """Root of every Runyard error."""

    code = "internal"

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def to_payload(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "hint": self.hint}

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\nHint: {self.hint}"
        return self.message


class InvalidInput(RunyardError, ValueError):
    code = "invalid_input"


class SpecError(InvalidInput):
    """An invalid ``runyard.yml`` or backend entry; the message names field, rule, value, fix."""

    code = "invalid_spec"


class Unauthorized(RunyardError):
    code = "unauthorized"


class Forbidden(RunyardError):
    code = "forbidden"


class NotFound(RunyardError, LookupError):
    code = "not_found"


class Conflict(RunyardError):
    code = "conflict"


class InvalidState(Conflict):
    code = "invalid_state"


class PayloadTooLarge(RunyardError):
    code = "too_large"


class RateLimited(RunyardError):
    """Too many attempts (sign-ins); ``retry_after_s`` says when to try again."""

    code = "rate_limited"

    def __init__(self, message: str, hint: str | None = None, *, retry_after_s: float | None = None) -> None:
        super().__init__(message, hint)
        self.retry_after_s = retry_after_s


class ServerUnreachable(RunyardError, ConnectionError):
    code = "unreachable"


class ServiceUnavailable(RunyardError):
    """The server is up but cannot serve the request now (its database does not answer); retry later."""

    code = "unavailable"


class StorageFull(RunyardError):
    """The server's disk (database or artifact store) is full: nothing was written; retry once space is freed."""

    code = "storage_full"


class BackendError(RunyardError):
    code = "backend_error"


class SubmitError(BackendError):
    code = "submit_error"


_STATUS: dict[str, int] = {
    "internal": 500,
    "invalid_input": 400,
    "invalid_spec": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "invalid_state": 409,
    "too_large": 413,
    "rate_limited": 429,
    "unreachable": 503,
    "unavailable": 503,
    "storage_full": 507,
    "backend_error": 502,
    "submit_error": 502,
}

_BY_CODE: dict[str, type[RunyardError]] = {
    cls.code: cls
    for cls in (
        RunyardError,
        InvalidInput,
        SpecError,
        Unauthorized,
        Forbidden,
        NotFound,
        Conflict,
        InvalidState,
        PayloadTooLarge,
        RateLimited,
        ServerUnreachable,
        ServiceUnavailable,
        StorageFull,
        BackendError,
        SubmitError,
    )
}


def http_status(error: RunyardError) -> int:
    """The HTTP status for an error's code (500 for unknown codes)."""
    return _STATUS.get(error.code, 500)


def from_payload(payload: dict[str, Any]) -> RunyardError:
    """Rebuild the error class from a server's ``{code, message, hint}`` answer."""
    cls = _BY_CODE.get(str(payload.get("code")), RunyardError)
    err = cls(str(payload.get("message", "unknown error")), payload.get("hint"))
    if cls is RunyardError and payload.get("code"):
        err.code = str(payload["code"])
    return err
