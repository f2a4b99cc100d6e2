"""The rules for names and keys: projects, experiments, metrics, params and tags.

One rule per kind, shared by ``runyard.yml`` (spec), the SDK (which drops what the
server would refuse), the server's request checks and the store. Each kind has a
``*_problem`` function (the rule broken, as a sentence fragment, or ``None``) for
callers that word their own message, and a ``check_*`` function that raises
:class:`~runyard.errors.InvalidInput` with message and hint.

- Project names: 1-64 lowercase letters, digits, '-' or '_', starting with a letter
  or digit (a leading '_' or '-' is refused everywhere, as the store has always refused it).
- Experiment names: 1-128 characters, not only spaces, one line, no NUL.
- Metric, param and run tag keys: 1-250 characters without newlines (\\n or \\r), NUL
  characters (PostgreSQL text cannot hold NUL) or unpaired surrogates (not UTF-8).
- Project tag keys: 1-64 letters, digits, '_', '-' or '.', starting with a letter or
  digit, so that a tag filter needs no quoting.
"""

from __future__ import annotations

import re
from typing import Any

from runyard.errors import InvalidInput

__all__ = [
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
]

PROJECT_NAME_MAX = 64
PROJECT_NAME_RULE = "1-64 lowercase letters, digits, '-' or '_', starting with a letter or digit"
_PROJECT = re.compile(rf"[a-z0-9][a-z0-9_-]{{0,{PROJECT_NAME_MAX - 1}}}")

EXPERIMENT_NAME_MAX = 128
EXPERIMENT_NAME_RULE = f"1-{EXPERIMENT_NAME_MAX} characters on one line, not only spaces, without NUL characters"

KEY_MAX = 250
KEY_RULE = f"1-{KEY_MAX} characters without newlines, NUL characters or unpaired surrogates"

PROJECT_TAG_KEY_MAX = 64
PROJECT_TAG_KEY_RULE = (
    f"1-{PROJECT_TAG_KEY_MAX} letters, digits, '_', '-' or '.', starting with a letter or digit"
)
_PROJECT_TAG_KEY = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.\-]{{0,{PROJECT_TAG_KEY_MAX - 1}}}")

_LINE_BREAKS_OR_NUL = re.compile(r"[\n\r\x00]")


def _encodable(text: str) -> bool:
    """False when ``text`` holds an unpaired surrogate, which UTF-8 (and so the store) cannot hold."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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
        and not _LINE_BREAKS_OR_NUL.search(name)
        and _encodable(name)
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
        f"An experiment name must be {EXPERIMENT_NAME_RULE}, but got {name!r}.",
        "Use a short name such as 'baseline' or 'lr-sweep'.",
    )


def key_problem(key: Any) -> str | None:
    """``None`` for a valid metric, param or run tag key, else the rule it breaks."""
    if (
        isinstance(key, str)
        and 0 < len(key) <= KEY_MAX
        and not _LINE_BREAKS_OR_NUL.search(key)
        and _encodable(key)
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
        f"A {what} name must be {KEY_RULE}, but got {key!r}.",
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
