"""Personal API tokens: create (the secret is shown once), list, revoke."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from runyard.errors import Forbidden
from runyard.server._auth import Principal, audit, require_run, require_user
from runyard.store import TokenInfo

router = APIRouter(prefix="/tokens", tags=["tokens"])
run_tokens = APIRouter(tags=["tokens"])


class TokenCreate(BaseModel):
    name: str = Field("", max_length=128, description="what the token is for, e.g. 'laptop' or 'ci'")
    expires_in_days: float | None = Field(None, gt=0, le=3650, description="none: the token never expires")


class TokenCreated(BaseModel):
    token: str = Field(description="the secret: shown only in this answer")
    info: TokenInfo


class TokenList(BaseModel):
    items: list[TokenInfo]


def _person(request: Request) -> Principal:
    p = require_user(request)
    if p.user is None:
        raise Forbidden("The server is in single-user local mode: there is no user to own a token.",
                        "Create a user first: `runyard admin create-user NAME --admin`.")
    return p


@router.get("", response_model=TokenList)
def list_tokens(request: Request) -> TokenList:
    """Your personal tokens (without their secrets)."""
    p = _person(request)
    return TokenList(items=request.app.state.auth.store.list_tokens(p.user.id))


@router.post("", response_model=TokenCreated, status_code=201)
def create_token(body: TokenCreate, request: Request) -> TokenCreated:
    p = _person(request)
    expires = time.time() + body.expires_in_days * 86400 if body.expires_in_days is not None else None
    info, secret = request.app.state.auth.store.create_token("personal", user_id=p.user.id, name=body.name, expires_at=expires)
    audit(request, "token.create", target=f"token:{info.id}", name=body.name, expires_at=expires)
    return TokenCreated(token=secret, info=info)


@router.delete("/{token_id}", response_model=TokenInfo)
def revoke_token(token_id: int, request: Request) -> TokenInfo:
    """Revoke a token at once: your own, or any personal token as an admin."""
    p = require_user(request)
    store = request.app.state.auth.store
    if p.is_admin:
        info = store.get_token(token_id)
        if info.kind != "personal":
            raise Forbidden(f"Token {token_id} is a {info.kind} token, not a personal one.", "Revoke personal tokens only.")
        info = store.revoke_token(token_id)
    else:
        info = store.revoke_token(token_id, user_id=p.user.id if p.user else -1)
        if info.kind != "personal":
            raise Forbidden(f"Token {token_id} is a {info.kind} token.", "Sign out to end a session.")
    audit(request, "token.revoke", target=f"token:{token_id}", owner=info.user)
    return info


class RunTokenRevoked(BaseModel):
    run_id: int
    revoked: int = Field(description="how many of the run's tokens were still valid (0: none was)")


@run_tokens.delete("/runs/{run_id}/token", response_model=RunTokenRevoked)
def revoke_run_token(run_id: int, request: Request) -> RunTokenRevoked:
    """End a run's token at once (admins and owners of the run's project); the run can report no more.

    A restart of the run (a new attempt) gets a new token when it is dispatched.
    """
    require_user(request)
    if require_run(request, run_id, "owner") is None and request.app.state.auth.store.run_access(run_id) is None:
        request.app.state.store.get_run(run_id)  # an admin asking for a missing run: its 404
    n = request.app.state.auth.store.revoke_run_tokens(run_id)
    audit(request, "token.revoke_run", target=f"run:{run_id}", revoked=n)
    return RunTokenRevoked(run_id=run_id, revoked=n)
