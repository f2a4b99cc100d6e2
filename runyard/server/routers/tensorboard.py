"""TensorBoard through the server: ``POST /api/v1/experiments/{id}/tensorboard`` and the proxy under ``/tb/<cap>/``.

The POST (a viewer of the experiment's project, or more) starts or refreshes the experiment's
TensorBoard (:mod:`runyard.server._tensorboards`) and answers a capability URL. Everything under
``/tb/<cap>/`` is proxied to that process; the capability in the path is what authorises, never a
cookie: the request's ``Cookie`` and ``Authorization`` headers are not passed on, TensorBoard's
``Set-Cookie`` never comes back, and the guard (:mod:`runyard.server._guard`) gives every answer a
``Content-Security-Policy`` with ``sandbox`` (without ``allow-same-origin``), so TensorBoard's
scripts run in an opaque origin that holds none of the app's cookies and cannot call its API as
the user. The caller's access to the project is checked again every :data:`RECHECK_S` seconds of use.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, StreamingResponse
from pydantic import BaseModel, Field

from runyard.errors import NotFound, ServiceUnavailable
from runyard.server._auth import Auth, audit, principal, require_experiment
from runyard.server._tensorboards import CAP_TTL_S, Capability, TensorBoards, idle_setting, max_setting

router = APIRouter(tags=["experiments"])
proxy = APIRouter(include_in_schema=False)

RECHECK_S = 5.0
"""How often (seconds, per capability in use) the caller's access to the project is read again."""
PROXY_TIMEOUT_S = 120.0
_CHUNK = 64 * 1024
# Not passed to TensorBoard: hop-by-hop headers, and the app's credentials.
_DROP_REQUEST = frozenset({"host", "connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
                           "proxy-authorization", "proxy-connection", "cookie", "authorization", "content-length",
                           "x-csrf-token"})
# Not passed back: hop-by-hop headers, cookies, and the headers the guard owns.
_DROP_RESPONSE = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
                            "proxy-authenticate", "set-cookie", "set-cookie2", "content-security-policy",
                            "content-security-policy-report-only", "x-frame-options", "x-content-type-options",
                            "referrer-policy", "access-control-allow-origin", "access-control-allow-credentials",
                            "access-control-allow-headers", "access-control-allow-methods", "server", "date",
                            "strict-transport-security"})
_CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "GET, POST, HEAD",
         "Access-Control-Allow-Headers": "Content-Type, X-XSRF-Protected, X-TensorBoard-Feature-Flags", "Access-Control-Max-Age": "600"}


# TensorBoard's page keeps its settings in localStorage, which a sandboxed document (an opaque origin) may not
# touch: reading the property throws, and the page stops. Its index gets this first script, which puts an
# in-memory Storage in place of localStorage and sessionStorage (settings then last as long as the tab),
# lets document.cookie read as empty instead of throwing, and hides OffscreenCanvas: an opaque origin may
# not start a worker from the server's URL, so TensorBoard draws its charts in the page instead.
STORAGE_SHIM = (b"<script>(function(){function S(){var d=new Map();return{get length(){return d.size},"
                b"key:function(i){return Array.from(d.keys())[i]===undefined?null:Array.from(d.keys())[i]},"
                b"getItem:function(k){k=String(k);return d.has(k)?d.get(k):null},"
                b"setItem:function(k,v){d.set(String(k),String(v))},removeItem:function(k){d.delete(String(k))},"
                b"clear:function(){d.clear()}}}"
                b"['localStorage','sessionStorage'].forEach(function(n){var ok=false;try{ok=!!window[n]}catch(e){}"
                b"if(!ok){Object.defineProperty(window,n,{value:S(),configurable:true})}});"
                b"try{document.cookie}catch(e){Object.defineProperty(document,'cookie',{get:function(){return ''},"
                b"set:function(){},configurable:true})}"
                b"try{delete window.OffscreenCanvas}catch(e){}})();</script>")
_INDEX = frozenset({"", "index.html"})
_INDEX_LIMIT = 4 * 1024 * 1024


