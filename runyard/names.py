"""The rules for names and keys: projects, experiments, metrics, params and tags.

One rule per kind, shared by ``runyard.yml`` (spec), the SDK (which drops what the
server would refuse), the server's request checks and the store. Each kind has a
``*_problem`` function (the rule broken, as a sentence fragment, or ``None``) for
callers that word their own message, and a ``check_*`` function that raises
:class:`~runyard.errors.InvalidInput` with message and hint.

- Project names: 1-64 lowercase letters, digits, '-' or '_', starting with a letter
  or digit (a leading '_' or '-' is refused everywhere, as the store has always refused it).
- Experiment names: 1-128 characters, not only spaces, without control characters
  (newlines, NUL, ...), bidirectional overrides (U+202E, which shows text reversed) or
  unpaired surrogates.
- Run names: the same, 0-256 characters ("" lets the store name the run ``run-<id>``).
- Metric, param and run tag keys: 1-250 characters without newlines (\\n or \\r), NUL
  characters (PostgreSQL text cannot hold NUL), bidirectional overrides or unpaired
  surrogates (not UTF-8).
- Project tag keys: 1-64 letters, digits, '_', '-' or '.', starting with a letter or
  digit, so that a tag filter needs no quoting.

And for every other string and number that enters through the API, the SDK or a
``runyard.yml`` (one rule, :func:`text_problem` / :func:`value_problem`):

- Text (descriptions, tag and param values, commands, messages): no NUL characters
  (PostgreSQL text cannot hold them) and no unpaired surrogates (``"\\ud800"``: not
  Unicode text, so no JSON encoder, database or browser can hold it).
- Integers: within signed 64 bits (:data:`INT64_MIN`..:data:`INT64_MAX`), what the store holds.
- Log lines are program output, never refused: :func:`clean_log_text` replaces NUL and
  unpaired surrogates with U+FFFD.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from runyard.errors import InvalidInput

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "RUN_NAME_MAX",
    "RUN_NAME_RULE",
    "TEXT_RULE",
    "check_run_name",
    "check_text",
    "check_value",
    "clean_log_text",
    "int_problem",
    "iter_value_problems",
    "run_name_problem",
    "text_problem",
    "value_problem",
    "EXPERIMENT_NAME_MAX",
    "EXPERIMENT_NAME_RULE",
    "KEY_MAX",
    "KEY_RULE",
    "PROJECT_NAME_MAX",
    "PROJECT_NAME_RULE",
    "PROJECT_TAG_KEY_MAX",
    "PROJECT_TAG_KEY_RULE",
    "check_experiment_name",
    "check_key",
    "check_project_name",
    "check_project_tag_key",
    "experiment_name_problem",
    "key_problem",
    "project_name_problem",
    "project_tag_key_problem",
    "suggest_project_name",
    # The model registry (models-backend): model names, aliases and ``models:/`` URIs.
    "ALIAS_MAX",
    "ALIAS_RULE",
    "MODEL_NAME_MAX",
    "MODEL_NAME_RULE",
    "MODEL_URI_MAX",
    "MODEL_VERSION_MAX",
    "ModelRef",
    "alias_problem",
    "check_alias",
    "check_model_name",
    "model_name_problem",
    "parse_model_uri",
    # datasets
    "DATASET_NAME_MAX",
    "DATASET_NAME_RULE",
    "DatasetRef",
    "check_dataset_name",
    "dataset_name_problem",
    "parse_dataset_ref",
]

PROJECT_NAME_MAX = 64
PROJECT_NAME_RULE = "1-64 lowercase letters, digits, '-' or '_', starting with a letter or digit"
_PROJECT = re.compile(rf"[a-z0-9][a-z0-9_-]{{0,{PROJECT_NAME_MAX - 1}}}")

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

TEXT_RULE = "text without NUL characters or unpaired surrogates"

EXPERIMENT_NAME_MAX = 128
EXPERIMENT_NAME_RULE = (
    f"1-{EXPERIMENT_NAME_MAX} characters on one line, not only spaces, without control characters, "
    "bidirectional overrides or unpaired surrogates"
)

RUN_NAME_MAX = 256
RUN_NAME_RULE = (
    f"at most {RUN_NAME_MAX} characters on one line, without control characters, "
    "bidirectional overrides or unpaired surrogates"
)

KEY_MAX = 250
KEY_RULE = (
    f"1-{KEY_MAX} characters without newlines, NUL characters, bidirectional overrides or unpaired surrogates"
)

PROJECT_TAG_KEY_MAX = 64
PROJECT_TAG_KEY_RULE = (
    f"1-{PROJECT_TAG_KEY_MAX} letters, digits, '_', '-' or '.', starting with a letter or digit"
)
_PROJECT_TAG_KEY = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.\-]{{0,{PROJECT_TAG_KEY_MAX - 1}}}")

# Bidirectional formatting (U+202A-U+202E embeddings and overrides, U+2066-U+2069 isolates, the
# marks U+200E, U+200F, U+061C): a name holding one displays differently from what it is.
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_KEY_BAD = re.compile(rf"[\n\r\x00{_BIDI}\ud800-\udfff]")
# Names: C0 and C1 controls (tab, newline, NUL, escape, ...), bidi formatting, surrogates.
_NAME_BAD = re.compile(rf"[\x00-\x1f\x7f-\x9f{_BIDI}\ud800-\udfff]")
# Text: NUL and surrogates. A str holds no paired surrogates (JSON's "\\ud83d\\ude00" decodes to
# one code point), so every surrogate code point in a str is an unpaired one.
_TEXT_BAD = re.compile("[\x00\ud800-\udfff]")


def _describe(ch: str, at: int | None = None) -> str:
    """What ``ch`` is and why it is refused, e.g. ``a NUL character at character 3, which databases cannot store``."""
    where = "" if at is None else f" at character {at}"
    if ch == "\x00":
        return f"a NUL character{where}, which databases cannot store"
    if "\ud800" <= ch <= "\udfff":
        return f"an unpaired surrogate {ch!r}{where}, which is not Unicode text (JSON, UTF-8 and the store cannot hold it)"
    if ch in "\n\r":
        return f"a line break{where}"
    if ch < " " or "\x7f" <= ch <= "\x9f":
        return f"a control character {ch!r}{where}"
    return f"a bidirectional formatting character U+{ord(ch):04X}{where}, which makes text display differently from what it is"


def text_problem(text: str) -> str | None:
    """``None`` for text the API, the store and the UI can hold, else what is wrong with it.

    Text may hold anything but NUL characters and unpaired surrogates.
    """
    if text.isascii() and "\x00" not in text:
        return None
    m = _TEXT_BAD.search(text)
    if m is None:
        return None
    return f"holds {_describe(m.group(), m.start())}"


def check_text(text: str, field: str) -> str:
    """``text`` when :func:`text_problem` finds nothing.

    Raises:
        InvalidInput: naming ``field``, the problem and the fix.
    """
    problem = text_problem(text)
    if problem is None:
        return text
    raise InvalidInput(f"{field} {problem}.", "Remove the character, or replace it with a printable one.")


def clean_log_text(text: str) -> str:
    """``text`` with NUL characters and unpaired surrogates replaced by U+FFFD.

    Log lines are a program's output, stored as they came: one bad byte must not lose the line.
    """
    if text.isascii() and "\x00" not in text:
        return text
    return _TEXT_BAD.sub("\ufffd", text)


def int_problem(value: int) -> str | None:
    """``None`` for an integer the store holds (signed 64 bits), else the rule it breaks."""
    if INT64_MIN <= value <= INT64_MAX:
        return None
    return f"must be an integer from {INT64_MIN} to {INT64_MAX} (64 bits), but got {_short_int(value)}"


def _short_int(value: int) -> str:
    text = str(value)
    return text if len(text) <= 30 else f"{text[:12]}...{text[-6:]} ({len(text)} digits)"


def iter_value_problems(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str]]:
    """Every string (dict keys too) and integer in a JSON-like ``value`` the store cannot hold,
    as (path, problem): text by :func:`text_problem`, integers by :func:`int_problem`.

    Walks dicts, lists and tuples. Non-finite floats are not judged here (params refuse
    them, metrics store them as missing).
    """
    if isinstance(value, str):
        problem = text_problem(value)
        if problem is not None:
            yield path, problem
    elif isinstance(value, bool):
        return
    elif isinstance(value, int):
        problem = int_problem(value)
        if problem is not None:
            yield path, problem
    elif isinstance(value, dict):
        for k, v in value.items():
            key_problem = text_problem(k) if isinstance(k, str) else None
            if key_problem is not None:
                yield path, f"has a key {k!r} that {key_problem}"
                continue
            yield from iter_value_problems(v, (*path, k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from iter_value_problems(v, (*path, i))


def value_problem(value: Any, path: str = "") -> tuple[str, str] | None:
    """The first problem :func:`iter_value_problems` finds, as (dotted path under ``path``, problem)."""
    for where, problem in iter_value_problems(value):
        dotted = path
        for part in where:
            dotted += f"[{part}]" if isinstance(part, int) else f"{'.' if dotted else ''}{part}"
        return dotted, problem
    return None


def check_value(value: Any, field: str) -> Any:
    """``value`` when :func:`value_problem` finds nothing.

    Raises:
        InvalidInput: naming the field (and the path inside it), the problem and the fix.
    """
    found = value_problem(value)
    if found is None:
        return value
    path, problem = found
    where = f"{field}.{path}" if path and not path.startswith("[") else f"{field}{path}"
    raise InvalidInput(f"{where} {problem}.", _fix(problem))


def _fix(problem: str) -> str:
    if problem.startswith("must be an integer"):
        return "Send a smaller number."
    return "Remove the character, or replace it with a printable one."


def run_name_problem(name: Any) -> str | None:
    """``None`` for a valid run name ("" included: the store names the run), else the rule it breaks."""
    if isinstance(name, str) and len(name) <= RUN_NAME_MAX and not _NAME_BAD.search(name):
        return None
    return f"must be {RUN_NAME_RULE}"


def check_run_name(name: Any) -> str:
    """``name`` when it is a valid run name.

    Raises:
        InvalidInput: naming the rule, what is wrong and the fix.
    """
    if isinstance(name, str) and run_name_problem(name) is None:
        return name
    raise InvalidInput(f"A run name must be {RUN_NAME_RULE}, but got {_show_name(name)}.",
                       "Use a short name such as 'baseline-1', or leave it out to get run-<id>.")


def _show_name(name: Any, bad: re.Pattern[str] = _NAME_BAD) -> str:
    if not isinstance(name, str):
        return type(name).__name__
    if len(name) > 80:
        return f"{len(name)} characters"
    m = bad.search(name)
    return f"{name!r}, which holds {_describe(m.group())}" if m else repr(name)


def suggest_project_name(text: str) -> str:
    """A valid project name close to ``text`` (``My Project`` -> ``my-project``)."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", str(text).lower()).strip("-_")[:PROJECT_NAME_MAX].strip("-_")
    return slug or "my-project"


