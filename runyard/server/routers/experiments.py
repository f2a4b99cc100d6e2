"""Experiments: create, list, read, cancel."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

import runyard.names as names
from runyard.errors import InvalidState, NotFound
from runyard.records.fields import SafeJson, SafeStr
from runyard.server._auth import (
    principal,
    require_backends,
    require_experiment,
    require_project,
    require_project_write,
    visible_project_ids,
)
from runyard.server._deps import backend_entries, get_store, wake_scheduler
from runyard.store import ACTIVE_STATUSES, Experiment, Store

router = APIRouter(prefix="/experiments", tags=["experiments"])


class ExperimentCreate(BaseModel):
    project: SafeStr
    name: SafeStr = Field(min_length=1, max_length=names.EXPERIMENT_NAME_MAX, description=names.EXPERIMENT_NAME_RULE)
    config: dict[str, SafeJson] = Field(default_factory=dict, description="the runyard.yml as JSON: "
                                        "strings without NUL or unpaired surrogates, integers within 64 bits")
    snapshot_id: SafeStr | None = None
    backend: SafeStr | None = Field(None, description="overrides the config's backend: one name, or several separated "
                                "by commas (each run goes to the first with room)")


class ExperimentList(BaseModel):
    items: list[Experiment]


class ExperimentKeys(BaseModel):
    params: list[str] = Field(description="param names of the experiment's runs, sorted")
    metrics: list[str] = Field(description="metric names of the experiment's runs, sorted")


@router.post("", response_model=Experiment, status_code=201)
def create_experiment(body: ExperimentCreate, request: Request, store: Store = Depends(get_store)) -> Experiment:
    """Validate the ``runyard.yml`` config, store the experiment, and wake the scheduler to run it."""
    from runyard.spec import validate_config

    owner_id = require_project_write(request, body.project)
    names.check_experiment_name(body.name)
    from runyard.scheduler import backend_names

    config = dict(body.config)
    if body.backend:
        listed = body.backend.split(",")
        config["backend"] = listed[0] if len(listed) == 1 else listed
    spec = validate_config(config)
    backends = backend_names(spec)
    if not principal(request).is_admin:  # who may use each backend (allow: in backends.yml)
        require_backends(request, body.project, backends, backend_entries(request))
    scheduler = getattr(request.app.state, "scheduler", None)
    if scheduler is not None:
        check_backends(scheduler.backends, backends, spec)
    snapshot = store.get_snapshot(body.snapshot_id) if body.snapshot_id is not None else None
    config = spec.to_config()
    config["backend"] = spec.backend
    if spec.datasets:  # lineage: pinned now, so every run of the experiment reads the same versions
        config["datasets"] = pin_datasets(request, store, body.project, spec.datasets)
    if spec.models:  # the model versions runs use: pinned now, as datasets are
        check_models_dirs(spec.models, snapshot.files if snapshot is not None else [])
        config["models"] = pin_models(request, store, body.project, spec.models)
    store.ensure_project(body.project, owner_id=owner_id)
    exp = store.create_experiment(body.project, body.name, config=config, snapshot_id=body.snapshot_id,
                                  backend=",".join(backends), created_by=owner_id)
    wake_scheduler(request)
    return exp


def _require_readable(request: Request, project: str, key: str, what: str, refs: dict[str, str],
                      project_of: Callable[[str], str | None]) -> None:
    """The submitter can read the project each of ``refs`` (the values of ``key:``) names, when another than
    ``project``: one they may not see answers as a missing ``what`` (dataset, model)."""
    for ref in refs.values():
        other = project_of(ref)
        if other is not None and other != project:
            try:
                require_project(request, other, "viewer")
            except NotFound as e:
                raise NotFound(f"{key}: {ref!r} names project {other!r}, which does not exist or you cannot read.",
                               f"Name a {what} of a project you can read; ask its owner to share it: "
                               f"`runyard projects share {other} USER --role viewer`.") from e


def pin_datasets(request: Request, store: Store, project: str, refs: dict[str, str]) -> dict[str, str]:
    """``datasets:`` resolved to versions: name → ``PROJECT/NAME:V``. The submitter must be able to read each
    dataset's project (one they may not see answers as a missing dataset)."""
    _require_readable(request, project, "datasets", "dataset", refs, lambda ref: names.parse_dataset_ref(ref).project)
    return {name: f"{d.project}/{d.dataset}:{d.version}" for name, d in store.resolve_datasets(project, refs).items()}


def pin_models(request: Request, store: Store, project: str, uris: dict[str, str]) -> dict[str, str]:
    """``models:`` resolved to versions: name → ``models:/PROJECT/NAME/V``. The submitter must be able to read each
    model's project (one they may not see answers as a missing model); an archived version is refused."""
    _require_readable(request, project, "models", "model", uris, lambda uri: names.parse_model_uri(uri).project)
    return {name: v.uri for name, v in store.resolve_run_models(project, uris).items()}


