"""The search: and early_stopping: sections of runyard.yml."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Discriminator, Field, Tag, model_validator

from runyard.spec._rules import Model, Rule, at_most, bad_many
from runyard.spec._values import nonblank

MAX_RUNS = 1_000_000
"""Most runs one experiment may start."""


class SearchSpec(Model):
    """``search:``: how runs are proposed. ``algorithm`` and ``max_runs`` are filled in by
    :class:`Spec` when left out (grid over all combinations, or random)."""

    algorithm: Annotated[
        Literal["grid", "random", "tpe", "cmaes"] | None,
        Rule(
            "one of grid, random, tpe, cmaes",
            "grid tries every combination, random samples, tpe and cmaes learn from finished runs.",
        ),
    ] = None
    max_runs: Annotated[
        Annotated[int, Field(ge=1), at_most(MAX_RUNS, "Start fewer runs per experiment.")] | None,
        Rule("an integer ≥ 1", "Set it to the number of runs the search may start."),
    ] = None
    parallel: Annotated[
        int,
        Field(ge=1),
        at_most(10_000, "Set how many runs may execute at the same time, e.g. `parallel: 4`."),
        Rule("an integer ≥ 1", "Set it to how many runs may execute at the same time."),
    ] = 1
    metric: Annotated[
        Annotated[str, AfterValidator(nonblank)] | None,
        Rule(
            "a metric name",
            'Use a name your code logs, e.g. `metric: val_loss` for runyard.log({"val_loss": ...}).',
        ),
    ] = None
    mode: Annotated[
        Literal["min", "max"],
        Rule("min or max", "Use min when lower is better (loss), max when higher is better (accuracy)."),
    ] = "min"
    seed: Annotated[
        Annotated[int, Field(ge=0, le=2**32 - 1)] | None,
        Rule("an integer from 0 to 4294967295", "Pick any fixed number, e.g. `seed: 42`, or remove it."),
    ] = None


_GRACE = Rule(
    "an integer ≥ 0 (seconds)",
    "Set how many seconds a run may take to exit after should_stop() before it is stopped.",
)
_REDUCTION = Rule(
    "an integer ≥ 2",
    "Set how many runs share each rung per promoted run; 3 keeps the best third.",
)
_MIN_RESOURCE = Rule(
    "an integer ≥ 1 (steps)",
    "Set the fewest steps a run takes before it can be stopped.",
)


class _StoppingBase(Model):
    algorithm: str
    grace_period_s: Annotated[int, Field(ge=0), _GRACE] = 30


class MedianStoppingSpec(_StoppingBase):
    """Stop a run whose best value so far is worse than the median of earlier runs at that step."""

    algorithm: Literal["median"] = "median"
    n_startup_runs: Annotated[
        int,
        Field(ge=0),
        Rule("an integer ≥ 0", "Set how many runs must finish before any run is stopped early."),
    ] = 5
    n_warmup_steps: Annotated[
        int,
        Field(ge=0),
        Rule("an integer ≥ 0 (steps)", "Set how many steps a run takes before it can be stopped."),
    ] = 0
    interval_steps: Annotated[
        int,
        Field(ge=1),
        Rule("an integer ≥ 1 (steps)", "Set how often, in steps, a run is checked."),
    ] = 1


class AshaStoppingSpec(_StoppingBase):
    """Asynchronous successive halving: at each rung, keep the best 1/reduction_factor runs."""

    algorithm: Literal["asha"] = "asha"
    min_resource: Annotated[int, Field(ge=1), _MIN_RESOURCE] = 1
    reduction_factor: Annotated[int, Field(ge=2), _REDUCTION] = 3
    min_early_stopping_rate: Annotated[
        int,
        Field(ge=0),
        Rule("an integer ≥ 0", "Raise it to skip the lowest rungs; 0 checks from min_resource on."),
    ] = 0


class HyperbandStoppingSpec(_StoppingBase):
    """Hyperband: several successive-halving brackets between min_resource and max_resource."""

    algorithm: Literal["hyperband"] = "hyperband"
    min_resource: Annotated[int, Field(ge=1), _MIN_RESOURCE] = 1
    max_resource: Annotated[
        int,
        Field(ge=1),
        Rule(
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
            raise bad_many(
                [
                    (
                        ("max_resource",),
                        f"must be greater than min_resource ({self.min_resource}), but got "
                        f"{self.max_resource}. Set it to the number of steps a full run takes.",
                    )
                ]
            )
        return self


STOPPING_MODELS: dict[str, type[_StoppingBase]] = {
    "median": MedianStoppingSpec,
    "asha": AshaStoppingSpec,
    "hyperband": HyperbandStoppingSpec,
}


def _stopping_kind(value: Any) -> str | None:
    if isinstance(value, _StoppingBase):
        return f"#{value.algorithm}"
    if isinstance(value, dict) and isinstance(value.get("algorithm"), str):
        return f"#{value['algorithm']}" if value["algorithm"] in STOPPING_MODELS else None
    return None


EarlyStoppingSpec = Annotated[
    Annotated[MedianStoppingSpec, Tag("#median")]
    | Annotated[AshaStoppingSpec, Tag("#asha")]
    | Annotated[HyperbandStoppingSpec, Tag("#hyperband")],
    Discriminator(
        _stopping_kind,
        custom_error_type="runyard_stopping_kind",
        custom_error_message="early_stopping.algorithm must be median, asha or hyperband",
    ),
]
"""``early_stopping:``, one of the three settings models chosen by ``algorithm``."""

