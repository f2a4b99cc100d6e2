"""The ``runyard.yml`` schema and its error messages.

Responsibility: turn the text of a ``runyard.yml`` into a validated :class:`Spec`, or
raise one :class:`~runyard.errors.SpecError` that lists every problem, one per line,
each as ``FILE:LINE: field.path must be RULE, but got VALUE. FIX``. Nothing else in
Runyard parses the file: the CLI, server and scheduler use :class:`Spec`, its search
space (:meth:`Spec.space`) and its normalised, JSON-able :meth:`Spec.to_config`, which
is what gets stored with an experiment (``Spec.model_validate(config)`` round-trips).

How an error gets its line number:

1. The YAML text is composed into a node tree by :class:`_Loader` (a ``SafeLoader``
   subclass). A walk over the nodes records the start line of every mapping key and
   sequence item under its path, e.g. ``("search", "max_runs") -> 7``; duplicate keys
   are reported here, because PyYAML silently keeps the last one.
2. Pydantic validates the constructed data. Every model forbids unknown keys, runs in
   strict mode (YAML already gives typed scalars, so ``"10"`` is not an integer), and
   carries a :class:`_Rule` (what a field must be, how to fix it) in its annotations.
3. Each pydantic error's ``loc`` is mapped onto the data (union tags, which start with
   ``#``, are dropped) and to the nearest recorded path's line; the message is built
   from the field's rule, never from pydantic's own text.

YAML dialect: scalars follow the YAML 1.2 core schema, not PyYAML's YAML 1.1 defaults,
because those surprise people in exactly this file: ``1e-3`` is a float (1.1: a
string), ``yes``/``no``/``on``/``off`` are strings (1.1: booleans), ``01:30:00`` is a
string (1.1: the integer 5400) and ``2024-01-01`` is a string (1.1: a date).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import re
import shlex
import types
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import pathspec
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from runyard.errors import InvalidInput, SpecError
from runyard.search.base import Choice, Dimension, Fixed, FloatRange, IntRange
from runyard.search.grid import MAX_INT_RANGE_VALUES

__all__ = [
    "AshaStoppingSpec",
    "ChoiceParam",
    "DistributedSpec",
    "EarlyStoppingSpec",
    "FILE_NAME",
    "HyperbandStoppingSpec",
    "IntParam",
    "LogUniformParam",
    "MedianStoppingSpec",
    "ParamSpec",
    "ResourcesSpec",
    "RoleResourcesSpec",
    "RoleSpec",
    "SearchSpec",
    "Spec",
    "UniformParam",
    "load_spec",
    "parse_spec",
    "starter_file",
    "validate_config",
]

FILE_NAME = "runyard.yml"
_DOCS = "docs/runyard-yml.md"
_HINT = (
    f"Fix the lines above; {_DOCS} describes every field. "
    "`runyard init` in an empty directory writes a commented example."
)


# --------------------------------------------------------------------------- rules


@dataclasses.dataclass(frozen=True)
class _Rule:
    """What a field must be and how to fix it.

    Pydantic keeps unknown ``Annotated`` metadata on the field without using it; the
    error translator finds it there. ``missing`` is the fix when a required field is absent.
    """

    rule: str
    fix: str
    missing: str | None = None


def _invalid() -> PydanticCustomError:
    """An error whose message is the field's own :class:`_Rule` (value is the input)."""
    return PydanticCustomError("runyard_invalid", "invalid value")


def _bad(body: str) -> PydanticCustomError:
    """An error whose message is ``<field path> <body>``; body states rule, value and fix."""
    return PydanticCustomError("runyard_rule", "{body}", {"body": body})


_Relative = tuple[tuple[str | int, ...], str] | tuple[tuple[str | int, ...], str, tuple[str | int, ...]]


def _bad_many(problems: list[_Relative]) -> PydanticCustomError:
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
            "body": " ".join(f"{_dotted(p[0])} {p[1]}" for p in problems),
        },
    )


