"""The model registry's REST API: models, their versions, aliases, and the one ``models:/`` URI resolver.

Access (checks in :mod:`runyard.server._auth`): viewers of a project read its models (public
projects: every signed-in user); editors create models, register versions, archive and
unarchive them and edit descriptions and tags; owners move and delete aliases. A run's token
may register a version from its own run into its own project, and read (GET) the models of its
run's project and of public projects (``models:`` in runyard.yml, ``runyard.load_model`` in a run);
nothing else here.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

import runyard.names as names
from runyard.artifacts import ArtifactStorage, clean_path
from runyard.errors import Forbidden, InvalidInput
from runyard.records.fields import Int64, SafeJson, SafeStr
from runyard.server._auth import principal, require_model_read, require_project, require_run, run_token_route
from runyard.server._deps import get_store
from runyard.store import Artifact, Model, ModelAliasChange, ModelDetail, ModelVersion, Store

__all__ = ["router"]

router = APIRouter(tags=["models"])

DESCRIPTION_MAX = 10_000
MAX_PATHS = 1000

Flavor = Literal["sklearn", "xgboost", "pytorch", "onnx", "files"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelled field is refused, never ignored


class ModelList(BaseModel):
    items: list[Model]


class ModelCreate(_Body):
    name: SafeStr = Field(description=names.MODEL_NAME_RULE)
    description: SafeStr = Field("", max_length=DESCRIPTION_MAX)
    tags: dict[SafeStr, SafeStr] = Field(default_factory=dict)


class ModelUpdate(_Body):
    description: SafeStr | None = Field(None, max_length=DESCRIPTION_MAX)
    tags: dict[SafeStr, SafeStr] | None = Field(None, description="replaces all the tags")


class VersionCreate(_Body):
    run_id: Int64 | None = Field(None, description="the run the version comes from")
    paths: list[SafeStr] | None = Field(None, max_length=MAX_PATHS, description="artifact paths or directory prefixes of "
                                        "that run; the version's files are relative to their common directory")
    snapshot_id: SafeStr | None = Field(None, description="files uploaded directly as a snapshot (POST /snapshots)")
    flavor: Flavor = "files"
    signature: SafeJson | None = Field(None, description="{inputs: [...], outputs: [...]}")
    requirements: list[SafeStr] = Field(default_factory=list, description="pip requirement strings")
    description: SafeStr = Field("", max_length=DESCRIPTION_MAX)
    tags: dict[SafeStr, SafeStr] = Field(default_factory=dict)


class VersionUpdate(_Body):
    description: SafeStr | None = Field(None, max_length=DESCRIPTION_MAX)
    tags: dict[SafeStr, SafeStr] | None = Field(None, description="replaces all the tags")


class AliasSet(_Body):
    version: Int64 = Field(description="the version the alias names from now on")


def _storage(request: Request) -> ArtifactStorage:
    return request.app.state.artifacts


@router.get("/projects/{project}/models", response_model=ModelList)
@run_token_route
def list_models(project: str, request: Request,
                q: str | None = Query(None, max_length=names.MODEL_NAME_MAX, description="keep names containing this"),
                limit: int = Query(1000, ge=1, le=10_000), store: Store = Depends(get_store)) -> ModelList:
    """The project's registered models, by name: versions, the latest one and the aliases of each."""
    require_model_read(request, project)
    if q is not None:
        names.check_text(q, "q")
    return ModelList(items=store.list_models(project, q, limit=limit))


@router.post("/projects/{project}/models", response_model=Model, status_code=201)
def create_model(project: str, body: ModelCreate, request: Request, store: Store = Depends(get_store)) -> Model:
    """Create an empty model (editors); 409 when the project has one of that name."""
    require_project(request, project, "editor")
    return store.create_model(project, body.name, description=body.description, tags=body.tags,
                              created_by=principal(request).name)


@router.get("/projects/{project}/models/{name}", response_model=ModelDetail)
@run_token_route
def get_model(project: str, name: str, request: Request, store: Store = Depends(get_store)) -> ModelDetail:
    """The model with every version (files included) and its aliases' history: who moved which, when."""
    require_model_read(request, project)
    return store.get_model(project, name)


@router.patch("/projects/{project}/models/{name}", response_model=Model)
def update_model(project: str, name: str, body: ModelUpdate, request: Request, store: Store = Depends(get_store)) -> Model:
    """Change the description or replace the tags (editors)."""
    require_project(request, project, "editor")
    return store.update_model(project, name, description=body.description, tags=body.tags)


def _check_source(body: VersionCreate) -> None:
    from_run = body.paths is not None
    if from_run and body.snapshot_id is not None:
        raise InvalidInput("A version comes from run artifacts (run_id and paths) or from a snapshot (snapshot_id), "
                           "not both.", "Send run_id with paths, or snapshot_id (with the run_id it came from, if any).")
    if from_run and body.run_id is None:
        raise InvalidInput("paths name artifacts of a run, but run_id is missing.", "Send the run's id as run_id.")
    if not from_run and body.snapshot_id is None:
        raise InvalidInput("A version needs files: run_id with paths (artifacts of the run), or snapshot_id.",
                           "E.g. {\"run_id\": 12, \"paths\": [\"model\"]}; upload files first with POST /snapshots.")
    if from_run and not body.paths:
        raise InvalidInput("paths is empty.", "Name the model's files or their directory, e.g. [\"model\"].")


