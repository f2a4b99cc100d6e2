"""The FastAPI application: routers under /api/v1, the error handler, the static UI."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI
from pydantic import BaseModel, Field

from runyard import __version__
from runyard.artifacts import ArtifactStorage
from runyard.server._auth import Auth, authenticate, check_mode, public_route
from runyard.server._errors import install_error_handlers
from runyard.server._events import Changes
from runyard.server._guard import Guard, image_hosts
from runyard.server._static import install_docs, install_ui, ui_dir
from runyard.server.routers import artifacts, audit, experiments, logs, members, projects, runs, sessions, tokens, users
from runyard.store import Store

__all__ = ["create_app"]

log = logging.getLogger("runyard.server")


class Health(BaseModel):
    status: str
    version: str
    database: str
    image_hosts: list[str] = Field(default_factory=list,
                                   description="hosts whose images project descriptions may show (RUNYARD_UI_IMAGE_HOSTS)")


def _public_url() -> str:
    """The address runs use to reach this server (RUNYARD_PUBLIC_URL, set by ``serve``)."""
    return os.environ.get("RUNYARD_PUBLIC_URL", "http://127.0.0.1:8765")


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

    api = APIRouter(prefix="/api/v1", dependencies=[Depends(authenticate)])

    @api.get("/health", response_model=Health, tags=["server"])
    @public_route
    def health() -> Health:
        return Health(status="ok", version=__version__, database=app.state.store.engine.dialect.name,
                      image_hosts=image_hosts())

    # Routes are matched in this order, one by one: the task runners' and the SDK's (reports,
    # heartbeats, metrics, logs) come first, since they are most of the requests a busy server sees.
    for r in (runs.router, logs.router, artifacts.router, experiments.router, projects.router, members.router,
              sessions.router, users.router, tokens.router, audit.router):
        api.include_router(r)
    app.include_router(api)

    install_docs(app)
    install_ui(app, static_dir or ui_dir())
    # The guard wraps the whole stack, the error middleware included, so 500 answers carry its headers too.
    build = app.build_middleware_stack
    app.build_middleware_stack = lambda: Guard(build())  # type: ignore[method-assign]
    return app
