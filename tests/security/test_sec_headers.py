"""Every answer of the server carries the security headers; the UI has a real CSP; run files are sandboxed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from raw_http import V1, raw

from runyard.client import Client
from runyard.testing import LiveServer
from runyard.testing.pytest_plugin import LiveServers

COMMON = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer"}


@pytest.fixture(scope="module")
def ui_server(module_live_servers: LiveServers, tmp_path_factory: pytest.TempPathFactory) -> LiveServer:
    """A server with a small built UI of its own (index.html and one hashed asset)."""
    ui = tmp_path_factory.mktemp("ui")
    (ui / "assets").mkdir()
    (ui / "index.html").write_text('<!doctype html><script type="module" src="/assets/index-abc.js"></script><div id=root>')
    (ui / "assets" / "index-abc.js").write_text("console.log('ui')")
    return module_live_servers.start("headers", env={"RUNYARD_UI_DIR": str(ui), "RUNYARD_SCHEDULER": "0"})


def _check(headers: dict[str, str], frame: str = "DENY") -> str:
    for k, v in COMMON.items():
        assert headers.get(k) == v, (k, headers)
    assert headers.get("x-frame-options") == frame
    csp = headers["content-security-policy"]
    return csp


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", V1 + "/health", 200),                 # API JSON
    ("GET", V1 + "/projects", 200),
    ("GET", V1 + "/runs/999999", 404),           # an error of a route
    ("GET", V1 + "/no/such/route", 404),         # an unknown API path
    ("DELETE", V1 + "/health", 405),
    ("POST", V1 + "/projects", 400),             # invalid input
    ("GET", V1 + "/openapi.json", 200),
])
def test_api_answers_carry_the_headers(ui_server: LiveServer, method: str, path: str, status: int) -> None:
    got, headers, _ = raw(ui_server, method, path, b"{}" if method == "POST" else None,
                          {"Content-Type": "application/json"} if method == "POST" else None)
    assert got == status
    csp = _check(headers)
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp


@pytest.mark.parametrize("path", ["/", "/projects/x/runs/3", "/assets/index-abc.js"])
def test_ui_pages_and_assets_have_a_real_csp(ui_server: LiveServer, path: str) -> None:
    status, headers, _ = raw(ui_server, "GET", path)
    assert status == 200
    csp = _check(headers)
    directives = dict((d.strip().split(" ", 1) + [""])[:2] for d in csp.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"  # no inline scripts, no eval
    assert directives["img-src"] == "'self' data:"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in directives["style-src"]


def test_built_ui_needs_no_inline_script() -> None:
    """The UI's index.html (as Vite writes it) loads scripts from files only, as the CSP demands."""
    html = Path(__file__).parents[2].joinpath("web", "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)


def test_docs_page_is_served_from_the_package(ui_server: LiveServer) -> None:
    status, headers, body = raw(ui_server, "GET", V1 + "/docs")
    assert status == 200
    csp = _check(headers)
    assert "script-src 'self'" in csp
    page = body.decode()
    scripts = re.findall(r"<script([^>]*)>", page)
    assert scripts and all('src="/api/v1/docs/assets/' in s for s in scripts)  # no CDN, no inline code
    assert "http" not in page.replace("http-equiv", "")
    for src in re.findall(r'(?:src|href)="(/api/v1/docs/assets/[^"]+)"', page):
        got, h, content = raw(ui_server, "GET", src)
        assert got == 200 and content, src
        _check(h)


def test_not_built_ui_page_has_the_headers(live_servers: LiveServers, tmp_path: Path) -> None:
    server = live_servers.start("bare", env={"RUNYARD_UI_DIR": str(tmp_path / "none"), "RUNYARD_SCHEDULER": "0"})
    status, headers, _ = raw(server, "GET", "/")
    assert status == 503
    assert "default-src 'self'" in _check(headers)


def test_run_files_are_served_sandboxed(ui_server: LiveServer) -> None:
    with Client(ui_server.url) as c:
        c.create_project("sec-headers")
        run = c.create_run("sec-headers", name="files")
        c.upload_artifact(run["id"], "page.html", b"<script>alert(document.cookie)</script>")
    status, headers, body = raw(ui_server, "GET", f"{V1}/runs/{run['id']}/artifacts/page.html")
    assert status == 200 and b"<script>" in body
    csp = _check(headers, frame="SAMEORIGIN")
    assert csp.startswith("sandbox")
    assert "default-src 'none'" in csp and "frame-ancestors 'self'" in csp
    assert headers["content-type"] == "application/octet-stream"


def test_an_html_artifact_viewed_as_a_page_stays_sandboxed(ui_server: LiveServer) -> None:
    # A notebook's HTML rendering (notebook: runs) is read in the browser with ?view=1: text/html, but under the
    # same sandbox, so its scripts never run and it has no origin of its own (no cookie, no API).
    with Client(ui_server.url) as c:
        c.create_project("sec-headers-view")
        run = c.create_run("sec-headers-view", name="notebook")
        c.upload_artifact(run["id"], "notebook/train.html", b"<p>cell</p><script>alert(document.cookie)</script>")
        c.upload_artifact(run["id"], "notebook/train.ipynb", b"{}")
    status, headers, body = raw(ui_server, "GET", f"{V1}/runs/{run['id']}/artifacts/notebook/train.html?view=1")
    assert status == 200 and b"<script>" in body
    assert headers["content-type"] == "text/html; charset=utf-8" and headers["content-disposition"] == "inline"
    csp = _check(headers, frame="SAMEORIGIN")
    assert csp.startswith("sandbox;") and "allow-scripts" not in csp and "allow-same-origin" not in csp
    assert "script-src" not in csp and "default-src 'none'" in csp
    # Anything else stays a download, whatever the query says.
    _, headers, _ = raw(ui_server, "GET", f"{V1}/runs/{run['id']}/artifacts/notebook/train.ipynb?view=1")
    assert headers["content-type"] == "application/octet-stream"


def test_operator_image_hosts_reach_the_csp_and_the_ui(live_servers: LiveServers, tmp_path: Path) -> None:
    ui = tmp_path / "ui"
    ui.mkdir()
    (ui / "index.html").write_text("<!doctype html>")
    server = live_servers.start("images", env={"RUNYARD_UI_DIR": str(ui), "RUNYARD_SCHEDULER": "0",
                                               "RUNYARD_UI_IMAGE_HOSTS": "img.example, Badges.Example:8443"})
    _, headers, _ = raw(server, "GET", "/")
    assert "img-src 'self' data: https://img.example https://badges.example:8443;" in headers["content-security-policy"]
    _, _, body = raw(server, "GET", V1 + "/health")
    assert json.loads(body)["image_hosts"] == ["img.example", "badges.example:8443"]
    _, headers, _ = raw(server, "GET", V1 + "/health")
    assert "img-src" not in headers["content-security-policy"]  # the API stays default-src 'none'


def test_bad_image_hosts_setting_stops_the_server(live_servers: LiveServers) -> None:
    with pytest.raises(RuntimeError, match="RUNYARD_UI_IMAGE_HOSTS"):
        live_servers.start("bad-images", env={"RUNYARD_UI_IMAGE_HOSTS": "evil.example; script-src *"})
