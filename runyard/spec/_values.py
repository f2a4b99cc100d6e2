"""Parsers and checks of single values of runyard.yml: sizes, durations, names, env, patterns, the command."""

from __future__ import annotations

import dataclasses
import math
import numbers
import re
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import pathspec

import runyard.names as names
from runyard.configfile import did_you_mean
from runyard.spec._rules import bad, bad_many, invalid, is_scalar, num, show

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
BACKEND_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*(?:([kmgt])(i?b)?)?$", re.IGNORECASE)
_SIZE_MB = {"k": Fraction(1, 1024), "m": Fraction(1), "g": Fraction(1024), "t": Fraction(1024**2)}
_UNITS_RE = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?:in)?)?(?:(\d+)s)?$")
_CLOCK_RE = re.compile(r"^(?:(\d+)-)?(\d+):([0-5]\d):([0-5]\d)$")  # [D-]H:MM:SS as in Slurm
_MINSEC_RE = re.compile(r"^(\d+):([0-5]\d)$")  # MM:SS as in Slurm
_RESERVED_ENV = "RUNYARD_"

MEMORY_MAX_MB = 1024**3
"""1 PiB: more than any machine has; beyond it a number is a typo (and overflows backends' byte counts)."""
TIME_LIMIT_MAX_S = 3650 * 86400
"""Ten years: beyond it a limit is a typo (and overflows backends' time arithmetic)."""


def parse_memory(value: Any) -> Any:
    """``"512M"``, ``"4G"``, ``"1.5GiB"`` or an int of MB -> MB (powers of 1024, rounded up)."""
    if isinstance(value, bool) or value is None:
        raise invalid()
    if isinstance(value, int):
        if value < 0:
            raise invalid()
        return _memory_at_most(value, value)
    if isinstance(value, float):
        raise bad(
            f"must be a size with a unit like 512M, 4G or 1.5GiB, or a whole number of MB, "
            f"but got {show(value)}. Write the unit, e.g. `memory: {num(value)}G`."
        )
    if not isinstance(value, str):
        raise invalid()
    match = _SIZE_RE.match(value.strip())
    if not match:
        raise invalid()
    number, unit, _ = match.groups()
    if unit is None and "." in number:
        raise invalid()
    return _memory_at_most(math.ceil(Fraction(number) * _SIZE_MB[(unit or "m").lower()]), value)


def _memory_at_most(mb: int, value: Any) -> int:
    if mb > MEMORY_MAX_MB:
        raise bad(f"must be at most 1024T (1 PiB), but got {show(value)}. Write the memory one task needs, e.g. `memory: 64G`.")
    return mb


def parse_time_limit(value: Any) -> Any:
    """``"90s"``, ``"30m"``, ``"1h30m"``, ``"01:30:00"`` or an int of seconds -> seconds."""
    if isinstance(value, bool) or value is None:
        raise invalid()
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
            raise invalid()
        seconds = ((d * 24 + h) * 60 + m) * 60 + s
    else:
        raise invalid()
    if seconds <= 0:
        raise bad(
            f"must be longer than 0 seconds, but got {show(value)}. "
            "Remove time_limit for runs without a time limit."
        )
    if seconds > TIME_LIMIT_MAX_S:
        raise bad(
            f"must be at most 3650d (ten years), but got {show(value)}. "
            "Remove time_limit for runs without a time limit."
        )
    return seconds


def one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def nonblank(value: str) -> str:
    if not value.strip():
        raise invalid()
    return value


def project_problem(value: str) -> str | None:
    """The message body for an invalid project name (the rule of :mod:`runyard.names`), else None."""
    if names.project_name_problem(value) is None:
        return None
    text = f"must be 1–64 lowercase letters, digits, '-' or '_', but got {show(value)}"
    if value[:1] in ("-", "_"):
        text += f", which starts with {value[0]!r}: a project name starts with a letter or digit"
    return f"{text}. Use e.g. `project: {names.suggest_project_name(value)}`."


def check_project(value: str) -> str:
    if problem := project_problem(value):
        raise bad(problem)
    return value


def check_experiment_name(value: str) -> str:
    if names.experiment_name_problem(value) is not None:
        raise invalid()
    return value


def check_param_name(value: str) -> str:
    if not _NAME_RE.match(value) or names.key_problem(value) is not None:
        raise invalid()
    return value


def check_env_name(value: str) -> str:
    if not _NAME_RE.match(value):
        raise invalid()
    if value.startswith(_RESERVED_ENV):
        suggestion = value[len(_RESERVED_ENV) :] or "MY_VAR"
        raise bad(
            f"is reserved: variables starting with {_RESERVED_ENV} are set by Runyard itself "
            f"(run id, server address, params). Rename it, e.g. to {suggestion}."
        )
    return value


def coerce_env_value(value: Any) -> Any:
    if value is None:
        raise bad('is empty. Write `NAME: ""` for an empty string, or remove the variable.')
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value
    raise invalid()


