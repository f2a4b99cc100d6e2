"""Versioned datasets of a project: list, read, push a version (by content), diff two versions, delete one.

Access follows the project's roles: viewers read (any signed-in user, for a public project), editors push,
owners delete. A version's stored files are a snapshot: clients upload the blobs the server lacks
(``POST /blobs/missing``, ``PUT /blobs/{sha256}``), store the manifest (``POST /snapshots``) and push its id.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

import runyard.names as names
from runyard.errors import InvalidInput
from runyard.records.fields import SafeJson, SafeStr
from runyard.server._auth import audit, principal, require_project, require_project_write
from runyard.server._deps import get_store
from runyard.store import Store
from runyard.store._records import Dataset, DatasetDetail, DatasetDiff, DatasetPush, DatasetVersion

router = APIRouter(prefix="/projects/{project}/datasets", tags=["datasets"])

MESSAGE_MAX = 10_000


class DatasetList(BaseModel):
    items: list[Dataset]


class VersionCreate(BaseModel):
    snapshot_id: str | None = Field(None, max_length=64, description="the stored files: a snapshot (POST /snapshots)")
    refs: list[list[SafeJson]] = Field(default_factory=list, max_length=1_000_000,
                                       description="files referenced in place: [uri, sha256, size, mtime] each")
    message: SafeStr = Field("", max_length=MESSAGE_MAX)
    tags: dict[SafeStr, SafeStr] = Field(default_factory=dict)
    description: SafeStr | None = Field(None, max_length=MESSAGE_MAX, description="sets the dataset's description")


def _version(text: str, name: str) -> int | None:
    """``latest`` → None, else a positive version number."""
    if text == "latest":
        return None
    if text.isascii() and text.isdigit() and 0 < len(text) <= 9 and int(text) > 0:
        return int(text)
    raise InvalidInput(f"A dataset version is a positive number or 'latest', but got {text[:40]!r}.",
                       f"List the versions with `runyard datasets show {name}`.")


def _check(project: str, name: str) -> None:
    names.check_project_name(project)
    names.check_dataset_name(name)


@router.get("", response_model=DatasetList)
def list_datasets(project: str, request: Request, store: Store = Depends(get_store),
                  q: str | None = Query(None, max_length=names.DATASET_NAME_MAX, description="names containing this"),
                  limit: int = Query(1000, ge=1, le=10_000)) -> DatasetList:
    """The project's datasets by name, with the latest version's file count and size."""
    require_project(request, project, "viewer")
    if q is not None:
        names.check_text(q, "q")
    return DatasetList(items=store.list_datasets(project, q, limit=limit))


@router.get("/{name}", response_model=DatasetDetail)
def get_dataset(project: str, name: str, request: Request, store: Store = Depends(get_store)) -> DatasetDetail:
    """A dataset with its versions, newest first (without their files)."""
    require_project(request, project, "viewer")
    _check(project, name)
    return store.get_dataset(project, name)


@router.post("/{name}/versions", response_model=DatasetPush, status_code=201,
             responses={200: {"description": "the content equals the latest version's: no version was made"}})
def push_version(project: str, name: str, body: VersionCreate, request: Request, response: Response,
                 store: Store = Depends(get_store)) -> DatasetPush:
    """Make a version from a snapshot and/or references unless the content equals the latest version's (then 200,
    ``created`` false and that version). Creates the dataset, and the project, when missing."""
    owner_id = require_project_write(request, project)
    _check(project, name)
    if body.snapshot_id is not None and not (len(body.snapshot_id) == 64 and set(body.snapshot_id) <= set("0123456789abcdef")):
        raise InvalidInput(f"snapshot_id {body.snapshot_id!r} is not a snapshot id (64 lowercase hex characters).",
                           "Send the id POST /snapshots answered.")
    store.ensure_project(project, owner_id=owner_id)
    pushed = store.create_dataset_version(project, name, snapshot_id=body.snapshot_id, refs=body.refs,
                                          message=body.message, tags=body.tags, description=body.description,
                                          created_by=principal(request).name)
    if not pushed.created:
        response.status_code = 200
    return pushed


@router.get("/{name}/versions/{version}", response_model=DatasetVersion)
def get_version(project: str, name: str, version: str, request: Request, store: Store = Depends(get_store)) -> DatasetVersion:
    """One version (a number or ``latest``) with its files, references and the model versions trained on it."""
    require_project(request, project, "viewer")
    _check(project, name)
    return store.get_dataset_version(project, name, _version(version, name))


@router.get("/{name}/diff", response_model=DatasetDiff)
def diff_versions(project: str, name: str, request: Request, store: Store = Depends(get_store),
                  a: str = Query(..., max_length=16, description="the older version (a number or latest)"),
                  b: str = Query("latest", max_length=16, description="the newer version (a number or latest)")
                  ) -> DatasetDiff:
    """Files added, removed and changed from version a to b (stored files by path, references by uri)."""
    require_project(request, project, "viewer")
    _check(project, name)
    return store.diff_dataset_versions(project, name, _version(a, name), _version(b, name))


@router.delete("/{name}/versions/{version}", status_code=204)
def delete_version(project: str, name: str, version: str, request: Request, store: Store = Depends(get_store),
                   force: bool = Query(False, description="delete it although runs read it (never when a registered "
                                                          "model was trained on it)")) -> None:
    """Delete one version (owners). 409 when a registered model was trained on it, or runs read it and not force."""
    require_project(request, project, "owner")
    _check(project, name)
    number = _version(version, name)
    if number is None:
        raise InvalidInput("Delete a version by its number, not 'latest'.", f"List the versions with `runyard datasets show {name}`.")
    detail: dict[str, Any] = {"version": number, "force": force}
    store.delete_dataset_version(project, name, number, force=force)
    audit(request, "dataset.delete", target=f"{project}/{name}", **detail)
