"""Runs: create ad-hoc, list with filters and sorting, read, change status, cancel;
their params, tags and metrics (the ingest hot path and history reads)."""

from __future__ import annotations

import time
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

import runyard.names as names
from runyard.errors import InvalidInput, InvalidState
from runyard.records.fields import Int64, RunName, SafeJson, SafeStr
from runyard.server._auth import (
    principal,
    require_backends,
    require_experiment,
    require_project,
    require_project_write,
    run_reader,
    run_token_route,
    run_writer,
    visible_project_ids,
)
from runyard.server._deps import backend_entries, get_store, run_ingest, wake_scheduler
from runyard.store import (
    RUN_STATUSES,
    TERMINAL_STATUSES,
    MetricSummary,
    Run,
    RunPage,
    Store,
    Task,
    insert_run,
    parse_filter,
    parse_order,
)

router = APIRouter(prefix="/runs", tags=["runs"])

MAX_BATCH_POINTS = 100_000


def _check_keys(params: dict[str, Any], tags: dict[str, str]) -> None:
    """Param and tag names by :mod:`runyard.names`' rule (InvalidInput naming the first bad one)."""
    for key in params:
        names.check_key(key, "param")
    for key in tags:
        names.check_key(key, "tag")


class RunCreate(BaseModel):
    project: SafeStr
    name: RunName = Field("", description=names.RUN_NAME_RULE + "; empty: the run is named run-<id>")
    experiment_id: Int64 | None = None
    params: dict[str, SafeJson] = Field(default_factory=dict)
    tags: dict[str, SafeStr] = Field(default_factory=dict)
    status: SafeStr = Field("running", description="initial status: running for runs started by hand, queued for the scheduler")


class RunUpdate(BaseModel):
    status: SafeStr | None = Field(None, description="one of " + ", ".join(RUN_STATUSES))
    message: SafeStr | None = None
    exit_code: Int64 | None = None


class ParamsBody(BaseModel):
    params: dict[str, SafeJson]


class TagsBody(BaseModel):
    tags: dict[str, SafeStr]


class MetricBatch(BaseModel):
    """Points in columns (one entry per point in each list): compact and fast to parse."""

    batch_id: str | None = Field(None, max_length=64, description="idempotency key: a batch sent twice is stored once")
    keys: list[str] = Field(description="metric names: " + names.KEY_RULE)
    steps: list[Int64]
    values: list[float | None] = Field(description="null stands for NaN")
    timestamps: list[float]


class MetricBatchResult(BaseModel):
    stored: int
    duplicate: bool


class MetricHistory(BaseModel):
    key: str
    steps: list[int]
    values: list[float | None]
    timestamps: list[float]
    downsampled: bool
    total: int = Field(description="points stored for this metric (in the attempts returned)")
    attempt: int = Field(description="the run's attempt these points belong to (the latest one, with attempt=all)")
    attempts: list[int] | None = Field(default=None, description="with attempt=all: each point's attempt")


@router.post("", response_model=Run, status_code=201)
async def create_run(body: RunCreate, request: Request, store: Store = Depends(get_store)) -> Response:
    # One thread hand-off for the checks and the one write transaction; the answer is the run as
    # written (serialised straight to JSON: no read-back, no second validation of the response).
    def create() -> Run:
        owner_id = require_project_write(request, body.project)
        _check_keys(body.params, body.tags)
        if body.experiment_id is not None:
            info = require_experiment(request, body.experiment_id, "editor")
            if info.project != body.project:
                raise InvalidInput(f"Experiment {body.experiment_id} belongs to project {info.project!r}, not {body.project!r}.",
                                   f"Create the run in project {info.project!r}, or leave experiment_id out.")
            if body.status == "queued" and not principal(request).is_admin:
                # The scheduler dispatches it to the experiment's backends: the caller must be admitted to each.
                backends = store.get_experiment(body.experiment_id).backend.split(",")
                require_backends(request, body.project, backends, backend_entries(request))
        run = insert_run(store, body.project, name=body.name, experiment_id=body.experiment_id, params=body.params,
                         tags=body.tags, status=body.status, owner_id=owner_id)
        if body.experiment_id is not None:  # lineage: a run of an experiment reads the experiment's pinned datasets
            pinned = store.get_experiment(body.experiment_id).config.get("datasets")
            if pinned:
                store.add_experiment_datasets(run.id, body.project, pinned)
        return run

    run = await run_in_threadpool(create)
    request.app.state.changes.bump("runs")
    return Response(run.model_dump_json(), status_code=201, media_type="application/json")


