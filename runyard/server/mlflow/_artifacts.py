"""MLflow's artifact proxy (``/api/2.0/mlflow-artifacts/artifacts``) over runs' artifacts, and MLflow 3's logged models.

An experiment's artifact location is ``mlflow-artifacts:/EXP``, a run's artifact URI
``mlflow-artifacts:/EXP/RUN/artifacts``: the MLflow client then uploads, lists and downloads
through this proxy, and a file ``EXP/RUN/artifacts/PATH`` is the run's artifact ``PATH`` in
Runyard's artifact store (``runyard download``, the UI's file list).

A logged model (``mlflow.sklearn.log_model``, autolog) belongs to the run that logged it: its
id is ``m-RUN-NAME``, its files are the run's artifacts under ``NAME/`` (``model/MLmodel``...),
and its record (status, type, tags) is the run tag ``runyard.mlflow.model.NAME``.
"""

from __future__ import annotations

import json
import posixpath
import re
import time
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

import runyard.names as names
from runyard.artifacts import clean_path
from runyard.errors import InvalidInput
from runyard.server.mlflow._convert import DEFAULT_EXPERIMENT, DEFAULT_PROJECT, MODEL_TAG_PREFIX, experiment_id_of
from runyard.server.mlflow._errors import (
    MlflowError,
    MlflowRoute,
    authenticate_mlflow,
    entries,
    int64,
    json_response,
    request_fields,
    strings,
    text,
)
from runyard.server.mlflow._tracking import _check_run, _get_run, _offset_token, _project_name_of, _route, _run_id, _store, _token_of
from runyard.server.routers.artifacts import receive_artifact
from runyard.store import Run

__all__ = ["ARTIFACTS_PREFIX", "ARTIFACTS_SERVED", "proxy"]

ARTIFACTS_PREFIX = "/api/2.0/mlflow-artifacts"
proxy = APIRouter(prefix=ARTIFACTS_PREFIX, route_class=MlflowRoute, dependencies=[Depends(authenticate_mlflow)],
                  include_in_schema=False)
ARTIFACTS_SERVED = [("PUT", "/artifacts/{path}"), ("GET", "/artifacts/{path}"), ("GET", "/artifacts")]
_RUN_PATH = re.compile(r"^([0-9]{1,18})/([0-9]{1,18})/artifacts(?:/(.*))?$")


def _locate(request: Request, path: str, need: str) -> tuple[int, str]:
    """``EXP/RUN/artifacts/PATH`` → (run id, PATH cleaned; "" for the run's root) once the caller may use the run."""
    m = _RUN_PATH.match(path.strip("/"))
    if m is None:
        raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"No artifact location {path!r}.",
                          "Runyard serves run artifacts at EXP/RUN/artifacts/PATH (a run's artifact_uri).")
    run_id = int(m.group(2))
    try:
        rest = clean_path(m.group(3)) if m.group(3) else ""
    except InvalidInput as e:
        raise MlflowError("INVALID_PARAMETER_VALUE", e.message, e.hint) from e
    _check_run(request, run_id, need)
    run = _get_run(request, run_id)
    ids = _store(request).project_ids([run.project])
    if experiment_id_of(ids.get(run.project, 0), run.project) != m.group(1):
        raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"Run {run_id} is not in experiment {m.group(1)}.", None)
    return run_id, rest


@proxy.put("/artifacts/{path:path}")
async def upload(path: str, request: Request) -> Response:
    run_id, rest = await run_in_threadpool(_locate, request, path, "editor")
    if not rest:
        raise MlflowError("INVALID_PARAMETER_VALUE", "An upload needs a file path after EXP/RUN/artifacts/.", None)
    await receive_artifact(request, run_id, rest)
    request.app.state.changes.bump(f"run:{run_id}")
    return json_response({})


@proxy.get("/artifacts/{path:path}")
async def download(path: str, request: Request) -> Response:
    run_id, rest = await run_in_threadpool(_locate, request, path, "viewer")
    art = await run_in_threadpool(_store(request).find_artifact, run_id, rest)
    if art is None:
        raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"Run {run_id} has no artifact {rest!r}.", None)
    return StreamingResponse(request.app.state.artifacts.read_run_file(run_id, rest), media_type="application/octet-stream",
                             headers={"Content-Length": str(art.size)})


@proxy.get("/artifacts")
async def list_artifacts(request: Request) -> Response:
    fields = await request_fields(request)
    path = text(fields, "path", default="") or ""

    def listing() -> dict[str, Any]:
        run_id, rest = _locate(request, path, "viewer")
        files: dict[str, dict[str, Any]] = {}
        for art in _store(request).list_artifacts(run_id, rest):
            if art.path == rest:  # the path is a file: MLflow lists the file itself
                files[posixpath.basename(art.path)] = {"path": posixpath.basename(art.path), "is_dir": False,
                                                       "file_size": art.size}
                continue
            inner = art.path[len(rest) + 1:] if rest else art.path
            head, sep, _ = inner.partition("/")
            if sep:
                files.setdefault(head, {"path": head, "is_dir": True})
            else:
                files[head] = {"path": head, "is_dir": False, "file_size": art.size}
        return {"files": [files[k] for k in sorted(files)]}

    return json_response(await run_in_threadpool(listing))


