"""The MLflow-compatible API's pure parts (filter strings, order_by, param values), the store paths it adds, and its docs."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from runyard.server.mlflow import ARTIFACTS_SERVED, SERVED
from runyard.server.mlflow._convert import param_text, param_texts, param_value
from runyard.server.mlflow._errors import MlflowError
from runyard.server.mlflow._search import parse_order_by, parse_search_filter, view_filter
from runyard.store import EXTERNAL_BACKEND, Filter, Order, Store, insert_run
from runyard.testing import LiveServer

ROOT = Path(__file__).resolve().parents[2]


def test_filters_translate_into_the_store_terms() -> None:
    got = parse_search_filter("metrics.`val loss` <= 1 and params.lr = '0.01' AND tags.\"my tag\" ILIKE 'A%' "
                              "and status IN ('FINISHED', 'KILLED') and run_name != 'x' and attributes.start_time > 1500")
    assert [(f.kind, f.key, f.op, f.value) for f in got] == [
        ("metric", "val loss", "<=", 1.0),
        ("param", "lr", "in", ('"0.01"', "0.01")),  # stored as a string, or as the number 0.01
        ("tag", "my tag", "ilike", "A%"),
        ("attr", "status", "in", ("succeeded", "canceled", "pruned")),
        ("attr", "name", "not in", ("x",)),
        ("attr", "started_at", ">", 1.5),  # milliseconds → seconds
    ]
    # A metric name is whole: ".min" is part of it, never the store's aggregate.
    assert parse_search_filter("metrics.loss.min < 1")[0] == Filter("metric", "loss.min", "<", 1.0, quoted=True)
    assert parse_search_filter("tags.mlflow.runName = 'r'")[0].key == "name"
    assert parse_search_filter("  ") == []


@pytest.mark.parametrize("bad", [
    "metrics.acc > 'high'", "metrics.acc > 1 OR metrics.acc < 0", "datasets.name = 'd'", "params.x = 'unterminated",
    "params.x > '1'", "attributes.artifact_uri = 'x'", "status = 'SLEEPING'", "run_id IN 'x'", "metrics.a > 1 metrics.b > 2",
    "nonsense", "metrics.acc >", "metrics.acc > 1e999", "x.y = 'z'",
])
def test_unsupported_filters_are_mlflow_errors(bad: str) -> None:
    with pytest.raises(MlflowError) as err:
        parse_search_filter(bad)
    assert err.value.error_code == "INVALID_PARAMETER_VALUE" and "docs/mlflow.md" in str(err.value)


def test_order_by_and_views() -> None:
    assert parse_order_by(["metrics.`val loss` DESC"]) == Order("metric", "val loss", descending=True, quoted=True)
    assert parse_order_by(["attributes.start_time"]) == Order("attr", "created_at")
    assert parse_order_by([]) is None
    for bad in (["metrics.a", "metrics.b"], ["tags.t"], ["metrics.a sideways"]):
        with pytest.raises(MlflowError):
            parse_order_by(bad)
    assert view_filter("ALL") == [] and view_filter(None)[0].op == "absent"
    with pytest.raises(MlflowError):
        view_filter("SOME")


@pytest.mark.parametrize(("text", "stored"), [
    ("0.01", 0.01), ("3", 3), ("1e-05", 1e-05), ("-2.5", -2.5),
    ("01", "01"), ("1.50", "1.50"), ("1e5", "1e5"), ("NaN", "NaN"), ("true", "true"), ("adam", "adam"), ("", ""),
    ("99999999999999999999", "99999999999999999999"), (" 1", " 1"),
])
def test_params_are_numbers_only_when_the_text_reads_back_the_same(text: str, stored: object) -> None:
    value = param_value(text)
    assert value == stored and type(value) is type(stored)
    assert param_text(value) == text  # MLflow reads back exactly what it logged
    assert param_texts(text)[0] == f'"{text}"'


def test_store_pages_without_a_count_and_text_operators(db_url: str) -> None:
    store = Store.open(db_url)
    try:
        ids = [insert_run(store, "p", name=n, params={"opt": o}, tags={"t": o}).id
               for n, o in [("a", "Adam"), ("b", "adam"), ("c", "sgd_x")]]
        page = store.list_runs(limit=2, count=False)
        assert [r.name for r in page.items] == ["c", "b"] and page.total == 3  # one more follows
        page = store.list_runs(limit=2, offset=2, count=False)
        assert [r.name for r in page.items] == ["a"] and page.total == 3
        names = lambda *f: sorted(r.name for r in store.list_runs(filters=list(f)).items)  # noqa: E731
        assert names(Filter("tag", "t", "like", "ad%")) == ["b"]  # case-sensitive on SQLite too
        assert names(Filter("tag", "t", "ilike", "AD%")) == ["a", "b"]
        assert names(Filter("tag", "t", "like", "sgd_x")) == ["c"] and names(Filter("tag", "t", "like", "sgd*x")) == []
        assert names(Filter("param", "opt", "in", ('"sgd_x"',))) == ["c"]
        assert names(Filter("attr", "name", "not in", ("a", "c"))) == ["b"]
        assert names(Filter("tag", "gone", "absent", None)) == ["a", "b", "c"]
        store.set_tags(ids[0], {"gone": "1"})
        assert names(Filter("tag", "gone", "absent", None)) == ["b", "c"]
        assert store.rename_run(ids[0], "renamed").name == "renamed"
        # A run logged through MLflow sends no heartbeat: it is never failed as lost (an SDK run is).
        quiet = insert_run(store, "p", name="mlflow-run", backend=EXTERNAL_BACKEND).id
        assert sorted(store.fail_lost_runs(time.time() + 10, "lost")) == sorted(ids)
        assert store.get_run(quiet).status == "running"
        assert store.rename_project("p", "q").name == "q" and store.project_ids(["q"]) == {"q": store.get_project("q").id}
    finally:
        store.close()


def test_docs_list_every_served_endpoint() -> None:
    doc = (ROOT / "docs" / "mlflow.md").read_text()
    for _method, path in SERVED:
        assert f"`{path.lstrip('/')}" in doc or f", `{path.lstrip('/')}`" in doc or path.lstrip("/") in doc, path
    for _method, path in ARTIFACTS_SERVED:
        assert path.split("/{")[0].lstrip("/") in doc


def test_local_mode_uploads_any_type_and_refuses_forged_posts(live_server: LiveServer, tmp_path: Path) -> None:
    """In local mode (no sign-in) the MLflow client's uploads carry their file's type (text/plain too): a PUT is never
    a page's forged write. A POST a page could forge (text/plain) is refused as on Runyard's own routes."""
    api = live_server.url + "/api/2.0/mlflow"
    run = httpx.post(api + "/runs/create", json={"experiment_id": "0", "run_name": "local"}, timeout=30).json()["run"]["info"]
    up = httpx.put(f"{live_server.url}/api/2.0/mlflow-artifacts/artifacts/0/{run['run_id']}/artifacts/notes.txt", content=b"hi",
                   headers={"Content-Type": "text/plain"}, timeout=30)
    assert up.status_code == 200, up.text
    got = httpx.get(f"{live_server.url}/api/2.0/mlflow-artifacts/artifacts/0/{run['run_id']}/artifacts/notes.txt", timeout=30)
    assert got.content == b"hi" and got.headers["content-type"] == "application/octet-stream"
    forged = httpx.post(api + "/runs/create", content=b'{"experiment_id": "0"}', headers={"Content-Type": "text/plain"}, timeout=30)
    assert forged.status_code == 415 and forged.json()["error_code"] == "INVALID_PARAMETER_VALUE"  # in MLflow's format
