"""The params of runyard.yml: fixed values, choices and ranges, and the search dimension of each."""

from __future__ import annotations

import builtins
import math
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from runyard.search import (
    Choice,
    Dimension,
    Fixed,
    FloatRange,
    IntRange,
    SpaceRule,
    axis_size,
    range_problems,
)
from runyard.spec._rules import Model, Relative, Rule, bad_many, is_scalar, num, show
from runyard.spec._values import check_fixed

_NUMBER = Rule("a number", "Write a number such as 0.5 or 1e-3.")
_INTEGER = Rule("an integer", "Write a whole number such as 8.")
_BOUNDS_FIX = "Write [low, high], e.g. `uniform: [0.0, 1.0]`."


def _check_bounds(low: float, high: float, broken: list[SpaceRule]) -> str | None:
    """The bounds rule of the search (low <= high), and the file's own: a range of one value is that value."""
    if "low_le_high" in broken:
        return f"must have low < high, but got [{num(low)}, {num(high)}]. Swap the two numbers."
    if low == high:
        return (
            f"must have low < high, but both are {num(low)}. "
            f"For a fixed value write the value itself, e.g. `name: {num(low)}`."
        )
    return None


def _check_float_step(low: float, high: float, step: float | None) -> str | None:
    """The file's rules for a step (the search only needs it > 0): within the range, and dividing it."""
    if step is None:
        return None
    if step > high - low:
        return f"is {num(step)}, larger than the range {num(low)}..{num(high)}. Use a smaller step."
    n = (high - low) / step
    if abs(n - round(n)) > 1e-9 * max(1.0, n):
        below = low + math.floor(n) * step
        return (
            f"is {num(step)}, but high − low = {num(high - low)} is not a multiple of it. "
            f"Set high to {num(below)} or {num(below + step)}, or change step."
        )
    return None


class UniformParam(Model):
    """``{uniform: [low, high], step: s}``: a float from [low, high], every ``step`` if given."""

    uniform: Annotated[
        list[Annotated[float, _NUMBER]],
        Field(min_length=2, max_length=2),
        Rule("a list of two numbers [low, high]", _BOUNDS_FIX),
    ]
    step: Annotated[
        Annotated[float, Field(gt=0)] | None,
        Rule("a number > 0", "Set the spacing between values, e.g. `step: 0.1`, or remove it."),
    ] = None

    @model_validator(mode="after")
    def _check(self) -> UniformParam:
        low, high = self.uniform
        broken = range_problems(FloatRange(low, high, step=self.step))
        if problem := _check_bounds(low, high, broken):
            raise bad_many([(("uniform",), problem)])
        if problem := _check_float_step(low, high, self.step):
            raise bad_many([(("step",), problem)])
        return self


class LogUniformParam(Model):
    """``{loguniform: [low, high]}``: a float from [low, high] on a log scale (0 < low)."""

    loguniform: Annotated[
        list[Annotated[float, _NUMBER]],
        Field(min_length=2, max_length=2),
        Rule("a list of two numbers [low, high] with 0 < low", "Write e.g. `loguniform: [0.0001, 0.1]`."),
    ]
    step: Annotated[
        float | None,
        Rule("absent", "Remove step, or use uniform with a step."),
    ] = None

    @model_validator(mode="after")
    def _check(self) -> LogUniformParam:
        low, high = self.loguniform
        broken = range_problems(FloatRange(low, high, log=True, step=self.step))
        if "log_low_positive" in broken:
            raise bad_many(
                [
                    (
                        ("loguniform",),
                        f"must have low > 0 (a log scale has no zero), but got low = {num(low)}. "
                        "Use a small positive low such as 1e-6.",
                    )
                ]
            )
        if problem := _check_bounds(low, high, broken):
            raise bad_many([(("loguniform",), problem)])
        if "log_without_step" in broken:
            raise bad_many(
                [
                    (
                        ("step",),
                        "cannot be used with loguniform: log-scale floats are sampled without a "
                        "step. Remove step, or use uniform with a step.",
                    )
                ]
            )
        return self


class IntParam(Model):
    """``{int: [low, high], step: k, log: b}``: an integer from [low, high] inclusive."""

    int: Annotated[
        list[Annotated[int, _INTEGER]],
        Field(min_length=2, max_length=2),
        Rule("a list of two integers [low, high]", "Write e.g. `int: [1, 8]`."),
    ]
    step: Annotated[
        builtins.int,  # `int` is the field above inside this class
        Field(ge=1),
        Rule("an integer ≥ 1", "Set the spacing between values, e.g. `step: 2`, or remove it."),
    ] = 1
    log: Annotated[
        bool,
        Rule("true or false", "Write `log: true` to sample on a log scale."),
    ] = False

    @model_validator(mode="after")
    def _check(self) -> IntParam:
        low, high = self.int
        broken = range_problems(IntRange(low, high, step=self.step, log=self.log))
        if problem := _check_bounds(low, high, broken):
            raise bad_many([(("int",), problem)])
        if "int_log_low_ge_1" in broken:
            raise bad_many(
                [
                    (("int",), f"must have low ≥ 1 with `log: true`, but got low = {low}. Set low to 1 or more.")
                ]
            )
        if "int_log_step_1" in broken:
            raise bad_many(
                [(("step",), f"must be 1 with `log: true`, but got {self.step}. Remove step or log.")]
            )
        if (high - low) % self.step:
            below = low + (high - low) // self.step * self.step
            raise bad_many(
                [
                    (
                        ("step",),
                        f"is {self.step}, but high − low = {high - low} is not a multiple of it. "
                        f"Set high to {below} or {below + self.step}, or change step.",
                    )
                ]
            )
        return self


