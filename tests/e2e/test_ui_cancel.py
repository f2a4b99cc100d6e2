"""Cancelling from the UI, in a real headless Chromium: a running run ends ``canceled`` (from its
page and from its row of the runs table), and so does the rest of an experiment cancelled from
its page. Each asks for confirmation first."""

from __future__ import annotations

import pytest
from e2e_helpers import Yard, wait_until

pytestmark = pytest.mark.slow

LONG_YML = """
project: ui-cancel
command: python train.py --i {i}
params:
  i: [1, 2, 3]
search:
  parallel: 1
resources:
  cpus: 0.1
"""

LONG_PY = """
import argparse
import time
import runyard

parser = argparse.ArgumentParser()
parser.add_argument("--i", type=int, required=True)
args = parser.parse_args()
runyard.init()
for step in range(600):
    runyard.log({"x": step}, step=step)
    print(f"step {step}", flush=True)
    time.sleep(0.2)
runyard.finish()
"""


def test_cancel_a_run_and_the_experiment_from_the_ui(yard: Yard, make_project, page) -> None:  # noqa: ANN001
    project = make_project("ui-cancel", LONG_YML, LONG_PY)
    exp = yard.submit(project.path)

    def running() -> dict | None:
        items = yard.client.list_runs(experiment_id=exp["id"], status=["running"], limit=10)["items"]
        return items[0] if items and items[0]["metrics"] else None

    run = wait_until(running, what="a run of the sweep to be running and logging")
    page.goto(f"{yard.url}/runs/{run['id']}")
    page.get_by_role("button", name="Cancel run").click()
    # Nothing happens before the confirmation.
    page.get_by_role("alertdialog").wait_for()
    assert yard.client.get_run(run["id"])["status"] == "running"
    page.get_by_role("button", name="Yes, cancel run").click()
    assert yard.wait_run(run["id"])["status"] == "canceled"
    page.locator("h1 .status-canceled").wait_for()  # the page shows it without a reload

    # The next run starts; cancel it from its row of the experiment's table.
    def next_running() -> dict | None:
        items = yard.client.list_runs(experiment_id=exp["id"], status=["running"], limit=10)["items"]
        return items[0] if items and items[0]["id"] != run["id"] else None

    second = wait_until(next_running, what="the next run to be running")
    page.goto(f"{yard.url}/experiments/{exp['id']}")
    row = page.locator(f'[data-testid="run-row"][data-run-id="{second["id"]}"]')
    row.get_by_role("button", name="cancel").click()
    row.get_by_role("button", name="Yes, cancel").click()
    assert yard.wait_run(second["id"])["status"] == "canceled"
    row.locator(".status-canceled").wait_for()

    page.get_by_role("button", name="Cancel experiment").click()
    page.get_by_role("button", name="Keep").click()  # changing one's mind keeps it running
    assert yard.client.get_experiment(exp["id"])["status"] == "running"
    page.get_by_role("button", name="Cancel experiment").click()
    page.get_by_role("button", name="Yes, cancel all").click()
    done = yard.wait_experiment(exp["id"])
    assert done["status"] == "canceled"
    wait_until(lambda: all(r["status"] == "canceled" for r in yard.client.list_runs(experiment_id=exp["id"], limit=10)["items"]),
               what="every run of the experiment to be canceled")
    page.locator("h1 .status-canceled").wait_for()
