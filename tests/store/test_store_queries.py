"""Store contract: listing runs with filters, sort orders and pages; parsing filter and sort strings."""

from __future__ import annotations

import re

import pytest

from runyard.errors import InvalidInput, NotFound
from runyard.store import Filter, Order, Store, parse_filter, parse_order

# name: (params, tags, status, acc points or None)
SEED: dict[str, tuple[dict, dict, str, list[float] | None]] = {
    "a": ({"lr": 0.1, "opt": "adam", "depth": 2}, {"team": "vision"}, "succeeded", [0.2, 0.9, 0.5]),  # last .5 min .2 max .9
    "b": ({"lr": 0.01, "opt": "sgd", "depth": 4}, {"team": "nlp"}, "failed", [0.6, 0.7]),  # last .7 min .6 max .7
    "c": ({"lr": 0.001, "opt": "adam", "depth": 8}, {"team": "vision"}, "running", [0.1, 0.3, 0.8]),  # last .8 min .1 max .8
    "d": ({"lr": 0.05, "opt": "3"}, {}, "running", None),  # no acc at all
    "e": ({"lr": 1, "opt": "adam"}, {"team": "audio"}, "queued", [0.4]),  # last = min = max = .4
}


def _seed(store: Store) -> dict[str, int]:
    ids = {}
    for name, (params, tags, status, acc) in SEED.items():
        initial = status if status in ("running", "queued") else "running"
        run = store.create_run("q", name=name, params=params, tags=tags, status=initial)
        if status != initial:
            store.set_run_status(run.id, status)
        if acc is not None:
            store.ingest_metrics(run.id, ["acc"] * len(acc), list(range(len(acc))), acc, [0.0] * len(acc))
        ids[name] = run.id
    store.create_run("other-project", params={"lr": 0.1})  # never listed below
    return ids


def _names(store: Store, *, filters: list[str] = (), order: str | None = None, **kw) -> list[str]:  # type: ignore[assignment]
    page = store.list_runs(project="q", filters=[parse_filter(f) for f in filters],
                           order=parse_order(order) if order else None, **kw)
    return [r.name for r in page.items]


def test_filters(store: Store) -> None:
    _seed(store)

    def f(*exprs: str) -> list[str]:
        return sorted(_names(store, filters=list(exprs)))

    assert f("params.lr >= 0.01") == ["a", "b", "d", "e"]
    assert f("params.lr < 0.05") == ["b", "c"]
    assert f("params.lr = 1") == ["e"]
    assert f("params.depth > 2") == ["b", "c"]
    assert f("params.opt = adam") == ["a", "c", "e"]
    assert f("params.opt = 'adam'") == ["a", "c", "e"]
    assert f("params.opt != adam") == ["b", "d"]
    assert f("params.opt = '3'") == ["d"]  # a quoted number compares as text
    assert f("params.opt ~ gd") == ["b"]
    assert f("metrics.acc > 0.6") == ["b", "c"]  # .last is the default
    assert f("metrics.acc.last <= 0.5") == ["a", "e"]
    assert f("metrics.acc.min < 0.25") == ["a", "c"]
    assert f("metrics.acc.max >= 0.8") == ["a", "c"]
    assert f("metrics.nope > 0") == []
    assert f("tags.team = vision") == ["a", "c"]
    assert f("tags.team != vision") == ["b", "e"]
    assert f("status = running") == ["c", "d"]
    assert f("name ~ e") == ["e"]
    assert f("id > 0", "number = 0") == ["a", "b", "c", "d", "e"]
    assert f("params.opt = adam", "metrics.acc.max > 0.85", "tags.team = vision") == ["a"]

    assert sorted(_names(store, statuses=["failed", "queued"])) == ["b", "e"]
    with pytest.raises(InvalidInput, match="Unknown run status 'done'"):
        store.list_runs(statuses=["done"])
    with pytest.raises(NotFound, match="No project named 'ghost'"):
        store.list_runs(project="ghost")


