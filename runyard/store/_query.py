"""Run filters and sort orders: parsing the small expression language of ``runyard ls``
and ``GET /runs`` into structured terms.

Grammar (one term per filter; terms are ANDed)::

    params.lr >= 0.01          metrics.loss.min < 0.5       status = running
    tags.team = vision         metrics.acc > 0.9  (.last is the default)
    name ~ resnet              (substring match)

Sort: ``metrics.acc.max desc``, ``params.lr``, ``created_at desc``, ``id``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from runyard.errors import InvalidInput

__all__ = ["Filter", "Order", "parse_filter", "parse_order"]

_OPS = ("<=", ">=", "!=", "=", "<", ">", "~")
_AGGS = ("last", "min", "max")
_ATTRS = ("id", "status", "name", "created_at", "started_at", "ended_at", "number", "attempt")
_NUMERIC_ATTRS = ("id", "created_at", "started_at", "ended_at", "number", "attempt")
_TERM = re.compile(r"^\s*([A-Za-z_][\w.\-/]*)\s*(<=|>=|!=|=|<|>|~)\s*(.+?)\s*$")


@dataclass(frozen=True)
class Filter:
    kind: str  # "param" | "metric" | "tag" | "attr"
    key: str
    op: str
    value: Any
    agg: str = "last"


@dataclass(frozen=True)
class Order:
    kind: str  # "param" | "metric" | "attr"
    key: str
    descending: bool = False
    agg: str = "last"


def _split_field(field: str, where: str) -> tuple[str, str, str]:
    if field.startswith("params."):
        return "param", field[len("params.") :], "last"
    if field.startswith("tags."):
        return "tag", field[len("tags.") :], "last"
    if field.startswith("metrics."):
        rest = field[len("metrics.") :]
        agg = "last"
        head, _, tail = rest.rpartition(".")
        if head and tail in _AGGS:
            rest, agg = head, tail
        return "metric", rest, agg
    if field in _ATTRS:
        return "attr", field, "last"
    raise InvalidInput(
        f"Unknown field {field!r} in {where}.",
        "Use params.NAME, metrics.NAME[.last|.min|.max], tags.NAME, or one of: " + ", ".join(_ATTRS) + ".",
    )


def _value(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_filter(expr: str) -> Filter:
    """Parse one filter term such as ``metrics.loss.min < 0.5``."""
    m = _TERM.match(expr)
    if not m:
        raise InvalidInput(
            f"Cannot read the filter {expr!r}: a filter is FIELD OP VALUE with OP one of {' '.join(_OPS)}.",
            "For example: --filter 'metrics.acc > 0.9' or --filter 'params.lr <= 0.01'.",
        )
    field, op, raw = m.groups()
    kind, key, agg = _split_field(field, f"filter {expr!r}")
    value = _value(raw)
    if kind == "metric" and (not isinstance(value, (int, float)) or isinstance(value, bool)):
        raise InvalidInput(
            f"Filter {expr!r} compares metric {key!r} with {raw!r}, which is not a number.",
            "Compare metrics with numbers, e.g. metrics.loss < 0.5.",
        )
    if kind == "attr" and key in _NUMERIC_ATTRS and (op == "~" or not isinstance(value, (int, float)) or isinstance(value, bool)):
        raise InvalidInput(
            f"Filter {expr!r} compares {key} with {raw!r} using {op}: {key} needs a number and one of <, <=, >, >=, = or !=.",
            f"Compare {key} with a number, e.g. {key} >= 10.",
        )
    if kind == "metric" and op == "~":
        raise InvalidInput(f"Filter {expr!r}: '~' (contains) applies to text, not to metrics.", "Use <, <=, >, >=, = or !=.")
    return Filter(kind=kind, key=key, op=op, value=value, agg=agg)


def parse_order(expr: str) -> Order:
    """Parse a sort order such as ``metrics.acc.max desc``."""
    parts = expr.strip().split()
    if not parts or len(parts) > 2 or (len(parts) == 2 and parts[1].lower() not in ("asc", "desc")):
        raise InvalidInput(
            f"Cannot read the sort order {expr!r}.",
            "Write FIELD [asc|desc], e.g. 'metrics.acc.max desc' or 'created_at'.",
        )
    kind, key, agg = _split_field(parts[0], f"sort order {expr!r}")
    if kind == "tag":
        raise InvalidInput(f"Runs cannot be sorted by a tag ({expr!r}).", "Sort by params.NAME, metrics.NAME or an attribute.")
    return Order(kind=kind, key=key, descending=len(parts) == 2 and parts[1].lower() == "desc", agg=agg)