class TensorBoardLink(BaseModel):
    url: str = Field(description="the capability path of this experiment's TensorBoard, relative to the server "
                                 "(/tb/CAP/): whoever holds it may read the TensorBoard, so keep it to yourself")
    experiment_id: int
    runs: int = Field(description="runs whose tensorboard/ artifacts it serves")
    files: int = Field(description="event files (and other files under tensorboard/) it serves")
    expires_in_s: float = Field(description="the URL stops working after this long without use")


class TensorBoardStatus(BaseModel):
    experiment_id: int
    runs: int = Field(description="runs that kept tensorboard/ artifacts (0: nothing to show)")
    files: int = Field(description="files under tensorboard/ of those runs")
    running: bool = Field(description="whether this server runs the experiment's TensorBoard now")


def _boards(request: Request) -> TensorBoards:
    boards: TensorBoards | None = getattr(request.app.state, "tensorboards", None)
    if boards is None:
        boards = request.app.state.tensorboards = TensorBoards(request.app.state.store, request.app.state.artifacts)
    return boards


def check_settings(app) -> None:  # noqa: ANN001, ARG001
    """Startup hook: a bad RUNYARD_TENSORBOARD_IDLE_S or RUNYARD_TENSORBOARD_MAX stops the server at once."""
    idle_setting()
    max_setting()


def close_boards(app) -> None:  # noqa: ANN001
    """Shutdown hook: stop every TensorBoard process of this server."""
    boards = getattr(app.state, "tensorboards", None)
    if boards is not None:
        boards.close()


@router.get("/experiments/{experiment_id}/tensorboard", response_model=TensorBoardStatus)
def tensorboard_status(experiment_id: int, request: Request) -> TensorBoardStatus:
    """Whether the experiment's runs kept TensorBoard event files (``tensorboard/`` artifacts); starts nothing."""
    require_experiment(request, experiment_id, "viewer")
    n_runs, n_files, running = _boards(request).summary(experiment_id)
    return TensorBoardStatus(experiment_id=experiment_id, runs=n_runs, files=n_files, running=running)


@router.post("/experiments/{experiment_id}/tensorboard", response_model=TensorBoardLink)
def open_tensorboard(experiment_id: int, request: Request) -> TensorBoardLink:
    """Start (or reuse, fetching new event files) the experiment's TensorBoard and answer a capability URL for it.

    Needs the viewer role. 404 when no run of the experiment kept ``tensorboard/`` artifacts; 503 when the
    server's TensorBoard processes (RUNYARD_TENSORBOARD_MAX) are all in use.
    """
    require_experiment(request, experiment_id, "viewer")
    boards = _boards(request)
    _, n_runs, n_files = boards.open(experiment_id)
    p = principal(request)
    user = p.user if p.kind == "user" else None
    cap = boards.issue(experiment_id, "user" if user is not None else "local", user.id if user else None,
                       user.username if user else None)
    audit(request, "tensorboard.open", target=f"experiment:{experiment_id}")
    return TensorBoardLink(url=f"/tb/{cap}/", experiment_id=experiment_id, runs=n_runs, files=n_files,
                           expires_in_s=CAP_TTL_S)


def _still_allowed(auth: Auth, cap: Capability) -> bool:
    """Whether the capability's holder may still read the experiment (a database read)."""
    if cap.kind == "local":
        return auth.local_mode()
    info = auth.store.experiment_access(cap.experiment_id)
    if info is None or cap.username is None:
        return False
    user = auth.store.find_user(cap.username)
    if user is None or user.id != cap.user_id or user.disabled:
        return False
    if user.is_admin or info.owner_id == user.id or info.visibility == "public":
        return True
    return auth.store.role_of(info.project_id, user.id) is not None


def _gone() -> NotFound:
    return NotFound("This TensorBoard link is unknown, expired or no longer yours.",
                    "Open TensorBoard again from the experiment's page, or `runyard tensorboard EXPERIMENT --server`.")


async def _capability(request: Request, cap: str) -> tuple[TensorBoards, Capability]:
    boards = _boards(request)
    found = boards.lookup(cap)
    if found is None:
        raise _gone()
    now = time.monotonic()
    if now - found.checked_at >= RECHECK_S:
        if not await run_in_threadpool(_still_allowed, request.app.state.auth, found):
            boards.revoke(cap)
            raise _gone()
        found.checked_at = now
    return boards, found