def _show(value: Any) -> str:
    """A value as the user wrote it, shortened for a one-line message."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        text = "[" + ", ".join(_show(v) for v in value) + "]"
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    else:
        text = repr(value)
    return text if len(text) <= 80 else text[:76] + " ..."


def _num(x: float) -> str:
    """A float for a message, without binary noise such as 0.30000000000000004."""
    rounded = round(x, 12)
    return str(int(rounded)) if rounded == int(rounded) else repr(rounded)


def _dotted(path: tuple[Any, ...]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _did_you_mean(word: Any, options: list[str]) -> str:
    close = difflib.get_close_matches(str(word), options, n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


def _is_scalar(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, (str, int, bool))


# ------------------------------------------------------------------ value parsers

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PROJECT_RE = re.compile(r"^[a-z0-9_-]{1,64}$")
_BACKEND_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*(?:([kmgt])(i?b)?)?$", re.IGNORECASE)
_SIZE_MB = {"k": Fraction(1, 1024), "m": Fraction(1), "g": Fraction(1024), "t": Fraction(1024**2)}
_UNITS_RE = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?:in)?)?(?:(\d+)s)?$")
_CLOCK_RE = re.compile(r"^(?:(\d+)-)?(\d+):([0-5]\d):([0-5]\d)$")  # [D-]H:MM:SS as in Slurm
_MINSEC_RE = re.compile(r"^(\d+):([0-5]\d)$")  # MM:SS as in Slurm
_RESERVED_ENV = "RUNYARD_"


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-")[:64]
    return slug or "my-project"


def _parse_memory(value: Any) -> Any:
    """``"512M"``, ``"4G"``, ``"1.5GiB"`` or an int of MB -> MB (powers of 1024, rounded up)."""
    if isinstance(value, bool) or value is None:
        raise _invalid()
    if isinstance(value, int):
        if value < 0:
            raise _invalid()
        return value
    if isinstance(value, float):
        raise _bad(
            f"must be a size with a unit like 512M, 4G or 1.5GiB, or a whole number of MB, "
            f"but got {_show(value)}. Write the unit, e.g. `memory: {_num(value)}G`."
        )
    if not isinstance(value, str):
        raise _invalid()
    match = _SIZE_RE.match(value.strip())
    if not match:
        raise _invalid()
    number, unit, _ = match.groups()
    if unit is None and "." in number:
        raise _invalid()
    return math.ceil(Fraction(number) * _SIZE_MB[(unit or "m").lower()])


def _parse_time_limit(value: Any) -> Any:
    """``"90s"``, ``"30m"``, ``"1h30m"``, ``"01:30:00"`` or an int of seconds -> seconds."""
    if isinstance(value, bool) or value is None:
        raise _invalid()
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str):
        text = re.sub(r"\s+", "", value.lower())
        units, clock, minsec = _UNITS_RE.match(text), _CLOCK_RE.match(text), _MINSEC_RE.match(text)
        if units and any(units.groups()):
            d, h, m, s = (int(g or 0) for g in units.groups())
        elif clock:
            d, h, m, s = (int(g or 0) for g in clock.groups())
        elif minsec:
            d, h, (m, s) = 0, 0, (int(g) for g in minsec.groups())
        elif text.isdigit():
            d, h, m, s = 0, 0, 0, int(text)
        else:
            raise _invalid()
        seconds = ((d * 24 + h) * 60 + m) * 60 + s
    else:
        raise _invalid()
    if seconds <= 0:
        raise _bad(
            f"must be longer than 0 seconds, but got {_show(value)}. "
            "Remove time_limit for runs without a time limit."
        )
    return seconds


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _nonblank(value: str) -> str:
    if not value.strip():
        raise _invalid()
    return value


def _check_project(value: str) -> str:
    if not _PROJECT_RE.match(value):
        raise _bad(
            f"must be 1–64 lowercase letters, digits, '-' or '_', but got {_show(value)}. "
            f"Use e.g. `project: {_slug(value)}`."
        )
    return value


def _check_name(value: str) -> str:
    if not _NAME_RE.match(value):
        raise _invalid()
    return value


def _check_env_name(value: str) -> str:
    if not _NAME_RE.match(value):
        raise _invalid()
    if value.startswith(_RESERVED_ENV):
        suggestion = value[len(_RESERVED_ENV) :] or "MY_VAR"
        raise _bad(
            f"is reserved: variables starting with {_RESERVED_ENV} are set by Runyard itself "
            f"(run id, server address, params). Rename it, e.g. to {suggestion}."
        )
    return value


def _coerce_env_value(value: Any) -> Any:
    if value is None:
        raise _bad('is empty. Write `NAME: ""` for an empty string, or remove the variable.')
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value
    raise _invalid()


def _check_ignore(pattern: str) -> str:
    if not pattern.strip():
        raise _bad("is empty. Remove the empty entry.")
    try:
        pathspec.GitIgnoreSpec.from_lines([pattern])
    except ValueError as e:
        raise _bad(
            f"is not a valid gitignore pattern: {_show(pattern)} ({e}). "
            "Fix or remove it; patterns look like `data/`, `*.ckpt` or `!keep.txt`."
        ) from e
    return pattern


def _check_fixed(value: Any) -> Any:
    if value is None:
        raise _bad(
            "is empty. Give a value (`lr: 0.1`), a list of choices (`lr: [0.01, 0.1]`) "
            "or a range (`lr: {loguniform: [0.0001, 0.1]}`)."
        )
    if not _is_scalar(value):
        raise _bad(
            f"must be a string, number or boolean, a list of choices or a range, "
            f"but got {_show(value)}. Write a finite value such as `0.1`."
        )
    return value


# ------------------------------------------------------------------- the command

_TOKEN_RE = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}|[{}]")
_BRACES_FIX = "Write {{ and }} for literal braces."


@dataclasses.dataclass(frozen=True)
class _Placeholder:
    name: str


def _split_command(command: str) -> tuple[list[str | _Placeholder], list[str]]:
    """Literal text and placeholders of ``command``, and the brace problems found."""
    parts: list[str | _Placeholder] = []
    problems: list[str] = []
    pos = 0
    for match in _TOKEN_RE.finditer(command):
        parts.append(command[pos : match.start()])
        token = match.group(0)
        if token in ("{{", "}}"):
            parts.append(token[0])
        elif match.group(1):
            parts.append(_Placeholder(match.group(1)))
        else:
            problems.append(
                f"has a lone '{token}' at character {match.start() + 1}: placeholders look like "
                f"{{lr}}, naming a param. {_BRACES_FIX}"
            )
        pos = match.end()
    parts.append(command[pos:])
    return [p for p in parts if p != ""], problems


def _undeclared(command: str, declared: list[str]) -> list[str]:
    """Problems for placeholders of ``command`` that name no declared param."""
    out = []
    names = [p.name for p in _split_command(command)[0] if isinstance(p, _Placeholder)]
    for name in dict.fromkeys(names):
        if name not in declared:
            listed = ", ".join(declared) if declared else "none"
            out.append(
                f"uses {{{name}}}, but no param named '{name}' is declared (declared: {listed})."
                f"{_did_you_mean(name, declared)} Declare it under params, "
                f"or write {{{{{name}}}}} for literal braces."
            )
    return out


def _check_command(value: str) -> str:
    if not value.strip():
        raise _invalid()
    problems = _split_command(value)[1]
    if problems:
        raise _bad_many([((), body) for body in problems])
    return value


def _format_value(value: Any) -> str:
    """A param value as command text: booleans as true/false, floats in shortest form."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy scalars, whose repr is "np.float64(0.1)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return repr(float(value))
    return "" if value is None else str(value)


# --------------------------------------------------------------------- the models


class _Model(BaseModel):
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


_NUMBER = _Rule("a number", "Write a number such as 0.5 or 1e-3.")
_INTEGER = _Rule("an integer", "Write a whole number such as 8.")
_BOUNDS_FIX = "Write [low, high], e.g. `uniform: [0.0, 1.0]`."


def _check_bounds(low: float, high: float) -> str | None:
    if low > high:
        return f"must have low < high, but got [{_num(low)}, {_num(high)}]. Swap the two numbers."
    if low == high:
        return (
            f"must have low < high, but both are {_num(low)}. "
            f"For a fixed value write the value itself, e.g. `name: {_num(low)}`."
        )
    return None


def _check_float_step(low: float, high: float, step: float | None) -> str | None:
    if step is None:
        return None
    if step > high - low:
        return f"is {_num(step)}, larger than the range {_num(low)}..{_num(high)}. Use a smaller step."
    n = (high - low) / step
    if abs(n - round(n)) > 1e-9 * max(1.0, n):
        below = low + math.floor(n) * step
        return (
            f"is {_num(step)}, but high − low = {_num(high - low)} is not a multiple of it. "
            f"Set high to {_num(below)} or {_num(below + step)}, or change step."
        )
    return None


class UniformParam(_Model):
    """``{uniform: [low, high], step: s}``: a float from [low, high], every ``step`` if given."""

    uniform: Annotated[
        list[Annotated[float, _NUMBER]],
        Field(min_length=2, max_length=2),
        _Rule("a list of two numbers [low, high]", _BOUNDS_FIX),
    ]
    step: Annotated[
        Annotated[float, Field(gt=0)] | None,
        _Rule("a number > 0", "Set the spacing between values, e.g. `step: 0.1`, or remove it."),
    ] = None

    @model_validator(mode="after")
    def _check(self) -> UniformParam:
        low, high = self.uniform
        if problem := _check_bounds(low, high):
            raise _bad_many([(("uniform",), problem)])
        if problem := _check_float_step(low, high, self.step):
            raise _bad_many([(("step",), problem)])
        return self


