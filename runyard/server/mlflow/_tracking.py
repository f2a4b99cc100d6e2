"""MLflow's tracking endpoints (``/api/2.0/mlflow/...``) over Runyard's projects, runs, params, tags and metrics."""

from __future__ import annotations

import base64
import json
import math
import re
import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool

import runyard.names as names
from runyard.errors import Conflict, InvalidInput, NotFound
from runyard.server._auth import (
    principal,
    require_project,
    require_project_write,
    require_run,
    require_user,
    visible_project_ids,
)
from runyard.server._deps import run_ingest, wake_scheduler
from runyard.server.mlflow._convert import (
    DEFAULT_EXPERIMENT,
    DEFAULT_PROJECT,
    DELETED_TAG,
    EXPERIMENT_DELETED_TAG,
    experiment_id_of,
    experiment_json,
    param_value,
    run_json,
)
from runyard.server.mlflow._errors import (
    MlflowError,
    MlflowRoute,
    authenticate_mlflow,
    double,
    entries,
    finite_or_text,
    int64,
    json_response,
    ms,
    request_fields,
    strings,
    text,
)
from runyard.server.mlflow._search import parse_order_by, parse_search_filter, view_filter
from runyard.store import EXTERNAL_BACKEND, TERMINAL_STATUSES, Project, Run, Store

__all__ = ["PREFIX", "SERVED", "router"]

PREFIX = "/api/2.0/mlflow"
router = APIRouter(prefix=PREFIX, route_class=MlflowRoute, dependencies=[Depends(authenticate_mlflow)], include_in_schema=False)

#: (method, path under PREFIX) of every endpoint served here: docs/mlflow.md lists them, the authorization tests check each.
SERVED: list[tuple[str, str]] = []

_STATUS_OF = {"RUNNING": "running", "SCHEDULED": "queued", "FINISHED": "succeeded", "FAILED": "failed", "KILLED": "canceled"}
# MLflow's own limits on one log-batch request.
MAX_BATCH_METRICS, MAX_BATCH_PARAMS, MAX_BATCH_TAGS = 1000, 100, 1000
MAX_PARAM_VALUE = 6000
MAX_RESULTS = 10000  # runs per page (the store's page limit; MLflow's client asks for at most that per page)


