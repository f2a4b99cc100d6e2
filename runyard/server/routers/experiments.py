"""Experiments: create, list, read, cancel."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from runyard.server._deps import get_store
from runyard.store import ACTIVE_STATUSES, Experiment, Store
from runyard.errors import InvalidState

router = APIRouter(prefix="/experiments", tags=["experiments"])


class ExperimentCreate(BaseModel):
    project: str
    name: str = Field(min_length=1, max_length=128)
    config: dict[str, Any] = Field(default_factory=dict)
    snapshot_id: str | None = None
    backend: str = "local"


class ExperimentList(BaseModel):
    items: list[Experiment]


@router.post("", response_model=Experiment, status_code=201)
def create_experiment(body: ExperimentCreate, request: Request, store: Store = Depends(get_store)) -> Experiment:
    hook = getattr(request.app.state, "on_experiment_create", None)
    if hook is not None:
        return hook(body)
    return store.create_experiment(body.project, body.name, config=body.config, snapshot_id=body.snapshot_id, backend=body.backend)


@router.get("", response_model=ExperimentList)
def list_experiments(project: str | None = None, limit: int = 1000, store: Store = Depends(get_store)) -> ExperimentList:
    return ExperimentList(items=store.list_experiments(project, limit=limit))


@router.get("/{experiment_id}", response_model=Experiment)
def get_experiment(experiment_id: int, store: Store = Depends(get_store)) -> Experiment:
    return store.get_experiment(experiment_id)


@router.post("/{experiment_id}/cancel", response_model=Experiment)
def cancel_experiment(experiment_id: int, request: Request, store: Store = Depends(get_store)) -> Experiment:
    """Cancel every queued or active run of the experiment and the experiment itself."""
    exp = store.get_experiment(experiment_id)
    page = store.list_runs(experiment_id=experiment_id, statuses=sorted(ACTIVE_STATUSES), limit=10000)
    for run in page.items:
        try:
            store.set_run_status(run.id, "canceled", message="canceled by user (experiment canceled)")
        except InvalidState:
            pass  # finished meanwhile: its final status stands
        request.app.state.changes.bump(f"run:{run.id}")
    if exp.status == "running":
        exp = store.set_experiment_status(experiment_id, "canceled", "canceled by user")
    request.app.state.changes.bump("runs")
    return exp
