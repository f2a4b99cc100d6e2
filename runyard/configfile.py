"""Runyard's YAML config files: the YAML 1.2 loader with line numbers, and errors as ``FILE:LINE: text``.

``runyard.yml`` (:mod:`runyard.spec`) and ``backends.yml`` (:mod:`runyard.backends.config`)
are read the same way:

1. :func:`load_yaml` composes the text into a node tree with :class:`YamlLoader`. A walk
   over the nodes records the start line of every mapping key and sequence item under its
   path, e.g. ``("search", "max_runs") -> 7``; duplicate keys become :class:`Problem` s
   here, because PyYAML silently keeps the last one. Recursive aliases are walked once, and
   a file whose aliases expand to more than :data:`MAX_NODES` values (an "alias bomb") is
   refused before anything else reads it.
2. The caller validates the data and turns each finding into a :class:`Problem` (its
   text and the data path whose line it belongs to).
3. :func:`located_error` gives every problem the line of its path (or of the nearest
   recorded parent) and joins them, sorted by line, into one :class:`SpecError`.

YAML dialect: scalars follow the YAML 1.2 core schema, not PyYAML's YAML 1.1 defaults,
because those surprise people in config files: ``1e-3`` is a float (1.1: a string),
``yes``/``no``/``on``/``off`` are strings (1.1: booleans), ``01:30:00`` is a string
(1.1: the integer 5400) and ``2024-01-01`` is a string (1.1: a date).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
from collections.abc import Sequence
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel

from runyard.errors import SpecError

__all__ = [
    "Lines",
    "Problem",
    "YamlLoader",
    "did_you_mean",
    "dotted",
    "keys_at",
    "load_yaml",
    "located_error",
    "parse_scalar",
]

Path = tuple[Any, ...]
Lines = dict[Path, int]
"""Data path -> 1-based line of the key or item that starts it."""

_TAG = "tag:yaml.org,2002:"

MAX_NODES = 100_000
"""Most keys, items and values a config file may hold once its aliases (``*name``) are expanded."""


class _TooLarge(Exception):
    def __init__(self, node: yaml.Node) -> None:
        self.node = node


class YamlLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core scalars (see the module docstring)."""


