"""``image:`` and ``build:`` of runyard.yml: the container image a run's tasks start in, and how to build it.

The rules themselves live in :mod:`runyard.containers` (``check_image``, ``BuildSpec``); this
module gives them the spec's field rules and messages.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from runyard.containers import BuildSpec, image_problem, project_path_problem, step_problem
from runyard.spec._rules import Model, Relative, Rule, bad, bad_many, invalid

IMAGE_RULE = Rule(
    "an image reference such as python:3.11-slim or ghcr.io/org/train:1.2, an image id, or a path to an "
    "image file or directory starting with / or ./",
    "Write e.g. `image: python:3.11-slim`, or remove image: to run without a container.",
)


def check_image_value(value: str) -> str:
    """The normalised image, or the spec error naming the rule, the value and the fix."""
    problem, normal = image_problem(value)
    if problem is not None:
        raise bad(problem)
    return normal


ImageField = Annotated[Annotated[str, AfterValidator(check_image_value)] | None, IMAGE_RULE]


def _check_containerfile(value: str) -> str:
    if problem := project_path_problem(value, "a file path"):
        raise bad(problem)
    return value


def _check_context(value: str) -> str:
    if value != "." and (problem := project_path_problem(value, "a directory", "e.g. . or docker")):
        raise bad(problem)
    return value


def _check_step(value: str) -> str:
    if problem := step_problem(value):
        raise bad(problem)
    return value


def _steps_shorthand(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


_Step = Annotated[
    str,
    AfterValidator(_check_step),
    Rule("a non-empty shell command on one line", "Write one command per list item, e.g. `- pip install -r requirements.txt`."),
]


class BuildSection(Model):
    """``build:``: a Containerfile in the project (with its context), or shell steps on top of ``image:``."""

    containerfile: Annotated[
        Annotated[str, AfterValidator(_check_containerfile)] | None,
        Rule("a file path relative to the project directory", "Write e.g. `containerfile: Containerfile`."),
    ] = None
    context: Annotated[
        str,
        AfterValidator(_check_context),
        Rule("a directory relative to the project directory", "Write e.g. `context: .` (the default) or `context: docker`."),
    ] = "."
    steps: Annotated[
        list[_Step],
        BeforeValidator(_steps_shorthand),
        Rule("a shell command or a list of them", "Write e.g. `steps: [pip install -r requirements.txt]`."),
    ] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_kind(self) -> BuildSection:
        problems: list[Relative] = []
        if self.containerfile is None and not self.steps:
            problems.append(((), "needs a containerfile or steps, but got neither. Write e.g. `build: Containerfile` "
                             "or `build: {steps: [pip install -r requirements.txt]}`."))
        elif self.containerfile is not None and self.steps:
            problems.append((("steps",), "cannot go with containerfile: the Containerfile is the whole build. Move the "
                             "steps into it as RUN lines, or remove containerfile."))
        elif self.steps and "context" in self.model_fields_set and self.context != ".":
            problems.append((("context",), "goes with a containerfile only; steps run on image: without a context. "
                             "Remove context, or write a Containerfile that COPYs from it."))
        if problems:
            raise bad_many(problems)
        return self

    def to_build_spec(self) -> BuildSpec:
        """The :class:`runyard.containers.BuildSpec` this section stands for."""
        if self.containerfile is not None:
            return BuildSpec(containerfile=self.containerfile, context=self.context)
        return BuildSpec(steps=tuple(self.steps))


def build_shorthand(value: Any) -> Any:
    """``build: Containerfile`` means ``build: {containerfile: Containerfile}``."""
    if isinstance(value, str):
        if not value.strip():
            raise invalid()
        return {"containerfile": value}
    return value


BuildField = Annotated[
    BuildSection | None,
    BeforeValidator(build_shorthand),
    Rule(
        "a Containerfile path, or a mapping with containerfile (and context) or steps",
        "Write e.g. `build: Containerfile`, `build: {containerfile: docker/Containerfile, context: .}` or "
        "`build: {steps: [pip install -r requirements.txt]}` (steps run on image:).",
    ),
]
