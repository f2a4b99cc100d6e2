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

__all__ = ["STATIC_DIR", "install_ui", "ui_dir"]

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