def project_name_problem(name: Any) -> str | None:
    """``None`` for a valid project name, else the rule it breaks."""
    if isinstance(name, str) and _PROJECT.fullmatch(name):
        return None
    return f"must be {PROJECT_NAME_RULE}"


def check_project_name(name: Any) -> str:
    """``name`` when it is a valid project name.

    Raises:
        InvalidInput: naming the rule, the value and a valid name close to it.
    """
    if isinstance(name, str) and project_name_problem(name) is None:
        return name
    raise InvalidInput(
        f"A project name must be {PROJECT_NAME_RULE}, but got {name!r}.",
        f"Rename it, e.g. {suggest_project_name(name if isinstance(name, str) else '')}.",
    )


def experiment_name_problem(name: Any) -> str | None:
    """``None`` for a valid experiment name, else the rule it breaks."""
    if (
        isinstance(name, str)
        and 0 < len(name) <= EXPERIMENT_NAME_MAX
        and name.strip()
        and not _NAME_BAD.search(name)
    ):
        return None
    return f"must be {EXPERIMENT_NAME_RULE}"


def check_experiment_name(name: Any) -> str:
    """``name`` when it is a valid experiment name.

    Raises:
        InvalidInput: naming the rule and the value.
    """
    if isinstance(name, str) and experiment_name_problem(name) is None:
        return name
    raise InvalidInput(
        f"An experiment name must be {EXPERIMENT_NAME_RULE}, but got {_show_name(name)}.",
        "Use a short name such as 'baseline' or 'lr-sweep'.",
    )


