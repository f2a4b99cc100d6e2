"""Reading runyard.yml: from text, from a file or directory, or from a stored config."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

import runyard.names as names
from runyard.configfile import Problem, dotted, load_yaml, located_error
from runyard.errors import SpecError
from runyard.spec._errors import explain
from runyard.spec._model import Spec
from runyard.spec._rules import FILE_NAME, HINT, show
from runyard.spec._values import undeclared


def parse_spec(text: str, source: str = FILE_NAME, default_name: str | None = None) -> Spec:
    """Parse the text of a ``runyard.yml``.

    Args:
        text: the file's content.
        source: the file name used in messages (``runyard.yml:7: ...``).
        default_name: the experiment name when the file sets none (the CLI passes the
            directory name); without it the project name is used.

    Raises:
        SpecError: listing every problem found, one per line, with file and line.
    """
    data, lines, problems = load_yaml(text, source, HINT)
    if data is None:
        raise SpecError(
            f"{source}:1: the file is empty. It needs at least `project:` and `command:`.",
            "Run `runyard init` to write a commented starter file.",
        )
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"the single value {show(data)}"
        raise SpecError(
            f"{source}:{lines.get((), 1)}: the file must be a mapping of keys such as "
            f"`project:` and `command:`, but it is {kind}.",
            HINT,
        )
    edge = _edge_problems(data)
    if edge:
        raise located_error(problems + edge, lines, source, HINT)
    if default_name is not None and data.get("name") is None:
        problem = names.experiment_name_problem(default_name)
        if problem is None:
            data = {"name": default_name, **{k: v for k, v in data.items() if k != "name"}}
        else:
            shown = repr(default_name) if len(default_name) <= 60 else f"{default_name[:40]!r}... ({len(default_name)} characters)"
            problems.append(Problem(
                f"the file sets no `name:`, so the experiment is named after its directory, {shown}; but an "
                f"experiment name {problem}. Add e.g. `name: {names.suggest_project_name(default_name)[:40]}` "
                "to the file, or rename the directory.", ()))
    try:
        spec = Spec.model_validate(data)
    except ValidationError as e:
        errors = e.errors(include_url=False)
        for error in errors:
            problems.extend(explain(error, data))
        # Rules between keys run only once every key is valid; the placeholder check
        # needs just the command and the param names, so run it on the raw data too.
        command, params = data.get("command"), data.get("params")
        if (
            isinstance(command, str)
            and isinstance(params, dict | None)
            and not any(error["loc"][:1] == ("command",) for error in errors)
        ):
            declared = [str(k) for k in params or {}]
            problems.extend(
                Problem(f"command {body}", ("command",)) for body in undeclared(command, declared)
            )
        raise located_error(problems, lines, source, HINT) from None
    if problems:
        raise located_error(problems, lines, source, HINT)
    return spec


def load_spec(path: Path | str) -> Spec:
    """Read ``runyard.yml`` from a file, or from a directory that contains one.

    The experiment name defaults to the directory's name.

    Raises:
        SpecError: the file is missing, unreadable or invalid.
    """
    path = Path(path)
    file = path / FILE_NAME if path.is_dir() else path
    if not file.is_file():
        other = file.with_suffix(".yaml")
        hint = (
            f"Rename {other.name} to {FILE_NAME}."
            if other.is_file()
            else f"Run `runyard init {file.parent}` to write a starter file."
        )
        raise SpecError(f"{file}: no such file; Runyard reads the experiment from {FILE_NAME}.", hint)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(
            f"{file}: cannot read the file: {e}.", "Save it as UTF-8 text and check its permissions."
        ) from e
    return parse_spec(text, source=str(file), default_name=file.resolve().parent.name)


def validate_config(config: Mapping[str, Any], source: str = "config") -> Spec:
    """Validate a stored config (:meth:`Spec.to_config` output, or a client's JSON).

    Like ``Spec.model_validate`` but raises a :class:`SpecError` (without line numbers).
    """
    data = dict(config)
    edge = _edge_problems(data)
    if edge:
        raise located_error(edge, {}, source, HINT)
    try:
        return Spec.model_validate(data)
    except ValidationError as e:
        problems = [p for error in e.errors(include_url=False) for p in explain(error, data)]
        raise located_error(problems, {}, source, HINT) from None


def _edge_problems(data: Any) -> list[Problem]:
    """Text and numbers no part of Runyard can hold (:func:`runyard.names.iter_value_problems`):
    NUL characters, unpaired surrogates, integers beyond 64 bits. Checked before the schema,
    whose own messages would only confuse the matter."""
    out = []
    for path, problem in names.iter_value_problems(data):
        if problem.startswith("must be an integer"):
            fix = "Use a smaller number."
        elif (path[:1] in (("command",), ("setup",)) or path[:2] == ("build", "steps")) and "NUL" in problem:
            fix = "Remove it: a command line cannot carry NUL characters (a program's arguments end at the first one)."
        else:
            fix = "Remove it, or replace it with a printable character."
        where = dotted(path) if path else "the file"
        out.append(Problem(f"{where} {problem}. {fix}", path))
    return out
