"""The web UI: the built single-page app under ``/``, with deep links falling back to index.html.

``make install`` builds ``web/`` into ``runyard/server/static/`` (not in git). Paths under
``/api/`` never fall back: an unknown API path answers a JSON 404, not the app. Hashed
bundle files under ``/assets/`` are cached for a year; ``index.html`` is revalidated on every
load, so a new build is picked up at once. Without a build, ``/`` answers a short page that
says how to build it. ``RUNYARD_UI_DIR`` serves another build (e.g. ``web/dist`` while developing).
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = ["STATIC_DIR", "install_docs", "install_ui", "ui_dir"]

STATIC_DIR = Path(__file__).parent / "static"

_NOT_BUILT = """<!doctype html><meta charset="utf-8"><title>Runyard</title>
<h1>Runyard's web UI is not built</h1>
<p>The API is up at <a href="/api/v1/docs">/api/v1/docs</a>. Build the UI with
<code>make install</code> (or <code>cd web &amp;&amp; npm ci &amp;&amp; npm run build</code>) and reload.</p>
"""


def ui_dir() -> Path:
    """Where the built UI is: ``RUNYARD_UI_DIR`` or the package's ``static/``."""
    return Path(os.environ.get("RUNYARD_UI_DIR") or STATIC_DIR)


def install_ui(app: FastAPI, directory: Path) -> None:
    """Serve the UI from ``directory`` at ``/``; call after the API routers are included."""
    root = directory.resolve()

    @app.get("/{path:path}", include_in_schema=False, response_model=None)
    def ui(path: str) -> Response:
        if path == "api" or path.startswith("api/"):
            # The same answer as for any unknown route: {code: not_found, message: "Not Found", hint}.
            raise StarletteHTTPException(status_code=404)
        index = root / "index.html"
        if not index.is_file():
            return HTMLResponse(_NOT_BUILT, status_code=503)
        if path:
            target = (root / path).resolve()
            if target.is_file() and root in target.parents:
                cache = "public, max-age=31536000, immutable" if path.startswith("assets/") else "no-cache"
                return FileResponse(target, headers={"Cache-Control": cache})
        return FileResponse(index, headers={"Cache-Control": "no-cache"})


# ------------------------------------------------------------------ API docs
# Swagger UI comes from the swagger-ui-bundle package (a dependency), served by this server:
# no third-party script host, so the page works offline and its scripts are the ones installed.
_DOCS_FILES = {"swagger-ui.css": "text/css", "swagger-ui-bundle.js": "text/javascript",
               "favicon-32x32.png": "image/png"}
_DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Runyard API</title>
<link rel="stylesheet" href="/api/v1/docs/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="/api/v1/docs/assets/favicon-32x32.png"></head>
<body><div id="swagger-ui"></div>
<script src="/api/v1/docs/assets/swagger-ui-bundle.js"></script>
<script src="/api/v1/docs/assets/init.js"></script>
</body></html>
"""
# An external file, not an inline script, so the docs page's CSP allows scripts of this server only.
_DOCS_INIT = """window.ui = SwaggerUIBundle({url: "/api/v1/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis], layout: "BaseLayout"});
"""


def _swagger_dir() -> Path | None:
    try:
        from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]
    except ImportError:
        return None
    return Path(str(swagger_ui_path))


def install_docs(app: FastAPI) -> None:
    """Serve the API reference (Swagger UI) at ``/api/v1/docs``; call before :func:`install_ui`."""
    swagger = _swagger_dir()

    @app.get("/api/v1/docs", include_in_schema=False, response_model=None)
    def docs() -> Response:
        if swagger is None:
            return HTMLResponse('<!doctype html><meta charset="utf-8"><title>Runyard API</title>'
                                '<p>Swagger UI is not installed (<code>pip install swagger-ui-bundle</code>); '
                                'the API schema is at <a href="/api/v1/openapi.json">/api/v1/openapi.json</a>.</p>')
        return HTMLResponse(_DOCS_PAGE, headers={"Cache-Control": "no-cache"})

    @app.get("/api/v1/docs/assets/{name}", include_in_schema=False, response_model=None)
    def docs_asset(name: str) -> Response:
        if name == "init.js":
            return Response(_DOCS_INIT, media_type="text/javascript", headers={"Cache-Control": "no-cache"})
        if swagger is None or name not in _DOCS_FILES:
            raise StarletteHTTPException(status_code=404)
        return FileResponse(swagger / name, media_type=_DOCS_FILES[name], headers={"Cache-Control": "public, max-age=86400"})