def check_models_dirs(uris: dict[str, str], files: list[list[Any]]) -> None:
    """Refuse a code snapshot holding files where a declared model is materialised (``models/<name>/``)."""
    from runyard.errors import SpecError

    for name in uris:
        clash = next((str(f[0]) for f in files if str(f[0]) in ("models", f"models/{name}")
                      or str(f[0]).startswith(f"models/{name}/")), None)
        if clash is not None:
            raise SpecError(f"models: {name} is materialised read-only in models/{name}/, but the code snapshot has the "
                            f"file {clash!r} there.",
                            f"Move your files out of models/{name}/ (or exclude them, e.g. in .runyardignore), or give "
                            "the model another name in models:.")


def check_backends(pool: Any, backends: list[str], spec: Any) -> None:
    """Refuse (SpecError, 422) what can never run: a backend not configured, or runs that fit no node of
    the backend (of several listed: of none of them; runs then go only to those they fit)."""
    if len(backends) == 1:
        pool.check(backends[0], spec)
        return
    from runyard.errors import SpecError
    from runyard.scheduler import infeasible

    reasons = []
    for name in backends:
        pool.check(name)
        reasons.append(infeasible(pool.get(name), name, spec))
    if all(reasons):
        raise SpecError("Runs of this experiment can never start on any of its backends: " + "; ".join(reasons) + ".",
                        "Ask for less in resources:, or add a backend with larger nodes to backend:.")
    for name, why in zip(backends, reasons, strict=True):
        if not why:
            pool.check(name, spec)


@router.get("", response_model=ExperimentList)
def list_experiments(
    request: Request, project: str | None = None, limit: int = Query(1000, ge=1, le=10000), store: Store = Depends(get_store)
) -> ExperimentList:
    """Experiments of the projects the caller may see, newest first."""
    if project is not None:
        require_project(request, project, "viewer")
    return ExperimentList(items=store.list_experiments(project, limit=limit, project_ids=visible_project_ids(request)))


@router.get("/{experiment_id}", response_model=Experiment)
def get_experiment(experiment_id: int, request: Request, store: Store = Depends(get_store)) -> Experiment:
    require_experiment(request, experiment_id, "viewer")
    return store.get_experiment(experiment_id)


@router.get("/{experiment_id}/keys", response_model=ExperimentKeys)
def experiment_keys(experiment_id: int, request: Request, store: Store = Depends(get_store)) -> ExperimentKeys:
    """The param and metric names its runs have (the UI's column and axis choices)."""
    require_experiment(request, experiment_id, "viewer")
    return ExperimentKeys(**store.experiment_keys(experiment_id))


class ExperimentColumns(BaseModel):
    ids: list[int] = Field(description="run ids, oldest first")
    columns: dict[str, list[Any]] = Field(description="per field, one value per run in ids (null: the run has none)")


@router.get("/{experiment_id}/columns", response_model=ExperimentColumns)
def experiment_columns(
    experiment_id: int,
    request: Request,
    fields: list[str] = Query(description="params.NAME or metrics.NAME[.last|.min|.max]", min_length=1, max_length=100),
    store: Store = Depends(get_store),
) -> Response:
    """Values of the given params and metric summaries for every run, as columns (plots over all runs)."""
    require_experiment(request, experiment_id, "viewer")
    return Response(orjson.dumps(store.experiment_columns(experiment_id, fields)), media_type="application/json")


@router.post("/{experiment_id}/cancel", response_model=Experiment)
def cancel_experiment(experiment_id: int, request: Request, store: Store = Depends(get_store)) -> Experiment:
    """Cancel every queued or active run of the experiment and the experiment itself."""
    require_experiment(request, experiment_id, "editor")
    exp = store.get_experiment(experiment_id)
    # The experiment first: the scheduler proposes and dispatches only for running experiments,
    # so a run it adds from before this point is in the list below, and one added later is never
    # dispatched (the scheduler cancels it).
    if exp.status == "running":
        store.set_experiment_status(experiment_id, "canceled", "canceled by user")
    page = store.list_runs(experiment_id=experiment_id, statuses=sorted(ACTIVE_STATUSES), limit=10000)
    for run in page.items:
        try:
            store.set_run_status(run.id, "canceled", message="canceled by user (experiment canceled)")
        except InvalidState:
            pass  # finished meanwhile: its final status stands
        request.app.state.changes.bump(f"run:{run.id}")
    request.app.state.changes.bump("runs")
    wake_scheduler(request)
    return store.get_experiment(experiment_id)
