"""Pydantic's validation errors of a runyard.yml turned into Runyard's messages (field, rule, value, fix)."""

from __future__ import annotations

import dataclasses
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, Tag
from pydantic_core import ErrorDetails

from runyard.configfile import Problem, did_you_mean, dotted
from runyard.spec._model import Spec
from runyard.spec._params import PARAM_KINDS
from runyard.spec._rules import DOCS, Rule, show
from runyard.spec._search import STOPPING_MODELS


@dataclasses.dataclass
class _Where:
    """What the schema says about a ``loc``: the rule that applies and where it applies."""

    rule: Rule | None = None
    rule_depth: int = 0  # how many loc parts the rule's field spans
    annotation: Any = None  # the type at the end of the walk
    model: type[BaseModel] | None = None  # the model whose key the last part is
    siblings: dict[str, Any] = dataclasses.field(default_factory=dict)  # tag -> member type


def _unwrap(annotation: Any) -> tuple[Any, Rule | None]:
    """Strip Annotated and Optional, returning the inner type and any rule met on the way."""
    rule = None
    while True:
        if get_origin(annotation) is Annotated:
            args = get_args(annotation)
            rule = next((m for m in args[1:] if isinstance(m, Rule)), rule)
            annotation = args[0]
            continue
        if get_origin(annotation) in (Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                continue
        return annotation, rule


def _tags(annotation: Any) -> dict[str, Any]:
    if get_origin(annotation) not in (Union, types.UnionType):
        return {}
    out = {}
    for member in get_args(annotation):
        if get_origin(member) is Annotated:
            for meta in get_args(member)[1:]:
                if isinstance(meta, Tag):
                    out[meta.tag] = member
    return out


def _schema_at(loc: tuple[Any, ...]) -> _Where:
    where = _Where()
    annotation: Any = Spec
    i = 0
    while True:
        annotation, rule = _unwrap(annotation)
        if rule is not None:
            where.rule, where.rule_depth = rule, i
        where.annotation = annotation
        if i >= len(loc):
            return where
        part = loc[i]
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            where.model = annotation
            field = annotation.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return where
            rule = next((m for m in field.metadata if isinstance(m, Rule)), None)
            where.rule, where.rule_depth = (rule, i + 1) if rule else (None, 0)
            annotation, i = field.annotation, i + 1
            continue
        tags = _tags(annotation)
        if tags:
            if part not in tags:
                return where
            where.siblings = tags
            annotation, i = tags[part], i + 1
            continue
        origin = get_origin(annotation)
        if origin is dict:
            key_type, value_type = get_args(annotation)
            if i + 1 < len(loc) and loc[i + 1] == "[key]":
                annotation, i = key_type, i + 2
            else:
                annotation, i = value_type, i + 1
            continue
        if origin is list:
            annotation, i = get_args(annotation)[0], i + 1
            continue
        return where


def _data_path(loc: tuple[Any, ...], data: Any) -> tuple[Any, ...]:
    """The path in the user's data that a pydantic ``loc`` points at.

    Drops union tags (``#uniform``) and the field names of short forms (a plain list
    given for ``choice``, one string given for a list).
    """
    path: list[Any] = []
    node = data
    missing = False
    for part in loc:
        if part == "[key]":
            continue
        if not missing and (
            (isinstance(node, dict) and part in node)
            or (isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node))
        ):
            path.append(part)
            node = node[part]
        elif (isinstance(part, str) and part.startswith("#")) or (
            not missing and (isinstance(node, list) or (isinstance(node, str) and part == 0))
        ):
            continue
        else:
            path.append(part)
            missing = True
    return tuple(path)


def _value_at(data: Any, path: tuple[Any, ...]) -> Any:
    node = data
    for part in path:
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            return None
    return node


def _subject(loc: tuple[Any, ...], data: Any) -> tuple[str, tuple[Any, ...]]:
    """How to name the thing at ``loc`` in a message, and its data path."""
    path = _data_path(loc, data)
    if loc and loc[-1] == "[key]":
        parent = dotted(path[:-1]) or "the top level"
        return f"{parent} key {show(path[-1])}", path
    return dotted(path) or "the file", path


