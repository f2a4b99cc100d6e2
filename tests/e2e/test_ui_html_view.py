"""The run page's *view* link for an HTML artifact (a notebook's rendering): a tab of its own, no script run."""

from __future__ import annotations

import pytest
from e2e_helpers import Yard

pytestmark = pytest.mark.slow

PAGE = b"<html><head><title>rendered</title></head><body><p id='cell'>cell output</p>" \
       b"<script>document.title = 'script ran'; fetch('/api/v1/projects')</script></body></html>"


def test_an_html_artifact_opens_in_a_tab_without_running_its_script(yard: Yard, page) -> None:  # noqa: ANN001
    yard.client.create_project("ui-html-view")
    run = yard.client.create_run("ui-html-view", name="notebook")
    yard.client.upload_artifact(run["id"], "notebook/train.html", PAGE)
    yard.client.upload_artifact(run["id"], "notebook/train.ipynb", b"{}")
    page.goto(f"{yard.url}/runs/{run['id']}?tab=artifacts")
    views = page.locator('[data-testid="artifacts"] a', has_text="view")
    views.first.wait_for()
    assert views.count() == 1  # the .ipynb has a download link only
    with page.context.expect_page() as opened:
        views.first.click()
    tab = opened.value
    tab.wait_for_load_state()
    assert tab.locator("#cell").text_content() == "cell output"
    assert tab.title() == "rendered"  # the page's script did not run
    assert tab.evaluate("window.origin") == "null"  # sandboxed: no origin of its own, so no session or API
    tab.close()
