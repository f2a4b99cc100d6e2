"""A restarted run logs its steps again: each attempt's points stay apart, over HTTP, on SQLite and PostgreSQL.

Before attempts were recorded, steps 0-19 logged by three attempts were stored as one
60-point series (each step three times) and the summary mixed the attempts' values.
"""

from __future__ import annotations

import pytest

from runyard.client import Client
from runyard.errors import InvalidInput, NotFound


def _attempt(client: Client, run_id: int, value: float, *, fail: bool) -> None:
    client.log_metrics(run_id, ["loss"] * 20, list(range(20)), [value + s / 100 for s in range(20)], [float(s) for s in range(20)])
    if fail:
        client.update_run(run_id, "failed", exit_code=1)
        client.restart_run(run_id)
        client.update_run(run_id, "running")


def test_points_of_restarted_attempts_stay_apart(store_client: Client, own_project: str) -> None:
    run = store_client.create_run(own_project, name="restarts")
    rid = run["id"]
    _attempt(store_client, rid, 1.0, fail=True)
    _attempt(store_client, rid, 2.0, fail=True)
    _attempt(store_client, rid, 3.0, fail=False)
    assert store_client.get_run(rid)["attempt"] == 3

    latest = store_client.metric_history(rid, "loss")
    assert latest["attempt"] == 3 and latest["total"] == 20
    assert latest["steps"] == list(range(20))
    assert latest["values"] == pytest.approx([3.0 + s / 100 for s in range(20)])

    every = store_client.metric_history(rid, "loss", attempt="all")
    assert every["total"] == 60 and len(every["steps"]) == 60
    assert every["attempts"] == [1] * 20 + [2] * 20 + [3] * 20
    assert every["steps"] == list(range(20)) * 3
    assert every["values"][:20] == pytest.approx([1.0 + s / 100 for s in range(20)])

    second = store_client.metric_history(rid, "loss", attempt=2)
    assert second["attempt"] == 2 and second["values"] == pytest.approx([2.0 + s / 100 for s in range(20)])
    down = store_client.metric_history(rid, "loss", attempt="all", max_points=12)
    assert set(down["attempts"]) == {1, 2, 3} and down["downsampled"]

    # The summary (runs table, filters, sorts) describes the latest attempt only.
    summary = store_client.get_run(rid)["metrics"]["loss"]
    assert (summary["count"], summary["last"], summary["step"]) == (20, pytest.approx(3.19), 19)
    assert summary["min"] == pytest.approx(3.0) and summary["max"] == pytest.approx(3.19)
    page = store_client.list_runs(project=own_project, filters=["metrics.loss.min >= 3"])
    assert [r["id"] for r in page["items"]] == [rid]


def test_attempt_argument_is_checked(store_client: Client, own_project: str) -> None:
    rid = store_client.create_run(own_project)["id"]
    store_client.log_metrics(rid, ["acc"], [0], [0.5], [0.0])
    with pytest.raises(InvalidInput, match="attempt must be latest, all or an attempt number"):
        store_client.metric_history(rid, "acc", attempt="newest")
    with pytest.raises(NotFound, match="in attempt 4"):
        store_client.metric_history(rid, "acc", attempt=4)
