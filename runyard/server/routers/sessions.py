"""Sign-in and sign-out (the web's session cookie) and ``GET /me``: who the caller is."""

from __future__ import annotations

import os
import time
from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from runyard.errors import RateLimited, Unauthorized
from runyard.server._auth import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    audit,
    client_address,
    csrf_for,
    principal,
    public_route,
    run_token_route,
)
from runyard.store import User

router = APIRouter(tags=["auth"])


def _session_ttl_s() -> float:
    return float(os.environ.get("RUNYARD_SESSION_DAYS", "14")) * 86400


class LoginBody(BaseModel):
    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)


class LoginResult(BaseModel):
    user: User
    csrf_token: str = Field(description="send as the X-CSRF-Token header with every write made with the session cookie")
    expires_at: float


class Me(BaseModel):
    mode: Literal["local", "auth"] = Field(description="local: single-user mode, no sign-in; auth: sign-in required")
    kind: Literal["local", "user", "run", "anonymous"]
    user: User | None = None
    run_id: int | None = None
    is_admin: bool
    via: Literal["none", "token", "cookie"] = "none"
    token_id: int | None = Field(None, description="the id of the token or session the request came with")


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or os.environ.get("RUNYARD_COOKIE_SECURE", "") == "1"


@router.post("/auth/login", response_model=LoginResult)
@public_route
def login(body: LoginBody, request: Request, response: Response) -> LoginResult:
    """Check a username and password; set the HttpOnly session cookie and the CSRF cookie.

    Failed attempts are limited per username and address (429 with Retry-After); password
    checks run at most ``RUNYARD_LOGIN_CONCURRENCY`` at a time (429 when the wait is too long).
    """
    auth = request.app.state.auth
    address = client_address(request)
    auth.limiter.attempt(body.username, address)  # counted before the (costly, bounded) password check
    try:
        user = auth.store.verify_password(body.username, body.password)
    except RateLimited:  # no slot to check the password in time: nothing was checked, nothing counts
        auth.limiter.give_back(body.username, address)
        raise
    if user is None:
        audit(request, "login", target=body.username[:64], success=False, actor=body.username[:64] or "anonymous")
        raise Unauthorized("Wrong username or password, or the account is disabled.",
                           "Check both; an admin can reset a password with `runyard admin set-password USER`.")
    auth.limiter.succeeded(body.username, address)
    expires_at = time.time() + _session_ttl_s()
    _, secret = auth.store.create_token("session", user_id=user.id, name=f"web from {address}", expires_at=expires_at)
    csrf = csrf_for(secret)
    max_age = int(_session_ttl_s())
    response.set_cookie(SESSION_COOKIE, secret, max_age=max_age, httponly=True, samesite="strict", secure=_secure(request),
                        path="/")
    response.set_cookie(CSRF_COOKIE, csrf, max_age=max_age, httponly=False, samesite="strict", secure=_secure(request), path="/")
    audit(request, "login", target=user.username, actor=user.username)
    return LoginResult(user=user, csrf_token=csrf, expires_at=expires_at)


class LogoutResult(BaseModel):
    signed_out: bool = Field(description="whether a session ended (false: there was none)")


@router.post("/auth/logout", response_model=LogoutResult)
@public_route
def logout(request: Request, response: Response) -> LogoutResult:
    """End the session of the cookie (if any) and clear the cookies."""
    secret = request.cookies.get(SESSION_COOKIE)
    p = principal(request)
    ended = bool(secret) and p.via == "cookie"
    if ended:
        request.app.state.auth.store.revoke_secret(secret)
        audit(request, "logout", target=p.name)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return LogoutResult(signed_out=ended)


@router.get("/me", response_model=Me)
@run_token_route
def me(request: Request) -> Me:
    p = principal(request)
    mode = "local" if request.app.state.auth.local_mode() else "auth"
    return Me(mode=mode, kind=p.kind, user=p.user, run_id=p.run_id, is_admin=p.is_admin, via=p.via, token_id=p.token_id)
