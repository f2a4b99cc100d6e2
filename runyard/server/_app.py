"""The FastAPI application: routers under /api/v1, the error handler, the static UI."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from runyard import __version__
from runyard.artifacts import ArtifactStorage
from runyard.server._auth import Auth, authenticate, check_mode, public_route
from runyard.server._errors import install_error_handlers
from runyard.server._events import Changes
from runyard.server._guard import Guard, image_hosts
from runyard.server._static import install_docs, install_ui, ui_dir
from runyard.server.routers import (
    artifacts,
    audit,
    backends,
    datasets,
    experiments,
    images,
    lineage,
    logs,
    media,
    members,
    models,
    projects,
    runs,
    sessions,
    tensorboard,
    tokens,
    users,
)
from runyard.store import Store

__all__ = ["create_app"]

log = logging.getLogger("runyard.server")


class Health(BaseModel):
    status: str = Field(description="ok, or degraded (problems says why)")
    version: str
    database: str
    problems: list[str] = Field(default_factory=list, description="why it is degraded: disk full, database "
                                "unreachable, writes that failed in the last minute")
    image_hosts: list[str] = Field(default_factory=list,
                                   description="hosts whose images project descriptions may show (RUNYARD_UI_IMAGE_HOSTS)")


def _public_url() -> str:
    """The address runs use to reach this server (RUNYARD_PUBLIC_URL, set by ``serve``)."""
    return os.environ.get("RUNYARD_PUBLIC_URL", "http://127.0.0.1:8765")


def _secure_files(app: FastAPI) -> None:
    """Take others' permissions off the home, the SQLite database (and its -wal, -shm) and the artifacts
    directory, whatever the umask made them, and log each change (docs/operating.md, "Security model")."""
    from runyard import config

    extra: list[str] = []
    engine = app.state.store.engine
    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        db = str(engine.url.database)
        extra += [db, db + "-wal", db + "-shm"]
    storage = app.state.artifacts
    protocols = storage.fs.protocol if isinstance(storage.fs.protocol, tuple) else (storage.fs.protocol,)
    if "file" in protocols:
        extra.append(storage.root)
    from runyard.backends.config import load_backends
    from runyard.errors import SpecError

    try:
        local = load_backends().get("local")
    except SpecError:  # reported where the backends are used
        local = None
    # Jobs running as the accounts of the local agent's run_as pool pass through the home to their work directories.
    traverse = local is not None and isinstance(local.options.get("run_as"), dict)
    for line in config.secure_home(extra=extra, traverse=traverse):
        log.warning("Took group and other permissions off %s (only the server's account may read its data).", line)


def create_app(store: Store | None = None, *, artifacts_url: str | None = None, scheduler: bool | None = None,
               auth_mode: str | None = None, static_dir: Path | None = None) -> FastAPI:
    """Build the app. ``store`` defaults to ``Store.open()`` (migrations applied) at start-up.

    The scheduler runs inside the app unless ``scheduler=False`` or RUNYARD_SCHEDULER=0.
    ``auth_mode`` (default RUNYARD_AUTH, else ``auto``): ``auto`` is single-user local mode
    while no user exists, ``required`` always asks for sign-in (and creates the first admin,
    see :func:`runyard.server._bootstrap.ensure_admin`), ``off`` never does (loopback only;
    ``serve`` refuses it elsewhere).
    ``static_dir`` holds the built web UI (default: RUNYARD_UI_DIR or the package's ``static/``).
    """
    if scheduler is None:
        scheduler = os.environ.get("RUNYARD_SCHEDULER", "1") != "0"
    mode = check_mode(auth_mode or os.environ.get("RUNYARD_AUTH") or "auto")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = app.state.store is None
        if own:
            app.state.store = Store.open()
        app.state.artifacts = ArtifactStorage(artifacts_url)
        _secure_files(app)
        from runyard.server._bootstrap import ensure_admin
        from runyard.store import AuthStore

        app.state.auth = Auth(AuthStore(app.state.store.engine), mode)
        if mode == "required":
            ensure_admin(app.state.auth.store)
        if scheduler:
            from runyard.scheduler import Scheduler

            # The local agent starts with the server (RUNYARD_WARM_AGENT=0: with the first run that needs it).
            warm = os.environ.get("RUNYARD_WARM_AGENT", "1") != "0"
            app.state.scheduler = Scheduler(app.state.store, server_url=_public_url(), warm_backends=warm)
            app.state.scheduler.start()
        for hook in app.state.startup_hooks:
            hook(app)
        try:
            yield
        finally:
            for hook in reversed(app.state.shutdown_hooks):
                hook(app)
            if app.state.scheduler is not None:
                app.state.scheduler.stop()
            app.state.health.close()
            if own:
                app.state.store.close()

    app = FastAPI(
        title="Runyard",
        version=__version__,
        description="Runyard's REST API: projects, experiments, runs, metrics, logs, artifacts, snapshots.",
        openapi_url="/api/v1/openapi.json",
        docs_url=None,  # served by install_docs from the installed Swagger UI package
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.store = store
    app.state.scheduler = None
    app.state.changes = Changes()
    app.state.startup_hooks = []
    app.state.shutdown_hooks = []
    install_error_handlers(app)
    from runyard.server._health import HealthCheck

    app.state.health = HealthCheck(app)

    api = APIRouter(prefix="/api/v1", dependencies=[Depends(authenticate)])

    @api.get("/health", response_model=Health, tags=["server"])
    @public_route
    def health() -> JSONResponse:
        """``ok``, or ``degraded`` with the problems; 503 while the database does not answer (cached for 1 s)."""
        status, problems, db_ok = app.state.health.status()
        body = Health(status=status, version=__version__, database=app.state.store.engine.dialect.name, problems=problems,
                      image_hosts=image_hosts())
        return JSONResponse(body.model_dump(), status_code=200 if db_ok else 503)

    # Routes are matched in this order, one by one: the task runners' and the SDK's (reports,
    # heartbeats, metrics, logs) come first, since they are most of the requests a busy server sees.
    for r in (runs.router, logs.router, artifacts.router, experiments.router, projects.router, members.router,
              sessions.router, users.router, tokens.router, tokens.run_tokens, audit.router, backends.router, images.router,
              tensorboard.router, media.router,
              lineage.router):
        api.include_router(r)
    api.include_router(models.router)  # the model registry
    api.include_router(datasets.router)  # versioned datasets
    app.include_router(api)
    app.include_router(tensorboard.proxy)  # /tb/CAP/...: the capability authorises, not the session
    app.state.startup_hooks.append(tensorboard.check_settings)
    app.state.shutdown_hooks.append(tensorboard.close_boards)

    from runyard.server.mlflow import install_mlflow

    install_mlflow(app)  # MLflow's REST API for unmodified MLflow clients (docs/mlflow.md); not in the OpenAPI document
    install_docs(app)
    install_ui(app, static_dir or ui_dir())
    # The guard wraps the whole stack, the error middleware included, so 500 answers carry its headers too.
    build = app.build_middleware_stack
    app.build_middleware_stack = lambda: Guard(build())  # type: ignore[method-assign]
    return app
