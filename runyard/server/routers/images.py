"""The container images runs ran in: what was built or pulled, where, and by how many runs."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from runyard.server._auth import require_project, require_user, visible_project_ids
from runyard.server._deps import get_store
from runyard.store import Store

router = APIRouter(prefix="/images", tags=["images"])


class ImageInfo(BaseModel):
    image: str = Field(description="the reference the runs named (or the image built for them)")
    id: str | None = Field(None, description="the image's id or digest (an image file's sha256, a directory's listing hash)")
    runtime: str | None = Field(None, description="the container runtime that ran it")
    build_key: str | None = Field(None, description="the hash of its build inputs, when built from build:")
    base: str | None = Field(None, description="the base image of build: steps")
    file: str | None = Field(None, description="the image file or directory a file runtime ran (apptainer, enroot, charliecloud)")
    built_on: list[str] = Field(description="the hosts it was built on by a run")
    build_s: float | None = Field(None, description="how long the last build took, in seconds")
    built_by_run: int | None = Field(None, description="the last run that built it")
    runs: int = Field(description="how many runs ran in it")
    projects: list[str]
    last_run: int
    last_used: float
    first_used: float


class ImageList(BaseModel):
    items: list[ImageInfo]


@router.get("", response_model=ImageList, dependencies=[Depends(require_user)])
def list_images(request: Request, project: str | None = None, limit: int = Query(default=200, ge=1, le=1000),
                store: Store = Depends(get_store)) -> ImageList:
    """The images the runs of the projects the caller may see ran in, most recently used first."""
    if project is not None:
        require_project(request, project, "viewer")
    items = store.list_images(project=project, project_ids=visible_project_ids(request), limit=limit)
    return ImageList(items=[ImageInfo(**i) for i in items])