@router.get("", response_model=RunPage)
def list_runs(
    request: Request,
    project: str | None = None,
    experiment_id: int | None = None,
    status: list[str] = Query(default=[], description="keep runs with any of these statuses"),
    filter: list[str] = Query(default=[], description="e.g. 'metrics.loss.min < 0.5', 'params.lr >= 0.01'; ANDed"),  # noqa: A002
    order_by: str | None = Query(default=None, description="e.g. 'metrics.acc.max desc'"),
    limit: int = Query(default=100, ge=1, le=10000),
    offset: int = Query(default=0, ge=0),
    fields: list[str] = Query(default=[], description="return only these params and metrics, e.g. 'params.lr', 'metrics.loss'; "
                                                      "none given: all of them"),
    store: Store = Depends(get_store),
) -> RunPage:
    """Runs of the projects the caller may see."""
    if project is not None:
        require_project(request, project, "viewer")
    if experiment_id is not None:
        require_experiment(request, experiment_id, "viewer")
    filters = [parse_filter(f) for f in filter]
    order = parse_order(order_by) if order_by else None
    return store.list_runs(project=project, experiment_id=experiment_id, statuses=status or None, filters=filters, order=order,
                           limit=limit, offset=offset, project_ids=visible_project_ids(request),
                           fields=fields or None)


@router.get("/{run_id}", response_model=Run, dependencies=[Depends(run_reader)])
@run_token_route
def get_run(run_id: int, store: Store = Depends(get_store)) -> Run:
    return store.get_run(run_id)


@router.patch("/{run_id}", response_model=Run, dependencies=[Depends(run_writer)])
@run_token_route
def update_run(run_id: int, body: RunUpdate, request: Request, store: Store = Depends(get_store)) -> Run:
    if body.status is None:
        run = store.get_run(run_id)
    else:
        run = store.set_run_status(run_id, body.status, message=body.message, exit_code=body.exit_code)
        if run.status in TERMINAL_STATUSES:  # a slot is free or a restart is due; "running" changes nothing for it
            wake_scheduler(request)
    request.app.state.changes.bump(f"run:{run_id}")
    request.app.state.changes.bump("runs")
    return run


@router.post("/{run_id}/cancel", response_model=Run, dependencies=[Depends(run_writer)])
def cancel_run(run_id: int, request: Request, store: Store = Depends(get_store)) -> Run:
    """Cancel a run. Its tasks are stopped by the scheduler; a finished run keeps its status."""
    run = store.get_run(run_id)
    if run.status in TERMINAL_STATUSES:
        raise InvalidState(f"Run {run_id} already ended {run.status}; there is nothing to cancel.", None)
    run = store.set_run_status(run_id, "canceled", message="canceled by user")
    wake_scheduler(request)
    request.app.state.changes.bump(f"run:{run_id}")
    request.app.state.changes.bump("runs")
    return run


@router.post("/{run_id}/restart", response_model=Run, dependencies=[Depends(run_writer)])
def restart_run(run_id: int, request: Request, store: Store = Depends(get_store)) -> Run:
    """Queue a failed run again as its next attempt (it keeps its id, its attempt goes up by one).

    A run of an experiment is then dispatched by the scheduler; a run created by hand waits
    queued for whoever starts its next attempt.
    """
    run = store.get_run(run_id)
    if run.status != "failed":
        raise InvalidState(f"Run {run_id} is {run.status}; only a failed run is restarted.",
                           "Cancel it first if it is still active, or start a new run.")
    if run.experiment_id is not None and not principal(request).is_admin:
        # Its next attempt goes to the experiment's backends again: the caller must be admitted to each.
        backends = store.get_experiment(run.experiment_id).backend.split(",")
        require_backends(request, run.project, backends, backend_entries(request))
    run = store.restart_run(run_id, "restarted by user")
    wake_scheduler(request)
    request.app.state.changes.bump(f"run:{run_id}")
    request.app.state.changes.bump("runs")
    return run


class HeartbeatResult(BaseModel):
    status: str = Field(description="the run's status: a runner stops its task when it is canceled or pruned")


class TaskUpdate(BaseModel):
    attempt: Int64 | None = None
    status: SafeStr | None = Field(None, description="one of " + ", ".join(RUN_STATUSES))
    host: SafeStr | None = None
    pid: Int64 | None = None
    exit_code: Int64 | None = None
    address: str | None = Field(None, max_length=300, pattern=r"^\S+:\d{1,5}$",
                                description="host:port the task listens on for its framework's rendezvous")


class Rendezvous(BaseModel):
    addresses: dict[str, str] = Field(description="task label (role-rank) → host:port, for the tasks that published one")
    complete: bool = Field(description="every task asked for has published its address")
    run_status: str


@router.post("/{run_id}/heartbeat", response_model=HeartbeatResult, dependencies=[Depends(run_writer)])
@run_token_route
def heartbeat(run_id: int, store: Store = Depends(get_store)) -> HeartbeatResult:
    return HeartbeatResult(status=store.heartbeat(run_id))


