"""Projects: create, list, read, update."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from runyard.server._auth import audit, require_project, require_user, visible_project_ids
from runyard.server._deps import get_store
from runyard.store import Project, Store

router = APIRouter(prefix="/projects", tags=["projects"])


class ProjectCreate(BaseModel):
    name: str = Field(description="1-64 lowercase letters, digits, '-' or '_'")
    description: str = ""
    visibility: Literal["private", "public"] = "private"


class ProjectUpdate(BaseModel):
    description: str | None = None
    visibility: Literal["private", "public"] | None = None


class ProjectList(BaseModel):
    items: list[Project]


@router.post("", response_model=Project, status_code=201)
def create_project(body: ProjectCreate, request: Request, store: Store = Depends(get_store)) -> Project:
    """Create a project owned by the caller."""
    p = require_user(request)
    project = store.create_project(body.name, description=body.description, visibility=body.visibility,
                                   owner_id=p.user.id if p.user else None)
    if body.visibility == "public":
        audit(request, "project.visibility", target=body.name, visibility="public")
    return project


@router.get("", response_model=ProjectList)
def list_projects(request: Request, q: str | None = None, store: Store = Depends(get_store)) -> ProjectList:
    """Projects the caller may see: all for admins; own, shared and public ones for others."""
    require_user(request)
    items = store.list_projects(q)
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