def check_ignore(pattern: str) -> str:
    if not pattern.strip():
        raise bad("is empty. Remove the empty entry.")
    try:
        pathspec.GitIgnoreSpec.from_lines([pattern])
    except ValueError as e:
        raise bad(
            f"is not a valid gitignore pattern: {show(pattern)} ({e}). "
            "Fix or remove it; patterns look like `data/`, `*.ckpt` or `!keep.txt`."
        ) from e
    return pattern


def check_fixed(value: Any) -> Any:
    if value is None:
        raise bad(
            "is empty. Give a value (`lr: 0.1`), a list of choices (`lr: [0.01, 0.1]`) "
            "or a range (`lr: {loguniform: [0.0001, 0.1]}`)."
        )
    if not is_scalar(value):
        raise bad(
            f"must be a string, number or boolean, a list of choices or a range, "
            f"but got {show(value)}. Write a finite value such as `0.1`."
        )
    return value


# ------------------------------------------------------------------- the command

# {{ and }}; {name} or {name:format}; {} or {0} (positional); any other {...}; a lone brace.
_TOKEN_RE = re.compile(
    r"\{\{|\}\}"
    r"|\{([A-Za-z_][A-Za-z0-9_]*)(?::([^{}]*))?\}"
    r"|\{(\d*)(?:[:!][^{}]*)?\}"
    r"|\{[^{}]*\}"
    r"|[{}]"
)
_BRACES_FIX = "Write {{ and }} for literal braces."


@dataclasses.dataclass(frozen=True)
class Placeholder:
    name: str
    format: str = ""  # a Python format spec, e.g. ".2f" in {lr:.2f}

    def text(self) -> str:
        return f"{{{self.name}:{self.format}}}" if self.format else f"{{{self.name}}}"


def split_command(command: str) -> tuple[list[str | Placeholder], list[str]]:
    """Literal text and placeholders of ``command``, and the brace problems found."""
    parts: list[str | Placeholder] = []
    problems: list[str] = []
    pos = 0
    for match in _TOKEN_RE.finditer(command):
        parts.append(command[pos : match.start()])
        token = match.group(0)
        at = match.start() + 1
        if token in ("{{", "}}"):
            parts.append(token[0])
        elif match.group(1):
            parts.append(Placeholder(match.group(1), match.group(2) or ""))
        elif match.group(3) is not None:
            problems.append(
                f"has the positional placeholder '{token}' at character {at}, but placeholders name a param: "
                f"write e.g. {{lr}} (or {{lr:.2f}} to format it). {_BRACES_FIX}"
            )
        elif len(token) > 1:
            problems.append(
                f"has '{token}' at character {at}, which is not a placeholder: placeholders are {{name}} or "
                f"{{name:format}} (e.g. {{lr:.2e}}) with a param name of letters, digits and '_'. {_BRACES_FIX}"
            )
        else:
            problems.append(
                f"has a lone '{token}' at character {at}: placeholders look like "
                f"{{lr}}, naming a param. {_BRACES_FIX}"
            )
        pos = match.end()
    parts.append(command[pos:])
    return [p for p in parts if p != ""], problems


def render_value(value: Any, spec: str = "") -> str:
    """A param value as command text: :func:`format_value`, or Python's ``format(value, spec)``."""
    if not spec:
        return format_value(value)
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    return format(value, spec)


def format_problems(command: str, samples: Mapping[str, list[Any]]) -> list[str]:
    """Problems of the format specs in ``command``: ``samples`` maps each param to values it may take."""
    out = []
    for part in split_command(command)[0]:
        if not isinstance(part, Placeholder) or not part.format:
            continue
        for value in samples.get(part.name, []):
            try:
                render_value(value, part.format)
            except (ValueError, TypeError) as e:
                out.append(
                    f"uses {part.text()}, but the format '{part.format}' cannot format {show(value)}, a value "
                    f"'{part.name}' may take ({e}). Use a format for its type (e.g. .3g or .2e for numbers), "
                    f"or write {{{part.name}}}."
                )
                break
    return out


def undeclared(command: str, declared: list[str]) -> list[str]:
    """Problems for placeholders of ``command`` that name no declared param."""
    out = []
    used = [p.name for p in split_command(command)[0] if isinstance(p, Placeholder)]
    for name in dict.fromkeys(used):
        if name not in declared:
            listed = ", ".join(declared) if declared else "none"
            out.append(
                f"uses {{{name}}}, but no param named '{name}' is declared (declared: {listed})."
                f"{did_you_mean(name, declared)} Declare it under params, "
                f"or write {{{{{name}}}}} for literal braces."
            )
    return out


def check_command(value: str) -> str:
    if not value.strip():
        raise invalid()
    problems = split_command(value)[1]
    if problems:
        raise bad_many([((), body) for body in problems])
    return value


def format_value(value: Any) -> str:
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
