"""The run page's media in a real headless Chromium: logged images with a step slider, a sortable
logged table, artifact previews (CSV, Markdown, text), the run's note (edited by an editor, not
by a viewer), and hostile SVG, HTML and Markdown artifacts that run no script in the app's origin.

The data comes from the SDK (``runyard.log_image``, ``log_table``, ``note``) in a subprocess, as a
training script would log it, and from plain artifact uploads. Scripts in the hostile files try
to set ``__pwned`` on every window they can reach and to call a URL on a small HTTP server the
test watches (on 127.0.0.1): neither may happen.
"""

from __future__ import annotations

import http.server
import io
import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import Yard
from playwright.sync_api import expect
from ui_helpers import ARTIFACTS

from runyard.client import Client

pytestmark = pytest.mark.slow

ADMIN_PW = "admin-pw-0123456789"
ALICE_PW = "alice-pw-123"
BOB_PW = "bob-pw-1234"
POLL_WAIT_MS = 30_000  # the page polls every 2 s; generous for a loaded machine

# One solid colour per step, so the page's picture says which step it shows.
COLOURS = {0: (255, 0, 0), 5: (0, 160, 0), 10: (0, 0, 255)}

LOG_SCRIPT = """
import json, sys
import numpy as np
import runyard

colours = {colours}
run = runyard.init(project={project!r}, name="media", capture_output=False)
for step, rgb in sorted(colours.items()):
    runyard.log_image("samples/digits", np.full((24, 32, 3), rgb, dtype=np.uint8), step=step, caption=f"colour at {{step}}")
runyard.log_image("val/other", np.zeros((8, 8), dtype=np.uint8), step=3)
runyard.log_table("predictions", {{"columns": ["id", "label", "score"],
                                   "rows": [[1, "cat", "9"], [2, "dog", "10"], [3, "emu", "100"], [4, "ant", "-1.5"]]}})
for epoch in (1, 2):
    runyard.log_table("per_epoch", [{{"epoch": epoch, "acc": 0.5 + epoch / 10}}], step=epoch)
runyard.note("# Findings\\n\\n**lr 0.1** diverged.")
runyard.finish()
print(json.dumps({{"run_id": run.id}}))
"""