class ChoiceParam(Model):
    """``{choice: [a, b, c]}`` or the list ``[a, b, c]``: one of the listed values."""

    choice: Annotated[
        list[Any],
        Field(min_length=1),
        Rule("a non-empty list of values", "List at least one value, e.g. `[relu, tanh]`."),
    ]

    @field_validator("choice")
    @classmethod
    def _check_values(cls, values: list[Any]) -> list[Any]:
        problems: list[Relative] = []
        seen: set[tuple[type, Any]] = set()
        for i, value in enumerate(values):
            if not is_scalar(value):
                problems.append(
                    ((i,), f"must be a string, number or boolean, but got {show(value)}. "
                     "Choices are plain values; quote text that looks like something else.")
                )
            elif (type(value), value) in seen:
                problems.append(((i,), f"repeats the value {show(value)}. Remove the duplicate."))
            else:
                seen.add((type(value), value))
        if problems:
            raise bad_many(problems)
        return values


PARAM_KINDS = ("uniform", "loguniform", "int", "choice")
_PARAM_MODELS: dict[str, type[Model]] = {
    "uniform": UniformParam,
    "loguniform": LogUniformParam,
    "int": IntParam,
    "choice": ChoiceParam,
}


def _param_kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return next(f"#{k}" for k, m in _PARAM_MODELS.items() if isinstance(value, m))
    if isinstance(value, dict):
        kinds = [k for k in PARAM_KINDS if k in value]
        return f"#{kinds[0]}" if len(kinds) == 1 else None
    if isinstance(value, list):
        return "#list"
    return "#fixed"


ParamSpec = Annotated[
    Annotated[UniformParam, Tag("#uniform")]
    | Annotated[LogUniformParam, Tag("#loguniform")]
    | Annotated[IntParam, Tag("#int")]
    | Annotated[ChoiceParam, Tag("#choice")]
    | Annotated[ChoiceParam, BeforeValidator(lambda v: {"choice": v}), Tag("#list")]
    | Annotated[Any, AfterValidator(check_fixed), Tag("#fixed")],
    Discriminator(
        _param_kind,
        custom_error_type="runyard_param_kind",
        custom_error_message="a param must name one of uniform, loguniform, int, choice",
    ),
]
"""One param: a fixed scalar, or a :class:`UniformParam`, :class:`LogUniformParam`,
:class:`IntParam` or :class:`ChoiceParam` (a plain list becomes a ChoiceParam)."""



def dimension(param: Any) -> Dimension:
    if isinstance(param, UniformParam):
        return FloatRange(param.uniform[0], param.uniform[1], step=param.step)
    if isinstance(param, LogUniformParam):
        return FloatRange(param.loguniform[0], param.loguniform[1], log=True)
    if isinstance(param, IntParam):
        return IntRange(param.int[0], param.int[1], step=param.step, log=param.log)
    if isinstance(param, ChoiceParam):
        return Choice(tuple(param.choice))
    return Fixed(param)


def grid_size(space: Mapping[str, Dimension]) -> int:
    """Number of combinations a grid search enumerates (no float ranges)."""
    size = 1
    for dim in space.values():
        n = axis_size(dim)
        if n is not None:
            size *= n
    return size



def override_problem(name: str, param: Any, value: Any) -> str | None:
    """Why ``value`` cannot replace the declared ``param`` (``runyard run -p name=value``), or None.

    A range takes a number inside it (an integer for an int range), a choice one of its
    choices, a fixed value any plain value.
    """
    dim = dimension(param)
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(dim, FloatRange):
        if not (number and math.isfinite(value) and dim.low <= value <= dim.high):
            return f"{name} must be a number between {num(dim.low)} and {num(dim.high)}, but got {show(value)}"
    elif isinstance(dim, IntRange):
        if not (isinstance(value, int) and not isinstance(value, bool) and dim.low <= value <= dim.high):
            return f"{name} must be an integer between {dim.low} and {dim.high}, but got {show(value)}"
    elif isinstance(dim, Choice):
        if not any(value == c and isinstance(value, bool) == isinstance(c, bool)
                   and isinstance(value, str) == isinstance(c, str) for c in dim.values):
            listed = ", ".join(show(c) for c in dim.values)
            return f"{name} must be one of its choices {listed}, but got {show(value)}"
    elif not is_scalar(value):
        return f"{name} must be a string, number or boolean, but got {show(value)}"
    return None