def key_problem(key: Any) -> str | None:
    """``None`` for a valid metric, param or run tag key, else the rule it breaks."""
    if (
        isinstance(key, str)
        and 0 < len(key) <= KEY_MAX
        and not _KEY_BAD.search(key)
    ):
        return None
    return f"must be {KEY_RULE}"


def check_key(key: Any, what: str) -> str:
    """``key`` when it is a valid ``what`` (metric, param or tag) name.

    Raises:
        InvalidInput: naming the kind, the rule and the value.
    """
    if isinstance(key, str) and key_problem(key) is None:
        return key
    raise InvalidInput(
        f"A {what} name must be {KEY_RULE}, but got {_show_name(key, _KEY_BAD)}.",
        "Use a short name such as 'loss' or 'train/acc'.",
    )


def project_tag_key_problem(key: Any) -> str | None:
    """``None`` for a valid project tag key, else the rule it breaks."""
    if isinstance(key, str) and _PROJECT_TAG_KEY.fullmatch(key):
        return None
    return f"must be {PROJECT_TAG_KEY_RULE}"


def check_project_tag_key(key: Any) -> str:
    """``key`` when it is a valid project tag key.

    Raises:
        InvalidInput: naming the rule and the value.
    """
    if isinstance(key, str) and project_tag_key_problem(key) is None:
        return key
    raise InvalidInput(
        f"A project tag key must be {PROJECT_TAG_KEY_RULE}, but got {key!r}.",
        "Use a short word such as 'problem', 'team' or 'data-set'.",
    )



