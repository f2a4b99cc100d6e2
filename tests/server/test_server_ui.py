"""What the web UI needs from the server: the app at / with deep links, and the API's column
choices (``fields``), column names (``/experiments/{id}/keys``) and columns over all runs
(``/experiments/{id}/columns``)."""

from __future__ import annotations

import math
from pathlib import Path

import httpx
import pytest

from runyard.client import Client
from runyard.errors import InvalidInput, NotFound
from runyard.server._static import STATIC_DIR
from runyard.testing import LiveServer

CONFIG = {"command": "python train.py", "params": {"lr": [0.1, 0.01]}}


def _experiment_with_runs(client: Client, project: str) -> tuple[int, list[int]]:
    eid = client.create_experiment(project, "sweep", {**CONFIG, "project": project})["id"]
    ids = []
    for i, lr in enumerate([0.1, 0.01, 0.001]):
        run = client.create_run(project, experiment_id=eid, params={"lr": lr, "opt": "adam", "depth": i})
        if i < 2:  # the last run has no metrics yet
            client.log_metrics(run["id"], ["loss", "loss", "acc"], [0, 1, 0], [1.0 + i, 0.5 + i, 0.9 - i / 10], [1.0, 2.0, 1.0])
        ids.append(run["id"])
    return eid, ids


def test_runs_carry_only_the_fields_asked_for(client: Client, project: str) -> None:
    eid, ids = _experiment_with_runs(client, project)
    page = client.list_runs(experiment_id=eid, fields=["params.lr", "metrics.loss"], order_by="id")
    assert [r["id"] for r in page["items"]] == ids
    first = page["items"][0]
    assert first["params"] == {"lr": 0.1}
    assert set(first["metrics"]) == {"loss"} and first["metrics"]["loss"]["min"] == 0.5
    every = client.list_runs(experiment_id=eid, order_by="id")["items"][0]
    assert set(every["params"]) == {"lr", "opt", "depth"} and set(every["metrics"]) == {"loss", "acc"}
    # Sorting and filtering still apply to fields that are not returned.
    sorted_page = client.list_runs(experiment_id=eid, fields=["params.opt"], order_by="metrics.acc.last desc",
                                   filters=["params.depth <= 1"])
    assert [r["id"] for r in sorted_page["items"]] == ids[:2] and sorted_page["total"] == 2
    assert all(r["params"] == {"opt": "adam"} and r["metrics"] == {} for r in sorted_page["items"])
    with pytest.raises(InvalidInput, match="Unknown field 'lr'") as info:
        client.list_runs(experiment_id=eid, fields=["lr"])
    assert "params.NAME" in info.value.hint


def test_experiment_keys_name_its_params_and_metrics(client: Client, project: str) -> None:
    eid, _ = _experiment_with_runs(client, project)
    assert client.experiment_keys(eid) == {"params": ["depth", "lr", "opt"], "metrics": ["acc", "loss"]}
    empty = client.create_experiment(project, "empty", {**CONFIG, "project": project})["id"]
    assert client.experiment_keys(empty) == {"params": [], "metrics": []}
    with pytest.raises(NotFound, match="No experiment with id 999999"):
        client.experiment_keys(999999)


def test_experiment_columns_hold_one_value_per_run(client: Client, project: str) -> None:
    eid, ids = _experiment_with_runs(client, project)
    cols = client.experiment_columns(eid, ["params.lr", "params.opt", "metrics.loss.min", "metrics.acc", "metrics.nope.max"])
    assert cols["ids"] == ids
    c = cols["columns"]
    assert c["params.lr"] == [0.1, 0.01, 0.001] and c["params.opt"] == ["adam"] * 3
    assert c["metrics.loss.min"] == [0.5, 1.5, None]  # the third run has no metric yet
    assert [round(v, 6) if v is not None else None for v in c["metrics.acc"]] == [0.9, 0.8, None]
    assert c["metrics.nope.max"] == [None, None, None]
    with pytest.raises(InvalidInput, match="Unknown field 'loss'"):
        client.experiment_columns(eid, ["loss"])
    with pytest.raises(InvalidInput, match="fields"):
        client.experiment_columns(eid, [])
    with pytest.raises(NotFound):
        client.experiment_columns(999999, ["params.lr"])


def test_columns_keep_nan_out_of_json(client: Client, project: str) -> None:
    eid = client.create_experiment(project, "nan", {**CONFIG, "project": project})["id"]
    rid = client.create_run(project, experiment_id=eid)["id"]
    client.log_metrics(rid, ["x"], [0], [None], [1.0])
    assert client.experiment_columns(eid, ["metrics.x.last"])["columns"]["metrics.x.last"] == [None]
    assert not any(isinstance(v, float) and math.isnan(v) for v in client.experiment_columns(eid, ["metrics.x"])["columns"]["metrics.x"])


@pytest.mark.skipif(not (STATIC_DIR / "index.html").exists(), reason="the UI is not built: `make install` builds it")
def test_the_built_ui_is_served_with_deep_links(shared_server: LiveServer) -> None:
    index = httpx.get(shared_server.url + "/")
    assert index.status_code == 200 and '<div id="root">' in index.text
    assert index.headers["cache-control"] == "no-cache"
    for deep in ("/experiments/12?sort=metrics.loss.last%20desc&brush=params.lr:0.1:1", "/runs/3?tab=logs", "/compare?runs=1,2"):
        resp = httpx.get(shared_server.url + deep)
        assert resp.status_code == 200 and resp.text == index.text, deep
    asset = next((STATIC_DIR / "assets").glob("*.js")).name
    js = httpx.get(f"{shared_server.url}/assets/{asset}")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert "immutable" in js.headers["cache-control"]
    # The app never answers for the API, and paths cannot leave the static folder.
    api = httpx.get(shared_server.url + "/api/v1/no-such-route")
    assert api.status_code == 404
    assert api.json() == {"code": "not_found", "message": "Not Found", "hint": "See the API reference at /api/v1/docs."}
    escape = httpx.get(shared_server.url + "/assets/..%2f..%2f_app.py")
    assert escape.status_code == 200 and escape.text == index.text


def test_without_a_build_the_root_says_how_to_build(tmp_path: Path) -> None:
    with LiveServer(tmp_path / "home", env={"RUNYARD_SCHEDULER": "0", "RUNYARD_UI_DIR": str(tmp_path / "no-build")}) as server:
        resp = httpx.get(server.url + "/experiments/1")
        assert resp.status_code == 503 and "make install" in resp.text
        assert httpx.get(server.url + "/api/v1/health").json()["status"] == "ok"
        assert httpx.get(server.url + "/api/v1/nope").json()["code"] == "not_found"