@proxy.api_route("/tb/{cap}", methods=["GET", "HEAD"])
async def tensorboard_root(cap: str, request: Request) -> Response:
    await _capability(request, cap)
    # TensorBoard's page asks for its data by relative URLs: it must be opened at the directory.
    return RedirectResponse(f"/tb/{cap}/", status_code=308, headers=_CORS)


@proxy.api_route("/tb/{cap}/{rest:path}", methods=["OPTIONS"])
async def tensorboard_preflight(cap: str, rest: str, request: Request) -> Response:
    await _capability(request, cap)
    # TensorBoard's page sends headers of its own (X-TensorBoard-Feature-Flags, X-XSRF-Protected): whatever it
    # asks for is allowed, since no credentials ever go with these requests.
    asked = request.headers.get("access-control-request-headers", "")
    allowed = ", ".join(h.strip() for h in asked.split(",") if h.strip() and all(c.isalnum() or c in "-_" for c in h.strip()))
    return Response(status_code=204, headers={**_CORS, "Access-Control-Allow-Headers": allowed or _CORS["Access-Control-Allow-Headers"]})


@proxy.api_route("/tb/{cap}/{rest:path}", methods=["GET", "HEAD", "POST"])
async def tensorboard_proxy(cap: str, rest: str, request: Request) -> Response:
    boards, found = await _capability(request, cap)
    board = boards.board_for(found.experiment_id)
    if board is None:  # stopped when idle: start it again, the capability still holds
        board = (await run_in_threadpool(boards.open, found.experiment_id))[0]
    body = await request.body() if request.method == "POST" else None
    target = "/" + rest + (("?" + request.url.query) if request.url.query else "")
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROP_REQUEST}
    headers["Host"] = f"127.0.0.1:{board.port}"
    index = rest in _INDEX and request.method == "GET"
    if index:
        headers["Accept-Encoding"] = "identity"  # the shim goes into the page's text
    if body is not None:
        headers["Content-Length"] = str(len(body))

    def exchange() -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        conn = http.client.HTTPConnection("127.0.0.1", board.port, timeout=PROXY_TIMEOUT_S)
        try:
            conn.request(request.method, target, body=body, headers=headers)
            return conn, conn.getresponse()
        except BaseException:
            conn.close()
            raise

    try:
        conn, upstream = await run_in_threadpool(exchange)
    except OSError:
        raise ServiceUnavailable(f"TensorBoard for experiment {found.experiment_id} did not answer.",
                                 "Reload the page in a few seconds; it is started again when needed.") from None
    out: dict[str, str] = dict(_CORS)
    for k, v in upstream.getheaders():
        key = k.lower()
        if key in _DROP_RESPONSE:
            continue
        if key == "location" and v.startswith("/"):
            v = f"/tb/{cap}{v}"
        out[k] = v

    def chunks() -> Iterator[bytes]:
        try:
            while True:
                data = upstream.read1(_CHUNK) if hasattr(upstream, "read1") else upstream.read(_CHUNK)
                if not data:
                    return
                boards.board_for(found.experiment_id)  # a long answer keeps it in use
                yield data
        finally:
            conn.close()

    if index and upstream.status == 200 and "text/html" in upstream.getheader("content-type", ""):
        try:
            page = await run_in_threadpool(upstream.read, _INDEX_LIMIT)
        finally:
            conn.close()
        out = {k: v for k, v in out.items() if k.lower() not in ("content-length", "content-encoding", "etag")}
        return Response(_with_shim(page), status_code=200, headers=out)
    if request.method == "HEAD":
        conn.close()
        return Response(status_code=upstream.status, headers=out)
    return StreamingResponse(chunks(), status_code=upstream.status, headers=out)


def _with_shim(page: bytes) -> bytes:
    """The page with :data:`STORAGE_SHIM` as its first script (right after ``<head>``, else at the start), and
    its fonts asked for by relative URLs (TensorBoard names them from the server's root: ``url(/font-roboto/...)``)."""
    page = page.replace(b"url(/font-roboto/", b"url(font-roboto/")
    at = page.lower().find(b"<head>")
    if at < 0:
        return STORAGE_SHIM + page
    at += len(b"<head>")
    return page[:at] + STORAGE_SHIM + page[at:]
