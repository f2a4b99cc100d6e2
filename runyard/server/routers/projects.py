"""Projects: create, list, read, update."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

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
def create_project(body: ProjectCreate, store: Store = Depends(get_store)) -> Project:
    return store.create_project(body.name, description=body.description, visibility=body.visibility)


@router.get("", response_model=ProjectList)
def list_projects(q: str | None = None, store: Store = Depends(get_store)) -> ProjectList:
    return ProjectList(items=store.list_projects(q))


@router.get("/{name}", response_model=Project)
def get_project(name: str, store: Store = Depends(get_store)) -> Project:
    return store.get_project(name)


@router.patch("/{name}", response_model=Project)
def update_project(name: str, body: ProjectUpdate, store: Store = Depends(get_store)) -> Project:
    return store.update_project(name, description=body.description, visibility=body.visibility)