def _route(method: str, path: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    SERVED.append((method, path.replace(":path}", "}")))
    return router.api_route(path, methods=[method])


def _store(request: Request) -> Store:
    return request.app.state.store


async def _threaded(fn: Callable[..., Any], *args: Any) -> Any:
    return await run_in_threadpool(fn, *args)


# ------------------------------------------------------------------ experiments ↔ projects
def _not_found_experiment(exp_id: str) -> MlflowError:
    return MlflowError("RESOURCE_DOES_NOT_EXIST", f"No experiment with id {exp_id!r}.",
                       "An MLflow experiment is a Runyard project: list them with `runyard projects`.")


def _project_name_of(request: Request, exp_id: str, need: str = "viewer") -> str:
    """The name of the project behind experiment ``exp_id`` the caller has role ``need`` in (404 when they may not
    see it): one small read, for the paths that need no more (a run's creation)."""
    store = _store(request)
    if exp_id == DEFAULT_EXPERIMENT:
        name: str | None = DEFAULT_PROJECT
    elif exp_id.isdigit() and len(exp_id) < 19:
        name = store.project_names([int(exp_id)]).get(int(exp_id))
    else:
        name = None
    if name is None:
        raise _not_found_experiment(exp_id)
    try:
        require_project(request, name, need)
    except NotFound as e:
        raise _not_found_experiment(exp_id) from e
    return name


def _project_of(request: Request, exp_id: str, need: str = "viewer") -> Project:
    """The project behind experiment ``exp_id`` the caller has role ``need`` in (404 when they may not see it)."""
    project = _store(request).find_project(_project_name_of(request, exp_id, need))
    if project is None:  # deleted meanwhile
        raise _not_found_experiment(exp_id)
    return project


def _default_experiment() -> dict[str, Any]:
    """Experiment "0" before any run was logged to it (MLflow always has one)."""
    return {"experiment_id": DEFAULT_EXPERIMENT, "name": DEFAULT_PROJECT, "artifact_location": "mlflow-artifacts:/0",
            "lifecycle_stage": "active", "creation_time": 0, "last_update_time": 0, "tags": []}


def _check_experiment_name(name: str) -> str:
    problem = names.project_name_problem(name)
    if problem is not None:
        raise MlflowError("INVALID_PARAMETER_VALUE",
                          f"An MLflow experiment is a Runyard project, whose name {problem}; got {name!r}.",
                          f"Use a name such as {names.suggest_project_name(name)!r}.")
    return name


def _experiment_tags(items: list[dict[str, Any]]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for item in items:
        key = text(item, "key", required=True) or ""
        tags[key] = text(item, "value", default="") or ""
    return tags


@_route("POST", "/experiments/create")
async def create_experiment(request: Request) -> Response:
    fields = await request_fields(request)
    name = _check_experiment_name(text(fields, "name", required=True) or "")
    tags = _experiment_tags(entries(fields, "tags"))

    def create() -> Project:
        p = require_user(request)
        try:
            return _store(request).create_project(name, owner_id=p.user.id if p.user is not None else None, tags=tags)
        except Conflict as e:
            raise MlflowError("RESOURCE_ALREADY_EXISTS", f"Experiment {name!r} already exists (or the name is reserved).",
                              "Use mlflow.set_experiment(name) to use it, or pick another name.") from e

    project = await _threaded(create)
    return json_response({"experiment_id": experiment_id_of(project.id, project.name)})


@_route("GET", "/experiments/get")
async def get_experiment(request: Request) -> Response:
    fields = await request_fields(request)
    exp_id = text(fields, "experiment_id", required=True) or ""

    def get() -> dict[str, Any]:
        if exp_id == DEFAULT_EXPERIMENT and _store(request).find_project(DEFAULT_PROJECT) is None:
            require_user(request)
            return _default_experiment()
        return experiment_json(_project_of(request, exp_id))

    return json_response({"experiment": await _threaded(get)})


@_route("GET", "/experiments/get-by-name")
async def get_experiment_by_name(request: Request) -> Response:
    fields = await request_fields(request)
    name = text(fields, "experiment_name", required=True) or ""

    def get() -> dict[str, Any]:
        missing = MlflowError("RESOURCE_DOES_NOT_EXIST", f"Could not find experiment with name {name!r}.",
                              "Create it with mlflow.create_experiment or mlflow.set_experiment.")
        if names.project_name_problem(name) is not None:
            raise missing
        project = _store(request).find_project(name)
        if project is None:
            raise missing
        try:
            require_project(request, name, "viewer")
        except NotFound as e:
            raise missing from e
        return experiment_json(project)

    return json_response({"experiment": await _threaded(get)})


_EXP_FILTER = re.compile(r"""^\s*(?:attributes\.|attribute\.)?(name|tags\.(?:`[^`]+`|"[^"]+"|[\w.\-]+))"""
                         r"""\s*(=|!=|LIKE|ILIKE)\s*'((?:[^']|'')*)'\s*$""", re.IGNORECASE)


def _like(pattern: str, value: str, fold: bool) -> bool:
    regex = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE | re.DOTALL if fold else re.DOTALL) is not None


def _experiment_matcher(filter_text: str) -> Callable[[Project], bool]:
    tests: list[Callable[[Project], bool]] = []
    for clause in re.split(r"(?i)\s+and\s+", filter_text.strip()) if filter_text.strip() else []:
        m = _EXP_FILTER.match(clause)
        if m is None:
            raise MlflowError("INVALID_PARAMETER_VALUE", f"Invalid experiment filter clause {clause!r}.",
                              "Runyard serves name = != LIKE ILIKE 'TEXT' and tags.KEY = != LIKE ILIKE 'TEXT', joined by AND.")
        field, op, value = m.group(1), m.group(2).upper(), m.group(3).replace("''", "'")
        tag = field[5:].strip('`"') if field.lower().startswith("tags.") else None

        def test(p: Project, tag: str | None = tag, op: str = op, value: str = value) -> bool:
            have = p.name if tag is None else p.tags.get(tag)
            if have is None:
                return False
            if op == "=":
                return have == value
            if op == "!=":
                return have != value
            return _like(value, have, op == "ILIKE")

        tests.append(test)
    return lambda p: all(t(p) for t in tests)


def _offset_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = int(base64.urlsafe_b64decode(token.encode()).decode())
    except (ValueError, UnicodeDecodeError) as e:
        raise MlflowError("INVALID_PARAMETER_VALUE", f"Invalid page_token {token!r}.",
                          "Pass the next_page_token of the previous answer unchanged.") from e
    if offset < 0:
        raise MlflowError("INVALID_PARAMETER_VALUE", f"Invalid page_token {token!r}.", None)
    return offset


def _token_of(offset: int) -> str:
    return base64.urlsafe_b64encode(str(offset).encode()).decode()


def _max_results(fields: dict[str, Any], default: int, limit: int) -> int:
    n = int64(fields, "max_results", default=default)
    assert n is not None
    if n < 1:
        raise MlflowError("INVALID_PARAMETER_VALUE", f"max_results must be at least 1, but got {n}.", None)
    return min(n, limit)


@_route("POST", "/experiments/search")
async def search_experiments(request: Request) -> Response:
    fields = await request_fields(request)
    max_results = _max_results(fields, 1000, 50000)
    offset = _offset_token(text(fields, "page_token"))
    match = _experiment_matcher(text(fields, "filter", default="") or "")
    view = (text(fields, "view_type", default="ACTIVE_ONLY") or "ACTIVE_ONLY").upper()
    if view not in ("ACTIVE_ONLY", "DELETED_ONLY", "ALL"):
        raise MlflowError("INVALID_PARAMETER_VALUE", f"Unknown view_type {view!r}.", "Use ACTIVE_ONLY, DELETED_ONLY or ALL.")
    order_by = strings(fields, "order_by")

    def search() -> dict[str, Any]:
        require_user(request)
        visible = visible_project_ids(request)
        projects = [p for p in _store(request).list_projects() if (visible is None or p.id in visible) and match(p)]
        if view != "ALL":
            want = view == "DELETED_ONLY"
            projects = [p for p in projects if (p.tags.get(EXPERIMENT_DELETED_TAG) == "deleted") == want]
        for clause in reversed(order_by or ["creation_time DESC"]):
            words = clause.split()
            key = words[0].removeprefix("attributes.") if words else ""
            desc = len(words) > 1 and words[1].upper() == "DESC"
            sort_key: dict[str, Callable[[Project], Any]] = {
                "name": lambda p: p.name, "experiment_id": lambda p: p.id, "creation_time": lambda p: p.created_at,
                "last_update_time": lambda p: p.updated_at}
            if key not in sort_key or len(words) > 2:
                raise MlflowError("INVALID_PARAMETER_VALUE", f"Invalid order_by clause {clause!r}.",
                                  "Sort experiments by name, experiment_id, creation_time or last_update_time [ASC|DESC].")
            projects.sort(key=sort_key[key], reverse=desc)
        page = projects[offset:offset + max_results]
        out: dict[str, Any] = {"experiments": [experiment_json(p) for p in page]}
        if offset + max_results < len(projects):
            out["next_page_token"] = _token_of(offset + max_results)
        return out

    return json_response(await _threaded(search))


@_route("POST", "/experiments/update")
async def update_experiment(request: Request) -> Response:
    fields = await request_fields(request)
    exp_id = text(fields, "experiment_id", required=True) or ""
    new_name = _check_experiment_name(text(fields, "new_name", required=True) or "")

    def update() -> None:
        project = _project_of(request, exp_id, "owner")
        if project.name == DEFAULT_PROJECT:
            raise MlflowError("INVALID_PARAMETER_VALUE", "The default experiment (id 0) cannot be renamed.", None)
        try:
            _store(request).rename_project(project.name, new_name)
        except Conflict as e:
            raise MlflowError("RESOURCE_ALREADY_EXISTS", f"Experiment {new_name!r} already exists.", "Pick another name.") from e

    await _threaded(update)
    return json_response({})


async def _set_experiment_deleted(request: Request, deleted: bool) -> Response:
    fields = await request_fields(request)
    exp_id = text(fields, "experiment_id", required=True) or ""

    def change() -> None:
        project = _project_of(request, exp_id, "owner")
        if deleted:
            _store(request).set_project_tags(project.name, {EXPERIMENT_DELETED_TAG: "deleted"})
        elif EXPERIMENT_DELETED_TAG in project.tags:
            _store(request).set_project_tags(project.name, {}, remove=[EXPERIMENT_DELETED_TAG])

    await _threaded(change)
    return json_response({})


@_route("POST", "/experiments/delete")
async def delete_experiment(request: Request) -> Response:
    return await _set_experiment_deleted(request, True)


@_route("POST", "/experiments/restore")
async def restore_experiment(request: Request) -> Response:
    return await _set_experiment_deleted(request, False)


@_route("POST", "/experiments/set-experiment-tag")
async def set_experiment_tag(request: Request) -> Response:
    fields = await request_fields(request)
    exp_id = text(fields, "experiment_id", required=True) or ""
    key = text(fields, "key", required=True) or ""
    value = text(fields, "value", default="") or ""

    def change() -> None:
        project = _project_of(request, exp_id, "editor")
        _store(request).set_project_tags(project.name, {key: value})

    await _threaded(change)
    return json_response({})


@_route("POST", "/experiments/delete-experiment-tag")
async def delete_experiment_tag(request: Request) -> Response:
    fields = await request_fields(request)
    exp_id = text(fields, "experiment_id", required=True) or ""
    key = text(fields, "key", required=True) or ""

    def change() -> None:
        project = _project_of(request, exp_id, "editor")
        _store(request).set_project_tags(project.name, {}, remove=[key])

    await _threaded(change)
    return json_response({})


# ------------------------------------------------------------------ runs
def _run_id(fields: dict[str, Any]) -> int:
    raw = text(fields, "run_id") or text(fields, "run_uuid")
    if not raw:
        raise MlflowError("INVALID_PARAMETER_VALUE", "Missing value for required parameter 'run_id'.", None)
    if not raw.isdigit() or len(raw) > 18:
        raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"Run {raw!r} not found.", "Runyard's run ids are numbers: `runyard ls` lists them.")
    return int(raw)