class LogUniformParam(_Model):
    """``{loguniform: [low, high]}``: a float from [low, high] on a log scale (0 < low)."""

    loguniform: Annotated[
        list[Annotated[float, _NUMBER]],
        Field(min_length=2, max_length=2),
        _Rule("a list of two numbers [low, high] with 0 < low", "Write e.g. `loguniform: [0.0001, 0.1]`."),
    ]
    step: Annotated[
        float | None,
        _Rule("absent", "Remove step, or use uniform with a step."),
    ] = None

    @model_validator(mode="after")
    def _check(self) -> LogUniformParam:
        low, high = self.loguniform
        if low <= 0:
            raise _bad_many(
                [
                    (
                        ("loguniform",),
                        f"must have low > 0 (a log scale has no zero), but got low = {_num(low)}. "
                        "Use a small positive low such as 1e-6.",
                    )
                ]
            )
        if problem := _check_bounds(low, high):
            raise _bad_many([(("loguniform",), problem)])
        if self.step is not None:
            # Optuna's FloatDistribution rejects log=True together with a step.
            raise _bad_many(
                [
                    (
                        ("step",),
                        "cannot be used with loguniform: log-scale floats are sampled without a "
                        "step. Remove step, or use uniform with a step.",
                    )
                ]
            )
        return self


class IntParam(_Model):
    """``{int: [low, high], step: k, log: b}``: an integer from [low, high] inclusive."""

    int: Annotated[
        list[Annotated[int, _INTEGER]],
        Field(min_length=2, max_length=2),
        _Rule("a list of two integers [low, high]", "Write e.g. `int: [1, 8]`."),
    ]
    step: Annotated[
        int,
        Field(ge=1),
        _Rule("an integer ≥ 1", "Set the spacing between values, e.g. `step: 2`, or remove it."),
    ] = 1
    log: Annotated[
        bool,
        _Rule("true or false", "Write `log: true` to sample on a log scale."),
    ] = False

    @model_validator(mode="after")
    def _check(self) -> IntParam:
        low, high = self.int
        if problem := _check_bounds(low, high):
            raise _bad_many([(("int",), problem)])
        if self.log and low < 1:
            raise _bad_many(
                [
                    (("int",), f"must have low ≥ 1 with `log: true`, but got low = {low}. Set low to 1 or more.")
                ]
            )
        if self.log and self.step != 1:
            # Optuna's IntDistribution rejects log=True with step != 1.
            raise _bad_many(
                [(("step",), f"must be 1 with `log: true`, but got {self.step}. Remove step or log.")]
            )
        if (high - low) % self.step:
            below = low + (high - low) // self.step * self.step
            raise _bad_many(
                [
                    (
                        ("step",),
                        f"is {self.step}, but high − low = {high - low} is not a multiple of it. "
                        f"Set high to {below} or {below + self.step}, or change step.",
                    )
                ]
            )
        return self


class ChoiceParam(_Model):
    """``{choice: [a, b, c]}`` or the list ``[a, b, c]``: one of the listed values."""

    choice: Annotated[
        list[Any],
        Field(min_length=1),
        _Rule("a non-empty list of values", "List at least one value, e.g. `[relu, tanh]`."),
    ]

    @field_validator("choice")
    @classmethod
    def _check_values(cls, values: list[Any]) -> list[Any]:
        problems: list[_Relative] = []
        seen: set[tuple[type, Any]] = set()
        for i, value in enumerate(values):
            if not _is_scalar(value):
                problems.append(
                    ((i,), f"must be a string, number or boolean, but got {_show(value)}. "
                     "Choices are plain values; quote text that looks like something else.")
                )
            elif (type(value), value) in seen:
                problems.append(((i,), f"repeats the value {_show(value)}. Remove the duplicate."))
            else:
                seen.add((type(value), value))
        if problems:
            raise _bad_many(problems)
        return values


_PARAM_KINDS = ("uniform", "loguniform", "int", "choice")
_PARAM_MODELS: dict[str, type[_Model]] = {
    "uniform": UniformParam,
    "loguniform": LogUniformParam,
    "int": IntParam,
    "choice": ChoiceParam,
}


def _param_kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return next(f"#{k}" for k, m in _PARAM_MODELS.items() if isinstance(value, m))
    if isinstance(value, dict):
        kinds = [k for k in _PARAM_KINDS if k in value]
        return f"#{kinds[0]}" if len(kinds) == 1 else None
    if isinstance(value, list):
        return "#list"
    return "#fixed"


ParamSpec = Annotated[
    Union[
        Annotated[UniformParam, Tag("#uniform")],
        Annotated[LogUniformParam, Tag("#loguniform")],
        Annotated[IntParam, Tag("#int")],
        Annotated[ChoiceParam, Tag("#choice")],
        Annotated[ChoiceParam, BeforeValidator(lambda v: {"choice": v}), Tag("#list")],
        Annotated[Any, AfterValidator(_check_fixed), Tag("#fixed")],
    ],
    Discriminator(
        _param_kind,
        custom_error_type="runyard_param_kind",
        custom_error_message="a param must name one of uniform, loguniform, int, choice",
    ),
]
"""One param: a fixed scalar, or a :class:`UniformParam`, :class:`LogUniformParam`,
:class:`IntParam` or :class:`ChoiceParam` (a plain list becomes a ChoiceParam)."""


class SearchSpec(_Model):
    """``search:``: how runs are proposed. ``algorithm`` and ``max_runs`` are filled in by
    :class:`Spec` when left out (grid over all combinations, or random)."""

    algorithm: Annotated[
        Literal["grid", "random", "tpe", "cmaes"] | None,
        _Rule(
            "one of grid, random, tpe, cmaes",
            "grid tries every combination, random samples, tpe and cmaes learn from finished runs.",
        ),
    ] = None
    max_runs: Annotated[
        Annotated[int, Field(ge=1)] | None,
        _Rule("an integer ≥ 1", "Set it to the number of runs the search may start."),
    ] = None
    parallel: Annotated[
        int,
        Field(ge=1),
        _Rule("an integer ≥ 1", "Set it to how many runs may execute at the same time."),
    ] = 1
    metric: Annotated[
        Annotated[str, AfterValidator(_nonblank)] | None,
        _Rule(
            "a metric name",
            'Use a name your code logs, e.g. `metric: val_loss` for runyard.log({"val_loss": ...}).',
        ),
    ] = None
    mode: Annotated[
        Literal["min", "max"],
        _Rule("min or max", "Use min when lower is better (loss), max when higher is better (accuracy)."),
    ] = "min"
    seed: Annotated[
        Annotated[int, Field(ge=0, le=2**32 - 1)] | None,
        _Rule("an integer from 0 to 4294967295", "Pick any fixed number, e.g. `seed: 42`, or remove it."),
    ] = None


