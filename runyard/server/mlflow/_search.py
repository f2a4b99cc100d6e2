"""MLflow's search-runs filter strings and order_by clauses, translated into the store's filters and order.

Served (clauses joined by ``AND``, keywords in any case)::

    metrics.acc > 0.9              metrics."val loss" <= 1     metrics.`val loss` != 0
    params.lr = '0.01'             params.opt LIKE 'ad%'       params.opt ILIKE 'ADAM'
    tags.team != 'vision'          tags."mlflow.user" = 'ada'
    attributes.status = 'FINISHED' status IN ('FAILED', 'KILLED')
    run_name LIKE 'resnet%'        attributes.run_id IN ('12', '13')
    attributes.start_time > 1700000000000 (ms)   attributes.end_time, attributes.created

Metrics compare their latest value (at the highest step), as MLflow does. Anything else
(``OR``, datasets, other attributes) is refused with INVALID_PARAMETER_VALUE naming the clause.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from runyard.server.mlflow._convert import DELETED_TAG, STATUS_OF_MLFLOW, param_texts
from runyard.server.mlflow._errors import MlflowError
from runyard.store import Filter, Order

__all__ = ["parse_order_by", "parse_search_filter", "view_filter"]

_ENTITY = {
    "metric": "metric", "metrics": "metric",
    "param": "param", "params": "param", "parameter": "param", "parameters": "param",
    "tag": "tag", "tags": "tag",
    "attribute": "attr", "attributes": "attr", "attr": "attr", "run": "attr",
    "dataset": "dataset", "datasets": "dataset",
}
_NUMERIC_ATTRS = {"start_time": "started_at", "end_time": "ended_at", "created": "created_at", "creation_time": "created_at"}
_COMPARATORS = ("!=", "<=", ">=", "<>", "=", "<", ">")
_WORD_OPS = re.compile(r"(?i)(not\s+in|in|ilike|like)\b")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_ENTITY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KEY_RE = re.compile(r"[A-Za-z0-9_.\-/:]+")
_AND = re.compile(r"(?i)\s*and\b")
_HINT = ("Runyard serves clauses joined by AND: metrics.KEY <op> NUMBER, params.KEY / tags.KEY = != LIKE ILIKE 'TEXT', "
         "attributes.status / run_name / run_id (= != IN NOT IN, LIKE for run_name) and attributes.start_time / end_time "
         "(numbers, ms); see docs/mlflow.md.")


@dataclass(frozen=True)
class _Clause:
    entity: str
    key: str
    op: str
    value: Any
    text: str


def _invalid(message: str) -> MlflowError:
    return MlflowError("INVALID_PARAMETER_VALUE", message, _HINT)


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def done(self) -> bool:
        self.skip()
        return self.pos >= len(self.text)

    def quoted(self, quote: str) -> str:
        """A quoted text at pos (quote doubled, or backslash-escaped, inside)."""
        out = []
        i = self.pos + 1
        while i < len(self.text):
            ch = self.text[i]
            if ch == "\\" and i + 1 < len(self.text):
                out.append(self.text[i + 1])
                i += 2
                continue
            if ch == quote:
                if self.text.startswith(quote * 2, i):
                    out.append(quote)
                    i += 2
                    continue
                self.pos = i + 1
                return "".join(out)
            out.append(ch)
            i += 1
        raise _invalid(f"Invalid filter {self.text!r}: a quoted text that starts at character {self.pos + 1} has no closing {quote}.")

    def identifier(self) -> tuple[str, str]:
        self.skip()
        m = _ENTITY_RE.match(self.text, self.pos)
        if m is None:
            raise _invalid(f"Invalid filter {self.text!r}: expected an identifier such as metrics.acc at character {self.pos + 1}.")
        word = m.group(0)
        self.pos = m.end()
        if not self.text.startswith(".", self.pos):
            return "attr", word  # a bare name is an attribute, as in MLflow
        entity = _ENTITY.get(word.lower())
        if entity is None:
            raise _invalid(f"Invalid filter {self.text!r}: unknown entity {word!r}; use metrics, params, tags or attributes.")
        self.pos += 1
        if self.pos < len(self.text) and self.text[self.pos] in "`\"":
            return entity, self.quoted(self.text[self.pos])
        m = _KEY_RE.match(self.text, self.pos)
        if m is None:
            raise _invalid(f"Invalid filter {self.text!r}: a name must follow {word}.; quote one with spaces: {word}.`my key`.")
        self.pos = m.end()
        return entity, m.group(0)

    def comparator(self) -> str:
        self.skip()
        for op in _COMPARATORS:
            if self.text.startswith(op, self.pos):
                self.pos += len(op)
                return "!=" if op == "<>" else op
        m = _WORD_OPS.match(self.text, self.pos)
        if m is None:
            raise _invalid(f"Invalid filter {self.text!r}: expected a comparator (=, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN) "
                           f"at character {self.pos + 1}.")
        self.pos = m.end()
        return " ".join(m.group(1).lower().split())

    def value(self) -> Any:
        self.skip()
        if self.pos >= len(self.text):
            raise _invalid(f"Invalid filter {self.text!r}: a value must follow the comparator.")
        ch = self.text[self.pos]
        if ch in "'\"":
            return self.quoted(ch)
        if ch == "(":
            self.pos += 1
            items = []
            while True:
                self.skip()
                if self.pos < len(self.text) and self.text[self.pos] in "'\"":
                    items.append(self.quoted(self.text[self.pos]))
                else:
                    raise _invalid(f"Invalid filter {self.text!r}: IN takes a list of quoted texts, e.g. ('a', 'b').")
                self.skip()
                if self.text.startswith(",", self.pos):
                    self.pos += 1
                    continue
                if self.text.startswith(")", self.pos):
                    self.pos += 1
                    return tuple(items)
                raise _invalid(f"Invalid filter {self.text!r}: the list after IN has no closing parenthesis.")
        m = _NUMBER.match(self.text, self.pos)
        if m is None:
            raise _invalid(f"Invalid filter {self.text!r}: expected a number or a quoted text at character {self.pos + 1}.")
        self.pos = m.end()
        number = float(m.group(0))
        if number != number or number in (float("inf"), float("-inf")):
            raise _invalid(f"Invalid filter {self.text!r}: {m.group(0)} is not a finite number.")
        return number


def _clauses(text: str) -> list[_Clause]:
    scan = _Scanner(text)
    out = []
    while True:
        start = scan.pos
        entity, key = scan.identifier()
        op = scan.comparator()
        value = scan.value()
        out.append(_Clause(entity, key, op, value, text[start:scan.pos].strip()))
        if scan.done():
            return out
        m = _AND.match(scan.text, scan.pos)
        if m is None:
            rest = scan.text[scan.pos:].strip()
            if rest.lower().startswith("or"):
                raise _invalid(f"Invalid filter {text!r}: OR is not supported (MLflow's search has none either).")
            raise _invalid(f"Invalid filter {text!r}: expected AND before {rest[:30]!r}.")
        scan.pos = m.end()


def _text_value(c: _Clause) -> str:
    if not isinstance(c.value, str):
        raise _invalid(f"Invalid clause {c.text!r}: compare {c.entity}s with a quoted text, e.g. {c.entity}s.{c.key} = 'x'.")
    return c.value


def _translate(c: _Clause) -> list[Filter]:
    if c.entity == "metric":
        if c.op not in ("=", "!=", "<", "<=", ">", ">=") or not isinstance(c.value, float):
            raise _invalid(f"Invalid clause {c.text!r}: metrics compare with a number using =, !=, <, <=, > or >=.")
        return [Filter("metric", c.key, c.op, c.value, agg="last", quoted=True, text=c.text)]
    if c.entity == "param":
        value = _text_value(c)
        if c.op in ("=", "!="):
            return [Filter("param", c.key, "in" if c.op == "=" else "not in", param_texts(value), text=c.text)]
        if c.op in ("like", "ilike"):
            # A param is stored as JSON: a number as its text, anything else as a JSON string.
            return [Filter("param", c.key, c.op, (value, '"' + json.dumps(value)[1:-1] + '"'), text=c.text)]
        raise _invalid(f"Invalid clause {c.text!r}: params compare with =, !=, LIKE or ILIKE.")
    if c.entity == "tag":
        if c.key == "mlflow.runName":
            return _translate(_Clause("attr", "run_name", c.op, c.value, c.text))
        value = _text_value(c)
        if c.op in ("=", "!=", "like", "ilike"):
            return [Filter("tag", c.key, c.op, value, text=c.text)]
        raise _invalid(f"Invalid clause {c.text!r}: tags compare with =, !=, LIKE or ILIKE.")
    if c.entity == "dataset":
        raise _invalid(f"Invalid clause {c.text!r}: Runyard does not search runs by dataset.")
    return _attribute(c)


def _attribute(c: _Clause) -> list[Filter]:
    key = c.key
    if key in _NUMERIC_ATTRS:
        if c.op not in ("=", "!=", "<", "<=", ">", ">=") or not isinstance(c.value, float):
            raise _invalid(f"Invalid clause {c.text!r}: {key} compares with a number of milliseconds using =, !=, <, <=, > or >=.")
        return [Filter("attr", _NUMERIC_ATTRS[key], c.op, c.value / 1000.0, text=c.text)]
    values = c.value if isinstance(c.value, tuple) else (c.value,)
    if not all(isinstance(v, str) for v in values):
        raise _invalid(f"Invalid clause {c.text!r}: compare {key} with a quoted text.")
    if (c.op in ("in", "not in")) != isinstance(c.value, tuple):
        raise _invalid(f"Invalid clause {c.text!r}: IN and NOT IN take a list, e.g. ('a', 'b'); other comparators one text.")
    negate = c.op in ("!=", "not in")
    if key == "status":
        if c.op not in ("=", "!=", "in", "not in"):
            raise _invalid(f"Invalid clause {c.text!r}: status compares with =, !=, IN or NOT IN.")
        statuses: list[str] = []
        for v in values:
            mapped = STATUS_OF_MLFLOW.get(v.upper())
            if mapped is None:
                raise _invalid(f"Invalid clause {c.text!r}: unknown run status {v!r}; use RUNNING, SCHEDULED, FINISHED, FAILED "
                               "or KILLED.")
            statuses += mapped
        return [Filter("attr", "status", "not in" if negate else "in", tuple(statuses), text=c.text)]
    if key in ("run_name", "runName"):
        if c.op in ("like", "ilike"):
            return [Filter("attr", "name", c.op, values[0], text=c.text)]
        return [Filter("attr", "name", "not in" if negate else "in", values, text=c.text)]
    if key in ("run_id", "run_uuid"):
        if c.op not in ("=", "!=", "in", "not in"):
            raise _invalid(f"Invalid clause {c.text!r}: run_id compares with =, !=, IN or NOT IN.")
        ids = tuple(int(v) for v in values if v.isdigit() and len(v) < 19)
        return [Filter("attr", "id", "not in" if negate else "in", ids, text=c.text)]
    if key == "user_id":
        if c.op in ("in", "not in"):
            raise _invalid(f"Invalid clause {c.text!r}: user_id compares with =, !=, LIKE or ILIKE.")
        return [Filter("tag", "mlflow.user", c.op, values[0], text=c.text)]
    raise _invalid(f"Invalid clause {c.text!r}: Runyard does not search runs by the attribute {key!r}.")


def parse_search_filter(text: str) -> list[Filter]:
    """An MLflow filter string as the store's filters (all of them must hold)."""
    if not text or not text.strip():
        return []
    out: list[Filter] = []
    for clause in _clauses(text):
        out += _translate(clause)
    return out