@router.post("/projects/{project}/models/{name}/versions", response_model=ModelVersion, status_code=201)
@run_token_route
def create_model_version(project: str, name: str, body: VersionCreate, request: Request,
                         store: Store = Depends(get_store)) -> ModelVersion:
    """Register a new version (editors; a run's token from its own run only), creating the model if missing.

    From run artifacts (``run_id`` + ``paths``) the server copies the files into content-addressed
    blobs and stores a snapshot of them; the version is written last, in one transaction, so a
    registration cut short leaves no version. Numbers are never reused.
    """
    _check_source(body)
    p = principal(request)
    if p.kind == "run":
        if body.run_id != p.run_id:
            raise Forbidden(f"Run {p.run_id}'s token may register models only from its own run, not from "
                            f"{'no run' if body.run_id is None else f'run {body.run_id}'}.",
                            f"Send run_id {p.run_id}, or use a personal token (`runyard tokens create`).")
        if store.get_run(p.run_id).project != project:
            raise Forbidden(f"Run {p.run_id}'s token may register models only in its own project, not in {project!r}.",
                            "Register in the run's project, or use a personal token.")
    else:
        require_project(request, project, "editor")
        if body.run_id is not None:
            require_run(request, body.run_id, "viewer")
    fields: dict[str, Any] = {
        "flavor": body.flavor, "signature": body.signature, "requirements": body.requirements,
        "description": body.description, "tags": body.tags, "created_by": p.name,
    }
    if body.paths is not None and body.run_id is not None:
        storage = _storage(request)

        def copy(run_id: int, art: Artifact) -> None:
            storage.copy_run_file_to_blob(run_id, art.path, art.sha256)

        paths = [clean_path(x) for x in body.paths]
        return store.create_model_version_from_run(project, name, body.run_id, paths, copy, **fields)
    source = f"runs:/{body.run_id}" if body.run_id is not None else "upload"
    return store.create_model_version(project, name, snapshot_id=body.snapshot_id or "", run_id=body.run_id,
                                      source=source, **fields)


@router.get("/projects/{project}/models/{name}/versions/{version}", response_model=ModelVersion)
@run_token_route
def get_model_version(project: str, name: str, version: int, request: Request,
                      store: Store = Depends(get_store)) -> ModelVersion:
    """One version, archived or not, with its files."""
    require_model_read(request, project)
    return store.get_model_version(project, name, version)


@router.patch("/projects/{project}/models/{name}/versions/{version}", response_model=ModelVersion)
def update_model_version(project: str, name: str, version: int, body: VersionUpdate, request: Request,
                         store: Store = Depends(get_store)) -> ModelVersion:
    """Change a version's description or replace its tags (editors); its files never change."""
    require_project(request, project, "editor")
    return store.update_model_version(project, name, version, description=body.description, tags=body.tags)


@router.post("/projects/{project}/models/{name}/versions/{version}/archive", response_model=ModelVersion)
def archive_model_version(project: str, name: str, version: int, request: Request,
                          store: Store = Depends(get_store)) -> ModelVersion:
    """Archive a version (editors): it keeps its number and files, ``latest`` skips it; 409 while an alias names it."""
    require_project(request, project, "editor")
    return store.archive_model_version(project, name, version)


@router.post("/projects/{project}/models/{name}/versions/{version}/unarchive", response_model=ModelVersion)
def unarchive_model_version(project: str, name: str, version: int, request: Request,
                            store: Store = Depends(get_store)) -> ModelVersion:
    """Bring an archived version back (editors)."""
    require_project(request, project, "editor")
    return store.archive_model_version(project, name, version, unarchive=True)


@router.put("/projects/{project}/models/{name}/aliases/{alias}", response_model=ModelAliasChange)
def set_model_alias(project: str, name: str, alias: str, body: AliasSet, request: Request,
                    store: Store = Depends(get_store)) -> ModelAliasChange:
    """Point an alias at a version (owners), recording who moved it from where; 409 for an archived version."""
    require_project(request, project, "owner")
    return store.set_model_alias(project, name, alias, body.version, actor=principal(request).name)


@router.delete("/projects/{project}/models/{name}/aliases/{alias}", response_model=ModelAliasChange)
def delete_model_alias(project: str, name: str, alias: str, request: Request,
                       store: Store = Depends(get_store)) -> ModelAliasChange:
    """Remove an alias (owners), recording who did it."""
    require_project(request, project, "owner")
    return store.delete_model_alias(project, name, alias, actor=principal(request).name)


@router.get("/models/resolve", response_model=ModelVersion)
@run_token_route
def resolve_model(request: Request,
                  uri: str = Query(..., max_length=names.MODEL_URI_MAX,
                                   description="models:/NAME/3, models:/NAME@alias, models:/NAME/latest, "
                                               "models:/PROJECT/NAME/..."),
                  project: str | None = Query(None, description="the project of an unqualified URI"),
                  store: Store = Depends(get_store)) -> ModelVersion:
    """The version a ``models:/`` URI names (the resolver of the SDK, the CLI and runyard.yml)."""
    ref = names.parse_model_uri(uri)
    where = ref.project or project
    if where is None:
        raise InvalidInput(f"{uri!r} names no project, and no project was given.",
                           f"Send ?project=NAME, or qualify the URI: {ref.uri('PROJECT')}.")
    require_model_read(request, where)
    return store.resolve_model(where, ref)