def _check_run(request: Request, run_id: int, need: str) -> None:
    if principal(request).kind == "local":
        return  # local mode may use every run: the read or write that follows answers for a missing one
    try:
        require_run(request, run_id, need)
    except NotFound as e:
        raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"Run '{run_id}' not found.", "List runs with `runyard ls`.") from e


def _get_run(request: Request, run_id: int) -> Run:
    run = _store(request).find_run(run_id, details=False)
    if run is None:
        raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"Run '{run_id}' not found.", "List runs with `runyard ls`.")
    return run


def _runs_json(request: Request, runs: list[Run]) -> list[dict[str, Any]]:
    ids = _store(request).project_ids(sorted({r.project for r in runs}))
    return [run_json(r, experiment_id_of(ids.get(r.project, 0), r.project)) for r in runs]


def _changed(request: Request, run_id: int) -> None:
    request.app.state.changes.bump(f"run:{run_id}")
    request.app.state.changes.bump("runs")


def _tags_of(items: list[dict[str, Any]]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for item in items:
        key = text(item, "key", required=True) or ""
        names.check_key(key, "tag")
        tags[key] = text(item, "value", default="") or ""
    return tags


@_route("POST", "/runs/create")
async def create_run(request: Request) -> Response:
    fields = await request_fields(request)
    exp_id = text(fields, "experiment_id", default=DEFAULT_EXPERIMENT) or DEFAULT_EXPERIMENT
    tags = _tags_of(entries(fields, "tags"))
    name = text(fields, "run_name") or tags.get("mlflow.runName", "")
    tags.pop("mlflow.runName", None)
    user = text(fields, "user_id")
    names.check_run_name(name)
    int64(fields, "start_time")  # checked; Runyard records the time the run is created

    def create() -> dict[str, Any]:
        from runyard.store import insert_run

        if exp_id == DEFAULT_EXPERIMENT:
            project = DEFAULT_PROJECT
        else:
            project = _project_name_of(request, exp_id, "viewer")
        owner_id = require_project_write(request, project)
        p = principal(request)
        tags.setdefault("mlflow.user", user or (p.user.username if p.user is not None else ""))
        # Backend "mlflow": the run runs outside Runyard, and without heartbeats it is never failed as lost.
        run = insert_run(_store(request), project, name=name, tags=tags, status="running", owner_id=owner_id,
                         backend=EXTERNAL_BACKEND)
        return _runs_json(request, [run])[0]

    out = await _threaded(create)
    request.app.state.changes.bump("runs")
    return json_response({"run": out})


@_route("GET", "/runs/get")
async def get_run(request: Request) -> Response:
    fields = await request_fields(request)
    run_id = _run_id(fields)

    def get() -> dict[str, Any]:
        _check_run(request, run_id, "viewer")
        return _runs_json(request, [_get_run(request, run_id)])[0]

    return json_response({"run": await _threaded(get)})


@_route("POST", "/runs/update")
async def update_run(request: Request) -> Response:
    fields = await request_fields(request)
    run_id = _run_id(fields)
    status = text(fields, "status")
    if status is not None and status.upper() not in _STATUS_OF:
        raise MlflowError("INVALID_PARAMETER_VALUE", f"Unknown run status {status!r}.",
                          "Use RUNNING, SCHEDULED, FINISHED, FAILED or KILLED.")
    new_name = text(fields, "run_name")
    if new_name:
        names.check_run_name(new_name)
    int64(fields, "end_time")  # checked; Runyard records the time the status changes

    def update() -> dict[str, Any]:
        _check_run(request, run_id, "editor")
        store = _store(request)
        run = _get_run(request, run_id)
        if new_name and new_name != run.name:
            run = store.rename_run(run_id, new_name)
        if status is not None:
            target = _STATUS_OF[status.upper()]
            # A run that ended keeps its status (Runyard's statuses never leave an end): MLflow's client resumes a
            # finished run (start_run(run_id=...): RUNNING, later FINISHED again) to log more, which it may.
            if run.status != target and run.status not in TERMINAL_STATUSES:
                run = store.set_run_status(run_id, target, message="set through the MLflow API") or run
                if target in TERMINAL_STATUSES:
                    wake_scheduler(request)
        return _runs_json(request, [run])[0]["info"]

    info = await _threaded(update)
    _changed(request, run_id)
    return json_response({"run_info": info})


async def _set_run_deleted(request: Request, deleted: bool) -> Response:
    fields = await request_fields(request)
    run_id = _run_id(fields)

    def change() -> None:
        _check_run(request, run_id, "editor")
        store = _store(request)
        if deleted:
            store.set_tags(run_id, {DELETED_TAG: "true"})
        elif DELETED_TAG in _get_run(request, run_id).tags:
            store.delete_tag(run_id, DELETED_TAG)

    await _threaded(change)
    _changed(request, run_id)
    return json_response({})


@_route("POST", "/runs/delete")
async def delete_run(request: Request) -> Response:
    """Marks the run deleted (tag runyard.mlflow.deleted): searches leave it out; Runyard keeps it."""
    return await _set_run_deleted(request, True)


@_route("POST", "/runs/restore")
async def restore_run(request: Request) -> Response:
    return await _set_run_deleted(request, False)


def _metric_point(item: dict[str, Any], now: float | None = None) -> tuple[str, int, float | None, float]:
    key = text(item, "key", required=True) or ""
    names.check_key(key, "metric")
    value = double(item, "value")
    timestamp = int64(item, "timestamp", default=None)
    step = int64(item, "step", default=0)
    assert step is not None
    ts = (time.time() if now is None else now) if timestamp is None else timestamp / 1000.0
    return key, step, (None if math.isnan(value) else value), ts


Columns = tuple[list[str], list[int], list[float | None], list[float]]  # keys, steps, values, times


def _metric_points(items: list[dict[str, Any]]) -> Columns:
    """:func:`_metric_point` of each item, as the store's columns, with a fast path for what MLflow's client
    sends (a float value, the int64s as decimal text or JSON integers, a key already checked in this batch);
    anything else goes the checked way, so a batch is refused or kept exactly as the one-by-one checks would."""
    checked: set[str] = set()
    now = time.time()
    keys: list[str] = []
    steps: list[int] = []
    values: list[float | None] = []
    times: list[float] = []
    for item in items:
        key = item.get("key")
        value = item.get("value")
        timestamp = item.get("timestamp")
        step = item.get("step", 0)
        if (type(key) is str and key in checked and type(value) is float
                and (type(timestamp) is str and 0 < len(timestamp) <= 18 and timestamp.isdigit()
                     or type(timestamp) is int and 0 <= timestamp < 2**63)
                and (type(step) is str and 0 < len(step) <= 18 and step.isdigit()
                     or type(step) is int and -(2**63) <= step < 2**63)):
            keys.append(key)
            steps.append(int(step))
            values.append(None if value != value else value)
            times.append(int(timestamp) / 1000.0)
            continue
        key, step, value, ts = _metric_point(item, now)
        checked.add(key)
        keys.append(key)
        steps.append(step)
        values.append(value)
        times.append(ts)
    return keys, steps, values, times


async def _ingest(request: Request, run_id: int, points: Columns) -> None:
    keys, steps, values, ts = points
    if not keys:
        return
    store = _store(request)
    stored, _ = await run_ingest(request, store.ingest_metrics, run_id, keys, steps, values, ts)
    scheduler = getattr(request.app.state, "scheduler", None)
    if scheduler is not None and stored:
        if run_id in scheduler.state.prunable:
            scheduler.note_metrics(run_id)  # known: a dictionary lookup
        else:
            await _threaded(scheduler.note_metrics, run_id)  # its first points: the run is read, off the event loop


@_route("POST", "/runs/log-metric")
async def log_metric(request: Request) -> Response:
    fields = await request_fields(request)
    run_id = _run_id(fields)
    key, step, value, ts = _metric_point(fields)
    await _threaded(_check_run, request, run_id, "editor")
    await _ingest(request, run_id, ([key], [step], [value], [ts]))
    _changed(request, run_id)
    return json_response({})


def _param(item: dict[str, Any]) -> tuple[str, Any]:
    key = text(item, "key", required=True) or ""
    names.check_key(key, "param")
    value = text(item, "value", default="") or ""
    if len(value) > MAX_PARAM_VALUE:
        raise MlflowError("INVALID_PARAMETER_VALUE", f"Param {key!r} has a value of {len(value)} characters; "
                          f"at most {MAX_PARAM_VALUE} are allowed.", "Log long texts as an artifact.")
    return key, param_value(value)


@_route("POST", "/runs/log-parameter")
async def log_param(request: Request) -> Response:
    fields = await request_fields(request)
    run_id = _run_id(fields)
    key, value = _param(fields)

    def write() -> None:
        _check_run(request, run_id, "editor")
        _store(request).log_params_and_tags(run_id, {key: value}, {})

    await _threaded(write)
    _changed(request, run_id)
    return json_response({})


def _write_tag(request: Request, run_id: int, key: str, value: str) -> None:
    _check_run(request, run_id, "editor")
    if key == "mlflow.runName":
        _store(request).rename_run(run_id, value)
    else:
        _store(request).log_params_and_tags(run_id, {}, {key: value})


@_route("POST", "/runs/set-tag")
async def set_tag(request: Request) -> Response:
    fields = await request_fields(request)
    run_id = _run_id(fields)
    tags = _tags_of([fields])
    key, value = next(iter(tags.items()))
    await _threaded(_write_tag, request, run_id, key, value)
    _changed(request, run_id)
    return json_response({})


@_route("POST", "/runs/delete-tag")
async def delete_tag(request: Request) -> Response:
    fields = await request_fields(request)
    run_id = _run_id(fields)
    key = text(fields, "key", required=True) or ""

    def delete() -> None:
        _check_run(request, run_id, "editor")
        try:
            _store(request).delete_tag(run_id, key)
        except NotFound as e:
            raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"No tag with name {key!r} in run {run_id}.", None) from e

    await _threaded(delete)
    _changed(request, run_id)
    return json_response({})