_GRACE = _Rule(
    "an integer ≥ 0 (seconds)",
    "Set how many seconds a run may take to exit after should_stop() before it is stopped.",
)
_REDUCTION = _Rule(
    "an integer ≥ 2",
    "Set how many runs share each rung per promoted run; 3 keeps the best third.",
)
_MIN_RESOURCE = _Rule(
    "an integer ≥ 1 (steps)",
    "Set the fewest steps a run takes before it can be stopped.",
)


class _StoppingBase(_Model):
    algorithm: str
    grace_period_s: Annotated[int, Field(ge=0), _GRACE] = 30


class MedianStoppingSpec(_StoppingBase):
    """Stop a run whose best value so far is worse than the median of earlier runs at that step."""

    algorithm: Literal["median"] = "median"
    n_startup_runs: Annotated[
        int,
        Field(ge=0),
        _Rule("an integer ≥ 0", "Set how many runs must finish before any run is stopped early."),
    ] = 5
    n_warmup_steps: Annotated[
        int,
        Field(ge=0),
        _Rule("an integer ≥ 0 (steps)", "Set how many steps a run takes before it can be stopped."),
    ] = 0
    interval_steps: Annotated[
        int,
        Field(ge=1),
        _Rule("an integer ≥ 1 (steps)", "Set how often, in steps, a run is checked."),
    ] = 1


class AshaStoppingSpec(_StoppingBase):
    """Asynchronous successive halving: at each rung, keep the best 1/reduction_factor runs."""

    algorithm: Literal["asha"] = "asha"
    min_resource: Annotated[int, Field(ge=1), _MIN_RESOURCE] = 1
    reduction_factor: Annotated[int, Field(ge=2), _REDUCTION] = 3
    min_early_stopping_rate: Annotated[
        int,
        Field(ge=0),
        _Rule("an integer ≥ 0", "Raise it to skip the lowest rungs; 0 checks from min_resource on."),
    ] = 0


class HyperbandStoppingSpec(_StoppingBase):
    """Hyperband: several successive-halving brackets between min_resource and max_resource."""

    algorithm: Literal["hyperband"] = "hyperband"
    min_resource: Annotated[int, Field(ge=1), _MIN_RESOURCE] = 1
    max_resource: Annotated[
        int,
        Field(ge=1),
        _Rule(
            "an integer ≥ 1 (steps)",
            "Set it to the number of steps a full run takes (the last step your code logs).",
            missing="Hyperband needs it: set it to the number of steps a full run takes, "
            "e.g. `max_resource: 100`.",
        ),
    ]
    reduction_factor: Annotated[int, Field(ge=2), _REDUCTION] = 3

    @model_validator(mode="after")
    def _check(self) -> HyperbandStoppingSpec:
        if self.max_resource <= self.min_resource:
            raise _bad_many(
                [
                    (
                        ("max_resource",),
                        f"must be greater than min_resource ({self.min_resource}), but got "
                        f"{self.max_resource}. Set it to the number of steps a full run takes.",
                    )
                ]
            )
        return self


_STOPPING_MODELS: dict[str, type[_StoppingBase]] = {
    "median": MedianStoppingSpec,
    "asha": AshaStoppingSpec,
    "hyperband": HyperbandStoppingSpec,
}


def _stopping_kind(value: Any) -> str | None:
    if isinstance(value, _StoppingBase):
        return f"#{value.algorithm}"
    if isinstance(value, dict) and isinstance(value.get("algorithm"), str):
        return f"#{value['algorithm']}" if value["algorithm"] in _STOPPING_MODELS else None
    return None


EarlyStoppingSpec = Annotated[
    Union[
        Annotated[MedianStoppingSpec, Tag("#median")],
        Annotated[AshaStoppingSpec, Tag("#asha")],
        Annotated[HyperbandStoppingSpec, Tag("#hyperband")],
    ],
    Discriminator(
        _stopping_kind,
        custom_error_type="runyard_stopping_kind",
        custom_error_message="early_stopping.algorithm must be median, asha or hyperband",
    ),
]
"""``early_stopping:``, one of the three settings models chosen by ``algorithm``."""


class ResourcesSpec(_Model):
    """``resources:`` of each task. ``memory`` is stored in MB, ``time_limit`` in seconds."""

    cpus: Annotated[
        float,
        Field(gt=0),
        _Rule("a number > 0", "Set how many CPU cores a task needs, e.g. 2 or 0.5."),
    ] = 1.0
    memory: Annotated[
        int,
        BeforeValidator(_parse_memory),
        _Rule(
            "a size like 512M, 4G or 1.5GiB, or a whole number of MB",
            "Write the memory a task needs, e.g. `memory: 4G`.",
        ),
    ] = 0
    gpus: Annotated[
        int,
        Field(ge=0),
        _Rule("an integer ≥ 0", "Set it to 0 for CPU-only runs."),
    ] = 0
    time_limit: Annotated[
        int | None,
        BeforeValidator(_parse_time_limit),
        _Rule(
            "a duration like 90s, 30m, 2h, 1h30m or 01:30:00, or a whole number of seconds",
            "Write e.g. `time_limit: 2h`, or remove it for no limit.",
        ),
    ] = None

    @property
    def memory_mb(self) -> int:
        """Memory per task in MB (MiB); 0 means none requested, so the backend's default applies."""
        return self.memory

    @property
    def time_limit_s(self) -> int | None:
        """Wall-clock limit per run in seconds; None means no limit."""
        return self.time_limit


def _role_shorthand(value: Any) -> Any:
    """``worker: 2`` means ``worker: {replicas: 2}``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return {"replicas": value}
    return value


class RoleResourcesSpec(_Model):
    """``resources:`` of one replica group; a field left out takes the run's ``resources:`` value."""

    cpus: Annotated[
        Annotated[float, Field(gt=0)] | None,
        _Rule("a number > 0", "Set how many CPU cores each task of this role needs, e.g. 1 or 0.5."),
    ] = None
    memory: Annotated[
        Annotated[int, BeforeValidator(_parse_memory)] | None,
        _Rule(
            "a size like 512M, 4G or 1.5GiB, or a whole number of MB",
            "Write the memory each task of this role needs, e.g. `memory: 4G`.",
        ),
    ] = None
    gpus: Annotated[
        Annotated[int, Field(ge=0)] | None,
        _Rule("an integer ≥ 0", "Set it to 0 for CPU-only tasks."),
    ] = None


