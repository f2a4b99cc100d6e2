"""Experiments: create, list, read, cancel."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from runyard.server._deps import get_store, wake_scheduler
from runyard.store import ACTIVE_STATUSES, Experiment, Store
from runyard.errors import InvalidState

router = APIRouter(prefix="/experiments", tags=["experiments"])


class ExperimentCreate(BaseModel):
    project: str
    name: str = Field(min_length=1, max_length=128)
    config: dict[str, Any] = Field(default_factory=dict)
    snapshot_id: str | None = None
    backend: str | None = Field(None, description="overrides the config's backend")


class ExperimentList(BaseModel):
    items: list[Experiment]


@router.post("", response_model=Experiment, status_code=201)
def create_experiment(body: ExperimentCreate, request: Request, store: Store = Depends(get_store)) -> Experiment:
    """Validate the ``runyard.yml`` config, store the experiment, and wake the scheduler to run it."""
    from runyard.spec import validate_config

    spec = validate_config(body.config)
    backend = body.backend or spec.backend
    scheduler = getattr(request.app.state, "scheduler", None)
    if scheduler is not None:
        scheduler.backends.check(backend, spec)
    if body.snapshot_id is not None:
        store.get_snapshot(body.snapshot_id)
    config = spec.to_config()
    config["backend"] = backend
    exp = store.create_experiment(body.project, body.name, config=config, snapshot_id=body.snapshot_id, backend=backend)
    wake_scheduler(request)
    return exp


@router.get("", response_model=ExperimentList)
def list_experiments(
    project: str | None = None, limit: int = Query(1000, ge=1, le=10000), store: Store = Depends(get_store)
) -> ExperimentList:
    return ExperimentList(items=store.list_experiments(project, limit=limit))


@router.get("/{experiment_id}", response_model=Experiment)
def get_experiment(experiment_id: int, store: Store = Depends(get_store)) -> Experiment:
    return store.get_experiment(experiment_id)


@router.post("/{experiment_id}/cancel", response_model=Experiment)
def cancel_experiment(experiment_id: int, request: Request, store: Store = Depends(get_store)) -> Experiment:
    """Cancel every queued or active run of the experiment and the experiment itself."""
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