# ------------------------------------------------------------------ logged models (MLflow 3)
_MODEL_ID = re.compile(r"^m-([0-9]{1,18})-(.+)$")
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
_STATUSES = ("LOGGED_MODEL_PENDING", "LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED")


def _model_json(run: Run, exp_id: str, name: str, record: dict[str, Any]) -> dict[str, Any]:
    return {"info": {
        "model_id": f"m-{run.id}-{name}", "experiment_id": exp_id, "name": name, "source_run_id": str(run.id),
        "artifact_uri": f"mlflow-artifacts:/{exp_id}/{run.id}/artifacts/{name}",
        "creation_timestamp_ms": record.get("created", 0), "last_updated_timestamp_ms": record.get("updated", 0),
        "status": record.get("status", "LOGGED_MODEL_PENDING"), "model_type": record.get("model_type") or "",
        "tags": [{"key": k, "value": v} for k, v in sorted(record.get("tags", {}).items())],
    }, "data": {"params": [{"key": k, "value": v} for k, v in sorted(record.get("params", {}).items())], "metrics": []}}


def _model(request: Request, model_id: str, need: str) -> tuple[Run, str, str, dict[str, Any]]:
    m = _MODEL_ID.match(model_id)
    missing = MlflowError("RESOURCE_DOES_NOT_EXIST", f"Logged model {model_id!r} not found.", None)
    if m is None:
        raise missing
    run_id, name = int(m.group(1)), m.group(2)
    _check_run(request, run_id, need)
    run = _get_run(request, run_id)
    raw = run.tags.get(MODEL_TAG_PREFIX + name)
    if raw is None:
        raise missing
    ids = _store(request).project_ids([run.project])
    return run, experiment_id_of(ids.get(run.project, 0), run.project), name, json.loads(raw)


def _save_model(request: Request, run: Run, name: str, record: dict[str, Any]) -> None:
    record["updated"] = int(time.time() * 1000)
    _store(request).log_params_and_tags(run.id, {}, {MODEL_TAG_PREFIX + name: json.dumps(record, sort_keys=True)})


def _pairs(items: list[dict[str, Any]]) -> dict[str, str]:
    return {text(i, "key", required=True) or "": text(i, "value", default="") or "" for i in items}


@_route("POST", "/logged-models")
async def create_logged_model(request: Request) -> Response:
    fields = await request_fields(request)
    name = text(fields, "name") or "model"
    if not _MODEL_NAME.match(name):
        raise MlflowError("INVALID_PARAMETER_VALUE", f"Runyard keeps a logged model's files under its name, and {name!r} is "
                          "not 1-100 letters, digits, '_', '.' or '-'.", "Name the model e.g. 'model'.")
    run_raw = text(fields, "source_run_id")
    if not run_raw:
        raise MlflowError("INVALID_PARAMETER_VALUE", "Runyard keeps a logged model with the run that logged it, and "
                          "source_run_id is missing.", "Log the model inside a run (with mlflow.start_run()).")
    run_id = _run_id({"run_id": run_raw})
    exp_id = text(fields, "experiment_id") or ""
    tags, params = _pairs(entries(fields, "tags")), _pairs(entries(fields, "params"))
    model_type = text(fields, "model_type")

    def create() -> dict[str, Any]:
        _check_run(request, run_id, "editor")
        run = _get_run(request, run_id)
        ids = _store(request).project_ids([run.project])
        run_exp = experiment_id_of(ids.get(run.project, 0), run.project)
        if exp_id and exp_id != run_exp:
            _project_name_of(request, exp_id)  # a missing experiment answers as such
            raise MlflowError("INVALID_PARAMETER_VALUE", f"Run {run_id} is in experiment {run_exp}, not {exp_id}.", None)
        now = int(time.time() * 1000)
        record = {"status": "LOGGED_MODEL_PENDING", "model_type": model_type, "tags": tags, "params": params, "created": now}
        names.check_key(MODEL_TAG_PREFIX + name, "tag")
        _save_model(request, run, name, record)
        return _model_json(run, run_exp, name, record)

    return json_response({"model": await run_in_threadpool(create)})


@_route("GET", "/logged-models/{model_id}")
async def get_logged_model(model_id: str, request: Request) -> Response:
    run, exp_id, name, record = await run_in_threadpool(_model, request, model_id, "viewer")
    return json_response({"model": _model_json(run, exp_id, name, record)})


