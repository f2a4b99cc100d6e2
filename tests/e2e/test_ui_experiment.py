"""The web UI in a real headless Chromium against a live server running a real grid sweep.

One sweep (12 runs of a tiny SDK script on the local backend) serves the module: the first
test watches it live, the later ones read the finished experiment. Pages are driven only
through what a person does (navigate, click, drag); the API client checks the ground truth.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from e2e_helpers import Yard, wait_until
from ui_helpers import column_values, table_total

pytestmark = pytest.mark.slow

SWEEP_YML = """
project: ui-grid
command: python train.py --a {a} --b {b}
params:
  a: [1, 2, 3, 4, 5, 6]
  b: [x, y]
  c: 7
search:
  parallel: 3
  metric: loss
resources:
  cpus: 0.1
"""

SWEEP_PY = """
import argparse
import time
import runyard

parser = argparse.ArgumentParser()
parser.add_argument("--a", type=int, required=True)
parser.add_argument("--b", required=True)
args = parser.parse_args()
runyard.init()
for step in range(4):
    runyard.log({"loss": args.a * 10 + (5 if args.b == "y" else 0) + step}, step=step)
    time.sleep(0.3)
print(f"training a={args.a} b={args.b} done")
with open("model.txt", "w") as f:
    f.write(f"weights for a={args.a}")
