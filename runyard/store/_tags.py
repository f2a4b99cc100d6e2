"""Project tags: the rules for their keys and values, and the ``tag`` filter of the project list.

A project tag is a key with a value (``problem: classification``); an empty value makes it
a plain label (``benchmark``). Keys are short words so that a filter needs no quoting:

    problem                 projects that have the tag, whatever its value
    problem:classification  projects whose tag ``problem`` is exactly ``classification``
    problem=classification  the same (the CLI's KEY=VALUE form)

Spaces around the separator are ignored (``problem: classification``), which is why stored
values may not start or end with one.

Keys hold neither ':' nor '=', so the first of them always ends the key; a value may hold both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import runyard.names as names
from runyard.errors import InvalidInput

__all__ = [
    "MAX_PROJECT_TAGS", "MAX_TAG_KEY", "MAX_TAG_VALUE", "TagFilter", "check_project_tags", "check_tag_key", "check_tag_value",
    "parse_tag_filter",
]

MAX_TAG_KEY = names.PROJECT_TAG_KEY_MAX
MAX_TAG_VALUE = 256
MAX_PROJECT_TAGS = 50


@dataclass(frozen=True)
class TagFilter:
    """Keep projects with tag ``key``; with ``value`` set, only where the tag has exactly that value."""

    key: str
    value: str | None = None


def check_tag_key(key: Any) -> str:
    return names.check_project_tag_key(key)


def check_tag_value(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"The value of project tag {key!r} must be text, but got {value!r}.", f'Quote it: {{"{key}": "{value}"}}.')
    if len(value) > MAX_TAG_VALUE or any(c in value for c in "\n\r\x00"):
        raise InvalidInput(
            f"The value of project tag {key!r} must be one line of at most {MAX_TAG_VALUE} characters "
            f"(no newline or NUL), but got {len(value)} characters: {value[:40]!r}{'…' if len(value) > 40 else ''}.",
            "Shorten it; put longer text in the project's description.",
        )
    names.check_text(value, f"The value of project tag {key!r}")
    if value != value.strip():
        # Filters ignore the spaces around ':' ("problem: classification"), so a stored value cannot keep them.
        raise InvalidInput(f"The value of project tag {key!r} must not start or end with a space, but got {value!r}.",
                           f"Use {value.strip()!r}.")
    return value


def check_project_tags(tags: Mapping[str, Any]) -> dict[str, str]:
    """Validate tags to set; returns them unchanged. Raises InvalidInput naming the first bad key or value."""
    for key, value in tags.items():
        check_tag_value(check_tag_key(key), value)
    return dict(tags)


def parse_tag_filter(text: str) -> TagFilter:
    """``key``, ``key:value`` or ``key=value`` → TagFilter. Raises InvalidInput on a bad key."""
    cut = min((i for i in (text.find(":"), text.find("=")) if i >= 0), default=-1)
    if cut < 0:
        key, value = text.strip(), None
    else:
        key, value = text[:cut].strip(), text[cut + 1 :].strip()
    try:
        check_tag_key(key)
    except InvalidInput as e:
        raise InvalidInput(
            f"A tag filter is KEY or KEY:VALUE, and {e.message[0].lower() + e.message[1:]}",
            "For example problem:classification (or problem=classification), or benchmark for every project with that tag.",
        ) from e
    return TagFilter(key, value)
