"""Projects: create, list (search, tag filter), read, update, tag."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

import runyard.names as names
from runyard.errors import Conflict
from runyard.records.fields import SafeStr
from runyard.server._auth import (
    audit,
    project_name_taken,
    require_project,
    require_user,
    visible_project_ids,
)
from runyard.server._deps import get_store
from runyard.store import Project, Store, parse_tag_filter

router = APIRouter(prefix="/projects", tags=["projects"])

DESCRIPTION_MAX = 10_000


class ProjectCreate(BaseModel):
    name: SafeStr = Field(description=names.PROJECT_NAME_RULE)
    description: SafeStr = Field("", max_length=DESCRIPTION_MAX)
    visibility: Literal["private", "public"] = "private"
    tags: dict[str, SafeStr] = Field(default_factory=dict, description="key -> value (\"\" for a plain label)")


class ProjectUpdate(BaseModel):
    description: SafeStr | None = Field(None, max_length=DESCRIPTION_MAX)
    visibility: Literal["private", "public"] | None = None


class ProjectList(BaseModel):
    items: list[Project]


class ProjectTagsChange(BaseModel):
    tags: dict[str, SafeStr] = Field(default_factory=dict, description="tags to add or overwrite: key -> value (\"\" for a plain label)")
    remove: list[str] = Field(default_factory=list, description="keys of tags to delete (each must exist)")


@router.post("", response_model=Project, status_code=201)
def create_project(body: ProjectCreate, request: Request, store: Store = Depends(get_store)) -> Project:
    """Create a project owned by the caller (409 when the name exists, visible to the caller or not)."""
    p = require_user(request)
    names.check_project_name(body.name)
    for key in body.tags:
        names.check_project_tag_key(key)
    try:
        project = store.create_project(body.name, description=body.description, visibility=body.visibility,
                                       owner_id=p.user.id if p.user else None, tags=body.tags)
    except Conflict as e:  # the same answer whether the caller may see that project or not
        raise project_name_taken(body.name) from e
    if body.visibility == "public":
        audit(request, "project.visibility", target=body.name, visibility="public")
    return project


@router.get("", response_model=ProjectList)
def list_projects(
    request: Request,
    q: str | None = Query(None, description="keep names containing this"),
    tag: list[str] = Query([], description="keep projects with this tag: KEY (any value) or KEY:VALUE; repeat to require several"),
    store: Store = Depends(get_store),
) -> ProjectList:
    """Projects the caller may see: all for admins; own, shared and public ones for others."""
    require_user(request)
    items = store.list_projects(q, tags=[parse_tag_filter(t) for t in tag])
    visible = visible_project_ids(request)
    if visible is not None:
        keep = set(visible)
        items = [p for p in items if p.id in keep]
    return ProjectList(items=items)


@router.get("/{name}", response_model=Project)
def get_project(name: str, request: Request, store: Store = Depends(get_store)) -> Project:
    require_project(request, name, "viewer")
    return store.get_project(name)


@router.patch("/{name}", response_model=Project)
def update_project(name: str, body: ProjectUpdate, request: Request, store: Store = Depends(get_store)) -> Project:
    """Change the description (editors) or the visibility (owners)."""
    info = require_project(request, name, "owner" if body.visibility is not None else "editor")
    project = store.update_project(name, description=body.description, visibility=body.visibility)
    if body.visibility is not None and body.visibility != info.visibility:
        audit(request, "project.visibility", target=name, visibility=body.visibility)
    return project


@router.post("/{name}/tags", response_model=Project)
def set_project_tags(name: str, body: ProjectTagsChange, request: Request, store: Store = Depends(get_store)) -> Project:
    """Add, overwrite and remove tags in one change (editors); nothing changes if any part is refused."""
    require_project(request, name, "editor")
    for key in body.tags:
        names.check_project_tag_key(key)
    return store.set_project_tags(name, body.tags, remove=body.remove)


@router.delete("/{name}/tags/{key}", response_model=Project)
def delete_project_tag(name: str, key: str, request: Request, store: Store = Depends(get_store)) -> Project:
    """Delete one tag (editors); a tag the project lacks is 404."""
    require_project(request, name, "editor")
    return store.set_project_tags(name, {}, remove=[key])