@_route("POST", "/runs/log-batch")
async def log_batch(request: Request) -> Response:
    """Params and tags in one transaction, then the metrics through the ingest path (one bulk write).

    Everything is checked before anything is written: a bad entry refuses the whole batch.
    """
    fields = await request_fields(request)
    run_id = _run_id(fields)
    metric_items, param_items, tag_items = entries(fields, "metrics"), entries(fields, "params"), entries(fields, "tags")
    for what, items, cap in (("metrics", metric_items, MAX_BATCH_METRICS), ("params", param_items, MAX_BATCH_PARAMS),
                             ("tags", tag_items, MAX_BATCH_TAGS)):
        if len(items) > cap:
            raise MlflowError("INVALID_PARAMETER_VALUE", f"A batch may hold at most {cap} {what}, but got {len(items)}.",
                              "Split it into several log_batch calls.")

    def write() -> Columns:
        # Checked off the event loop (1,000 points are a few milliseconds of Python), all before any write.
        points = _metric_points(metric_items)
        params: dict[str, Any] = {}
        for item in param_items:
            key, value = _param(item)
            if key in params and params[key] != value:
                raise MlflowError("INVALID_PARAMETER_VALUE", f"The batch logs param {key!r} twice with different "
                                  "values.", "Params are fixed once logged; log each once.")
            params[key] = value
        tags = _tags_of(tag_items)
        new_name = tags.pop("mlflow.runName", None)
        if new_name is not None:
            names.check_run_name(new_name)
        _check_run(request, run_id, "editor")
        if params or tags:
            _store(request).log_params_and_tags(run_id, params, tags)
        if new_name is not None:
            _store(request).rename_run(run_id, new_name)
        return points

    points = await _threaded(write)
    await _ingest(request, run_id, points)
    _changed(request, run_id)
    return json_response({})


