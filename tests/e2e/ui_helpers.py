"""Browser fixtures of the UI tests: Debian's headless Chromium driven by Playwright.

``tests/e2e/conftest.py`` imports the fixtures, so the session has one browser.
The browser is ``/usr/bin/chromium`` (installed by ``scripts/test-setup.sh``), never one
Playwright downloads. The UI must be built (``make install`` builds ``web/`` into
``runyard/server/static/``). Each test's page is saved as a screenshot under
``test-artifacts/ui/<test>.png`` when the test ends, pass or fail; browser console errors are
kept in ``page.console_errors`` for assertions.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("RUNYARD_TEST_CHROMIUM", "/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "ui"
STATIC_INDEX = REPO / "runyard" / "server" / "static" / "index.html"


def _missing(what: str) -> None:
    """Missing Chromium or UI build: a failure in CI, a loud skip elsewhere."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {what}")
    pytest.skip(f"SKIPPING UI BROWSER TESTS: {what}")


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        _missing(f"{CHROMIUM} is not installed. Install it with `bash scripts/test-setup.sh`.")
    if not STATIC_INDEX.exists():
        _missing(f"the UI is not built ({STATIC_INDEX} is missing). Build it with `make install`.")
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    try:
        # --no-sandbox: the tests run as root in CI, where Chromium's sandbox refuses to start.
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield b
        finally:
            b.close()
    finally:
        pw.stop()


@pytest.fixture
def page(browser, request: pytest.FixtureRequest) -> Iterator[object]:  # noqa: ANN001
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    pg.console_errors = []
    pg.on("console", lambda m: pg.console_errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.console_errors.append(str(e)))
    try:
        yield pg
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^\w.-]+", "_", request.node.name)
        try:
            pg.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        finally:
            context.close()


def column_values(page, col: str) -> list[str]:  # noqa: ANN001
    """The texts of one column of the runs table's loaded, rendered rows, top to bottom."""
    return page.eval_on_selector_all(
        f'[data-testid="run-row"] [data-col="{col}"]',
        "els => els.map(e => [Number(e.closest('[data-index]').dataset.index), e.textContent])"
        ".sort((a, b) => a[0] - b[0]).map(x => x[1])",
    )


def table_total(page) -> int:  # noqa: ANN001
    t = page.get_attribute('[data-testid="run-table"]', "data-total")
    return int(t) if t else -1