_ORDER_ATTRS = {"start_time": "created_at", "end_time": "ended_at", "created": "created_at", "run_name": "name",
                "status": "status", "run_id": "id"}


def parse_order_by(clauses: list[str]) -> Order | None:
    """MLflow's order_by (one clause: Runyard sorts by one key, ties by run id) as the store's order."""
    if not clauses:
        return None
    if len(clauses) > 1:
        raise MlflowError("INVALID_PARAMETER_VALUE", f"Runyard sorts runs by one key, but order_by has {len(clauses)}: {clauses!r}.",
                          "Pass one clause, e.g. order_by=['metrics.acc DESC']; ties are broken by run id.")
    text = clauses[0]
    scan = _Scanner(text)
    entity, key = scan.identifier()
    rest = scan.text[scan.pos:].split()
    if len(rest) > 1 or (rest and rest[0].upper() not in ("ASC", "DESC")):
        raise MlflowError("INVALID_PARAMETER_VALUE", f"Invalid order_by clause {text!r}.",
                          "Write KEY [ASC|DESC], e.g. 'metrics.acc DESC' or 'attributes.start_time'.")
    descending = bool(rest) and rest[0].upper() == "DESC"
    if entity == "metric":
        return Order("metric", key, descending=descending, quoted=True, text=text)
    if entity == "param":
        return Order("param", key, descending=descending, text=text)
    if entity == "attr" and key in _ORDER_ATTRS:
        return Order("attr", _ORDER_ATTRS[key], descending=descending, text=text)
    raise MlflowError("INVALID_PARAMETER_VALUE", f"Runyard cannot sort runs by {text!r}.",
                      "Sort by metrics.KEY, params.KEY (numerically) or attributes.start_time, end_time, run_name, status.")


def view_filter(run_view_type: str | None) -> list[Filter]:
    """run_view_type (ACTIVE_ONLY by default, DELETED_ONLY, ALL) as filters on the deletion mark."""
    view = (run_view_type or "ACTIVE_ONLY").upper()
    if view == "ACTIVE_ONLY":
        return [Filter("tag", DELETED_TAG, "absent", None, text="lifecycle_stage = active")]
    if view == "DELETED_ONLY":
        return [Filter("tag", DELETED_TAG, "=", "true", text="lifecycle_stage = deleted")]
    if view == "ALL":
        return []
    raise MlflowError("INVALID_PARAMETER_VALUE", f"Unknown run_view_type {run_view_type!r}.", "Use ACTIVE_ONLY, DELETED_ONLY or ALL.")