INPUT_TAG_PREFIX = "runyard.mlflow.input."


@_route("POST", "/runs/log-inputs")
async def log_inputs(request: Request) -> Response:
    """Datasets a run read, kept as run tags ``runyard.mlflow.input.NAME`` (JSON of name, digest, source type,
    source and context; schema and profile are not kept). Model inputs are accepted and not kept."""
    fields = await request_fields(request)
    run_id = _run_id(fields)
    tags: dict[str, str] = {}
    for item in entries(fields, "datasets"):
        dataset = item.get("dataset")
        if not isinstance(dataset, dict):
            raise MlflowError("INVALID_PARAMETER_VALUE", "Each dataset input needs a 'dataset' object.", None)
        name = text(dataset, "name", required=True) or ""
        context = next((text(t, "value") for t in entries(item, "tags") if t.get("key") == "mlflow.data.context"), None)
        record = {k: text(dataset, k) for k in ("name", "digest", "source_type", "source")}
        record["context"] = context
        key = f"{INPUT_TAG_PREFIX}{name}"
        names.check_key(key, "tag")
        tags[key] = json.dumps(record, sort_keys=True)

    def write() -> None:
        _check_run(request, run_id, "editor")
        if tags:
            _store(request).log_params_and_tags(run_id, {}, tags)

    await _threaded(write)
    _changed(request, run_id)
    return json_response({})