def test_sort_by_metric_puts_runs_without_it_last(store: Store) -> None:
    _seed(store)
    assert _names(store, order="metrics.acc.last") == ["e", "a", "b", "c", "d"]
    assert _names(store, order="metrics.acc desc") == ["c", "b", "a", "e", "d"]
    assert _names(store, order="metrics.acc.min asc") == ["c", "a", "e", "b", "d"]
    assert _names(store, order="metrics.acc.min desc") == ["b", "e", "a", "c", "d"]
    assert _names(store, order="metrics.acc.max ASC") == ["e", "b", "c", "a", "d"]
    assert _names(store, order="metrics.acc.max desc") == ["a", "c", "b", "e", "d"]
    assert _names(store, order="params.lr desc") == ["e", "a", "d", "b", "c"]
    assert _names(store, order="params.depth") == ["a", "b", "c", "d", "e"]  # d, e lack depth; ties by id
    assert _names(store, order="created_at") == ["a", "b", "c", "d", "e"]
    assert _names(store) == ["e", "d", "c", "b", "a"]  # newest first by default


def test_pagination(store: Store) -> None:
    _seed(store)
    expected = _names(store, order="metrics.acc.max desc")
    pages = []
    for offset in range(0, 6, 2):
        page = store.list_runs(project="q", order=parse_order("metrics.acc.max desc"), limit=2, offset=offset)
        assert (page.total, page.offset, page.limit) == (5, offset, 2)
        pages += [r.name for r in page.items]
    assert pages == expected
    assert store.list_runs(project="q", offset=10).items == []
    filtered = store.list_runs(project="q", filters=[parse_filter("params.opt = adam")], limit=1)
    assert (filtered.total, len(filtered.items)) == (3, 1)
    assert store.list_runs(limit=10_000).total == 6  # both projects
    with pytest.raises(InvalidInput, match="limit must be between 1 and 10000, but got 0"):
        store.list_runs(limit=0)
    with pytest.raises(InvalidInput, match="offset must be ≥ 0"):
        store.list_runs(offset=-1)


def test_text_param_compared_with_number_operator_is_refused(store: Store) -> None:
    with pytest.raises(InvalidInput, match="needs a number") as info:
        store.list_runs(filters=[parse_filter("params.opt > adam")])
    assert "Use = or !=" in (info.value.hint or "")


BAD_FILTERS = [  # expression, message fragment, hint fragment
    ("lr", "Cannot read the filter 'lr'", "metrics.acc > 0.9"),
    ("params.lr", "Cannot read the filter", "--filter"),
    ("", "Cannot read the filter", "--filter"),
    ("bogus.x = 1", "Unknown field 'bogus.x'", "params.NAME"),
    ("metrics.acc > high", "not a number", "numbers"),
    ("metrics.acc = true", "not a number", "numbers"),
    ("metrics.acc ~ 1", "'~' (contains) applies to text", "<, <="),
    ("id = abc", "id needs a number", "id >= 10"),
    ("number ~ 1", "number needs a number", "number >= 10"),
    ("created_at > yesterday", "created_at needs a number", "created_at >= 10"),
]

BAD_ORDERS = [  # expression, message fragment, hint fragment
    ("metrics.acc sideways", "Cannot read the sort order", "FIELD [asc|desc]"),
    ("a b c", "Cannot read the sort order", "FIELD [asc|desc]"),
    ("", "Cannot read the sort order", "FIELD [asc|desc]"),
    ("tags.team", "cannot be sorted by a tag", "params.NAME"),
    ("bogus desc", "Unknown field 'bogus'", "metrics.NAME"),
]


@pytest.mark.parametrize(("expr", "message", "hint"), BAD_FILTERS)
def test_bad_filter_strings(expr: str, message: str, hint: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)) as info:
        parse_filter(expr)
    assert info.value.code == "invalid_input"
    assert hint in (info.value.hint or "")


@pytest.mark.parametrize(("expr", "message", "hint"), BAD_ORDERS)
def test_bad_sort_strings(expr: str, message: str, hint: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)) as info:
        parse_order(expr)
    assert info.value.code == "invalid_input"
    assert hint in (info.value.hint or "")


def test_parse_results() -> None:
    assert parse_filter("metrics.val/loss.min < 0.5") == Filter(kind="metric", key="val/loss", op="<", value=0.5, agg="min")
    assert parse_filter("metrics.loss.mean > 1") == Filter(kind="metric", key="loss.mean", op=">", value=1, agg="last")
    assert parse_filter("params.name = \"a b\"") == Filter(kind="param", key="name", op="=", value="a b")
    assert parse_filter(" tags.t ~ x ") == Filter(kind="tag", key="t", op="~", value="x")
    assert parse_filter("id >= 3") == Filter(kind="attr", key="id", op=">=", value=3)
    assert parse_order("metrics.acc.max desc") == Order(kind="metric", key="acc", descending=True, agg="max")
    assert parse_order("params.lr") == Order(kind="param", key="lr")
