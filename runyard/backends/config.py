"""The server's backend configuration: ``$RUNYARD_HOME/backends.yml``.

A mapping from each backend's name to its ``type`` and options::

    slurm-dev:
      type: slurm
      partition: debug
      reach_server: false
    gpu-box:
      type: ssh
      host: gpu01

``runyard.yml`` picks one by ``backend: NAME``; ``runyard run --backend NAME``
overrides it. ``local`` always exists (``type: local``, default options); an entry
named ``local`` changes its options. The file is managed with ``runyard backends
add|list|remove|test``, or edited by hand: the scheduler's ``BackendPool`` reloads
it when it changes.

Validation has the quality of ``runyard.yml``'s (``runyard.spec``): every problem
on its own line, as ``backends.yml:LINE: NAME.option must be RULE, but got VALUE.
FIX``. A backend type's options are checked against its ``options_model`` by
``runyard.backends.options`` (the parser the backends themselves use).
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from runyard.backends.options import option_problems, show_value
from runyard.configfile import Problem, load_yaml, located_error  # one YAML dialect and line map
from runyard.errors import NotFound, SpecError

__all__ = [
    "FILE_NAME",
    "BackendEntry",
    "add_backend",
    "backends_path",
    "load_backends",
    "options_model",
    "parse_backends",
    "remove_backend",
]

FILE_NAME = "backends.yml"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_HINT = "Fix backends.yml, or manage it with `runyard backends add NAME --type TYPE --set key=value`."


@dataclass(frozen=True)
class BackendEntry:
    """One configured backend."""

    name: str
    type: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "options": dict(self.options)}


def backends_path(home: str | os.PathLike[str] | None = None) -> Path:
    """``$RUNYARD_HOME/backends.yml`` (or under ``home``)."""
    if home is None:
        from runyard import config

        home = config.home()
    return Path(home) / FILE_NAME


def options_model(backend_type: str) -> type[BaseModel] | None:
    """The pydantic model of a backend type's options, or None when the type has none to check."""
    from runyard.backends.registry import backend_class

    return getattr(backend_class(backend_type), "options_model", None)


def _entry_problems(name: Any, data: Any) -> list[tuple[tuple[Any, ...], str]]:
    """Problems of one entry, each with the data path to report its line at."""
    from runyard.backends.registry import backend_names

    at: tuple[Any, ...] = (name,)
    if not isinstance(name, str) or not _NAME_RE.match(name):
        return [(at, f"{show_value(name)} is not a valid backend name: a name must be letters, digits, '-', '_' or '.', "
                     "starting with a letter or digit. Rename it, e.g. slurm-dev.")]
    if not isinstance(data, Mapping):
        return [(at, f"{name} must be a mapping with a type and options, but got {show_value(data)}. "
                     f"Write e.g. `{name}: {{type: slurm, partition: debug}}`.")]
    types = backend_names()
    kind = data.get("type")
    if kind is None:
        return [(at, f"{name}.type is required: one of {', '.join(types)}. Add e.g. `type: slurm`.")]
    if not isinstance(kind, str) or kind not in types:
        close = difflib.get_close_matches(str(kind), types, n=1, cutoff=0.6)
        fix = f"Did you mean {close[0]!r}?" if close else f"Use one of {', '.join(types)}."
        return [((name, "type"), f"{name}.type must be one of {', '.join(types)}, but got {show_value(kind)}. {fix}")]
    if name == "local" and kind != "local":
        return [((name, "type"), f"local.type must be local, but got {show_value(kind)}: the name local is reserved "
                                 "for this machine. Give this backend another name.")]
    options = {k: v for k, v in data.items() if k != "type"}
    try:
        model = options_model(kind)
    except SpecError as e:
        return [((name, "type"), f"{name}.type {kind!r} cannot be used here: {e.message} {e.hint or ''}".strip())]
    if model is None:
        return []
    return option_problems(name, model, options, backend=kind)


def parse_backends(text: str, source: str = FILE_NAME) -> dict[str, BackendEntry]:
    """Parse and validate the text of a ``backends.yml``; ``local`` is always in the result.

    Raises:
        SpecError: one line per problem, ``SOURCE:LINE: NAME.option must be RULE, but got VALUE. FIX``.
    """
    data, lines, problems = load_yaml(text, source, _HINT)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise SpecError(f"{source}:1: the file must be a mapping from backend names to their settings, but got "
                        f"{show_value(data)}. Write e.g. `slurm-dev: {{type: slurm, partition: debug}}`.", _HINT)
    for name, entry in data.items():
        for at, text_ in _entry_problems(name, entry):
            problems.append(Problem(text_, at))
    if problems:
        raise located_error(problems, lines, source, _HINT)
    entries = {"local": BackendEntry("local", "local", {})}
    for name, entry in data.items():
        entries[name] = BackendEntry(name, entry["type"], {k: v for k, v in entry.items() if k != "type"})
    return entries


def load_backends(path: str | os.PathLike[str] | None = None) -> dict[str, BackendEntry]:
    """The configured backends (``local`` only when the file does not exist)."""
    path = Path(path) if path is not None else backends_path()
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {"local": BackendEntry("local", "local", {})}
    return parse_backends(text, str(path))


def _read_raw(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        return {}
    if not isinstance(data, dict):
        raise SpecError(f"{path} is not a mapping of backend names.", _HINT)
    return data


def _write(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = ("# Runyard backends: name -> type and options. Managed by `runyard backends`; edits by hand are fine.\n"
            + (yaml.safe_dump(dict(data), sort_keys=False, default_flow_style=False) if data else ""))
    parse_backends(text, str(path))  # never write a file the server would refuse
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def add_backend(path: str | os.PathLike[str], name: str, backend_type: str, options: Mapping[str, Any], *,
                replace: bool = False) -> BackendEntry:
    """Add (or with ``replace``, replace) one entry, validated like the whole file.

    Raises:
        SpecError: the entry is invalid, or ``name`` exists and ``replace`` is false.
    """
    path = Path(path)
    data = _read_raw(path)
    if name in data and not replace:
        raise SpecError(f"A backend named {name!r} is already configured in {path}.",
                        f"Remove it first (`runyard backends remove {name}`), or pass --replace.")
    problems = _entry_problems(name, {"type": backend_type, **options})
    if problems:
        raise SpecError("\n".join(f"{FILE_NAME}: {text}" for _, text in problems), _HINT)
    data[name] = {"type": backend_type, **options}
    _write(path, data)
    return BackendEntry(name, backend_type, dict(options))


def remove_backend(path: str | os.PathLike[str], name: str) -> None:
    """Remove one entry.

    Raises:
        NotFound: no entry of that name (``local`` cannot be removed: it always exists).
    """
    path = Path(path)
    data = _read_raw(path)
    if name not in data:
        if name == "local":
            raise SpecError("The local backend always exists and cannot be removed.",
                            "Leave it unused, or pick another backend in runyard.yml.")
        known = ", ".join(sorted(["local", *data])) or "local"
        raise NotFound(f"No backend named {name!r} in {path}. Configured backends: {known}.",
                       "See them with `runyard backends list`.")
    del data[name]
    _write(path, data)