@_route("POST", "/runs/outputs")
async def log_outputs(request: Request) -> Response:
    """Accepted (the models a run produced are its ``logged-models``); nothing more is kept."""
    fields = await request_fields(request)
    run_id = _run_id(fields)
    await _threaded(_check_run, request, run_id, "editor")
    return json_response({})


@_route("POST", "/runs/log-model")
async def log_model(request: Request) -> Response:
    """MLflow 2's model record: appended to the run's ``mlflow.log-model.history`` tag, as MLflow does."""
    fields = await request_fields(request)
    run_id = _run_id(fields)
    model = text(fields, "model_json", required=True) or ""
    try:
        entry = json.loads(model)
    except ValueError as e:
        raise MlflowError("INVALID_PARAMETER_VALUE", "model_json is not JSON.", None) from e

    def write() -> None:
        _check_run(request, run_id, "editor")
        old = _get_run(request, run_id).tags.get("mlflow.log-model.history")
        history = json.loads(old) if old else []
        history.append(entry)
        _store(request).log_params_and_tags(run_id, {}, {"mlflow.log-model.history": json.dumps(history)})

    await _threaded(write)
    return json_response({})


@_route("POST", "/runs/search")
async def search_runs(request: Request) -> Response:
    fields = await request_fields(request)
    exp_ids = strings(fields, "experiment_ids")
    filters = parse_search_filter(text(fields, "filter", default="") or "")
    filters += view_filter(text(fields, "run_view_type"))
    order = parse_order_by(strings(fields, "order_by"))
    limit = _max_results(fields, 1000, MAX_RESULTS)
    offset = _offset_token(text(fields, "page_token"))

    def search() -> dict[str, Any]:
        require_user(request)
        store = _store(request)
        visible = visible_project_ids(request)
        wanted: list[int] = []
        for exp_id in exp_ids:
            if exp_id == DEFAULT_EXPERIMENT:
                found = store.project_ids([DEFAULT_PROJECT]).get(DEFAULT_PROJECT)
                if found is not None:
                    wanted.append(found)
            elif exp_id.isdigit() and len(exp_id) < 19:
                wanted.append(int(exp_id))
        project_ids = wanted if exp_ids else visible
        if visible is not None and project_ids is not None:
            project_ids = [i for i in project_ids if i in set(visible)]
        if project_ids is not None and not project_ids:
            return {"runs": []}
        try:
            page = store.list_runs(filters=filters, order=order, limit=limit, offset=offset, project_ids=project_ids,
                                   count=False)
        except InvalidInput as e:
            raise MlflowError("INVALID_PARAMETER_VALUE", e.message, e.hint) from e
        out: dict[str, Any] = {"runs": _runs_json(request, page.items)}
        if offset + len(page.items) < page.total:
            out["next_page_token"] = _token_of(offset + len(page.items))
        return out

    return json_response(await _threaded(search))