class RoleSpec(_Model):
    """One replica group of a distributed run: how many tasks, and what each needs."""

    replicas: Annotated[
        int,
        Field(ge=0),
        _Rule("an integer ≥ 0", "Set how many tasks of this role to start, e.g. `replicas: 2`."),
    ] = 1
    resources: RoleResourcesSpec = Field(default_factory=RoleResourcesSpec)


_RoleField = Annotated[
    RoleSpec | None,
    BeforeValidator(_role_shorthand),
    _Rule(
        "a number of replicas or a mapping with replicas and resources",
        "Write e.g. `worker: 2` or `worker: {replicas: 2, resources: {cpus: 1}}`.",
    ),
]


class DistributedSpec(_Model):
    """``distributed:``: the framework and its replica groups (``runyard/launch/_frameworks.py``)."""

    framework: Annotated[
        Literal["pytorch", "tensorflow", "xgboost", "jax", "ray"],
        _Rule(
            "one of pytorch, tensorflow, xgboost, jax, ray",
            "Name the framework whose environment the tasks need, e.g. `framework: pytorch`.",
            missing="Add the framework, e.g. `framework: pytorch`.",
        ),
    ]
    master: _RoleField = None
    worker: _RoleField = None
    chief: _RoleField = None
    ps: _RoleField = None
    head: _RoleField = None
    job: _RoleField = None

    @model_validator(mode="after")
    def _check_roles(self) -> DistributedSpec:
        from runyard.launch._frameworks import FRAMEWORKS

        rules = {r.name: r for r in FRAMEWORKS[self.framework]}
        valid = ", ".join(rules)
        problems: list[_Relative] = []
        for role in ("master", "worker", "chief", "ps", "head", "job"):
            value = getattr(self, role)
            rule = rules.get(role)
            if value is None:
                if rule is not None and rule.default_replicas is None:
                    problems.append(((role,), f"is required for framework {self.framework} ({rule.purpose}). "
                                     f"Add e.g. `{role}: {max(2, rule.min_replicas)}`.", ("distributed", "framework")))
                continue
            if rule is None:
                problems.append(((role,), f"is not a role of framework {self.framework}, whose roles are {valid}, "
                                 f"but got {role}. Remove it or use one of those roles."))
                continue
            n = value.replicas
            if n < rule.min_replicas or (rule.max_replicas is not None and n > rule.max_replicas):
                problems.append(((role, "replicas") if "replicas" in value.model_fields_set else (role,),
                                 f"must be {rule.allowed()} for framework {self.framework} ({rule.purpose}), "
                                 f"but got {n}. Set it to {rule.min_replicas if n < rule.min_replicas else rule.max_replicas}."))
        if self.framework == "tensorflow" and not problems and self.replicas("chief") + self.replicas("worker") == 0:
            problems.append((("worker",), "needs at least one chief or worker task for framework tensorflow, but got none. "
                             "Add `chief: 1` or `worker: 2`.", ("distributed", "framework")))
        if problems:
            raise _bad_many(problems)
        return self

    def replicas(self, role: str) -> int:
        """Tasks of ``role``: as written, else the framework's default (0 for roles it lacks)."""
        from runyard.launch._frameworks import FRAMEWORKS

        value = getattr(self, role, None)
        if value is not None:
            return value.replicas
        rule = next((r for r in FRAMEWORKS[self.framework] if r.name == role), None)
        return (rule.default_replicas or 0) if rule is not None else 0

    def n_tasks(self) -> int:
        from runyard.launch._frameworks import FRAMEWORKS

        return sum(self.replicas(r.name) for r in FRAMEWORKS[self.framework])

    def to_launch(self, run_resources: ResourcesSpec) -> dict[str, Any]:
        """The description ``RunLaunch.distributed`` carries: every role with replicas and full resources."""
        from runyard.launch._frameworks import FRAMEWORKS

        roles: dict[str, Any] = {}
        for rule in FRAMEWORKS[self.framework]:
            value = getattr(self, rule.name)
            res = value.resources if value is not None else RoleResourcesSpec()
            roles[rule.name] = {
                "replicas": self.replicas(rule.name),
                "resources": {
                    "cpus": res.cpus if res.cpus is not None else run_resources.cpus,
                    "memory_mb": res.memory if res.memory is not None else run_resources.memory_mb,
                    "gpus": res.gpus if res.gpus is not None else run_resources.gpus,
                },
            }
        return {"framework": self.framework, "roles": roles}


_ParamName = Annotated[
    str,
    AfterValidator(_check_name),
    _Rule(
        "a name of letters, digits and '_' that does not start with a digit",
        "Rename the param, e.g. learning_rate; commands refer to it as {learning_rate}.",
    ),
]
_EnvName = Annotated[
    str,
    AfterValidator(_check_env_name),
    _Rule(
        "a variable name of letters, digits and '_' that does not start with a digit",
        "Rename the variable, e.g. MY_SETTING.",
    ),
]
_EnvValue = Annotated[
    str,
    BeforeValidator(_coerce_env_value),
    _Rule("a string, number or boolean", 'Quote the value, e.g. `NAME: "value"`.'),
]
_ShellLine = Annotated[
    str,
    AfterValidator(_nonblank),
    _Rule(
        "a non-empty shell command",
        "Write one command per list item, e.g. `- pip install -r requirements.txt`.",
    ),
]
_IgnorePattern = Annotated[
    str,
    AfterValidator(_check_ignore),
    _Rule("a gitignore-style pattern", "Write patterns such as `data/` or `'*.ckpt'` (quote a leading *)."),
]