# PyYAML's YAML 1.1 resolvers for these tags are replaced by YAML 1.2 core ones below.
_YAML11_ONLY = ("bool", "int", "float", "timestamp", "value")
YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag[len(_TAG) :] not in _YAML11_ONLY]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
YamlLoader.add_implicit_resolver(
    _TAG + "bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
YamlLoader.add_implicit_resolver(
    _TAG + "int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
YamlLoader.add_implicit_resolver(
    _TAG + "float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def _construct_int(loader: YamlLoader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node)).replace("_", "")
    if text.startswith("0x"):
        return int(text[2:], 16)
    if text.startswith("0o"):
        return int(text[2:], 8)
    return int(text, 10)  # YAML 1.2: "010" is ten, not octal


def _construct_float(loader: YamlLoader, node: yaml.ScalarNode) -> float:
    text = str(loader.construct_scalar(node)).lower().replace("_", "")
    if text.endswith(".inf"):
        return -math.inf if text.startswith("-") else math.inf
    if text == ".nan":
        return math.nan
    return float(text)


YamlLoader.add_constructor(_TAG + "int", _construct_int)
YamlLoader.add_constructor(_TAG + "float", _construct_float)


def parse_scalar(text: str) -> Any:
    """One YAML value in this dialect (``5`` a number, ``false`` a boolean, ``[a, b]`` a list).

    Raises:
        yaml.YAMLError: the text is not valid YAML.
    """
    loader = YamlLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def dotted(path: Sequence[Any]) -> str:
    """A data path as users write it: ``search.max_runs``, ``hosts[0].port``."""
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def did_you_mean(word: Any, options: Sequence[str]) -> str:
    """`` Did you mean 'X'?`` for the closest of ``options``, or an empty string."""
    close = difflib.get_close_matches(str(word), list(options), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


def _model_of(annotation: Any) -> tuple[Any, type[BaseModel] | None]:
    """Strip Annotated and Optional; the inner type, and it again when it is a pydantic model."""
    while True:
        if get_origin(annotation) is Annotated:
            annotation = get_args(annotation)[0]
            continue
        if get_origin(annotation) in (Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                continue
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
        return annotation, model


def keys_at(model: type[BaseModel], path: Sequence[Any]) -> list[str]:
    """The keys valid in the mapping at ``path`` below ``model`` (a pydantic ``loc`` without its last part).

    Walks fields, list items and dict values; ``[]`` when the path leads to no model
    (then no key can be suggested).
    """
    current: type[BaseModel] | None = model
    annotation: Any = model
    for part in path:
        annotation, current = _model_of(annotation)
        if current is not None:
            field = current.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return []
            annotation = field.annotation
            continue
        origin = get_origin(annotation)
        if origin is list and isinstance(part, int):
            annotation = get_args(annotation)[0]
        elif origin is dict and not isinstance(part, int):
            annotation = get_args(annotation)[1]
        else:
            return []
    _, current = _model_of(annotation)
    return list(current.model_fields) if current is not None else []


@dataclasses.dataclass
class Problem:
    """One line of a config error: the text, and the data path whose line it is reported at."""

    text: str
    at: Path
    line: int | None = None  # overrides the line of ``at``


def _record_lines(
    loader: YamlLoader,
    node: yaml.Node,
    path: Path,
    lines: Lines,
    problems: list[Problem],
    active: set[int],
    budget: list[int],
) -> None:
    if id(node) in active:  # a recursive alias; construction reports it if it matters
        return
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooLarge(node)
    active.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _TAG + "merge":
                continue
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            sub = (*path, key)
            if key in first:
                problems.append(
                    Problem(
                        f"{dotted(sub)} is set twice (first at line {first[key]}); "
                        "YAML would keep only the last one. Remove one of them.",
                        sub,
                        line,
                    )
                )
            else:
                first[key] = line
                lines[sub] = line
            _record_lines(loader, value_node, sub, lines, problems, active, budget)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, i)] = item.start_mark.line + 1
            _record_lines(loader, item, (*path, i), lines, problems, active, budget)
    active.discard(id(node))


_YAML_FIXES = [
    ("found character '\\t'", "Indent with spaces; YAML does not allow tabs."),
    (
        "mapping values are not allowed",
        "A value contains ': ' or the line is indented too far: quote the value "
        '(e.g. `command: "python train.py --opt a: b"`) or align the key with the keys above.',
    ),
    ("could not find expected ':'", "A key lacks its ':', or the line is indented wrongly."),
    ("expected <block end>", "Indent this line like the keys above it."),
    ("did not find expected key", "Indent this line like the keys above it."),
    ("expected a single document", "Keep one document: remove the '---' separators."),
    ("found undefined alias", "Define the anchor (&name) before using *name, or quote the value."),
    ("found unexpected end of stream", "Close the quote or bracket opened earlier."),
    ("while scanning a quoted scalar", "Close the quote opened earlier."),
    ("found unhashable key", "Keys must be plain names, not lists or mappings."),
]


def _yaml_error(error: yaml.YAMLError, source: str, hint: str) -> SpecError:
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        what = error.problem or "invalid syntax"
        if error.context:
            context_line = f" at line {error.context_mark.line + 1}" if error.context_mark else ""
            what = f"{what} ({error.context}{context_line})"
    else:
        where, what = source, str(error).replace("\n", " ")
    text = f"{what} {error}"
    fix = next((f for needle, f in _YAML_FIXES if needle in text), "Fix the syntax at this position.")
    return SpecError(f"{where}: invalid YAML: {what}. {fix}", hint)


def load_yaml(text: str, source: str, hint: str | None = None) -> tuple[Any, Lines, list[Problem]]:
    """The data of one YAML document, the line of every key and item, and the duplicate keys found.

    Args:
        text: the file's content.
        source: the file name used in messages.
        hint: the hint of the error raised for invalid YAML (default: fix the file).

    Raises:
        SpecError: the text is not valid YAML (``SOURCE:LINE:COLUMN: invalid YAML: ...``).
    """
    loader = YamlLoader(text)
    try:
        node = loader.get_single_node()
        lines: Lines = {}
        problems: list[Problem] = []
        if node is None:
            return None, lines, problems
        lines[()] = node.start_mark.line + 1
        _record_lines(loader, node, (), lines, problems, set(), [MAX_NODES])
        data = loader.construct_document(node)
        return data, lines, problems
    except _TooLarge as e:
        raise SpecError(
            f"{source}:{e.node.start_mark.line + 1}: the file holds more than {MAX_NODES} values once its "
            "aliases (*name) are expanded, which no config needs (aliases nested in aliases multiply).",
            f"Write the values out, or use fewer nested aliases in {source}.",
        ) from None
    except yaml.YAMLError as e:
        raise _yaml_error(e, source, hint or f"Fix {source} at that position; YAML indents with spaces.") from e
    finally:
        loader.dispose()


def located_error(problems: Sequence[Problem], lines: Lines, source: str, hint: str | None = None) -> SpecError:
    """One SpecError listing ``problems`` as ``SOURCE:LINE: text``, sorted by line, duplicates once.

    A problem's line is its own ``line``, else that of its path or of the nearest parent
    path in ``lines``; without one the entry is ``SOURCE: text``.
    """

    def line_of(path: Path) -> int | None:
        for end in range(len(path), -1, -1):
            if path[:end] in lines:
                return lines[path[:end]]
        return None

    located = [(p.line or line_of(p.at), p.text) for p in problems]
    located.sort(key=lambda item: item[0] or 0)
    out: list[str] = []
    for line, text in located:
        entry = f"{source}:{line}: {text}" if line else f"{source}: {text}"
        if entry not in out:
            out.append(entry)
    return SpecError("\n".join(out), hint)
