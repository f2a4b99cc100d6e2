"""The experiment page at 10,000 runs in a real headless Chromium: the first rows show in under
2 s and the table scrolls to the last row (rows are loaded a page at a time as they come into view).

The runs are seeded into the server's SQLite database before the server starts: runs, params
and events bulk-inserted through the store's own tables (``Store.create_run`` costs ~15 ms a run,
see benchmarks/query.py), every metric through ``Store.ingest_metrics``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from e2e_helpers import wait_until
from ui_helpers import table_total

pytestmark = pytest.mark.slow

N_RUNS = 10_000


def _seed(home: Path) -> int:
    from sqlalchemy import insert, select

    from runyard.store import Store
    from runyard.store import _models as m

    home.mkdir(parents=True, exist_ok=True)
    store = Store.open(f"sqlite:///{home / 'runyard.db'}")
    try:
        config = {"project": "ui-scale", "command": "python train.py", "params": {"lr": {"loguniform": [1e-4, 1.0]}, "depth": [2, 4, 8]},
                  "search": {"algorithm": "random", "max_runs": N_RUNS, "metric": "acc", "mode": "max"}}
        exp = store.create_experiment("ui-scale", "big-sweep", config=config)
        store.set_experiment_status(exp.id, "succeeded")
        project = store.get_project("ui-scale")
        now = time.time()
        rows = [{"project_id": project.id, "experiment_id": exp.id, "number": i, "name": f"big-{i}", "status": "succeeded",
                 "created_at": now - N_RUNS + i, "started_at": now - N_RUNS + i, "ended_at": now - N_RUNS + i + 5,
                 "heartbeat_at": now - N_RUNS + i + 5} for i in range(N_RUNS)]
        with store.engine.begin() as conn:
            conn.execute(insert(m.SqlRun), rows)
            ids = list(conn.execute(select(m.SqlRun.id).where(m.SqlRun.experiment_id == exp.id).order_by(m.SqlRun.id)).scalars())
            conn.execute(insert(m.SqlRunEvent),
                         [{"run_id": rid, "status": "succeeded", "attempt": 1, "message": "", "ts": now} for rid in ids])
            conn.execute(insert(m.SqlParam), [
                {"run_id": rid, "key": k, "value": json.dumps(v), "num": float(v)}
                for i, rid in enumerate(ids)
                for k, v in (("lr", 10 ** (-4 + 4 * ((i * 7919) % N_RUNS) / N_RUNS)), ("depth", 2 ** (1 + i % 3)))
            ])
        for i, rid in enumerate(ids):
            store.ingest_metrics(rid, ["acc", "loss"], [0, 0], [((i * 104729) % N_RUNS) / N_RUNS, 1 - i / N_RUNS], [now, now])
        return exp.id
    finally:
        store.close()


def test_ten_thousand_runs_show_fast_and_scroll_to_the_last(servers, tmp_path: Path, page) -> None:  # noqa: ANN001
    home = tmp_path / "scale-home"
    exp_id = _seed(home)
    server = servers.start("scale", home=home, env={"RUNYARD_SCHEDULER": "0"})
    url = f"{server.url}/experiments/{exp_id}"
    page.goto(f"{server.url}/")  # the bundle is cached from here on, as for a person who opens the app
    page.wait_for_selector("h1")
    t0 = time.perf_counter()
    page.goto(url)
    page.wait_for_selector('[data-testid="run-row"][data-index="0"][data-run-id]:not([data-run-id=""])')
    first_rows_s = time.perf_counter() - t0
    assert first_rows_s < 2.0, f"the first rows took {first_rows_s:.2f}s"
    wait_until(lambda: table_total(page) == N_RUNS, 20, f"the table to count {N_RUNS} runs")

    # Scroll to the end as a person would (the scrollbar), then check the last row is filled in.
    page.eval_on_selector('[data-testid="run-table"]', "el => { el.scrollTop = el.scrollHeight; }")
    last = page.locator(f'[data-testid="run-row"][data-index="{N_RUNS - 1}"]')
    last.wait_for()
    page.wait_for_function(f"""() => {{
        const r = document.querySelector('[data-testid="run-row"][data-index="{N_RUNS - 1}"]');
        return r && r.dataset.runId !== "";
    }}""")
    assert last.locator('[data-col="name"]').text_content() == "big-0"  # newest first: the oldest run is last

    # Sorting 10,000 runs by a metric happens on the server and still shows the best run first.
    page.eval_on_selector('[data-testid="run-table"]', "el => { el.scrollTop = 0; }")
    page.locator('[role="columnheader"][data-col="metrics.acc.max"]').click()
    page.locator('[role="columnheader"][data-col="metrics.acc.max"]').click()
    page.wait_for_function("""() => {
        const c = document.querySelector('[data-testid="run-row"][data-index="0"] [data-col="metrics.acc.max"]');
        return c && c.textContent === "0.9999";
    }""")
    print(f"first rows of {N_RUNS} runs in {first_rows_s:.2f}s")