# ------------------------------------------------------------------ the model registry
MODEL_NAME_MAX = 128
MODEL_NAME_RULE = f"1-{MODEL_NAME_MAX} letters, digits, '.', '_' or '-', starting with a letter or digit"
_MODEL_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{MODEL_NAME_MAX - 1}}}")
ALIAS_MAX = 128
ALIAS_RULE = (f"1-{ALIAS_MAX} letters, digits, '_' or '-', starting with a letter, and not 'latest' "
              "(which always means the newest version)")
_ALIAS = re.compile(rf"[A-Za-z][A-Za-z0-9_-]{{0,{ALIAS_MAX - 1}}}")
MODEL_VERSION_MAX = 2**31 - 1  # the store's version column is a 32-bit integer
MODEL_URI_MAX = 512
_URI_FORMS = "models:/NAME/3, models:/NAME@production, models:/NAME/latest or models:/PROJECT/NAME/3"


@dataclass(frozen=True)
class ModelRef:
    """A parsed ``models:/`` URI: a version number, an alias, or neither (the latest version).

    ``project`` is None for an unqualified URI (``models:/digits/3``): it resolves in the current project.
    """

    project: str | None
    name: str
    version: int | None = None
    alias: str | None = None

    @property
    def is_latest(self) -> bool:
        return self.version is None and self.alias is None

    def uri(self, project: str | None = None) -> str:
        """The canonical URI (qualified with ``project`` when the reference has none and it is given)."""
        where = self.project or project
        head = f"models:/{where}/{self.name}" if where else f"models:/{self.name}"
        if self.alias is not None:
            return f"{head}@{self.alias}"
        return f"{head}/{'latest' if self.version is None else self.version}"


def model_name_problem(name: Any) -> str | None:
    """``None`` for a valid model name, else the rule it breaks."""
    if isinstance(name, str) and _MODEL_NAME.fullmatch(name):
        return None
    return f"must be {MODEL_NAME_RULE}"


def _show_value(value: Any) -> str:
    """A value for an error message: short, with what makes it unreadable named."""
    if not isinstance(value, str):
        return type(value).__name__
    if len(value) > 80:
        return f"a text of {len(value):,} characters"
    m = _NAME_BAD.search(value)
    return f"{value!r}, which holds {_describe(m.group())}" if m else repr(value)


def _suggest_model_name(text: Any) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", str(text) if isinstance(text, str) else "").strip("-._")
    slug = slug.encode("ascii", "ignore").decode()[:MODEL_NAME_MAX].strip("-._")
    return slug or "my-model"


def check_model_name(name: Any) -> str:
    """``name`` when it is a valid model name.

    Raises:
        InvalidInput: naming the rule, the value and a valid name close to it.
    """
    if isinstance(name, str) and model_name_problem(name) is None:
        return name
    raise InvalidInput(f"A model name must be {MODEL_NAME_RULE}, but got {_show_value(name)}.",
                       f"Use a name such as {_suggest_model_name(name)!r}.")


