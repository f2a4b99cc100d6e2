"""Run filters and sort orders: parsing the small expression language of ``runyard ls``
and ``GET /runs`` into structured terms.

Grammar (one term per filter; terms are ANDed)::

    params.lr >= 0.01          metrics.loss.min < 0.5       status == running
    tags.team = vision         metrics.acc > 0.9  (.last is the default)
    name ~ resnet              (substring match)            params.act == relu
    metrics."val loss" < 1     (a name with spaces, dots or operators, in double quotes)

``=`` and ``==`` are the same. A value is a number, ``true``/``false``/``null``, a quoted
string, or a bare word (``relu``: a string). Metric aggregates are ``last`` (the default),
``min`` and ``max``; anything else after a metric's name is refused by the store unless a
metric of that whole name was logged.

Sort: ``metrics.acc.max desc``, ``params.lr``, ``created_at desc``, ``id``, ``metrics."val loss".min``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from runyard.errors import InvalidInput

__all__ = ["AGGREGATES", "Filter", "Order", "parse_field", "parse_filter", "parse_order"]

_OPS = ("==", "<=", ">=", "!=", "=", "<", ">", "~")
AGGREGATES = ("last", "min", "max")
_AGGS = AGGREGATES
_ATTRS = ("id", "status", "name", "created_at", "started_at", "ended_at", "number", "attempt")
_NUMERIC_ATTRS = ("id", "created_at", "started_at", "ended_at", "number", "attempt")
_PREFIXES = {"params.": "param", "tags.": "tag", "metrics.": "metric"}
_BARE_NAME = re.compile(r"[^\s<>=!~\"]+")
_OP = re.compile(r"\s*(==|<=|>=|!=|=|<|>|~)\s*")
_FIELDS_HINT = ("Use params.NAME, metrics.NAME[.last|.min|.max], tags.NAME (NAME in double quotes when it holds spaces: "
                'metrics."val loss".min), or one of: ' + ", ".join(_ATTRS) + ".")


@dataclass(frozen=True)
class Filter:
    kind: str  # "param" | "metric" | "tag" | "attr"
    key: str
    op: str  # as parsed; the MLflow-compatible search also builds like, ilike, in, not in and absent (tags)
    value: Any
    agg: str = "last"
    quoted: bool = False  # the name was written in quotes: never split into name and aggregate
    text: str = field(default="", compare=False)  # the expression as written, for messages


@dataclass(frozen=True)
class Order:
    kind: str  # "param" | "metric" | "attr"
    key: str
    descending: bool = False
    agg: str = "last"
    quoted: bool = False
    text: str = field(default="", compare=False)


def _read_field(expr: str, pos: int, where: str) -> tuple[str, str, str, bool, int]:
    """Read a field at ``expr[pos:]``: (kind, key, agg, quoted, end position)."""
    prefix = next((p for p in _PREFIXES if expr.startswith(p, pos)), None)
    if prefix is None:
        m = _BARE_NAME.match(expr, pos)
        name = m.group(0) if m else expr[pos:].split(None, 1)[0] if expr[pos:].strip() else ""
        if name in _ATTRS:
            return "attr", name, "last", False, pos + len(name)
        raise InvalidInput(f"Unknown field {name!r} in {where}.", _FIELDS_HINT)
    kind = _PREFIXES[prefix]
    pos += len(prefix)
    agg = "last"
    if expr.startswith('"', pos):
        end = expr.find('"', pos + 1)
        if end < 0:
            raise InvalidInput(f"The quoted name in {where} has no closing double quote.",
                               'Close it: metrics."val loss" < 1.')
        key, pos, quoted = expr[pos + 1:end], end + 1, True
        if kind == "metric" and expr.startswith(".", pos):
            m = _BARE_NAME.match(expr, pos + 1)
            agg = m.group(0) if m else ""
            if agg not in _AGGS:
                raise InvalidInput(f"Unknown aggregate {agg!r} of metric {key!r} in {where}.",
                                   "The aggregates are " + ", ".join(_AGGS) + f': metrics."{key}".min.')
            pos += 1 + len(agg)
    else:
        m = _BARE_NAME.match(expr, pos)
        key, quoted = (m.group(0) if m else ""), False
        pos += len(key)
        if kind == "metric":
            head, _, tail = key.rpartition(".")
            if head and tail in _AGGS:
                key, agg = head, tail
    if not key:
        raise InvalidInput(f"A field in {where} has an empty name after {prefix!r}.", _FIELDS_HINT)
    return kind, key, agg, quoted, pos


def parse_field(text: str, where: str | None = None) -> tuple[str, str, str, bool]:
    """One field alone (``metrics."val loss".min``): (kind, key, agg, quoted).

    An unquoted name takes the rest of the text, spaces included (a table's column names).
    """
    where = where or f"field {text!r}"
    text = text.strip()
    kind, key, agg, quoted, end = _read_field(text, 0, where)
    rest = text[end:]
    if rest:
        if quoted or kind == "attr":
            raise InvalidInput(f"Cannot read {where}: {rest!r} follows the field.", _FIELDS_HINT)
        prefix = next(p for p, k in _PREFIXES.items() if k == kind)
        key = text[len(prefix):]
        agg = "last"
        if kind == "metric":
            head, _, tail = key.rpartition(".")
            if head and tail in _AGGS:
                key, agg = head, tail
    return kind, key, agg, quoted


def _value(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    try:
        return json.loads(text)
    except ValueError:
        return text  # a bare word: a string


def parse_filter(expr: str) -> Filter:
    """Parse one filter term such as ``metrics.loss.min < 0.5`` or ``params.act == relu``."""
    where = f"filter {expr!r}"
    stripped = expr.strip()
    if not stripped or not re.search(r"(<=|>=|!=|=|<|>|~)", stripped):
        raise InvalidInput(
            f"Cannot read the filter {expr!r}: a filter is FIELD OP VALUE with OP one of {' '.join(_OPS)}.",
            "For example: --filter 'metrics.acc > 0.9' or --filter 'params.act == relu'.",
        )
    kind, key, agg, quoted, pos = _read_field(stripped, 0, where)
    m = _OP.match(stripped, pos)
    raw = stripped[m.end():] if m else ""
    if not m or not raw.strip():
        raise InvalidInput(
            f"Cannot read the filter {expr!r}: a filter is FIELD OP VALUE with OP one of {' '.join(_OPS)}.",
            "For example: --filter 'metrics.acc > 0.9' or --filter 'params.act == relu'; quote a name with spaces: "
            'metrics."val loss" < 1.',
        )
    op = "=" if m.group(1) == "==" else m.group(1)
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
    return Filter(kind=kind, key=key, op=op, value=value, agg=agg, quoted=quoted, text=expr)


def parse_order(expr: str) -> Order:
    """Parse a sort order such as ``metrics.acc.max desc`` or ``metrics."val loss".min``."""
    where = f"sort order {expr!r}"
    stripped = expr.strip()
    bad = InvalidInput(f"Cannot read the sort order {expr!r}.",
                       "Write FIELD [asc|desc], e.g. 'metrics.acc.max desc' or 'created_at'.")
    if not stripped:
        raise bad
    if not stripped.startswith(tuple(_PREFIXES)):
        first = stripped.split()[0]
        if first not in _ATTRS:
            if len(stripped.split()) > 2:
                raise bad
            raise InvalidInput(f"Unknown field {first!r} in {where}.", _FIELDS_HINT)
    kind, key, agg, quoted, pos = _read_field(stripped, 0, where)
    rest = stripped[pos:].split()
    if pos < len(stripped) and not stripped[pos].isspace():
        raise bad
    if len(rest) > 1 or (rest and rest[0].lower() not in ("asc", "desc")):
        raise bad
    if kind == "tag":
        raise InvalidInput(f"Runs cannot be sorted by a tag ({expr!r}).", "Sort by params.NAME, metrics.NAME or an attribute.")
    return Order(kind=kind, key=key, descending=bool(rest) and rest[0].lower() == "desc", agg=agg, quoted=quoted, text=expr)
