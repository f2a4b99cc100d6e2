"""The experiment page's TensorBoard button, in a real headless Chromium, on a server that requires sign-in.

alice signs in, opens her experiment (one run whose ``tensorboard/`` artifacts are event files written by
TensorBoard's own ``tensorboard.summary.Writer``), clicks "TensorBoard": a new tab opens at the server's
``/tb/<cap>/`` and TensorBoard lists the run. That tab is sandboxed (an opaque origin): its scripts can read
none of the app's cookies, and a fetch of ``/api/v1/me`` with the user's credentials does not get through.
An experiment without event files shows no button.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import expect
from ui_helpers import ARTIFACTS

from runyard.client import Client

pytest.importorskip("tensorboard", reason="the tensorboard extra (pip install 'runyard[tensorboard]')")

pytestmark = pytest.mark.slow

ADMIN_PW = "admin-pw-0123456789"
ALICE_PW = "alice-pw-123"
WRITE = """
import sys, types
sys.modules.setdefault('tensorboard.compat.notf', types.ModuleType('tensorboard.compat.notf'))
from tensorboard.summary import Writer
w = Writer(sys.argv[1])
for step in range(5):
    w.add_scalar('loss', 1.0 / (step + 1), step=step)
w.close()
"""

PROBE = """async () => {
  let cookie;
  // The browser's own getter (the page's first script makes document.cookie read as empty for TensorBoard).
  const getter = Object.getOwnPropertyDescriptor(Document.prototype, 'cookie').get;
  try { cookie = getter.call(document); } catch (e) { cookie = 'refused: ' + e.name; }
  let me;
  try {
    const r = await fetch('/api/v1/me', { credentials: 'include' });
    me = 'answered ' + r.status + ' ' + (await r.text()).slice(0, 200);
  } catch (e) { me = 'refused: ' + e.name; }
  return { origin: window.origin, cookie, me };
}"""


def test_the_tensorboard_button_opens_a_sandboxed_tensorboard_of_the_run(servers, page, tmp_path: Path) -> None:  # noqa: ANN001
    server = servers.start("ui-tensorboard", env={"RUNYARD_AUTH": "required", "RUNYARD_ADMIN_PASSWORD": ADMIN_PW,
                                                  "RUNYARD_SCHEDULER": "0"})
    (server.home / "backends.yml").write_text("local: {type: local, allow: {}, run_as: shared}\n")
    subprocess.run([sys.executable, "-c", WRITE, str(tmp_path)], check=True, timeout=60)
    with Client(server.url) as admin:
        admin.login("admin", ADMIN_PW)
        admin.create_user("alice", ALICE_PW)
    with Client(server.url) as alice:
        alice.login("alice", ALICE_PW)
        alice.create_project("tb-ui")
        exp = alice.create_experiment("tb-ui", "mnist", {"project": "tb-ui", "command": "python train.py"})
        bare = alice.create_experiment("tb-ui", "no-events", {"project": "tb-ui", "command": "python train.py"})
        run = alice.create_run("tb-ui", name="resnet", experiment_id=exp["id"])
        for f in tmp_path.glob("*tfevents*"):
            alice.upload_artifact(run["id"], f"tensorboard/train/{f.name}", f.read_bytes())

    page.goto(f"{server.url}/experiments/{exp['id']}")
    page.wait_for_url(re.compile(r"/login\?next="))
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(ALICE_PW)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{server.url}/experiments/{exp['id']}")
    # The app's own page holds its cookies (the CSRF one is readable by its scripts).
    assert "runyard_csrf=" in page.evaluate("document.cookie")
    assert "runyard_session" in {c["name"] for c in page.context.cookies(server.url)}  # HttpOnly, sent with requests

    button = page.get_by_test_id("tensorboard-button")
    expect(button).to_be_visible()
    with page.context.expect_page() as opened:
        button.click()
    tab = opened.value
    failed: list[str] = []
    tab.on("requestfailed", lambda r: failed.append(r.url))
    tab.wait_for_url(re.compile(r"/tb/[^/]+/"))
    # TensorBoard's own page lists the run (its folder: <run id>-<run name>/<subdirectory>).
    expect(tab.get_by_text(f"{run['id']}-resnet/train").first).to_be_visible(timeout=30_000)

    expect(tab.get_by_text("loss").first).to_be_visible()  # the scalar's card
    tab.screenshot(path=str(ARTIFACTS / "tensorboard_tab.png"))
    assert failed == [], failed  # the page's files (scripts, fonts, icons) and data all came through the proxy

    probe = tab.evaluate(PROBE)
    assert probe["origin"] == "null", probe  # sandboxed: an opaque origin of its own
    assert probe["cookie"] == "refused: SecurityError", probe
    assert probe["me"] == "refused: TypeError", probe  # no CORS answer for an opaque origin's credentialed fetch
    tab.close()

    # An experiment whose runs kept no event files has no button.
    page.goto(f"{server.url}/experiments/{bare['id']}")
    expect(page.get_by_role("heading", name=re.compile("no-events"))).to_be_visible()
    page.wait_for_timeout(500)
    expect(page.get_by_test_id("tensorboard-button")).to_have_count(0)
