"""Project members: who a project is shared with, and as what (viewer, editor, owner)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel

from runyard.errors import InvalidInput, NotFound
from runyard.server._auth import audit, require_project
from runyard.store import Member

router = APIRouter(prefix="/projects/{name}/members", tags=["members"])


class MemberSet(BaseModel):
    role: Literal["viewer", "editor", "owner"]


class MemberList(BaseModel):
    owner: str | None
    visibility: str
    items: list[Member]


@router.get("", response_model=MemberList)
def list_members(name: str, request: Request) -> MemberList:
    info = require_project(request, name, "viewer")
    store = request.app.state.auth.store
    owner = request.app.state.store.get_project(name).owner
    return MemberList(owner=owner, visibility=info.visibility, items=store.list_members(info.project_id))


@router.put("/{username}", response_model=Member)
def share(name: str, username: str, body: MemberSet, request: Request) -> Member:
    """Share the project with a user as viewer, editor or owner (owners and admins)."""
    info = require_project(request, name, "owner")
    store = request.app.state.auth.store
    user = store.get_user(username)
    if info.owner_id == user.id:
        raise InvalidInput(f"{username} owns project {name!r} already.", "Share it with someone else.")
    store.set_member(info.project_id, user.id, body.role)
    audit(request, "project.share", target=name, user=username, role=body.role)
    return next(m for m in store.list_members(info.project_id) if m.username == username)


@router.delete("/{username}", status_code=204)
def unshare(name: str, username: str, request: Request) -> None:
    info = require_project(request, name, "owner")
    store = request.app.state.auth.store
    # One answer for a user who is not a member and for a name no user has: which usernames
    # exist is not for project owners to learn.
    user = store.find_user(username)
    if user is None or not store.remove_member(info.project_id, user.id):
        raise NotFound(f"{username} is not a member of project {name!r}.",
                       f"List members with `runyard projects members {name}`.")
    audit(request, "project.unshare", target=name, user=username)
