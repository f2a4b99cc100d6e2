"""Field rules, the strict base model, and the error values the spec's validators raise."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from pydantic import AfterValidator, BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError

from runyard.configfile import dotted

FILE_NAME = "runyard.yml"
DOCS = "docs/runyard-yml.md"
HINT = (
    f"Fix the lines above; {DOCS} describes every field. "
    "`runyard init` in an empty directory writes a commented example."
)


@dataclasses.dataclass(frozen=True)
class Rule:
    """What a field must be and how to fix it.

    Pydantic keeps unknown ``Annotated`` metadata on the field without using it; the
    error translator finds it there. ``missing`` is the fix when a required field is absent.
    """

    rule: str
    fix: str
    missing: str | None = None


def invalid() -> PydanticCustomError:
    """An error whose message is the field's own :class:`Rule` (value is the input)."""
    return PydanticCustomError("runyard_invalid", "invalid value")


def bad(body: str) -> PydanticCustomError:
    """An error whose message is ``<field path> <body>``; body states rule, value and fix."""
    return PydanticCustomError("runyard_rule", "{body}", {"body": body})


Relative = tuple[tuple[str | int, ...], str] | tuple[tuple[str | int, ...], str, tuple[str | int, ...]]


def bad_many(problems: list[Relative]) -> PydanticCustomError:
    """Several errors at paths relative to the model being validated.

    A model validator can raise only one error and pydantic gives it the model's own
    ``loc``; this carries the real sub-paths so every problem gets its own line. Each
    problem is ``(path, body)`` or ``(path, body, at)``, where ``at`` is the absolute
    path whose line to report when ``path`` itself is not in the file.
    """
    return PydanticCustomError(
        "runyard_problems",
        "{body}",
        {
            "problems": [{"path": p[0], "body": p[1], "at": p[2] if len(p) > 2 else None} for p in problems],
            "body": " ".join(f"{dotted(p[0])} {p[1]}" for p in problems),
        },
    )


def at_most(limit: float, fix: str) -> AfterValidator:
    """A validator refusing values above ``limit`` (after the field's own rule passed), with ``fix``."""

    def check(value: Any) -> Any:
        if value is not None and value > limit:
            raise bad(f"must be at most {limit}, but got {show(value)}. {fix}")
        return value

    return AfterValidator(check)


def show(value: Any) -> str:
    """A value as the user wrote it, shortened for a one-line message."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        text = "[" + ", ".join(show(v) for v in value) + "]"
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{k}: {show(v)}" for k, v in value.items()) + "}"
    else:
        text = repr(value)
    return text if len(text) <= 80 else text[:76] + " ..."


def num(x: float) -> str:
    """A float for a message, without binary noise such as 0.30000000000000004."""
    rounded = round(x, 12)
    return str(int(rounded)) if rounded == int(rounded) else repr(rounded)


def is_scalar(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, (str, int, bool))


class Model(BaseModel):
    """The base of every section: unknown keys forbidden, strict types, no NaN or infinity."""

    # Strict: YAML gives typed scalars, so "10" for an integer is a mistake worth naming.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _empty_means_default(cls, data: Any) -> Any:
        """``key:`` with no value means the default, for fields that have one."""
        if isinstance(data, dict):
            fields = cls.model_fields
            return {
                k: v
                for k, v in data.items()
                if not (v is None and k in fields and not fields[k].is_required())
            }
        return data

