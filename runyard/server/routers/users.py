"""Users: admins create, list, disable and promote them; users change their own password."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from runyard.errors import Conflict, Forbidden, Unauthorized
from runyard.server._auth import audit, require_admin, require_user
from runyard.store import AuthStore, User

router = APIRouter(prefix="/users", tags=["users"])


class UserCreate(BaseModel):
    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)
    email: str = Field("", max_length=256)
    is_admin: bool = False


class UserUpdate(BaseModel):
    email: str | None = Field(None, max_length=256)
    is_admin: bool | None = None
    disabled: bool | None = None


class PasswordChange(BaseModel):
    password: str = Field(max_length=1024, description="the new password (at least 8 characters)")
    old_password: str | None = Field(None, max_length=1024, description="required when changing your own password")


class UserList(BaseModel):
    items: list[User]


def _store(request: Request) -> AuthStore:
    return request.app.state.auth.store


@router.get("", response_model=UserList, dependencies=[Depends(require_admin)])
def list_users(request: Request) -> UserList:
    return UserList(items=_store(request).list_users())


@router.post("", response_model=User, status_code=201, dependencies=[Depends(require_admin)])
def create_user(body: UserCreate, request: Request) -> User:
    user = _store(request).create_user(body.username, body.password, email=body.email, is_admin=body.is_admin)
    request.app.state.auth.note_user_created()
    audit(request, "user.create", target=user.username, is_admin=user.is_admin)
    return user


@router.get("/{username}", response_model=User)
def get_user(username: str, request: Request) -> User:
    p = require_user(request)
    if not p.is_admin and (p.user is None or p.user.username != username):
        raise Forbidden("You may read only your own account.", "Ask an admin for others.")
    return _store(request).get_user(username)


@router.patch("/{username}", response_model=User, dependencies=[Depends(require_admin)])
def update_user(username: str, body: UserUpdate, request: Request) -> User:
    """Promote, demote, disable, enable a user or change their email (admins).

    Disabling ends all their tokens and cancels their queued runs, at once."""
    store = _store(request)
    target = store.get_user(username)
    losing_admin = target.is_admin and not target.disabled and (body.is_admin is False or body.disabled is True)
    if losing_admin and sum(1 for u in store.list_users() if u.is_admin and not u.disabled) <= 1:
        raise Conflict(f"{username} is the last enabled admin; the server would have none.", "Promote another user first.")
    # Disabling ends all the user's tokens (personal, sessions, their runs') and cancels their
    # queued runs ("owner disabled"), in the same transaction.
    user = store.update_user(username, email=body.email, is_admin=body.is_admin, disabled=body.disabled)
    changes = body.model_dump(exclude_none=True)
    audit(request, "user.update", target=username, **changes)
    if body.disabled:
        request.app.state.changes.bump("runs")
    return user


@router.put("/{username}/password", status_code=204)
def set_password(username: str, body: PasswordChange, request: Request) -> None:
    """Change a password: your own (with the old one), or anyone's as an admin. Ends the user's web sessions."""
    p = require_user(request)
    store = _store(request)
    own = p.user is not None and p.user.username == username
    if not own and not p.is_admin:
        raise Forbidden("You may change only your own password.", "Ask an admin to reset another user's.")
    if own and (body.old_password is None or store.verify_password(username, body.old_password) is None):
        raise Unauthorized("The old password is wrong.", "Send your current password as old_password.")
    store.get_user(username)
    store.set_password(username, body.password)
    audit(request, "user.password", target=username, by_admin=not own)