def alias_problem(alias: Any) -> str | None:
    """``None`` for a valid alias, else the rule it breaks."""
    if isinstance(alias, str) and _ALIAS.fullmatch(alias) and alias != "latest":
        return None
    return f"must be {ALIAS_RULE}"


def check_alias(alias: Any) -> str:
    """``alias`` when it is a valid alias.

    Raises:
        InvalidInput: naming the rule, the value and the fix.
    """
    if isinstance(alias, str) and alias_problem(alias) is None:
        return alias
    if alias == "latest":
        raise InvalidInput("'latest' cannot be an alias: models:/NAME/latest always means the newest ready version.",
                           "Pick another alias, e.g. production, staging or candidate.")
    raise InvalidInput(f"An alias must be {ALIAS_RULE}, but got {_show_value(alias)}.",
                       "Use a word such as production, staging or candidate.")


def _uri_error(uri: str, problem: str, hint: str | None = None) -> InvalidInput:
    return InvalidInput(f"Invalid model URI {_show_value(uri)}: {problem}.",
                        hint or f"Write it as {_URI_FORMS}.")


def _version(uri: str, text: str) -> int | None:
    if text == "latest":
        return None
    if not text.isascii() or not text.isdigit():
        raise _uri_error(uri, f"the version {text!r} is not a number or 'latest'")
    if len(text) > 10 or not 1 <= int(text) <= MODEL_VERSION_MAX:
        raise _uri_error(uri, f"the version must be from 1 to {MODEL_VERSION_MAX}",
                         "Versions are numbered 1, 2, 3, ... in the order they were registered.")
    return int(text)


def _uri_part(uri: str, text: str, kind: str) -> str:
    if kind == "project":
        if project_name_problem(text) is not None:
            raise _uri_error(uri, f"the project {text!r} must be {PROJECT_NAME_RULE}")
    elif kind == "alias":
        if alias_problem(text) is not None:
            if text == "latest":
                raise _uri_error(uri, "'latest' is not an alias", "Write models:/NAME/latest for the newest version.")
            raise _uri_error(uri, f"the alias {text!r} must be {ALIAS_RULE}")
    elif model_name_problem(text) is not None:
        raise _uri_error(uri, f"the model name {text!r} must be {MODEL_NAME_RULE}")
    return text


def parse_model_uri(uri: Any) -> ModelRef:
    """Parse a model URI into a :class:`ModelRef`.

    The forms: ``models:/NAME/3`` (a version), ``models:/NAME@production`` (an alias),
    ``models:/NAME/latest`` and ``models:/NAME`` (the newest version that is not archived), each
    optionally qualified with a project: ``models:/PROJECT/NAME/3``, ``models:/PROJECT/NAME@alias``,
    ``models:/PROJECT/NAME``. With two parts, a number or ``latest`` as the second makes it NAME/VERSION.

    Raises:
        InvalidInput: naming what is wrong (the prefix, a part, the version) and the forms to use.
    """
    if not isinstance(uri, str):
        raise InvalidInput(f"A model URI must be text, but got {type(uri).__name__}.", f"Write it as {_URI_FORMS}.")
    if len(uri) > MODEL_URI_MAX:
        raise _uri_error(uri, f"it is longer than {MODEL_URI_MAX} characters")
    bad = _NAME_BAD.search(uri)
    if bad is not None:
        raise InvalidInput(f"Invalid model URI {uri[:80]!r}: it holds {_describe(bad.group(), bad.start())}.",
                           f"Remove the character; write the URI as {_URI_FORMS}.")
    if not uri.startswith("models:/"):
        raise _uri_error(uri, "it does not start with 'models:/'")
    body = uri[len("models:/"):]
    if not body:
        raise _uri_error(uri, "it names no model")
    if "@" in body:
        path, _, alias = body.partition("@")
        if "@" in alias or "/" in alias:
            raise _uri_error(uri, "an alias comes last and holds no '@' or '/'")
        parts = path.split("/")
        if len(parts) > 2 or "" in parts:
            raise _uri_error(uri, "before '@' comes NAME or PROJECT/NAME")
        project = _uri_part(uri, parts[0], "project") if len(parts) == 2 else None
        return ModelRef(project, _uri_part(uri, parts[-1], "name"), None, _uri_part(uri, alias, "alias"))
    parts = body.split("/")
    if "" in parts:
        raise _uri_error(uri, "it has an empty part (a doubled or trailing '/')")
    if len(parts) == 1:
        return ModelRef(None, _uri_part(uri, parts[0], "name"))
    if len(parts) == 2:
        last = parts[1]
        if last == "latest" or (last.isascii() and last.isdigit()):
            return ModelRef(None, _uri_part(uri, parts[0], "name"), _version(uri, last))
        return ModelRef(_uri_part(uri, parts[0], "project"), _uri_part(uri, last, "name"))
    if len(parts) == 3:
        return ModelRef(_uri_part(uri, parts[0], "project"), _uri_part(uri, parts[1], "name"), _version(uri, parts[2]))
    raise _uri_error(uri, f"it has {len(parts)} parts; at most 3 (PROJECT/NAME/VERSION)")