def _generic_rule(error: ErrorDetails, where: _Where) -> str:
    annotation = where.annotation
    if _is_model(annotation):
        return "a mapping with keys " + ", ".join(annotation.model_fields)
    ctx = error.get("ctx") or {}
    kind = error["type"]
    simple = {
        "int_type": "an integer",
        "int_from_float": "a whole number",
        "float_type": "a number",
        "finite_number": "a finite number",
        "string_type": "a string",
        "bool_type": "true or false",
        "list_type": "a list",
        "dict_type": "a mapping",
    }
    if kind in simple:
        return simple[kind]
    for key, sign in (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤")):
        if key in ctx:
            return f"{sign} {ctx[key]}"
    return "valid here"


def explain(error: ErrorDetails, data: Any) -> list[Problem]:
    kind = error["type"]
    loc = tuple(error["loc"])
    value = error.get("input")
    ctx = error.get("ctx") or {}

    if kind == "runyard_problems":
        out = []
        for problem in ctx["problems"]:
            subject, path = _subject(loc + tuple(problem["path"]), data)
            at = tuple(problem["at"]) if problem["at"] is not None else path
            out.append(Problem(f"{subject} {problem['body']}", at))
        return out

    subject, path = _subject(loc, data)
    if kind == "runyard_rule":
        return [Problem(f"{subject} {ctx['body']}", path)]

    where = _schema_at(loc)
    if kind in ("extra_forbidden", "invalid_key"):
        return [Problem(_unknown_key(loc, path, where), path)]
    if kind == "missing":
        rule = where.rule
        fix = (rule.missing or rule.fix) if rule else f"See {DOCS}."
        return [Problem(f"{subject} is required. {fix}", path)]
    if kind == "runyard_param_kind":
        return [Problem(_param_kind_text(subject, value), path)]
    if kind == "runyard_stopping_kind":
        return [_stopping_kind_problem(path, value)]

    rule = where.rule
    if rule is not None and where.rule_depth < len(loc) and loc[-1] != "[key]":
        # An item error under a field whose rule describes the whole field
        # (e.g. uniform[1]): report the field and its value.
        subject, path = _subject(loc[: where.rule_depth], data)
        value = _value_at(data, path)
    rule_text = rule.rule if rule else _generic_rule(error, where)
    if loc and loc[-1] == "[key]":
        got = ""  # the subject already shows the key
    elif value is None:
        got = ", but it is empty"
    else:
        got = f", but got {show(value)}"
    text = f"{subject} must be {rule_text}{got}."
    if get_origin(where.annotation) is Literal and isinstance(value, str):
        text += did_you_mean(value, [str(a) for a in get_args(where.annotation)])
    if rule:
        text += f" {rule.fix}"
    elif _is_model(where.annotation) and path:
        text += f" Write its keys on indented lines under `{path[-1]}:`."
    else:
        text += f" See {DOCS}."
    return [Problem(text, path)]


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _all_keys(annotation: Any) -> list[str]:
    annotation, _ = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return list(annotation.model_fields)
    return []


def _unknown_key(loc: tuple[Any, ...], path: tuple[Any, ...], where: _Where) -> str:
    key = loc[-1]
    valid = list(where.model.model_fields) if where.model else []
    level = f"in {dotted(path[:-1])}" if path[:-1] else "at the top level"
    name = f"{dotted(path[:-1])}.{key}" if path[:-1] else str(key)
    text = f"unknown key {name}. Valid keys {level}: {', '.join(valid)}."
    others = [tag.lstrip("#") for tag, member in where.siblings.items() if key in _all_keys(member)]
    if others:
        return text + f" '{key}' is a setting of {', '.join(others)} only."
    homes = [
        section
        for section, field in Spec.model_fields.items()
        if section != (path[0] if len(path) > 1 else None)
        and any(key in keys for keys in _section_keys(field.annotation))
    ]
    if homes:
        return text + f" '{key}' belongs under {homes[0]}:."
    if len(path) > 1 and key in Spec.model_fields:
        return text + f" '{key}' is a top-level key: move it out of {dotted(path[:-1])}."
    return text + did_you_mean(key, valid)


def _section_keys(annotation: Any) -> list[list[str]]:
    annotation, _ = _unwrap(annotation)
    tags = _tags(annotation)
    members = list(tags.values()) if tags else [annotation]
    return [keys for keys in (_all_keys(m) for m in members) if keys]


def _param_kind_text(subject: str, value: Any) -> str:
    keys = list(value) if isinstance(value, dict) else []
    kinds = [k for k in PARAM_KINDS if k in keys]
    if len(kinds) > 1:
        return f"{subject} names more than one distribution ({', '.join(kinds)}). Keep one of them."
    suggestion = ""
    for key in keys:
        suggestion = did_you_mean(key, list(PARAM_KINDS))
        if suggestion:
            break
    shown = ", ".join(show(k) for k in keys)
    has = f"the key{'s' if len(keys) > 1 else ''} {shown}" if keys else "no keys"
    return (
        f"{subject} must be a value, a list of choices, or a mapping with one of uniform, "
        f"loguniform, int, choice, but has {has}.{suggestion} "
        "Write e.g. `lr: {loguniform: [0.0001, 0.1]}`."
    )


def _stopping_kind_problem(path: tuple[Any, ...], value: Any) -> Problem:
    choices = ", ".join(STOPPING_MODELS)
    if not isinstance(value, dict):
        return Problem(
            f"early_stopping must be a mapping with `algorithm: median`, asha or hyperband, "
            f"but got {show(value)}. Write e.g. `early_stopping: {{algorithm: median}}`.",
            path,
        )
    at = (*path, "algorithm")
    if "algorithm" not in value:
        return Problem(
            f"early_stopping.algorithm is required: one of {choices}. Add e.g. `algorithm: median`.",
            path,
        )
    got = value["algorithm"]
    return Problem(
        f"early_stopping.algorithm must be one of {choices}, but got {show(got)}."
        f"{did_you_mean(got, list(STOPPING_MODELS))}",
        at,
    )

