"""Exporting runs: `runyard ls --csv` / `--all` and ``Client.runs_df`` (pandas), on a live server."""

from __future__ import annotations

import csv
import io
import json

import pytest

from runyard.client import Client, run_rows
from runyard.errors import InvalidInput


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_ls_csv_has_fields_params_metric_summaries_and_tags(seed, cli) -> None:
    res = cli("ls", "--csv")
    assert res.exit_code == 0, res.output
    header = res.stdout.splitlines()[0].split(",")
    assert header[:6] == ["id", "project", "experiment_id", "number", "name", "status"]
    assert header[-1] == "tags.team"
    assert "params.lr" in header and "metrics.loss.min" in header and "metrics.acc.last" in header
    rows = {int(r["id"]): r for r in _csv(res.stdout)}
    done, active = rows[seed.done], rows[seed.active]
    assert (done["name"], done["status"], done["params.lr"], done["params.optimizer"]) == ("baseline", "succeeded", "0.1",
                                                                                         "adam")
    assert json.loads(done["params.layers"]) == [64, 32]  # structured params as JSON
    assert (float(done["metrics.loss.last"]), float(done["metrics.loss.min"]), float(done["metrics.loss.max"])) == (
        0.25, 0.25, 1.0)
    assert float(done["duration_s"]) >= 0 and done["tags.team"] == "vision"
    assert (active["metrics.loss.last"], active["params.optimizer"], active["experiment_id"]) == ("", "", str(seed.exp))


def test_ls_csv_keeps_filters_and_all_pages(seed, cli) -> None:
    only = _csv(cli("ls", "--csv", "--filter", "params.lr >= 0.05").stdout)
    assert [int(r["id"]) for r in only] == [seed.done]
    assert [int(r["id"]) for r in _csv(cli("ls", "--csv", "--limit", "1").stdout)] == [seed.active]
    # --all pages through every run, oldest first unless --sort says otherwise.
    assert [int(r["id"]) for r in _csv(cli("ls", "--csv", "--all").stdout)] == [seed.done, seed.active]
    page = json.loads(cli("ls", "--json", "--all").stdout)
    assert [r["id"] for r in page["items"]] == [seed.done, seed.active] and page["total"] == 2


def test_ls_csv_and_all_misuse_are_refused(seed, cli) -> None:
    res = cli("ls", "--csv", "--json")
    assert res.exit_code == 2 and "--csv or --json: choose one." in res.output
    res = cli("ls", "--all")
    assert res.exit_code == 2 and "--all needs --csv or --json." in res.output


def test_csv_cells_a_spreadsheet_would_run_are_quoted(fresh_seed, cli) -> None:
    c = fresh_seed.client
    hostile = c.create_run("demo", name='=HYPERLINK("http://127.0.0.1:9/x","click")',
                           params={"cmd": "+1+1", "note": "@SUM(A1)", "neg": -3, "text": "a,\"b\"\nc"})["id"]
    rows = {int(r["id"]): r for r in _csv(cli("ls", "--csv", "--all").stdout)}
    row = rows[hostile]
    assert row["name"] == "'=HYPERLINK(\"http://127.0.0.1:9/x\",\"click\")"
    assert (row["params.cmd"], row["params.note"], row["params.neg"]) == ("'+1+1", "'@SUM(A1)", "-3")
    assert row["params.text"] == "a,\"b\"\nc"  # CSV quoting keeps commas, quotes and newlines


def test_run_rows_is_a_plain_table_and_checks_summaries() -> None:
    runs = [{"id": 1, "project": "p", "status": "succeeded", "started_at": 10.0, "ended_at": 12.5, "params": {"lr": 1},
             "metrics": {"loss": {"last": 0.5, "min": 0.1, "max": 2.0, "step": 9, "count": 10}}, "tags": {}},
            {"id": 2, "project": "p", "status": "queued", "params": {"depth": 3}}]
    columns, rows = run_rows(runs, summaries=("last", "count"))
    assert columns[-4:] == ["params.depth", "params.lr", "metrics.loss.last", "metrics.loss.count"]
    first, second = (dict(zip(columns, r, strict=True)) for r in rows)
    assert (first["duration_s"], first["params.lr"], first["params.depth"], first["metrics.loss.count"]) == (2.5, 1, None, 10)
    assert (second["duration_s"], second["metrics.loss.last"]) == (None, None)
    with pytest.raises(InvalidInput, match="Unknown metric summary 'median'"):
        run_rows(runs, summaries=("median",))


def test_runs_df_is_a_dataframe_of_params_and_summaries(fresh_seed) -> None:
    pd = pytest.importorskip("pandas")
    c: Client = fresh_seed.client
    for i in range(5):  # more than one page
        run = c.create_run("other", name=f"r{i}", params={"lr": 10.0 ** -i})["id"]
        c.log_metrics(run, ["loss"] * 2, [0, 1], [1.0, 1.0 / (i + 1)], [0.0, 1.0])
    df = c.runs_df(project="other", filter="params.lr < 0.05")
    assert isinstance(df, pd.DataFrame)
    assert list(df["name"]) == ["r2", "r3", "r4"] and df.index.name == "id"
    assert df["metrics.loss.last"].tolist() == pytest.approx([1 / 3, 1 / 4, 1 / 5])
    assert df["metrics.loss.max"].tolist() == [1.0, 1.0, 1.0]
    everything = c.runs_df(limit=3)
    assert len(everything) == 3
    pages = list(c.iter_runs(project="other", page_size=2, order_by="id asc"))
    assert [r["name"] for r in pages] == [f"r{i}" for i in range(5)]
    empty = c.runs_df(project="other", filter=["params.lr > 100"])
    assert len(empty) == 0 and "status" in empty.columns
