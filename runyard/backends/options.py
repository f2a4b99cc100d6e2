"""One parser for every backend's options: a pydantic model checked with readable, fixable messages.

A backend declares its options as a pydantic model with ``extra="forbid"``; the same
parser checks an entry of ``backends.yml`` (``runyard.backends.config``), the options
a backend is built with (``BaseBackend.__init__``) and a run's own options laid over
them (``BaseBackend.options_for``). A field's ``json_schema_extra`` may carry ``rule``
(what a valid value is), ``fix`` (how to fix a wrong one) and ``default`` (the default
in words, when its value does not say it, e.g. "the machine's total").

Every problem is one line: ``NAME.key must be RULE, but got VALUE. FIX``; a misspelled
key names the closest valid one and lists every valid key with its default.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from runyard.errors import SpecError

__all__ = ["describe_options", "option_problems", "parse_options", "rule", "show_value"]


def rule(rule: str, fix: str, default: str | None = None) -> dict[str, Any]:
    """``Field(..., **rule(RULE, FIX, DEFAULT))``: the words the parser's messages use for a field."""
    extra: dict[str, Any] = {"rule": rule, "fix": fix}
    if default is not None:
        extra["default"] = default
    return {"json_schema_extra": extra}


def show_value(value: Any) -> str:
    """``value`` as an error message quotes it: JSON (a string in quotes), cut to 80 characters."""
    try:
        text = repr(value) if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _default_of(info: Any) -> str:
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    if extra.get("default") is not None:
        return str(extra["default"])
    if info.is_required():
        return "required"
    if info.default_factory is not None:
        return show_value(info.default_factory())
    described = re.search(r"\(default: (.*)\)\s*$", info.description or "")
    if info.default is None and described:
        return described.group(1)
    return show_value(info.default)


def describe_options(model: type[BaseModel]) -> str:
    """Every option of ``model`` with its default: ``key (default: VALUE), ...``."""
    return ", ".join(f"{key} (default: {_default_of(info)})" for key, info in model.model_fields.items())


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel]:
    """The (nested) model that holds the last key of ``loc`` (e.g. ``hosts.0.prot``: the host model)."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int) or not (isinstance(current, type) and issubclass(current, BaseModel)):
            continue
        info = current.model_fields.get(str(part))
        if info is None:
            break
        annotation = info.annotation
        for arg in (*getattr(annotation, "__args__", ()), annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                current = arg
                break
    return current if isinstance(current, type) and issubclass(current, BaseModel) else model


def _union_member(part: Any) -> bool:
    """Whether a validation error's location part names a member of a union (``literal['shared']``,
    ``RunAsPool``) rather than a key: pydantic reports each shape it tried under its tag."""
    return isinstance(part, str) and (part.startswith(("literal[", "list[", "dict[")) or part[:1].isupper())


def option_problems(name: str, model: type[BaseModel], options: Mapping[str, Any], *,
                    backend: str | None = None) -> list[tuple[tuple[Any, ...], str]]:
    """The problems of ``options`` against ``model``, each with its data path (``(name, key, ...)``).

    Args:
        name: how the messages name the entry (a backends.yml name, or the backend's type).
        backend: the backend's type, for "not an option of the TYPE backend" (default: from the model's name).
    """
    kind = backend or model.__name__.removesuffix("BackendOptions").lower() or model.__name__
    fields = model.model_fields
    problems: list[tuple[tuple[Any, ...], str]] = []
    try:
        model.model_validate(dict(options))
    except ValidationError as e:
        said: set[Any] = set()
        for err in e.errors():
            loc = tuple(err["loc"])
            key = loc[0] if loc else None
            if len(loc) > 1 and _union_member(loc[1]):
                # One of several accepted shapes (``'shared' or {pool, size}``): one line for the option,
                # saying every shape, instead of one per shape tried.
                if key in said:
                    continue
                said.add(key)
                loc = (key,)
                err = {**err, "type": "union", "input": options.get(str(key))}
            path = (name, *loc) if loc else (name,)
            dotted = ".".join(str(p) for p in path)
            if err["type"] == "extra_forbidden":
                holder = _model_at(model, loc)
                close = difflib.get_close_matches(str(loc[-1]), list(holder.model_fields), n=1, cutoff=0.6)
                fix = f"Did you mean {close[0]!r}?" if close else "Remove it."
                problems.append((path, f"{dotted} is not an option of the {kind} backend. {fix} "
                                       f"Valid options: {describe_options(holder)}."))
                continue
            if not loc:  # a rule between several options (model validator)
                msg = str(err.get("msg", "")).removeprefix("Value error, ")
                problems.append(((name,), f"{name}: {msg}. Fix these options together."))
                continue
            info = fields.get(str(key)) if key is not None else None
            extra = (info.json_schema_extra if info is not None and isinstance(info.json_schema_extra, dict) else {}) or {}
            how = str(extra.get("fix") or f"See the {kind} backend's options in docs/backends.md.")
            rule = extra.get("rule") if len(loc) == 1 else None
            if err["type"] == "missing":
                problems.append((path, f"{dotted} is required: {rule or (info.description if info else '') or 'give a value'}. {how}"))
            elif rule:
                problems.append((path, f"{dotted} must be {rule}, but got {show_value(err.get('input'))}. {how}"))
            else:
                msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
                problems.append((path, f"{dotted} is invalid ({msg[:1].lower() + msg[1:]}), but got "
                                       f"{show_value(err.get('input'))}. {how}"))
    return problems


def parse_options(model: type[BaseModel], options: Mapping[str, Any] | BaseModel | None, *, backend: str,
                  name: str | None = None, hint: str | None = None) -> Any:
    """``options`` validated as ``model`` (an instance of it is returned as it is).

    Raises:
        SpecError: one line per problem (see :func:`option_problems`).
    """
    if isinstance(options, model):
        return options
    if isinstance(options, BaseModel):
        options = options.model_dump()
    data = dict(options or {})
    problems = option_problems(name or backend, model, data, backend=backend)
    if problems:
        raise SpecError(f"Invalid options for the {backend} backend:\n" + "\n".join(text for _, text in problems),
                        hint or f"Fix the backend's entry in backends.yml "
                                f"(`runyard backends add NAME --type {backend} --set key=value --replace`).")
    return model.model_validate(data)