class Spec(_Model):
    """A validated ``runyard.yml``.

    Build it with :func:`load_spec`, :func:`parse_spec` or :func:`validate_config`;
    ``Spec.model_validate(config)`` raises pydantic's error instead of a SpecError.
    After validation ``name``, ``search.algorithm`` and ``search.max_runs`` (grid) are
    always filled in.
    """

    name: Annotated[
        Annotated[str, Field(max_length=128), AfterValidator(_nonblank)] | None,
        _Rule(
            "a non-empty string of at most 128 characters",
            "Name the experiment, e.g. `name: baseline`, or remove the key to use the directory name.",
        ),
    ] = None
    project: Annotated[
        str,
        AfterValidator(_check_project),
        _Rule(
            "1–64 lowercase letters, digits, '-' or '_'",
            "Use e.g. `project: my-project`.",
            missing="Add `project: <name>` with the project the runs belong to, e.g. `project: my-project`.",
        ),
    ]
    description: Annotated[
        str | None,
        _Rule("a string", 'Quote the text, e.g. `description: "lr sweep"`.'),
    ] = None
    command: Annotated[
        str,
        AfterValidator(_check_command),
        _Rule(
            "a non-empty shell command",
            "Write the command each run executes, e.g. `command: python train.py --lr {lr}`.",
            missing="Add the command each run executes, e.g. `command: python train.py --lr {lr}`.",
        ),
    ]
    params: Annotated[
        dict[_ParamName, ParamSpec],
        _Rule(
            "a mapping from param name to a value, a list of choices or a range",
            "Write one `name: value` line per param, e.g. `lr: {loguniform: [0.0001, 0.1]}`.",
        ),
    ] = Field(default_factory=dict)
    search: SearchSpec = Field(default_factory=SearchSpec)
    early_stopping: EarlyStoppingSpec | None = None
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    distributed: DistributedSpec | None = None
    env: Annotated[
        dict[_EnvName, _EnvValue],
        _Rule("a mapping from variable name to value", "Write one `NAME: value` line per variable."),
    ] = Field(default_factory=dict)
    setup: Annotated[
        list[_ShellLine],
        BeforeValidator(_one_or_many),
        _Rule("a shell command or a list of them", "Write e.g. `setup: [pip install -r requirements.txt]`."),
    ] = Field(default_factory=list)
    backend: Annotated[
        str | list[str],
        _Rule(
            "a backend name of letters, digits, '-', '_' or '.', or a list of such names",
            "Use a backend configured on the server, e.g. local, ssh, slurm, kubernetes or ray; list several "
            "(`backend: [local, slurm-dev]`) to send each run to the first of them with room.",
        ),
    ] = "local"
    max_restarts: Annotated[
        int,
        Field(ge=0),
        _Rule("an integer ≥ 0", "Set how many times a failed run is restarted; 0 means never."),
    ] = 0
    ignore: Annotated[
        list[_IgnorePattern],
        BeforeValidator(_one_or_many),
        _Rule("a gitignore-style pattern or a list of them", "Write e.g. `ignore: [data/, '*.ckpt']`."),
    ] = Field(default_factory=list)

    @field_validator("backend", mode="before")
    @classmethod
    def _check_backend(cls, value: Any) -> str | list[str]:
        """One name, or several tried in order for each run (a list of one is that name)."""
        names = value if isinstance(value, list) else [value]
        if not names or not all(isinstance(n, str) and _BACKEND_RE.match(n) for n in names):
            raise _invalid()
        if len(set(names)) < len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise _bad(f"lists {', '.join(twice)} more than once, in {_show(value)}. List each backend once.")
        if len(",".join(names)) > 64:
            raise _bad(f"must fit in 64 characters written comma-separated (the length of one name), but "
                       f"{_show(value)} takes {len(','.join(names))}. List fewer backends, or give them shorter names.")
        return names[0] if len(names) == 1 else list(names)

    @model_validator(mode="after")
    def _check_together(self) -> Spec:
        """Rules between fields; also fills in name, search.algorithm and grid max_runs."""
        if self.name is None:
            self.name = self.project
        problems: list[_Relative] = []
        space = self.space()
        ranges = [n for n, d in space.items() if isinstance(d, (FloatRange, IntRange))]
        floats = [n for n, d in space.items() if isinstance(d, FloatRange)]
        search = self.search
        why = ""
        if search.algorithm is None:
            search.algorithm = "random" if ranges else "grid"
            if ranges:
                why = f" (the default, because params.{ranges[0]} is a range)"
        if search.algorithm == "grid":
            # The same rules as search/grid.py, checked here so they fail at `runyard run`.
            for name in floats:
                problems.append(
                    (
                        ("params", name),
                        "is a float range, which grid search cannot enumerate. Use a list of "
                        "values (e.g. `[0.001, 0.01, 0.1]`), or set search.algorithm to random, "
                        "tpe or cmaes.",
                    )
                )
            for name, dim in space.items():
                n_values = (dim.high - dim.low) // dim.step + 1 if isinstance(dim, IntRange) else 0
                if n_values > MAX_INT_RANGE_VALUES:
                    problems.append(
                        (
                            ("params", name),
                            f"is an integer range of {n_values} values, "
                            f"more than a grid expands ({MAX_INT_RANGE_VALUES}). Use a larger step "
                            "or a list of values, or set search.algorithm to random, tpe or cmaes.",
                        )
                    )
            if not problems:
                size = _grid_size(space)
                if search.max_runs is None:
                    search.max_runs = size
                elif search.max_runs > size:
                    problems.append(
                        (
                            ("search", "max_runs"),
                            f"is {search.max_runs}, but the grid has only {size} combination"
                            f"{'s' if size != 1 else ''}. Remove max_runs to run all of them, "
                            "or lower it.",
                        )
                    )
        elif search.max_runs is None:
            problems.append(
                (
                    ("search", "max_runs"),
                    f"is required for algorithm {search.algorithm}{why}. Set it to the number of "
                    "runs the search may start, e.g. `max_runs: 20`.",
                    # With no search section, point at the param that made the search random.
                    ("params", ranges[0]) if why and "search" not in self.model_fields_set else ("search",),
                )
            )
        if search.metric is None:
            needs = []
            if search.algorithm in ("tpe", "cmaes"):
                needs.append(f"algorithm {search.algorithm}, which learns from each run's result")
            if self.early_stopping is not None:
                needs.append("early_stopping, which compares runs on it")
            if needs:
                problems.append(
                    (
                        ("search", "metric"),
                        f"is required by {' and by '.join(needs)}. Set it to a metric your code "
                        'logs, e.g. `metric: val_loss` for runyard.log({"val_loss": ...}).',
                        ("search",) if "search" in self.model_fields_set else ("early_stopping",),
                    )
                )
        if search.algorithm == "cmaes" and not ranges:
            problems.append(
                (
                    ("search", "algorithm"),
                    "is cmaes, which needs at least one numeric range param (uniform, loguniform "
                    "or int), but there is none. Add a range, or use grid or random.",
                )
            )
        problems.extend((("command",), body) for body in _undeclared(self.command, list(self.params)))
        if problems:
            raise _bad_many(problems)
        return self

    def space(self) -> dict[str, Dimension]:
        """The search space: one dimension per param, in the order of the file."""
        return {name: _dimension(param) for name, param in self.params.items()}

    def render_command(self, params: Mapping[str, Any]) -> str:
        """The command with every ``{name}`` replaced by the shell-quoted value of that param.

        Args:
            params: a run's params. A fixed param may be left out; its value comes from the spec.

        Raises:
            InvalidInput: a placeholder's param has no value in ``params`` and is not fixed.
        """
        out: list[str] = []
        for part in _split_command(self.command)[0]:
            if isinstance(part, str):
                out.append(part)
                continue
            if part.name in params:
                value = params[part.name]
            elif isinstance(self.params.get(part.name), (str, int, float, bool)):
                value = self.params[part.name]
            else:
                raise InvalidInput(
                    f"command uses {{{part.name}}}, but the run's params have no value for "
                    f"'{part.name}' (got: {', '.join(params) or 'none'}).",
                    "Pass every param the search proposed to render_command.",
                )
            out.append(shlex.quote(_format_value(value)))
        return "".join(out)

    def to_config(self) -> dict[str, Any]:
        """The normalised spec as a JSON-able dict: defaults filled in, memory in MB,
        time_limit in seconds, list choices as ``{choice: [...]}``, unset values left out."""
        return self.model_dump(mode="json", exclude_none=True)


