"""An MLflow-compatible tracking API: an unmodified ``mlflow`` client with MLFLOW_TRACKING_URI pointing at a
Runyard server logs Runyard runs (docs/mlflow.md: the mapping, the endpoints, what is not served).

An MLflow experiment is a Runyard project (experiment id: the project's id; "0": the project
``default``), an MLflow run a Runyard run, params, tags, metric points and artifacts those of the
run. Authentication and access are Runyard's (a token as MLflow's bearer token or basic-auth
password; project roles). Errors answer in MLflow's format. These routes are not in Runyard's
OpenAPI document (``/api/v1/openapi.json``): they are MLflow's API, documented by MLflow.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request, Response

from runyard.server.mlflow._artifacts import ARTIFACTS_PREFIX, ARTIFACTS_SERVED, proxy
from runyard.server.mlflow._errors import MlflowError, MlflowRoute
from runyard.server.mlflow._tracking import PREFIX, SERVED, router

__all__ = ["ARTIFACTS_PREFIX", "ARTIFACTS_SERVED", "PREFIX", "SERVED", "install_mlflow"]

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def _unserved(prefix: str) -> APIRouter:
    """Any other path under ``prefix``: 404 ENDPOINT_NOT_FOUND naming what Runyard serves."""
    rest = APIRouter(route_class=MlflowRoute, include_in_schema=False)

    @rest.api_route(prefix + "/{path:path}", methods=_METHODS)
    async def not_served(path: str, request: Request) -> Response:
        raise MlflowError(
            "ENDPOINT_NOT_FOUND",
            f"Runyard does not serve {request.method} {prefix}/{path}. Its MLflow-compatible API serves experiments, runs, "
            "params, metrics, tags, metric histories, logged models and the artifact proxy; not the model registry, "
            "traces, prompts, datasets, scorers or gateway.",
            "See docs/mlflow.md for the endpoints served; use Runyard's own API (/api/v1) for the rest.",
        )

    return rest


def install_mlflow(app: FastAPI) -> None:
    """Add the MLflow-compatible routes (under /api/2.0/mlflow and /api/2.0/mlflow-artifacts) before the UI's catch-all."""
    app.include_router(router)
    app.include_router(proxy)
    for prefix in (PREFIX, ARTIFACTS_PREFIX):
        app.include_router(_unserved(prefix))