# --- Datasets: names and references (``digits:3``, ``team/digits:latest``) ---------------------------------

DATASET_NAME_MAX = 128
DATASET_NAME_RULE = "1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
_DATASET_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{DATASET_NAME_MAX - 1}}}")
_DATASET_REF_MAX = 512


class DatasetRef(NamedTuple):
    """A parsed dataset reference: ``version`` None means the latest version; ``project`` None the current one."""

    project: str | None
    name: str
    version: int | None


def dataset_name_problem(name: Any) -> str | None:
    """``None`` for a valid dataset name, else the rule it breaks."""
    if isinstance(name, str) and _DATASET_NAME.fullmatch(name):
        return None
    return f"must be {DATASET_NAME_RULE}"


def check_dataset_name(name: Any) -> str:
    """``name`` when it is a valid dataset name.

    Raises:
        InvalidInput: naming the rule, what is wrong and a valid name close to it.
    """
    if isinstance(name, str) and dataset_name_problem(name) is None:
        return name
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name if isinstance(name, str) else "").strip("-._")[:DATASET_NAME_MAX]
    raise InvalidInput(f"A dataset name must be {DATASET_NAME_RULE}, but got {_show_name(name, _NAME_BAD)}.",
                       f"Rename it, e.g. {slug or 'my-data'}.")


def parse_dataset_ref(text: Any) -> DatasetRef:
    """Parse ``NAME``, ``NAME:3``, ``NAME:latest``, ``NAME@latest`` or ``PROJECT/NAME:3`` (no version = latest).

    Raises:
        InvalidInput: the reference is not of that form, or its project, name or version is invalid.
    """
    hint = "Write NAME, NAME:3, NAME:latest or PROJECT/NAME:3, e.g. digits:3."
    if not isinstance(text, str) or not text:
        raise InvalidInput(f"A dataset reference must be non-empty text, but got {_show_name(text)}.", hint)
    if len(text) > _DATASET_REF_MAX:
        raise InvalidInput(f"A dataset reference is at most {_DATASET_REF_MAX} characters, but got {len(text)}.", hint)
    bad = _NAME_BAD.search(text)
    if bad:
        raise InvalidInput(f"The dataset reference {text!r} holds {_describe(bad.group(), bad.start())}.", hint)
    body, version = text, None
    for sep in (":", "@"):
        if sep in body:
            body, _, tail = body.rpartition(sep)
            if tail == "latest":
                version = None
            elif tail.isascii() and tail.isdigit() and 0 < len(tail) <= 9 and int(tail) > 0:
                version = int(tail)
            else:
                raise InvalidInput(f"The version in the dataset reference {text!r} must be a positive number "
                                   f"(below 10**9) or 'latest', but got {tail!r}.", hint)
            break
    project: str | None = None
    if "/" in body:
        project, _, body = body.partition("/")
        if project_name_problem(project) is not None:
            raise InvalidInput(f"The project in the dataset reference {text!r} must be {PROJECT_NAME_RULE}, "
                               f"but got {project!r}.", hint)
    if dataset_name_problem(body) is not None:
        raise InvalidInput(f"The name in the dataset reference {text!r} must be {DATASET_NAME_RULE}, but got {_show_name(body)}.",
                           hint)
    return DatasetRef(project, body, version)