def _dimension(param: Any) -> Dimension:
    if isinstance(param, UniformParam):
        return FloatRange(param.uniform[0], param.uniform[1], step=param.step)
    if isinstance(param, LogUniformParam):
        return FloatRange(param.loguniform[0], param.loguniform[1], log=True)
    if isinstance(param, IntParam):
        return IntRange(param.int[0], param.int[1], step=param.step, log=param.log)
    if isinstance(param, ChoiceParam):
        return Choice(tuple(param.choice))
    return Fixed(param)


def _grid_size(space: Mapping[str, Dimension]) -> int:
    """Number of combinations a grid search enumerates (no float ranges)."""
    size = 1
    for dim in space.values():
        if isinstance(dim, Choice):
            size *= len(dim.values)
        elif isinstance(dim, IntRange):
            size *= (dim.high - dim.low) // dim.step + 1
    return size


# ----------------------------------------------------------- YAML with line numbers

_TAG = "tag:yaml.org,2002:"


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core scalars (see the module docstring)."""


# PyYAML's YAML 1.1 resolvers for these tags are replaced by YAML 1.2 core ones below.
_YAML11_ONLY = ("bool", "int", "float", "timestamp", "value")
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag[len(_TAG) :] not in _YAML11_ONLY]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _TAG + "bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    _TAG + "int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
_Loader.add_implicit_resolver(
    _TAG + "float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def _construct_int(loader: _Loader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node)).replace("_", "")
    if text.startswith("0x"):
        return int(text[2:], 16)
    if text.startswith("0o"):
        return int(text[2:], 8)
    return int(text, 10)  # YAML 1.2: "010" is ten, not octal


def _construct_float(loader: _Loader, node: yaml.ScalarNode) -> float:
    text = str(loader.construct_scalar(node)).lower().replace("_", "")
    if text.endswith(".inf"):
        return -math.inf if text.startswith("-") else math.inf
    if text == ".nan":
        return math.nan
    return float(text)


_Loader.add_constructor(_TAG + "int", _construct_int)
_Loader.add_constructor(_TAG + "float", _construct_float)


@dataclasses.dataclass
class _Problem:
    """One line of a SpecError: the text, and the data path whose line it is reported at."""

    text: str
    at: tuple[Any, ...]
    line: int | None = None  # overrides the line of ``at``


def _record_lines(
    loader: _Loader,
    node: yaml.Node,
    path: tuple[Any, ...],
    lines: dict[tuple[Any, ...], int],
    problems: list[_Problem],
    active: set[int],
) -> None:
    if id(node) in active:  # a recursive alias; construction reports it if it matters
        return
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
                    _Problem(
                        f"{_dotted(sub)} is set twice (first at line {first[key]}); "
                        "YAML would keep only the last one. Remove one of them.",
                        sub,
                        line,
                    )
                )
            else:
                first[key] = line
                lines[sub] = line
            _record_lines(loader, value_node, sub, lines, problems, active)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, i)] = item.start_mark.line + 1
            _record_lines(loader, item, (*path, i), lines, problems, active)
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


def _yaml_error(error: yaml.YAMLError, source: str) -> SpecError:
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
    return SpecError(f"{where}: invalid YAML: {what}. {fix}", _HINT)


def _load_yaml(text: str, source: str) -> tuple[Any, dict[tuple[Any, ...], int], list[_Problem]]:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        lines: dict[tuple[Any, ...], int] = {}
        problems: list[_Problem] = []
        if node is None:
            return None, lines, problems
        lines[()] = node.start_mark.line + 1
        _record_lines(loader, node, (), lines, problems, set())
        data = loader.construct_document(node)
        return data, lines, problems
    except yaml.YAMLError as e:
        raise _yaml_error(e, source) from e
    finally:
        loader.dispose()


# --------------------------------------------------- pydantic errors to our messages


@dataclasses.dataclass
class _Where:
    """What the schema says about a ``loc``: the rule that applies and where it applies."""

    rule: _Rule | None = None
    rule_depth: int = 0  # how many loc parts the rule's field spans
    annotation: Any = None  # the type at the end of the walk
    model: type[BaseModel] | None = None  # the model whose key the last part is
    siblings: dict[str, Any] = dataclasses.field(default_factory=dict)  # tag -> member type


def _unwrap(annotation: Any) -> tuple[Any, _Rule | None]:
    """Strip Annotated and Optional, returning the inner type and any rule met on the way."""
    rule = None
    while True:
        if get_origin(annotation) is Annotated:
            args = get_args(annotation)
            rule = next((m for m in args[1:] if isinstance(m, _Rule)), rule)
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
            rule = next((m for m in field.metadata if isinstance(m, _Rule)), None)
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
        if not missing and isinstance(node, dict) and part in node:
            path.append(part)
            node = node[part]
        elif not missing and isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif isinstance(part, str) and part.startswith("#"):
            continue
        elif not missing and (isinstance(node, list) or (isinstance(node, str) and part == 0)):
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
        parent = _dotted(path[:-1]) or "the top level"
        return f"{parent} key {_show(path[-1])}", path
    return _dotted(path) or "the file", path


def _generic_rule(error: dict[str, Any], where: _Where) -> str:
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


def _explain(error: dict[str, Any], data: Any) -> list[_Problem]:
    kind = error["type"]
    loc = tuple(error["loc"])
    value = error.get("input")
    ctx = error.get("ctx") or {}

    if kind == "runyard_problems":
        out = []
        for problem in ctx["problems"]:
            subject, path = _subject(loc + tuple(problem["path"]), data)
            at = tuple(problem["at"]) if problem["at"] is not None else path
            out.append(_Problem(f"{subject} {problem['body']}", at))
        return out

    subject, path = _subject(loc, data)
    if kind == "runyard_rule":
        return [_Problem(f"{subject} {ctx['body']}", path)]

    where = _schema_at(loc)
    if kind in ("extra_forbidden", "invalid_key"):
        return [_Problem(_unknown_key(loc, path, where), path)]
    if kind == "missing":
        rule = where.rule
        fix = (rule.missing or rule.fix) if rule else f"See {_DOCS}."
        return [_Problem(f"{subject} is required. {fix}", path)]
    if kind == "runyard_param_kind":
        return [_Problem(_param_kind_text(subject, value), path)]
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
        got = f", but got {_show(value)}"
    text = f"{subject} must be {rule_text}{got}."
    if get_origin(where.annotation) is Literal and isinstance(value, str):
        text += _did_you_mean(value, [str(a) for a in get_args(where.annotation)])
    if rule:
        text += f" {rule.fix}"
    elif _is_model(where.annotation) and path:
        text += f" Write its keys on indented lines under `{path[-1]}:`."
    else:
        text += f" See {_DOCS}."
    return [_Problem(text, path)]


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
    level = f"in {_dotted(path[:-1])}" if path[:-1] else "at the top level"
    name = f"{_dotted(path[:-1])}.{key}" if path[:-1] else str(key)
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
        return text + f" '{key}' is a top-level key: move it out of {_dotted(path[:-1])}."
    return text + _did_you_mean(key, valid)


def _section_keys(annotation: Any) -> list[list[str]]:
    annotation, _ = _unwrap(annotation)
    tags = _tags(annotation)
    members = list(tags.values()) if tags else [annotation]
    return [keys for keys in (_all_keys(m) for m in members) if keys]


def _param_kind_text(subject: str, value: Any) -> str:
    keys = list(value) if isinstance(value, dict) else []
    kinds = [k for k in _PARAM_KINDS if k in keys]
    if len(kinds) > 1:
        return f"{subject} names more than one distribution ({', '.join(kinds)}). Keep one of them."
    suggestion = ""
    for key in keys:
        suggestion = _did_you_mean(key, list(_PARAM_KINDS))
        if suggestion:
            break
    shown = ", ".join(_show(k) for k in keys)
    has = f"the key{'s' if len(keys) > 1 else ''} {shown}" if keys else "no keys"
    return (
        f"{subject} must be a value, a list of choices, or a mapping with one of uniform, "
        f"loguniform, int, choice, but has {has}.{suggestion} "
        "Write e.g. `lr: {loguniform: [0.0001, 0.1]}`."
    )


def _stopping_kind_problem(path: tuple[Any, ...], value: Any) -> _Problem:
    choices = ", ".join(_STOPPING_MODELS)
    if not isinstance(value, dict):
        return _Problem(
            f"early_stopping must be a mapping with `algorithm: median`, asha or hyperband, "
            f"but got {_show(value)}. Write e.g. `early_stopping: {{algorithm: median}}`.",
            path,
        )
    at = (*path, "algorithm")
    if "algorithm" not in value:
        return _Problem(
            f"early_stopping.algorithm is required: one of {choices}. Add e.g. `algorithm: median`.",
            path,
        )
    got = value["algorithm"]
    return _Problem(
        f"early_stopping.algorithm must be one of {choices}, but got {_show(got)}."
        f"{_did_you_mean(got, list(_STOPPING_MODELS))}",
        at,
    )


def _spec_error(problems: list[_Problem], lines: dict[tuple[Any, ...], int], source: str) -> SpecError:
    def line_of(path: tuple[Any, ...]) -> int | None:
        for end in range(len(path), -1, -1):
            if path[:end] in lines:
                return lines[path[:end]]
        return None

    located = [(p.line or line_of(p.at), p.text) for p in problems]
    located.sort(key=lambda item: item[0] or 0)
    out = []
    for line, text in located:
        entry = f"{source}:{line}: {text}" if line else f"{source}: {text}"
        if entry not in out:
            out.append(entry)
    return SpecError("\n".join(out), _HINT)


# ------------------------------------------------------------------ public helpers


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
    data, lines, problems = _load_yaml(text, source)
    if data is None:
        raise SpecError(
            f"{source}:1: the file is empty. It needs at least `project:` and `command:`.",
            "Run `runyard init` to write a commented starter file.",
        )
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"the single value {_show(data)}"
        raise SpecError(
            f"{source}:{lines.get((), 1)}: the file must be a mapping of keys such as "
            f"`project:` and `command:`, but it is {kind}.",
            _HINT,
        )
    if default_name is not None and data.get("name") is None:
        data = {"name": default_name, **{k: v for k, v in data.items() if k != "name"}}
    try:
        spec = Spec.model_validate(data)
    except ValidationError as e:
        errors = e.errors(include_url=False)
        for error in errors:
            problems.extend(_explain(error, data))
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
                _Problem(f"command {body}", ("command",)) for body in _undeclared(command, declared)
            )
        raise _spec_error(problems, lines, source) from None
    if problems:
        raise _spec_error(problems, lines, source)
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
    try:
        return Spec.model_validate(data)
    except ValidationError as e:
        problems = [p for error in e.errors(include_url=False) for p in _explain(error, data)]
        raise _spec_error(problems, {}, source) from None


_STARTER = """\
# runyard.yml: one experiment over the code in this directory.
# Every key is described in docs/runyard-yml.md. Start it with:  runyard run .

