"""The filter and sort language over HTTP, on SQLite and PostgreSQL.

Regressions: ``params.act == relu`` matched nothing; ``metrics.loss.avg`` and a sort by
``metrics.loss.median`` were accepted and silently ignored; a metric whose name holds a
space could not be filtered.
"""

from __future__ import annotations

import pytest

from runyard.client import Client
from runyard.errors import InvalidInput


@pytest.fixture
def seeded(store_client: Client, own_project: str) -> dict[str, int]:
    ids = {}
    for name, act, loss in (("a", "relu", 0.5), ("b", "tanh", 2.0), ("c", "relu", 1.5)):
        rid = store_client.create_run(own_project, name=name, params={"act": act})["id"]
        store_client.log_metrics(rid, ["loss", "val loss", "top.1"], [0, 0, 0], [loss, loss * 2, loss], [0.0] * 3)
        ids[name] = rid
    return ids


def _names(client: Client, project: str, filters: list[str] = (), order_by: str | None = None) -> list[str]:  # type: ignore[assignment]
    return [r["name"] for r in client.list_runs(project=project, filters=filters, order_by=order_by)["items"]]


def test_bare_words_double_equals_and_quoted_names(store_client: Client, own_project: str, seeded: dict[str, int]) -> None:
    assert sorted(_names(store_client, own_project, ["params.act == relu"])) == ["a", "c"]
    assert sorted(_names(store_client, own_project, ["params.act = relu"])) == ["a", "c"]
    assert _names(store_client, own_project, ["params.act != relu"]) == ["b"]
    assert sorted(_names(store_client, own_project, ['metrics."val loss" < 3.5'])) == ["a", "c"]
    assert _names(store_client, own_project, ['metrics."val loss".max >= 4'])  == ["b"]
    assert _names(store_client, own_project, order_by='metrics."val loss".last desc') == ["b", "c", "a"]
    assert _names(store_client, own_project, ["metrics.top.1 > 1"]) == ["c", "b"]  # a dotted name that was logged


@pytest.mark.parametrize(("filters", "order_by", "message"), [
    (["metrics.loss.avg < 1"], None, "Unknown aggregate 'avg' of metric 'loss'"),
    (["metrics.loss.minn < 1"], None, "Unknown aggregate 'minn' of metric 'loss'"),
    ([], "metrics.loss.median desc", "Unknown aggregate 'median' of metric 'loss'"),
    (['metrics."loss".avg < 1'], None, "Unknown aggregate 'avg' of metric 'loss'"),
    (["metrics.ghost.mean > 0"], None, "Unknown aggregate 'mean'"),
    (["bogus = 1"], None, "Unknown field 'bogus'"),
])
def test_unknown_aggregates_and_fields_are_refused(store_client: Client, own_project: str, seeded: dict[str, int],
                                                   filters: list[str], order_by: str | None, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as info:
        store_client.list_runs(project=own_project, filters=filters, order_by=order_by)
    assert "last, min, max" in str(info.value.hint) or "params.NAME" in str(info.value.hint)