@router.put("/{run_id}/tasks/{role}/{rank}", response_model=Task, dependencies=[Depends(run_writer)])
@run_token_route
def update_task(run_id: int, role: Annotated[SafeStr, Path(min_length=1, max_length=64, description="e.g. main, master, worker")],
                rank: Int64, body: TaskUpdate, request: Request, store: Store = Depends(get_store)) -> Task:
    """Record a task's status, host, pid and exit code (called by the task runner)."""
    if body.status is not None and body.status not in RUN_STATUSES:
        raise InvalidInput(f"Unknown task status {body.status!r}.", f"Use one of: {', '.join(RUN_STATUSES)}.")
    task = store.upsert_task(run_id, role, rank, attempt=body.attempt, status=body.status, host=body.host, pid=body.pid,
                             exit_code=body.exit_code, address=body.address)
    request.app.state.changes.bump(f"run:{run_id}")
    return task


class TaskReportFields(TaskUpdate):
    role: SafeStr = Field(min_length=1, max_length=64)
    rank: Int64


class ReportStep(BaseModel):
    task: TaskReportFields | None = Field(None, description="the reporting task's fields (as PUT .../tasks/{role}/{rank})")
    run: RunUpdate | None = Field(None, description="the run's new status (as PATCH /runs/{id})")


class Report(ReportStep):
    then: ReportStep | None = Field(None, description="a second report applied after this one in the same transaction "
                                                       "(a task that ended before its start was sent: start and end at once)")


class ReportResult(BaseModel):
    applied: bool = Field(description="whether the run's status change was accepted (false: the run had ended)")
    status: str = Field(description="the run's status now")


@router.post("/{run_id}/report", response_model=ReportResult, dependencies=[Depends(run_writer)])
@run_token_route
def report(run_id: int, body: Report, request: Request, store: Store = Depends(get_store)) -> ReportResult:
    """A task runner's start or end report: its task and the run's status in one transaction.

    A status change the run refuses (it was canceled or pruned meanwhile) is not an
    error here: ``applied`` is false and ``status`` says what the run is.
    """
    steps = [_report_step(body)] + ([_report_step(body.then)] if body.then is not None else [])
    applied, status = store.report(run_id, steps=steps)
    run = steps[-1][1]
    if run is not None and applied and status in TERMINAL_STATUSES:
        wake_scheduler(request)  # a slot is free or a restart is due
    request.app.state.changes.bump(f"run:{run_id}")
    request.app.state.changes.bump("runs")
    return ReportResult(applied=applied, status=status)


def _report_step(step: ReportStep) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    run = None
    if step.run is not None:
        if step.run.status is None:
            raise InvalidInput("A report's run part needs a status.", "Send {\"run\": {\"status\": ...}} or leave run out.")
        run = step.run.model_dump()
    return (step.task.model_dump(exclude_none=True) if step.task is not None else None), run


@router.get("/{run_id}/rendezvous", response_model=Rendezvous, dependencies=[Depends(run_reader)])
@run_token_route
async def rendezvous(
    run_id: int,
    request: Request,
    attempt: int = Query(..., ge=1, description="the run's attempt whose tasks to read"),
    task: list[str] = Query(default=[], description="labels to wait for, e.g. master-0 (repeatable)"),
    wait: float = Query(0, ge=0, le=60, description="long-poll: wait up to this many seconds for every task asked for"),
) -> Rendezvous:
    """The rendezvous addresses tasks of a distributed run published (``PUT .../tasks/{role}/{rank}``
    with ``address``); tasks that connect to them wait here until each one they need is known."""
    store: Store = request.app.state.store
    changes = request.app.state.changes
    deadline = time.monotonic() + wait
    while True:
        seen = changes.version(f"run:{run_id}")
        addresses = await run_in_threadpool(store.task_addresses, run_id, attempt)
        run = await run_in_threadpool(store.get_run, run_id)
        complete = all(label in addresses for label in task)
        remaining = deadline - time.monotonic()
        if complete or remaining <= 0 or run.status in TERMINAL_STATUSES:
            return Rendezvous(addresses=addresses, complete=complete, run_status=run.status)
        await changes.wait(f"run:{run_id}", seen, remaining)


@router.post("/{run_id}/params", response_model=Run, dependencies=[Depends(run_writer)])
@run_token_route
def log_params(run_id: int, body: ParamsBody, store: Store = Depends(get_store)) -> Run:
    _check_keys(body.params, {})
    return store.log_params(run_id, body.params)


@router.post("/{run_id}/tags", response_model=Run, dependencies=[Depends(run_writer)])
@run_token_route
def set_tags(run_id: int, body: TagsBody, store: Store = Depends(get_store)) -> Run:
    _check_keys({}, body.tags)
    return store.set_tags(run_id, body.tags)