# The project the runs belong to: lowercase letters, digits, - and _.
project: {project}
# The experiment's name; defaults to the directory's name.
# name: baseline

# The shell command of each run. {{lr}} becomes the run's value of param lr,
# shell-quoted; write {{{{ and }}}} for literal braces.
command: python train.py --lr {{lr}} --batch-size {{batch_size}}

# Params: a fixed value, a list of choices, or a range
# ({{uniform: [low, high]}}, {{loguniform: [low, high]}}, {{int: [low, high]}}).
params:
  lr: {{loguniform: [0.0001, 0.1]}}
  batch_size: [32, 64, 128]
  epochs: 10

# How runs are proposed: grid (every combination), random, tpe or cmaes.
search:
  algorithm: random
  max_runs: 20       # runs the search may start
  parallel: 2        # runs at the same time
  metric: val_loss   # what your code logs: runyard.log({{"val_loss": ...}}, step=epoch)
  mode: min          # min: lower is better; max: higher is better

# Stop poor runs early, comparing them on search.metric.
# early_stopping:
#   algorithm: median     # or asha, hyperband
#   n_startup_runs: 5

# What each run needs.
resources:
  cpus: 1
  memory: 2G
  gpus: 0
  # time_limit: 1h

# Environment variables of each run (names starting with RUNYARD_ are reserved).
# env:
#   PYTHONUNBUFFERED: "1"

# Shell commands run before the command, in the same directory.
# setup:
#   - pip install -r requirements.txt

# Files left out of the code snapshot, as in .gitignore.
# ignore:
#   - data/
#   - "*.ckpt"
"""


def starter_file(project: str = "my-project") -> str:
    """The commented ``runyard.yml`` that ``runyard init`` writes; it parses as it is.

    Raises:
        SpecError: ``project`` is not a valid project name.
    """
    if not _PROJECT_RE.match(project):
        raise SpecError(
            f"project must be 1–64 lowercase letters, digits, '-' or '_', but got {_show(project)}.",
            f"Use e.g. {_slug(project)}.",
        )
    return _STARTER.format(project=project)