# ------------------------------------------------------------------ metric histories
def _history(request: Request, run_id: int, key: str, max_points: int | None = None) -> dict[str, Any] | None:
    try:
        return _store(request).metric_history(run_id, key, max_points=max_points)
    except NotFound:
        _get_run(request, run_id)  # a missing run is an error; a missing metric has no points
        return None


@_route("GET", "/metrics/get-history")
async def get_metric_history(request: Request) -> Response:
    fields = await request_fields(request)
    run_id = _run_id(fields)
    key = text(fields, "metric_key", required=True) or ""
    limit = _max_results(fields, 2**62, 2**62)  # no max_results: every point (MLflow's client asks for them all)
    offset = _offset_token(text(fields, "page_token"))

    def read() -> dict[str, Any]:
        _check_run(request, run_id, "viewer")
        hist = _history(request, run_id, key)
        if hist is None:
            return {"metrics": []}
        steps, values, stamps = hist["steps"], hist["values"], hist["timestamps"]
        end = min(len(steps), offset + limit)
        out: dict[str, Any] = {"metrics": [
            {"key": key, "value": finite_or_text(values[i]), "timestamp": ms(stamps[i]), "step": steps[i]}
            for i in range(offset, end)]}
        if end < len(steps) and "max_results" in fields:
            out["next_page_token"] = _token_of(end)
        return out

    return json_response(await _threaded(read))


@_route("GET", "/metrics/get-history-bulk-interval")
async def get_metric_history_bulk_interval(request: Request) -> Response:
    fields = await request_fields(request)
    run_ids = strings(fields, "run_ids")
    if not run_ids or len(run_ids) > 100:
        raise MlflowError("INVALID_PARAMETER_VALUE", f"run_ids must name 1 to 100 runs, but got {len(run_ids)}.", None)
    key = text(fields, "metric_key", required=True) or ""
    start, end = int64(fields, "start_step"), int64(fields, "end_step")
    limit = _max_results(fields, 1000, 100000)

    def read() -> dict[str, Any]:
        points: list[dict[str, Any]] = []
        for raw in run_ids:
            run_id = _run_id({"run_id": raw})
            _check_run(request, run_id, "viewer")
            hist = _history(request, run_id, key, max_points=max(2, limit))
            if hist is None:
                continue
            for s, v, t in zip(hist["steps"], hist["values"], hist["timestamps"], strict=True):
                if (start is None or s >= start) and (end is None or s <= end):
                    points.append({"key": key, "value": finite_or_text(v), "timestamp": ms(t), "step": s, "run_id": raw})
        return {"metrics": points}

    return json_response(await _threaded(read))