@router.delete("/{run_id}/tags/{key:path}", response_model=Run, dependencies=[Depends(run_writer)])
@run_token_route  # tag names may hold "/"
def delete_tag(run_id: int, key: str, store: Store = Depends(get_store)) -> Run:
    return store.delete_tag(run_id, key)


@router.post(
    "/{run_id}/metrics",
    response_model=MetricBatchResult,
    dependencies=[Depends(run_writer)],
    # Inline schema: no route takes MetricBatch as a parameter, so a $ref to it would dangle.
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": MetricBatch.model_json_schema()}}}},
)
@run_token_route
async def log_metrics(run_id: int, request: Request) -> MetricBatchResult:
    """Ingest a batch of points (the hot path: parsed with orjson, stored with one bulk insert).

    Parsing, checks and the write run in an ingest thread, a bounded number of them at a
    time (RUNYARD_INGEST_THREADS), so many writers at once do not slow down reads.
    """
    raw = await request.body()
    store: Store = request.app.state.store
    stored, duplicate = await run_ingest(request, _ingest_batch, store, run_id, raw)
    request.app.state.changes.bump(f"run:{run_id}")
    scheduler = getattr(request.app.state, "scheduler", None)
    if scheduler is not None and stored:
        scheduler.note_metrics(run_id)
    return MetricBatchResult(stored=stored, duplicate=duplicate)


def _ingest_batch(store: Store, run_id: int, raw: bytes) -> tuple[int, bool]:
    """Parse and check a metric batch's JSON, then store it: ``(points stored, was_duplicate)``."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise InvalidInput(f"The metric batch is not valid JSON: {e}.", "Send a JSON object with keys, steps, values, timestamps.") from e
    if not isinstance(body, dict):
        raise InvalidInput("The metric batch must be a JSON object.",
                           "Send {\"keys\": [...], \"steps\": [...], \"values\": [...], \"timestamps\": [...]}.")
    cols = []
    for name in ("keys", "steps", "values", "timestamps"):
        col = body.get(name)
        if not isinstance(col, list):
            raise InvalidInput(f"The metric batch needs a list {name!r}, but got {type(col).__name__}.",
                               "Send keys, steps, values and timestamps as lists of equal length.")
        cols.append(col)
    keys, steps, values, timestamps = cols
    if len(keys) > MAX_BATCH_POINTS:
        raise InvalidInput(f"A metric batch holds at most {MAX_BATCH_POINTS} points, but got {len(keys)}.",
                           "Split it into smaller batches.")
    if not all(type(s) is int for s in steps):
        raise InvalidInput("Metric steps must be integers.", "Send whole-number steps, e.g. the epoch or iteration.")
    if not all(type(t) in (int, float) for t in timestamps):
        raise InvalidInput("Metric timestamps must be numbers (seconds since the epoch).", "Send time.time() values.")
    if not all(type(k) is str for k in keys):
        raise InvalidInput("Metric keys must be strings.", "Name metrics like 'loss' or 'val/acc'.")
    for key in set(keys):
        names.check_key(key, "metric")
    batch_id = body.get("batch_id")
    if batch_id is not None and (not isinstance(batch_id, str) or len(batch_id) > 64):
        raise InvalidInput("batch_id must be a string of at most 64 characters.", "Use a UUID.")
    return store.ingest_metrics(run_id, keys, steps, values, timestamps, batch_id=batch_id)


@router.get("/{run_id}/metrics", response_model=dict[str, MetricSummary], dependencies=[Depends(run_reader)])
@run_token_route
def metric_summaries(run_id: int, store: Store = Depends(get_store)) -> dict[str, MetricSummary]:
    return store.metric_summaries(run_id)


@router.get("/{run_id}/metrics/{key:path}", response_model=MetricHistory, dependencies=[Depends(run_reader)])
@run_token_route
async def metric_history(
    run_id: int,
    key: str,
    request: Request,
    max_points: int | None = Query(default=None, ge=2, le=1_000_000, description="downsample to at most this many points"),
    attempt: str = Query(default="latest", max_length=20,
                         description="latest (the default), all, or an attempt number: whose points to return"),
) -> Response:
    """A metric's points in step order; downsampled keeping each bucket's min and max.

    A restarted run logs its steps again in its next attempt: the latest attempt's points are
    returned, every attempt's with ``attempt=all`` (one after the other, ``attempts`` naming each point's).
    """
    store: Store = request.app.state.store
    hist = await run_in_threadpool(store.metric_history, run_id, key, max_points=max_points, attempt=attempt)
    # orjson straight to bytes: 100,000 points serialise in a few ms.
    return Response(orjson.dumps(hist), media_type="application/json")