class Watcher:
    """A tiny HTTP server on 127.0.0.1 that records every path asked of it: a script that ran calls it."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        watcher = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                watcher.paths.append(self.path)
                self.send_response(204)
                self.end_headers()

            do_POST = do_GET  # noqa: N815

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def watcher() -> Iterator[Watcher]:
    w = Watcher()
    try:
        yield w
    finally:
        w.close()


def payload(watch_url: str, tag: str) -> str:
    """Script that marks every reachable window and calls the watched server (and says it ran)."""
    return (f"window.__pwned='{tag}';try{{parent.__pwned='{tag}'}}catch(e){{}};try{{top.__pwned='{tag}'}}catch(e){{}};"
            f"fetch('{watch_url}/{tag}-fetch').catch(function(){{}});new Image().src='{watch_url}/{tag}-img';"
            f"document.title='{tag} ran'")


def hostile_svg(watch_url: str) -> bytes:
    js = payload(watch_url, "svg")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="200" height="80" onload="{js}">'
            f'<script>{js}</script><text id="label" x="10" y="40">harmless picture</text></svg>').encode()


def hostile_html(watch_url: str) -> bytes:
    js = payload(watch_url, "html")
    return (f"<html><head><title>report</title></head><body><p id='cell'>cell output</p>"
            f"<img src='x' onerror=\"{js}\"><script>{js}</script></body></html>").encode()


def log_with_sdk(yard: Yard, project: str, tmp_path: Path) -> int:
    script = textwrap.dedent(LOG_SCRIPT).format(project=project, colours=COLOURS)
    env = {**os.environ, "RUNYARD_SERVER": yard.url, "RUNYARD_HOME": str(tmp_path / "sdk-home"), "RUNYARD_SDK_CAPTURE": "0"}
    for var in ("RUNYARD_RUN_ID", "RUNYARD_TOKEN", "RUNYARD_DATABASE_URL"):
        env.pop(var, None)
    res = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120,
                         stdin=subprocess.DEVNULL, check=False)
    assert res.returncode == 0, f"the SDK script failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
    return int(json.loads(res.stdout.strip().splitlines()[-1])["run_id"])


def centre_rgb(page, selector: str) -> list[int]:  # noqa: ANN001
    """The colour of the centre pixel of a loaded, same-origin <img>."""
    return page.eval_on_selector(selector, """img => new Promise((ok, fail) => {
        const draw = () => {
          const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
          const g = c.getContext('2d'); g.drawImage(img, 0, 0);
          const d = g.getImageData(c.width >> 1, c.height >> 1, 1, 1).data; ok([d[0], d[1], d[2]]);
        };
        if (img.complete && img.naturalWidth) draw(); else { img.onload = draw; img.onerror = () => fail('no image'); }
    })""")


def column(page, table, i: int) -> list[str]:  # noqa: ANN001
    return table.locator(f"tbody tr td:nth-child({i})").all_text_contents()


def test_images_tables_and_previews(yard: Yard, page, tmp_path: Path) -> None:  # noqa: ANN001
    project = "ui-media"
    yard.client.create_project(project)
    run_id = log_with_sdk(yard, project, tmp_path)
    c = yard.client
    c.upload_artifact(run_id, "results/metrics.csv", b"epoch,loss,name\n1,0.5,b\n2,0.25,a10\n10,2,a9\n")
    c.upload_artifact(run_id, "README.md", b"# Report\n\n- item **one**\n\n<script>window.__pwned='md'</script>\n")
    c.upload_artifact(run_id, "logs/train.log", b"epoch 1 loss 0.5\n<b>not bold</b>\n")
    c.upload_artifact(run_id, "results/big.tsv", b"i\tsq\n" + b"".join(b"%d\t%d\n" % (i, i * i) for i in range(1500)))

    # The note shows rendered on the overview.
    page.goto(f"{yard.url}/runs/{run_id}")
    note = page.get_by_test_id("run-note")
    expect(note.locator(".markdown h1")).to_have_text("Findings")
    expect(note.locator(".markdown strong")).to_have_text("lr 0.1")
    # In local mode everybody may edit.
    expect(note).to_have_attribute("data-role", "owner")
    expect(note.get_by_role("button", name="Edit note")).to_be_visible()

    # Images: the newest step first, then the slider picks others (by keyboard and by value).
    page.get_by_role("button", name="media", exact=True).click()
    page.wait_for_url(f"**/runs/{run_id}?tab=media")
    card = page.locator('[data-testid="image-card"][data-key="samples/digits"]')
    expect(card.get_by_test_id("image-step")).to_have_text("step 10")
    expect(card.get_by_test_id("image-caption")).to_have_text("colour at 10")
    img = '[data-testid="image-card"][data-key="samples/digits"] [data-testid="image-shown"] img'
    assert page.get_attribute(img, "loading") == "lazy"
    assert page.get_attribute(img, "src").endswith("/media/images/samples/digits/10-0.png?view=true")
    assert centre_rgb(page, img) == list(COLOURS[10])
    slider = card.get_by_role("slider", name="step of samples/digits")
    slider.focus()
    page.keyboard.press("ArrowLeft")
    expect(card.get_by_test_id("image-step")).to_have_text("step 5")
    expect(card.get_by_test_id("image-caption")).to_have_text("colour at 5")
    assert centre_rgb(page, img) == list(COLOURS[5])
    page.keyboard.press("Home")
    expect(card.get_by_test_id("image-step")).to_have_text("step 0")
    assert centre_rgb(page, img) == list(COLOURS[0])
    slider.fill("2")
    expect(card.get_by_test_id("image-step")).to_have_text("step 10")
    # All steps as thumbnails; a click on one shows its step.
    card.get_by_role("button", name="all steps").click()
    card.get_by_role("button", name="step 5", exact=True).click()
    expect(card.get_by_test_id("image-step")).to_have_text("step 5")
    expect(page.locator('[data-testid="image-card"][data-key="val/other"]').get_by_test_id("image-step")).to_have_text("step 3")

    # The logged table sorts by a header click, numbers as numbers (the scores are text in the CSV).
    tcard = page.locator('[data-testid="table-card"][data-key="predictions"]')
    table = tcard.get_by_role("table", name="table predictions")
    expect(table.locator("tbody tr")).to_have_count(4)
    assert column(page, table, 3) == ["9", "10", "100", "-1.5"]
    table.get_by_role("button", name="score").click()
    expect(table.locator("th", has_text="score")).to_have_attribute("aria-sort", "ascending")
    assert column(page, table, 3) == ["-1.5", "9", "10", "100"]
    table.get_by_role("button", name="score").click()
    expect(table.locator("th", has_text="score")).to_have_attribute("aria-sort", "descending")
    assert column(page, table, 2) == ["emu", "dog", "cat", "ant"]
    table.get_by_role("button", name="label").click()
    assert column(page, table, 2) == ["ant", "cat", "dog", "emu"]
    # A table logged at two steps: the newest first, a select picks the other.
    ecard = page.locator('[data-testid="table-card"][data-key="per_epoch"]')
    expect(ecard.get_by_role("table").locator("tbody td").first).to_have_text("2")
    ecard.get_by_label("step of table per_epoch").select_option(label="1")
    expect(ecard.get_by_role("table").locator("tbody td").first).to_have_text("1")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "test_ui_media_tab.png"), full_page=True)

    # Artifacts: a CSV previews as the same sortable table, Markdown rendered, a log as text.
    page.get_by_role("button", name="artifacts", exact=True).click()
    page.get_by_role("button", name="preview results/metrics.csv").click()
    preview = page.get_by_test_id("artifact-preview")
    expect(preview).to_have_attribute("data-kind", "table")
    ptable = preview.get_by_role("table")
    expect(ptable.locator("tbody tr")).to_have_count(3)
    ptable.get_by_role("button", name="epoch").click()
    ptable.get_by_role("button", name="epoch").click()
    assert column(page, ptable, 1) == ["10", "2", "1"]
    ptable.get_by_role("button", name="name").click()
    assert column(page, ptable, 3) == ["a9", "a10", "b"]
    assert "preview=results%2Fmetrics.csv" in page.url

    # A long table: its first 1,000 rows, and the page says so.
    page.get_by_role("button", name="preview results/big.tsv").click()
    expect(preview.get_by_test_id("table-rows")).to_contain_text("first 1,000 of 1,500 rows")
    expect(preview.get_by_role("table").locator("tbody tr")).to_have_count(1000)
    preview.get_by_role("table").get_by_role("button", name="sq").click()
    preview.get_by_role("table").get_by_role("button", name="sq").click()
    expect(preview.get_by_role("table").locator("tbody tr").first).to_contain_text("998001")

    page.get_by_role("button", name="preview README.md").click()
    expect(preview).to_have_attribute("data-kind", "markdown")
    expect(preview.locator(".markdown h1")).to_have_text("Report")
    expect(preview.locator(".markdown strong")).to_have_text("one")
    expect(preview.locator(".markdown script")).to_have_count(0)
    expect(preview.locator(".markdown")).to_contain_text("<script>")  # shown as text

    page.get_by_role("button", name="preview logs/train.log").click()
    expect(preview.get_by_test_id("artifact-text")).to_have_text("epoch 1 loss 0.5\n<b>not bold</b>\n")
    expect(preview.locator("b")).to_have_count(0)

    # A logged picture previews inline too.
    page.get_by_role("button", name="preview media/images/samples/digits/0-0.png").click()
    expect(preview).to_have_attribute("data-kind", "image")
    assert centre_rgb(page, '[data-testid="artifact-preview"] img') == list(COLOURS[0])

    assert page.evaluate("window.__pwned") is None
    assert page.console_errors == []  # no script error, no Content-Security-Policy violation


def png(rgb: tuple[int, int, int]) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (16, 16), rgb).save(out, format="PNG")
    return out.getvalue()


def test_a_live_runs_images_follow_new_steps_until_one_is_picked(yard: Yard, page) -> None:  # noqa: ANN001
    c = yard.client
    c.create_project("ui-media-live")
    run = c.create_run("ui-media-live", name="live")  # running: the page polls
    c.upload_artifact(run["id"], "media/images/live/0-0.png", png((255, 0, 0)))
    page.goto(f"{yard.url}/runs/{run['id']}?tab=media")
    card = page.locator('[data-testid="image-card"][data-key="live"]')
    expect(card.get_by_test_id("image-step")).to_have_text("step 0")
    c.upload_artifact(run["id"], "media/images/live/1-0.png", png((0, 255, 0)))
    expect(card.get_by_test_id("image-step")).to_have_text("step 1", timeout=POLL_WAIT_MS)  # followed
    slider = card.get_by_role("slider", name="step of live")
    slider.focus()
    page.keyboard.press("ArrowLeft")
    expect(card.get_by_test_id("image-step")).to_have_text("step 0")
    c.upload_artifact(run["id"], "media/images/live/2-0.png", png((0, 0, 255)))
    expect(card.get_by_text("(1 of 3)")).to_be_visible(timeout=POLL_WAIT_MS)
    expect(card.get_by_test_id("image-step")).to_have_text("step 0")  # a picked step stays
    page.keyboard.press("End")
    expect(card.get_by_test_id("image-step")).to_have_text("step 2")
    c.upload_artifact(run["id"], "media/images/live/3-0.png", png((9, 9, 9)))
    expect(card.get_by_test_id("image-step")).to_have_text("step 3", timeout=POLL_WAIT_MS)  # at the end it follows again
    c.cancel_run(run["id"])


def test_hostile_svg_and_html_run_no_script(yard: Yard, page, watcher: Watcher) -> None:  # noqa: ANN001
    project = "ui-media-hostile"
    c = yard.client
    c.create_project(project)
    run = c.create_run(project, name="hostile")
    c.upload_artifact(run["id"], "plots/evil.svg", hostile_svg(watcher.url))
    c.upload_artifact(run["id"], "report/evil.html", hostile_html(watcher.url))
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))

    for path, marker in (("report/evil.html", "#cell"), ("plots/evil.svg", "#label")):
        page.goto(f"{yard.url}/runs/{run['id']}?tab=artifacts")
        page.get_by_role("button", name=f"preview {path}").click()
        preview = page.get_by_test_id("artifact-preview")
        expect(preview).to_have_attribute("data-kind", "sandboxed")
        frame_el = preview.locator("iframe")
        # A sandbox without allow-scripts and allow-same-origin: the file gets no script and an opaque origin.
        assert frame_el.get_attribute("sandbox") == ""
        frame = frame_el.element_handle().content_frame()
        assert frame is not None
        frame.wait_for_load_state()
        expect(frame.locator(marker)).to_have_count(1)  # the file's content is there
        assert frame.locator(marker).text_content() in ("harmless picture", "cell output")
        assert page.evaluate("window.__pwned") is None
        assert page.title() != "svg ran" and page.title() != "html ran"

    # Opened in a tab of its own (the preview's link): the server's sandboxing CSP keeps its scripts off too.
    for path in ("plots/evil.svg", "report/evil.html"):
        resp = page.goto(f"{yard.url}/api/v1/runs/{run['id']}/artifacts/{path}?view=true")
        assert resp is not None and "sandbox" in resp.headers["content-security-policy"]
        assert page.evaluate("window.origin") == "null"
        assert page.evaluate("window.__pwned") is None
        assert not page.title().endswith(" ran")

    page.goto(f"{yard.url}/runs/{run['id']}?tab=artifacts")
    expect(page.get_by_test_id("artifacts")).to_contain_text("evil.svg")
    assert page.evaluate("window.__pwned") is None
    assert watcher.paths == [], f"a hostile file's script ran and called {watcher.paths}"
    assert not [u for u in requests if u.startswith(watcher.url)], requests


def test_note_edited_by_an_editor_and_not_by_a_viewer(servers, page) -> None:  # noqa: ANN001
    server = servers.start("media-ui-auth", env={"RUNYARD_AUTH": "required", "RUNYARD_ADMIN_PASSWORD": ADMIN_PW,
                                                 "RUNYARD_SCHEDULER": "0"})
    url = server.url
    with Client(url) as admin:
        admin.login("admin", ADMIN_PW)
        admin.create_user("alice", ALICE_PW)
        admin.create_user("bob", BOB_PW)
    with Client(url) as alice:
        alice.login("alice", ALICE_PW)
        alice.create_project("notes")
        alice.share_project("notes", "bob", "viewer")
        run = alice.create_run("notes", name="noted")
        alice.set_note(run["id"], "First *idea*.\n\n<img src=x onerror=\"window.__pwned='note'\">")

        # alice (owner) edits the note: Edit, change, Cancel keeps the old text; Edit, change, Save stores it.
        sign_in(page, url, "alice", ALICE_PW, f"/runs/{run['id']}")
        note = page.get_by_test_id("run-note")
        expect(note.locator(".markdown em")).to_have_text("idea")
        expect(note.locator(".markdown img")).to_have_count(0)  # raw HTML shows as text
        note.get_by_role("button", name="Edit note").click()
        box = note.get_by_role("textbox", name="note (Markdown)")
        expect(box).to_have_value("First *idea*.\n\n<img src=x onerror=\"window.__pwned='note'\">")
        box.fill("discarded")
        note.get_by_role("button", name="Cancel").click()
        expect(note.locator(".markdown em")).to_have_text("idea")
        note.get_by_role("button", name="Edit note").click()
        note.get_by_role("textbox", name="note (Markdown)").fill("## Result\n\nlr **0.01** wins.")
        note.get_by_role("button", name="Save").click()
        expect(note.locator(".markdown h2")).to_have_text("Result")
        expect(note.get_by_test_id("note-edited")).to_contain_text("alice")
        assert alice.get_note(run["id"])["text"] == "## Result\n\nlr **0.01** wins."
        assert page.evaluate("window.__pwned") is None
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(f"{url}/login")

        # bob (viewer) reads it but has no Edit button.
        sign_in(page, url, "bob", BOB_PW, f"/runs/{run['id']}")
        note = page.get_by_test_id("run-note")
        expect(note.locator(".markdown h2")).to_have_text("Result")
        # The page knows bob's role once it read the project's members; the button never shows for a viewer.
        expect(note).to_have_attribute("data-role", "viewer")
        expect(note.get_by_role("button", name="Edit note")).to_have_count(0)
        expect(note.get_by_role("textbox")).to_have_count(0)

        # Made editor, bob edits; dropped back to viewer while editing, his save shows the server's 403.
        alice.share_project("notes", "bob", "editor")
        page.reload()
        note = page.get_by_test_id("run-note")
        expect(note).to_have_attribute("data-role", "editor")
        note.get_by_role("button", name="Edit note").click()
        note.get_by_role("textbox", name="note (Markdown)").fill("bob was here")
        alice.share_project("notes", "bob", "viewer")
        note.get_by_role("button", name="Save").click()
        alert = note.get_by_role("alert")
        expect(alert).to_contain_text("Not allowed")
        expect(note.get_by_role("textbox", name="note (Markdown)")).to_have_value("bob was here")  # not lost
        assert alice.get_note(run["id"])["text"] == "## Result\n\nlr **0.01** wins."


def sign_in(page, url: str, username: str, password: str, then: str) -> None:  # noqa: ANN001
    page.goto(f"{url}{then}")
    page.wait_for_url("**/login?next=*")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{url}{then}")