runyard.log_artifact("model.txt")
runyard.finish()
"""


@pytest.fixture(scope="module")
def sweep(_shared_yard: Yard, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Yard, dict[str, Any]]]:
    """The grid sweep, submitted and not awaited; cancelled at the end if still running."""
    root = tmp_path_factory.mktemp("ui-grid")
    (root / "runyard.yml").write_text(SWEEP_YML.strip() + "\n")
    (root / "train.py").write_text(SWEEP_PY.lstrip())
    exp = _shared_yard.submit(root)
    yield _shared_yard, exp
    if _shared_yard.client.get_experiment(exp["id"])["status"] == "running":
        _shared_yard.client.cancel_experiment(exp["id"])


def _finished(yard: Yard, exp: dict[str, Any]) -> dict[str, Any]:
    done = yard.wait_experiment(exp["id"])
    assert done["status"] == "succeeded", yard.describe(exp["id"])
    return done


def test_runs_appear_live_while_the_sweep_runs(sweep, page) -> None:  # noqa: ANN001
    yard, exp = sweep
    page.goto(f"{yard.url}/experiments/{exp['id']}")
    page.wait_for_selector("h1")
    # The page is opened while the sweep runs, then never reloaded: it must show runs running and,
    # later, all twelve succeeded.
    page.wait_for_selector('[data-testid="run-row"] .status-running', timeout=60_000)
    assert yard.client.get_experiment(exp["id"])["status"] == "running"
    page.wait_for_function(
        """() => document.querySelectorAll('[data-testid="run-row"] .status-succeeded').length === 12""", timeout=120_000)
    assert page.url.endswith(f"/experiments/{exp['id']}")  # no navigation happened
    page.wait_for_function("""() => document.querySelector('[data-testid="counts"]').textContent === 'succeeded 12'""")
    assert "12 of 12 runs finished" in page.text_content('[data-testid="budget"]')
    assert not page.console_errors, page.console_errors


def test_sorting_by_a_metric_orders_the_rows(sweep, page) -> None:  # noqa: ANN001
    yard, exp = sweep
    _finished(yard, exp)
    page.goto(f"{yard.url}/experiments/{exp['id']}")
    header = page.locator('[role="columnheader"][data-col="metrics.loss.last"]')
    header.click()
    page.wait_for_function("""() => document.querySelector('[data-col="metrics.loss.last"]').getAttribute('aria-sort') === 'ascending'""")
    assert "sort=metrics.loss.last" in page.url  # the sort is part of the shareable link
    wait_until(lambda: len([v for v in column_values(page, "metrics.loss.last") if v]) == 12, 20, "12 sorted rows")
    expected = sorted(r["metrics"]["loss"]["last"] for r in yard.client.list_runs(experiment_id=exp["id"], limit=100)["items"])

    def shown() -> list[float]:
        return [float(v) for v in column_values(page, "metrics.loss.last") if v]

    wait_until(lambda: shown() == expected, 20, f"ascending order {expected}")
    header.click()
    wait_until(lambda: shown() == expected[::-1], 20, "descending order")
    # A deep link with the sort opens the same order.
    page.goto(page.url)
    wait_until(lambda: shown() == expected[::-1], 20, "descending order after opening the link")


def test_brushing_parallel_coordinates_filters_the_table(sweep, page) -> None:  # noqa: ANN001
    yard, exp = sweep
    _finished(yard, exp)
    page.goto(f"{yard.url}/experiments/{exp['id']}")
    page.wait_for_function("""() => Number(document.querySelector('[data-testid="parcoords"]')?.dataset.runs) === 12""")
    wait_until(lambda: table_total(page) == 12, 20, "12 rows")
    axis = page.locator('[data-axis="params.a"]')
    box = axis.bounding_box()
    x = box["x"] + box["width"] / 2
    # Drag from the top of the a axis (a = 6) down to just over its middle (a ≈ 3.5): a in {4, 5, 6}.
    page.mouse.move(x, box["y"] + 1)
    page.mouse.down()
    page.mouse.move(x, box["y"] + box["height"] * 0.3, steps=5)
    page.mouse.move(x, box["y"] + box["height"] * 0.5, steps=5)
    page.mouse.up()
    wait_until(lambda: table_total(page) == 6, 20, "the brushed table to hold 6 runs")
    assert "brush=params.a" in page.url
    wait_until(lambda: len([v for v in column_values(page, "params.a") if v]) == 6, 20, "6 rendered rows")
    assert sorted(int(v) for v in column_values(page, "params.a")) == [4, 4, 5, 5, 6, 6]
    # A click on the axis clears its brush.
    page.mouse.click(x, box["y"] + box["height"] * 0.8)
    wait_until(lambda: table_total(page) == 12, 20, "the brush to clear")


def test_filter_box_and_status_filter_narrow_the_table(sweep, page) -> None:  # noqa: ANN001
    yard, exp = sweep
    _finished(yard, exp)
    page.goto(f"{yard.url}/experiments/{exp['id']}")
    wait_until(lambda: table_total(page) == 12, 20, "12 rows")
    box = page.get_by_label("filter runs")
    box.fill("params.b = y; metrics.loss.last >= 40")
    box.press("Enter")
    # loss.last = 10a + 5 + 3 for b = y: at least 40 for a in {4, 5, 6}.
    wait_until(lambda: table_total(page) == 3, 20, "the filtered table: b = y and a >= 4")
    wait_until(lambda: sorted(int(v) for v in column_values(page, "params.a") if v) == [4, 5, 6], 20, "a in 4, 5, 6")
    assert "filter=" in page.url
    # A wrong term: the server's message and hint, not a broken page.
    box.fill("metrics.loss.last < lots")
    box.press("Enter")
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "not a number" in alert.text_content() and "Compare metrics with numbers" in alert.text_content()
    box.fill("")
    box.press("Enter")
    page.get_by_label("canceled").check()
    wait_until(lambda: table_total(page) == 0, 20, "no canceled runs")
    page.get_by_label("succeeded").check()
    wait_until(lambda: table_total(page) == 12, 20, "canceled or succeeded: all 12")
    assert "status=canceled%2Csucceeded" in page.url or "status=canceled,succeeded" in page.url


def test_run_page_shows_params_chart_and_log(sweep, page) -> None:  # noqa: ANN001
    yard, exp = sweep
    _finished(yard, exp)
    run = next(r for r in yard.client.list_runs(experiment_id=exp["id"], limit=100)["items"] if r["params"]["a"] == 3)
    page.goto(f"{yard.url}/runs/{run['id']}")
    params = page.locator('[data-testid="params"]')
    params.wait_for()
    text = params.text_content()
    assert "a" in text and "3" in text and run["params"]["b"] in text
    chart = page.locator('[data-testid="chart"][data-title="loss"]')
    chart.wait_for()
    wait_until(lambda: int(chart.get_attribute("data-points") or 0) == 4, 20, "the loss chart's 4 points")
    assert chart.locator("canvas").count() == 1
    page.get_by_role("button", name="logs").click()
    assert "tab=logs" in page.url
    line = f"training a=3 b={run['params']['b']} done"
    page.locator('[data-testid="log-line"]', has_text=line).wait_for()
    page.get_by_label("search the log").fill("training")
    wait_until(lambda: page.locator('[data-testid="log-line"]').count() == 1, 20, "the search to keep one line")

    # The code snapshot: the file tree and a file's content.
    page.get_by_role("button", name="code").click()
    page.locator('[data-testid="files"] a', has_text="train.py").click()
    page.locator('[data-testid="file-content"]', has_text="runyard.init()").wait_for()
    assert "file=train.py" in page.url
    # Artifacts, with a download link that serves the file.
    page.get_by_role("button", name="artifacts").click()
    link = page.locator('[data-testid="artifacts"] a', has_text="download")
    link.wait_for()
    with page.expect_download() as info:
        link.click()
    assert Path(info.value.path()).read_text() == "weights for a=3"
    # Status history and attempts.
    page.get_by_role("button", name="history").click()
    events = page.locator('[data-testid="events"]').text_content()
    assert "queued" in events and "running" in events and "succeeded" in events
    assert not page.console_errors, page.console_errors


def test_projects_lead_to_the_project_its_experiment_and_a_run(sweep, page) -> None:  # noqa: ANN001
    yard, exp = sweep
    _finished(yard, exp)
    yard.client.request("PATCH", "/projects/ui-grid", json={"description": "# Grid demo\n\nA **tiny** sweep.<script>window.bad=1</script>"})
    page.goto(f"{yard.url}/?q=ui-gr")
    page.locator('[data-testid="projects"] a', has_text="ui-grid").click()
    page.wait_for_url("**/projects/ui-grid")
    page.locator(".markdown h1", has_text="Grid demo").wait_for()
    assert page.locator(".markdown strong").text_content() == "tiny"
    assert page.evaluate("window.bad") is None  # the Markdown is sanitised
    page.locator('[data-testid="experiments"] a', has_text=exp["name"]).click()
    page.wait_for_url(f"**/experiments/{exp['id']}")
    page.locator('[data-testid="run-row"] a').first.click()
    page.wait_for_url("**/runs/*")
    page.locator('[data-testid="params"]').wait_for()


def test_projects_filter_by_tag_on_the_server_and_in_the_url(sweep, page) -> None:  # noqa: ANN001
    yard, _exp = sweep  # the sweep's submission created project ui-grid
    yard.client.set_project_tags("ui-grid", {"problem": "classification", "benchmark": ""})
    yard.client.create_project("ui-tag-reg", tags={"problem": "regression", "benchmark": ""})
    yard.client.create_project("ui-tag-none")
    rows = page.locator('[data-testid="projects"] tbody tr')

    def shown() -> list[str]:
        return sorted(rows.evaluate_all("trs => trs.map(t => t.dataset.project)"))

    def requested(tags: list[str]) -> str:
        return f"/api/v1/projects?{'&'.join('tag=' + quote(t, safe='') for t in tags)}"

    # A deep link filters at once, through the server (the request carries the filter).
    with page.expect_response(lambda r: r.url.endswith(requested(["problem:classification"]))):
        page.goto(f"{yard.url}/?tag=problem:classification")
    wait_until(lambda: shown() == ["ui-grid"], 20, "only the classification project")
    row = page.locator('tr[data-project="ui-grid"]')
    assert row.locator("button.tag").all_text_contents() == ["benchmark", "problem: classification"]
    assert row.locator('button.tag[data-tag="problem:classification"]').get_attribute("class") == "tag active"
    # Removing the filter shows every project again, the untagged one with no tag buttons.
    page.get_by_label("remove tag filter problem:classification").click()
    wait_until(lambda: {"ui-grid", "ui-tag-reg", "ui-tag-none"} <= set(shown()), 20, "every project")
    assert "tag=" not in page.url
    assert page.locator('tr[data-project="ui-tag-none"] button.tag').count() == 0
    # Clicking a tag in a row filters by it.
    with page.expect_response(lambda r: r.url.endswith(requested(["benchmark"]))):
        page.locator('tr[data-project="ui-tag-reg"] button.tag', has_text="benchmark").click()
    wait_until(lambda: shown() == ["ui-grid", "ui-tag-reg"], 20, "the two benchmark projects")
    assert page.url.endswith("/?tag=benchmark")
    # A typed filter (KEY = VALUE) adds to it: both must match.
    box = page.get_by_label("filter by tag")
    box.fill("problem = regression")
    box.press("Enter")
    wait_until(lambda: shown() == ["ui-tag-reg"], 20, "the benchmark regression project")
    assert page.url.endswith("/?tag=benchmark&tag=problem%3Aregression")
    assert page.get_by_test_id("tag-filters").locator("button.tag").all_text_contents() == ["benchmark ×", "problem:regression ×"]
    # The link opens the same list.
    page.goto(page.url)
    wait_until(lambda: shown() == ["ui-tag-reg"], 20, "the same list from the link")
    assert not page.console_errors, page.console_errors
    # A filter the server refuses shows its message, not an empty table.
    page.goto(f"{yard.url}/?tag=bad%20key")
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "A tag filter is KEY or KEY:VALUE" in alert.text_content()


def test_compare_view_shows_the_param_that_differs(sweep, page) -> None:  # noqa: ANN001
    yard, exp = sweep
    _finished(yard, exp)
    runs = yard.client.list_runs(experiment_id=exp["id"], limit=100)["items"]
    one = next(r for r in runs if r["params"] == {"a": 2, "b": "x", "c": 7})
    two = next(r for r in runs if r["params"] == {"a": 5, "b": "x", "c": 7})
    # Select the two runs in the experiment's table and open the compare view from there.
    page.goto(f"{yard.url}/experiments/{exp['id']}")
    page.get_by_label(f"select run {one['id']}").check()
    page.get_by_label(f"select run {two['id']}").check()
    assert f"sel={one['id']}%2C{two['id']}" in page.url or f"sel={one['id']},{two['id']}" in page.url
    page.get_by_role("button", name="compare").click()
    page.wait_for_url(f"**/compare?runs={one['id']},{two['id']}")
    table = page.locator('[data-testid="param-diff"]')
    table.wait_for()
    assert table.locator('tr[data-key="a"]').get_attribute("data-differs") == "1"
    assert table.locator('tr[data-key="b"]').get_attribute("data-differs") == "0"
    assert table.locator('tr[data-key="c"]').get_attribute("data-differs") == "0"
    assert table.locator('tr[data-key="a"] td').all_text_contents() == ["2", "5"]
    chart = page.locator('[data-testid="chart"][data-title="loss"]')
    chart.wait_for()
    wait_until(lambda: int(chart.get_attribute("data-points") or 0) == 8, 20, "both runs' curves")
    # Too many runs: a clear message, not a broken page.
    page.goto(f"{yard.url}/compare?runs={','.join(str(i) for i in range(1, 13))}")
    page.get_by_role("alert").wait_for()
    assert "at most 10 runs" in page.get_by_role("alert").text_content()


def test_unknown_api_path_is_json_not_the_app(sweep) -> None:  # noqa: ANN001
    import httpx

    yard, _ = sweep
    resp = httpx.get(f"{yard.url}/api/v1/nope")
    assert resp.status_code == 404 and resp.json()["code"] == "not_found"
    deep = httpx.get(f"{yard.url}/experiments/1?sort=metrics.loss.last")
    assert deep.status_code == 200 and '<div id="root">' in deep.text
    assert json.loads(httpx.get(f"{yard.url}/api/v1/health").text)["status"] == "ok"
    assert time.time() > 0


def test_a_projects_tags_are_added_and_removed_on_its_page(sweep, page) -> None:  # noqa: ANN001
    yard, _exp = sweep
    page.goto(f"{yard.url}/projects/ui-grid")
    tags = page.get_by_test_id("project-tags")
    box = page.get_by_label("add a tag")
    box.fill("stage: tuning")
    page.get_by_role("button", name="Add tag").click()
    tags.locator('[data-tag="stage:tuning"]').wait_for()
    assert yard.client.get_project("ui-grid")["tags"]["stage"] == "tuning"
    assert box.input_value() == ""
    # A bad key is refused by the server with its reason; nothing changes.
    box.fill("bad key!: x")
    page.get_by_role("button", name="Add tag").click()
    tags.get_by_role("alert").wait_for()
    assert "tag key" in tags.get_by_role("alert").text_content()
    assert "bad key!" not in yard.client.get_project("ui-grid")["tags"]
    # Removing it.
    page.get_by_label("remove tag stage").click()
    wait_until(lambda: tags.locator('[data-tag="stage:tuning"]').count() == 0, 20, "the removed tag to go")
    assert "stage" not in yard.client.get_project("ui-grid")["tags"]
    # A tag leads to the projects that have it.
    yard.client.set_project_tags("ui-grid", {"team": "vision"})
    page.reload()
    tags.locator('[data-tag="team:vision"] a').click()
    page.wait_for_url("**/?tag=team%3Avision")
    page.locator('[data-testid="projects"] tr[data-project="ui-grid"]').wait_for()
    # The browser logs the refused request (400); nothing else went wrong.
    assert [e for e in page.console_errors if "status of 400" not in e] == [], page.console_errors
    assert len(page.console_errors) == 1, page.console_errors