@_route("PATCH", "/logged-models/{model_id}")
async def finalize_logged_model(model_id: str, request: Request) -> Response:
    fields = await request_fields(request)
    status = text(fields, "status", required=True) or ""
    if status not in _STATUSES:
        raise MlflowError("INVALID_PARAMETER_VALUE", f"Unknown logged model status {status!r}.", f"Use one of {', '.join(_STATUSES)}.")

    def change() -> dict[str, Any]:
        run, exp_id, name, record = _model(request, model_id, "editor")
        record["status"] = status
        _save_model(request, run, name, record)
        return _model_json(run, exp_id, name, record)

    return json_response({"model": await run_in_threadpool(change)})


@_route("PATCH", "/logged-models/{model_id}/tags")
async def set_logged_model_tags(model_id: str, request: Request) -> Response:
    fields = await request_fields(request)
    tags = _pairs(entries(fields, "tags"))

    def change() -> None:
        run, _, name, record = _model(request, model_id, "editor")
        record.setdefault("tags", {}).update(tags)
        _save_model(request, run, name, record)

    await run_in_threadpool(change)
    return json_response({})


@_route("DELETE", "/logged-models/{model_id}/tags/{tag_key:path}")
async def delete_logged_model_tag(model_id: str, tag_key: str, request: Request) -> Response:
    def change() -> None:
        run, _, name, record = _model(request, model_id, "editor")
        if tag_key not in record.get("tags", {}):
            raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"Logged model {model_id!r} has no tag {tag_key!r}.", None)
        del record["tags"][tag_key]
        _save_model(request, run, name, record)

    await run_in_threadpool(change)
    return json_response({})


@_route("POST", "/logged-models/{model_id}/params")
async def log_logged_model_params(model_id: str, request: Request) -> Response:
    fields = await request_fields(request)
    params = _pairs(entries(fields, "params"))

    def change() -> None:
        run, _, name, record = _model(request, model_id, "editor")
        record.setdefault("params", {}).update(params)
        _save_model(request, run, name, record)

    await run_in_threadpool(change)
    return json_response({})



_MODEL_FILTER = re.compile(r"""^\s*(name|source_run_id)\s*=\s*'((?:[^']|'')*)'\s*$""", re.IGNORECASE)


@_route("POST", "/logged-models/search")
async def search_logged_models(request: Request) -> Response:
    """Logged models of the experiments' runs; the filter may hold ``name = 'X'`` and ``source_run_id = 'N'`` (AND)."""
    fields = await request_fields(request)
    exp_ids = strings(fields, "experiment_ids")
    want: dict[str, str] = {}
    filter_text = text(fields, "filter", default="") or ""
    for clause in re.split(r"(?i)\s+and\s+", filter_text.strip()) if filter_text.strip() else []:
        m = _MODEL_FILTER.match(clause)
        if m is None:
            raise MlflowError("INVALID_PARAMETER_VALUE", f"Invalid logged model filter clause {clause!r}.",
                              "Runyard serves name = 'X' and source_run_id = 'N', joined by AND.")
        want[m.group(1).lower()] = m.group(2).replace("''", "'")
    limit = min(int64(fields, "max_results", default=100) or 100, 1000)
    offset = _offset_token(text(fields, "page_token"))

    def search() -> dict[str, Any]:
        from runyard.server._auth import require_user, visible_project_ids
        from runyard.store import Filter

        require_user(request)
        store = _store(request)
        visible = visible_project_ids(request)
        # Experiments the caller may not see are left out, as runs/search does.
        project_ids = [int(e) for e in exp_ids if e.isdigit() and len(e) < 19] if exp_ids else visible
        if DEFAULT_EXPERIMENT in exp_ids:
            project_ids = [*(project_ids or []), *store.project_ids([DEFAULT_PROJECT]).values()]
        if visible is not None and project_ids is not None:
            project_ids = [i for i in project_ids if i in set(visible)]
        if project_ids is not None and not project_ids:
            return {"models": []}
        filters = [Filter("tag", MODEL_TAG_PREFIX + want["name"], "like", "%", text=filter_text)] if "name" in want else []
        if "source_run_id" in want:
            run_raw = want["source_run_id"]
            filters.append(Filter("attr", "id", "in", (int(run_raw),) if run_raw.isdigit() and len(run_raw) < 19 else (),
                                  text=filter_text))
        runs = store.list_runs(filters=filters, limit=1000, project_ids=project_ids).items
        ids = store.project_ids(sorted({r.project for r in runs}))
        models = []
        for run in runs:
            exp_id = experiment_id_of(ids.get(run.project, 0), run.project)
            for key, raw in sorted(run.tags.items()):
                name = key[len(MODEL_TAG_PREFIX):]
                if key.startswith(MODEL_TAG_PREFIX) and want.get("name", name) == name:
                    models.append(_model_json(run, exp_id, name, json.loads(raw)))
        out: dict[str, Any] = {"models": models[offset:offset + limit]}
        if offset + limit < len(models):
            out["next_page_token"] = _token_of(offset + limit)
        return out

    return json_response(await run_in_threadpool(search))
