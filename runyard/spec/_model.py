"""The Spec model: a whole validated runyard.yml, its rules between sections, its space and command."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    field_serializer,
    field_validator,
    model_validator,
)

import runyard.names as names
from runyard.containers import BuildSpec, is_image_id, is_path_image
from runyard.errors import InvalidInput
from runyard.search import (
    MAX_INT_RANGE_VALUES,
    Choice,
    Dimension,
    FloatRange,
    IntRange,
    axis_size,
)
from runyard.spec._datasets import DatasetsField
from runyard.spec._image import BuildField, BuildSection, ImageField
from runyard.spec._notebook import TensorboardSpec, check_notebook, notebook_command
from runyard.spec._outputs import (
    MountsField,
    OutputMetricsField,
    OutputsEveryField,
    OutputsField,
    StopGraceField,
    StopSignalField,
    task_io,
)
from runyard.spec._params import ParamSpec, dimension, grid_size
from runyard.spec._resources import DistributedSpec, ResourcesSpec, RoleSpec
from runyard.spec._rules import Model, Relative, Rule, at_most, bad, bad_many, invalid, show
from runyard.spec._search import MAX_RUNS, EarlyStoppingSpec, SearchSpec
from runyard.spec._values import (
    BACKEND_RE,
    check_command,
    check_env_name,
    check_experiment_name,
    check_ignore,
    check_param_name,
    check_project,
    coerce_env_value,
    format_problems,
    nonblank,
    one_or_many,
    render_value,
    split_command,
    undeclared,
)

_ParamName = Annotated[
    str,
    AfterValidator(check_param_name),
    Rule(
        f"a name of letters, digits and '_' that does not start with a digit (at most {names.KEY_MAX} characters)",
        "Rename the param, e.g. learning_rate; commands refer to it as {learning_rate}.",
    ),
]
_EnvName = Annotated[
    str,
    AfterValidator(check_env_name),
    Rule(
        "a variable name of letters, digits and '_' that does not start with a digit",
        "Rename the variable, e.g. MY_SETTING.",
    ),
]
_EnvValue = Annotated[
    str,
    BeforeValidator(coerce_env_value),
    Rule("a string, number or boolean", 'Quote the value, e.g. `NAME: "value"`.'),
]
_ShellLine = Annotated[
    str,
    AfterValidator(nonblank),
    Rule(
        "a non-empty shell command",
        "Write one command per list item, e.g. `- pip install -r requirements.txt`.",
    ),
]
_IgnorePattern = Annotated[
    str,
    AfterValidator(check_ignore),
    Rule("a gitignore-style pattern", "Write patterns such as `data/` or `'*.ckpt'` (quote a leading *)."),
]


class Spec(Model):
    """A validated ``runyard.yml``.

    Build it with :func:`load_spec`, :func:`parse_spec` or :func:`validate_config`;
    ``Spec.model_validate(config)`` raises pydantic's error instead of a SpecError.
    After validation ``name``, ``search.algorithm`` and ``search.max_runs`` (grid) are
    always filled in.
    """

    name: Annotated[
        Annotated[str, Field(max_length=names.EXPERIMENT_NAME_MAX), AfterValidator(check_experiment_name)] | None,
        Rule(
            f"a non-empty string of at most {names.EXPERIMENT_NAME_MAX} characters on one line, "
            "without control characters or bidirectional overrides",
            "Name the experiment, e.g. `name: baseline`, or remove the key to use the directory name.",
        ),
    ] = None
    project: Annotated[
        str,
        AfterValidator(check_project),
        Rule(
            "1–64 lowercase letters, digits, '-' or '_'",
            "Use e.g. `project: my-project`.",
            missing="Add `project: <name>` with the project the runs belong to, e.g. `project: my-project`.",
        ),
    ]
    description: Annotated[
        str | None,
        Rule("a string", 'Quote the text, e.g. `description: "lr sweep"`.'),
    ] = None
    command: Annotated[
        Annotated[str, AfterValidator(check_command)] | None,
        Rule(
            "a non-empty shell command",
            "Write the command each run executes, e.g. `command: python train.py --lr {lr}`.",
        ),
    ] = None
    params: Annotated[
        dict[_ParamName, ParamSpec],
        Rule(
            "a mapping from param name to a value, a list of choices or a range",
            "Write one `name: value` line per param, e.g. `lr: {loguniform: [0.0001, 0.1]}`.",
        ),
    ] = Field(default_factory=dict)
    search: SearchSpec = Field(default_factory=SearchSpec)
    early_stopping: EarlyStoppingSpec | None = None
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    distributed: DistributedSpec | None = None
    image: ImageField = None
    build: BuildField = None
    env: Annotated[
        dict[_EnvName, _EnvValue],
        Rule("a mapping from variable name to value", "Write one `NAME: value` line per variable."),
    ] = Field(default_factory=dict)
    setup: Annotated[
        list[_ShellLine],
        BeforeValidator(one_or_many),
        Rule("a shell command or a list of them", "Write e.g. `setup: [pip install -r requirements.txt]`."),
    ] = Field(default_factory=list)
    backend: Annotated[
        str | list[str],
        Rule(
            "a backend name of letters, digits, '-', '_' or '.', or a list of such names",
            "Use a backend configured on the server, e.g. local, ssh, slurm, kubernetes or ray; list several "
            "(`backend: [local, slurm-dev]`) to send each run to the first of them with room.",
        ),
    ] = "local"
    max_restarts: Annotated[
        int,
        Field(ge=0),
        at_most(1000, "Restarts repeat a failing run; a few are enough, e.g. `max_restarts: 3`."),
        Rule("an integer ≥ 0", "Set how many times a failed run is restarted; 0 means never."),
    ] = 0
    ignore: Annotated[
        list[_IgnorePattern],
        BeforeValidator(one_or_many),
        Rule("a gitignore-style pattern or a list of them", "Write e.g. `ignore: [data/, '*.ckpt']`."),
    ] = Field(default_factory=list)
    notebook: Annotated[
        Annotated[str, AfterValidator(check_notebook)] | None,
        Rule("a .ipynb file in the experiment's directory", "Name the notebook each run executes, e.g. "
             "`notebook: train.ipynb`."),
    ] = None
    tensorboard: TensorboardSpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _empty_command(cls, data: Any) -> Any:
        """``command:`` with no value is an empty command (the key is optional only beside ``notebook:``)."""
        if isinstance(data, dict) and "command" in data and data["command"] is None:
            raise bad_many([(("command",), "must be a non-empty shell command, but it is empty. Write the command "
                             "each run executes, e.g. `command: python train.py --lr {lr}`.")])
        return data
    # Code run as it is (runyard.spec._outputs): metrics read from its output, files kept, how it is stopped.
    output_metrics: OutputMetricsField = Field(default_factory=list)
    outputs: OutputsField = Field(default_factory=list)
    outputs_every: OutputsEveryField = None
    stop_signal: StopSignalField = None
    stop_grace: StopGraceField = None
    mounts: MountsField = Field(default_factory=dict)
    # The dataset versions each run reads (runyard.spec._datasets): name -> reference, pinned at submission.
    datasets: DatasetsField = Field(default_factory=dict)

    @field_validator("backend", mode="before")
    @classmethod
    def _check_backend(cls, value: Any) -> str | list[str]:
        """One name, or several tried in order for each run (a list of one is that name)."""
        listed = value if isinstance(value, list) else [value]
        if not listed or not all(isinstance(n, str) and BACKEND_RE.match(n) for n in listed):
            raise invalid()
        if len(set(listed)) < len(listed):
            twice = sorted({n for n in listed if listed.count(n) > 1})
            raise bad(f"lists {', '.join(twice)} more than once, in {show(value)}. List each backend once.")
        if len(",".join(listed)) > 64:
            raise bad(f"must fit in 64 characters written comma-separated (the length of one name), but "
                      f"{show(value)} takes {len(','.join(listed))}. List fewer backends, or give them shorter names.")
        return listed[0] if len(listed) == 1 else list(listed)

    @model_validator(mode="after")
    def _check_together(self) -> Spec:
        """Rules between fields; also fills in name, search.algorithm and grid max_runs."""
        if self.name is None:
            self.name = self.project
        if self.command is None and self.notebook is None:
            raise bad_many([(("command",), "is required. Add the command each run executes, e.g. `command: python "
                             "train.py --lr {lr}`, or the notebook it executes, e.g. `notebook: train.ipynb`.", ())])
        if self.command is not None and self.notebook is not None:
            raise bad_many([(("notebook",), f"is {show(self.notebook)}, but command: is set too, and a run executes "
                             "one of them. Remove command: to run the notebook, or notebook: to run the command.")])
        if self.notebook is not None:
            self.command = notebook_command(self.notebook)  # params reach it through RUNYARD_PARAMS
        problems: list[Relative] = []
        space = self.space()
        ranges = [n for n, d in space.items() if isinstance(d, (FloatRange, IntRange))]
        search = self.search
        why = ""
        if search.algorithm is None:
            search.algorithm = "random" if ranges else "grid"
            if ranges:
                why = f" (the default, because params.{ranges[0]} is a range)"
        if search.algorithm == "grid":
            # The grid's rules (runyard.search.axis_size), checked here so they fail at `runyard run`.
            sizes = {name: axis_size(dim) for name, dim in space.items()}
            for name in (n for n, size in sizes.items() if size is None):
                problems.append(
                    (
                        ("params", name),
                        "is a float range, which grid search cannot enumerate. Use a list of "
                        "values (e.g. `[0.001, 0.01, 0.1]`), or set search.algorithm to random, "
                        "tpe or cmaes.",
                    )
                )
            for name, n_values in sizes.items():
                if isinstance(space[name], IntRange) and n_values is not None and n_values > MAX_INT_RANGE_VALUES:
                    problems.append(
                        (
                            ("params", name),
                            f"is an integer range of {n_values} values, "
                            f"more than a grid expands ({MAX_INT_RANGE_VALUES}). Use a larger step "
                            "or a list of values, or set search.algorithm to random, tpe or cmaes.",
                        )
                    )
            if not problems:
                size = grid_size(space)
                if size > MAX_RUNS:
                    problems.append((("params",), f"make a grid of {size} combinations, more than the {MAX_RUNS} runs "
                                     "an experiment may start. Use fewer values, or set search.algorithm to random, "
                                     "tpe or cmaes with a max_runs.", ("search",) if "search" in self.model_fields_set
                                     else ("params",)))
                elif search.max_runs is None:
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
        problems.extend(self._image_problems())
        if self.datasets:
            problems.extend((("mounts",), f"has the path {key!r}, where the run's datasets: are materialised. "
                             "Mount it elsewhere, e.g. data/.") for key in self.mounts
                            if key == "datasets" or key.startswith("datasets/"))
        assert self.command is not None
        missing = undeclared(self.command, list(self.params))
        problems.extend((("command",), body) for body in missing)
        if not missing:
            samples = {name: _samples(param) for name, param in self.params.items()}
            problems.extend((("command",), body) for body in format_problems(self.command, samples))
        if problems:
            raise bad_many(problems)
        return self

    def _image_problems(self) -> list[Relative]:
        """``build:`` against ``image:``: steps need it as their base; a Containerfile names its own."""
        build = self.build
        if build is None:
            return []
        if build.steps and self.image is None:
            return [(("build", "steps"), "need image: as the base they run on, but image: is not set. Add e.g. "
                     "`image: python:3.11-slim`.")]
        if build.steps and self.image is not None and (is_path_image(self.image) or is_image_id(self.image)):
            return [(("image",), f"is {show(self.image)}, but build.steps build with podman or docker on top of "
                     "image:, which needs a reference as the base. Name the base by reference, e.g. "
                     "`image: python:3.11-slim`.")]
        if build.containerfile is not None and self.image is not None:
            return [(("image",), f"is set to {show(self.image)} together with build.containerfile, but the "
                     "Containerfile's FROM names the base; remove image:.")]
        return []

    @field_serializer("build")
    def _build_config(self, build: BuildSection | None) -> dict[str, Any] | None:
        """Stored as :meth:`runyard.containers.BuildSpec.to_dict` writes it: ``{containerfile, context}`` or ``{steps}``."""
        return None if build is None else build.to_build_spec().to_dict()

    def build_spec(self) -> BuildSpec | None:
        """``build:`` as a :class:`runyard.containers.BuildSpec`, or None when the file has none."""
        return None if self.build is None else self.build.to_build_spec()

    def image_for(self, role: str | None = None) -> str | None:
        """The image a task of ``role`` names: the role's own ``image:`` under ``distributed:``, else
        the top-level ``image:``; None when neither is set.

        With ``build:``, a task that :meth:`uses_build` runs the built image, and the top-level
        ``image:`` is only the base of ``build.steps``.
        """
        if role is not None and self.distributed is not None:
            value = getattr(self.distributed, role, None)
            if isinstance(value, RoleSpec) and value.image is not None:
                return value.image
        return self.image

    def uses_build(self, role: str | None = None) -> bool:
        """True when tasks of ``role`` run the image ``build:`` makes (the role names no image of its own)."""
        if self.build is None:
            return False
        if role is not None and self.distributed is not None:
            value = getattr(self.distributed, role, None)
            if isinstance(value, RoleSpec) and value.image is not None:
                return False
        return True

    def space(self) -> dict[str, Dimension]:
        """The search space: one dimension per param, in the order of the file."""
        return {name: dimension(param) for name, param in self.params.items()}

    def render_command(self, params: Mapping[str, Any]) -> str:
        """The command with every ``{name}`` replaced by the shell-quoted value of that param.

        Args:
            params: a run's params. A fixed param may be left out; its value comes from the spec.

        Raises:
            InvalidInput: a placeholder's param has no value in ``params`` and is not fixed.
        """
        out: list[str] = []
        assert self.command is not None  # filled in from notebook: when not given
        for part in split_command(self.command)[0]:
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
            out.append(shlex.quote(render_value(value, part.format)))
        return "".join(out)

    def task_io(self) -> dict[str, Any]:
        """What the runner does around the command (``RunLaunch.task_io``): output metrics, outputs,
        the stop signal and grace, mounts; ``{}`` when the file sets none of them."""
        return task_io(self)

    def to_config(self) -> dict[str, Any]:
        """The normalised spec as a JSON-able dict: defaults filled in, memory in MB,
        time_limit in seconds, list choices as ``{choice: [...]}``, unset values left out."""
        config = self.model_dump(mode="json", exclude_none=True)
        if self.notebook is not None:
            config.pop("command", None)  # made from notebook: when the spec is read again
        return config



def _samples(param: Any) -> list[Any]:
    """Values a param may take, enough to try a format spec on: the bounds of a range, every choice."""
    dim = dimension(param)
    if isinstance(dim, (FloatRange, IntRange)):
        return [dim.low, dim.high]
    if isinstance(dim, Choice):
        return list(dim.values)
    return [param]
