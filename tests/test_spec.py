"""Tests of runyard.spec: valid files, the error table, render_command, round-trips, docs."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

import runyard.spec as spec_module
from runyard.errors import InvalidInput, SpecError
from runyard.search.base import Choice, Fixed, FloatRange, IntRange
from runyard.spec import (
    ChoiceParam,
    Spec,
    load_spec,
    parse_spec,
    starter_file,
    validate_config,
)

DOCS = Path(__file__).resolve().parents[1] / "docs" / "runyard-yml.md"


def parse(text: str, **kwargs: object) -> Spec:
    return parse_spec(textwrap.dedent(text), **kwargs)  # type: ignore[arg-type]


def errors_of(text: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        parse(text)
    assert info.value.code == "invalid_spec"
    return info.value


# ---------------------------------------------------------------- valid files


def test_minimal_file_gets_defaults() -> None:
    spec = parse(
        """\
        project: digits
        command: python train.py
        """
    )
    assert spec.name == "digits"  # no directory name given: the project's
    assert spec.params == {}
    assert spec.space() == {}
    assert spec.search.algorithm == "grid"
    assert spec.search.max_runs == 1
    assert spec.search.parallel == 1
    assert spec.search.mode == "min"
    assert spec.early_stopping is None
    assert spec.resources.cpus == 1.0
    assert spec.resources.memory_mb == 0
    assert spec.resources.gpus == 0
    assert spec.resources.time_limit_s is None
    assert spec.env == {} and spec.setup == [] and spec.ignore == []
    assert spec.backend == "local"
    assert spec.max_restarts == 0


def test_default_name_comes_from_caller_unless_set() -> None:
    text = "project: digits\ncommand: python train.py\n"
    assert parse_spec(text, default_name="my-dir").name == "my-dir"
    assert parse_spec("name: sweep-1\n" + text, default_name="my-dir").name == "sweep-1"


def test_grid_of_choices() -> None:
    spec = parse(
        """\
        project: digits
        command: python train.py --lr {lr} --act {act}
        params:
          lr: [0.001, 0.01, 0.1]
          act: {choice: [relu, tanh]}
          epochs: 10
        """
    )
    assert spec.space() == {
        "lr": Choice((0.001, 0.01, 0.1)),
        "act": Choice(("relu", "tanh")),
        "epochs": Fixed(10),
    }
    assert spec.search.algorithm == "grid"
    assert spec.search.max_runs == 6
    assert spec.to_config()["params"] == {
        "lr": {"choice": [0.001, 0.01, 0.1]},
        "act": {"choice": ["relu", "tanh"]},
        "epochs": 10,
    }


def test_grid_enumerates_int_ranges() -> None:
    spec = parse(
        """\
        project: digits
        command: python train.py
        params:
          layers: {int: [2, 8], step: 2}
          dropout: [0.0, 0.5]
        search:
          algorithm: grid
          max_runs: 5
        """
    )
    assert spec.space() == {"layers": IntRange(2, 8, step=2), "dropout": Choice((0.0, 0.5))}
    assert spec.search.max_runs == 5


def test_stepped_uniform_range() -> None:
    spec = parse_spec("project: a\ncommand: x\nparams: {d: {uniform: [0.0, 0.5], step: 0.1}}\nsearch: {max_runs: 3}\n")
    assert spec.space() == {"d": FloatRange(0.0, 0.5, step=0.1)}
    assert spec.search.algorithm == "random"
    full = parse_spec("project: a\ncommand: x\nparams: {n: {int: [2, 8], step: 2}, d: [1, 2]}\nsearch: {algorithm: grid}\n")
    assert full.search.max_runs == 8  # 4 x 2 combinations


def test_a_range_defaults_to_random() -> None:
    spec = parse(
        """\
        project: digits
        command: python train.py --lr {lr}
        params:
          lr: {loguniform: [1e-5, 1e-1]}
          batch: {int: [16, 256], log: true}
        search:
          max_runs: 12
          seed: 3
        """
    )
    assert spec.search.algorithm == "random"
    assert spec.search.max_runs == 12
    assert spec.search.seed == 3
    assert spec.space() == {
        "lr": FloatRange(1e-5, 1e-1, log=True),
        "batch": IntRange(16, 256, step=1, log=True),
    }


def test_tpe_with_median_early_stopping() -> None:
    spec = parse(
        """\
        project: digits
        command: python train.py --lr {lr} --depth {depth}
        params:
          lr: {uniform: [0.01, 0.3]}
          depth: {int: [2, 6]}
        search:
          algorithm: tpe
          max_runs: 40
          parallel: 4
          metric: val_accuracy
          mode: max
        early_stopping:
          algorithm: median
          n_warmup_steps: 3
        """
    )
    assert spec.search.metric == "val_accuracy"
    assert spec.search.mode == "max"
    stopping = spec.early_stopping
    assert stopping is not None
    assert stopping.model_dump() == {
        "algorithm": "median",
        "grace_period_s": 30,
        "n_startup_runs": 5,
        "n_warmup_steps": 3,
        "interval_steps": 1,
    }


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (
            "{algorithm: asha}",
            {
                "algorithm": "asha",
                "grace_period_s": 30,
                "min_resource": 1,
                "reduction_factor": 3,
                "min_early_stopping_rate": 0,
            },
        ),
        (
            "{algorithm: hyperband, max_resource: 81, grace_period_s: 5}",
            {
                "algorithm": "hyperband",
                "grace_period_s": 5,
                "min_resource": 1,
                "max_resource": 81,
                "reduction_factor": 3,
            },
        ),
    ],
)
def test_early_stopping_algorithms(settings: str, expected: dict[str, object]) -> None:
    text = "project: a\ncommand: x\nsearch: {metric: loss}\nearly_stopping: " + settings + "\n"
    stopping = parse_spec(text).early_stopping
    assert stopping is not None
    assert stopping.model_dump() == expected


def test_cmaes_with_a_range() -> None:
    spec = parse(
        """\
        project: a
        command: x
        params: {x: {uniform: [-5, 5]}, y: {uniform: [-5, 5]}}
        search: {algorithm: cmaes, max_runs: 30, metric: f}
        """
    )
    assert spec.search.algorithm == "cmaes"


@pytest.mark.parametrize(
    ("memory", "mb"),
    [("512M", 512), ("4G", 4096), ("1.5GiB", 1536), ("2gb", 2048), ("1T", 1024**2), ("100K", 1), (300, 300), ("64", 64)],
)
def test_memory_sizes(memory: object, mb: int) -> None:
    spec = parse_spec(f"project: a\ncommand: x\nresources:\n  memory: {json.dumps(memory)}\n")
    assert spec.resources.memory_mb == mb


@pytest.mark.parametrize(
    ("limit", "seconds"),
    [
        ("90s", 90),
        ("30m", 1800),
        ("2h", 7200),
        ("1h30m", 5400),
        ("1h 30m", 5400),
        ("01:30:00", 5400),
        ("1-00:00:00", 86400),
        ("45:00", 2700),
        ("1d", 86400),
        (600, 600),
    ],
)
def test_time_limits(limit: object, seconds: int) -> None:
    spec = parse_spec(f"project: a\ncommand: x\nresources:\n  time_limit: {limit}\n")
    assert spec.resources.time_limit_s == seconds


def test_env_setup_ignore_and_backend() -> None:
    spec = parse(
        """\
        project: a
        command: x
        env:
          DEBUG: true
          WORKERS: 4
          RATE: 0.5
          NAME: "model a"
          EMPTY: ""
        setup: pip install -r requirements.txt
        ignore: data/
        backend: gpu-cluster
        max_restarts: 3
        """
    )
    assert spec.env == {"DEBUG": "true", "WORKERS": "4", "RATE": "0.5", "NAME": "model a", "EMPTY": ""}
    assert spec.setup == ["pip install -r requirements.txt"]
    assert spec.ignore == ["data/"]
    assert spec.backend == "gpu-cluster"
    assert spec.max_restarts == 3


def test_empty_section_means_defaults() -> None:
    spec = parse(
        """\
        project: a
        command: x
        description:
        search:
        resources:
          memory:
        env:
        """
    )
    assert spec.description is None
    assert spec.search.algorithm == "grid"
    assert spec.resources.memory_mb == 0
    assert spec.env == {}


def test_yaml_12_scalars() -> None:
    spec = parse(
        """\
        project: a
        command: x
        params:
          lr: [1e-3, 2E-2]
          answer: yes
          count: 010
          day: 2024-01-01
        resources:
          time_limit: 01:30:00
        """
    )
    assert spec.space()["lr"] == Choice((0.001, 0.02))
    assert spec.space()["answer"] == Fixed("yes")
    assert spec.space()["count"] == Fixed(10)
    assert spec.space()["day"] == Fixed("2024-01-01")
    assert spec.resources.time_limit_s == 5400


# ----------------------------------------------------------- config round-trip


ROUND_TRIP = """\
name: full
project: vision
description: everything set
command: python train.py --lr {lr} --layers {layers} --act {act}
params:
  lr: {loguniform: [0.00001, 0.1]}
  layers: {int: [1, 9], step: 2}
  act: [relu, gelu]
  wd: {uniform: [0, 0.1], step: 0.01}
  flag: true
search: {algorithm: tpe, max_runs: 50, parallel: 4, metric: val_acc, mode: max, seed: 7}
early_stopping: {algorithm: hyperband, max_resource: 27}
resources: {cpus: 2.5, memory: 1.5GiB, gpus: 1, time_limit: 1h30m}
env: {DEBUG: true, N: 3}
setup: [pip install -e ., python prepare.py]
ignore: [data/, "*.ckpt", "!keep.ckpt"]
backend: slurm
max_restarts: 2
"""


def test_to_config_is_json_and_round_trips() -> None:
    spec = parse_spec(ROUND_TRIP)
    config = spec.to_config()
    assert json.loads(json.dumps(config)) == config
    assert config["params"]["act"] == {"choice": ["relu", "gelu"]}
    assert config["resources"] == {"cpus": 2.5, "memory": 1536, "gpus": 1, "time_limit": 5400}
    assert config["env"] == {"DEBUG": "true", "N": "3"}
    again = Spec.model_validate(json.loads(json.dumps(config)))
    assert again == spec
    assert again.to_config() == config
    assert validate_config(config) == spec
    assert again.space() == spec.space()


def test_round_trip_keeps_filled_in_defaults() -> None:
    spec = parse_spec("project: a\ncommand: x\nparams: {a: [1, 2, 3]}\n", default_name="dir")
    config = spec.to_config()
    assert config["name"] == "dir"
    assert config["search"]["algorithm"] == "grid"
    assert config["search"]["max_runs"] == 3
    assert Spec.model_validate(config) == spec


def test_validate_config_reports_without_line_numbers() -> None:
    config = parse_spec(ROUND_TRIP).to_config()
    config["resources"]["gpus"] = -1
    config["colour"] = "blue"
    with pytest.raises(SpecError) as info:
        validate_config(config, source="experiment 7")
    lines = info.value.message.splitlines()
    assert len(lines) == 2
    assert any(line.startswith("experiment 7: resources.gpus must be an integer ≥ 0, but got -1.") for line in lines)
    assert any(line.startswith("experiment 7: unknown key colour.") for line in lines)


# --------------------------------------------------------------- the command


def test_render_command_quotes_values() -> None:
    spec = parse(
        """\
        project: a
        command: python train.py --lr {lr} --name {name} --json '{{"a":1}}' --on {on} --n {n}
        params:
          lr: {loguniform: [0.00001, 0.1]}
          name: [plain, "two words", "it's; rm -rf /"]
          on: [true, false]
          n: 3
        search: {max_runs: 5}
        """
    )
    rendered = spec.render_command({"lr": 1e-05, "name": "it's; rm -rf /", "on": True})
    assert rendered == (
        "python train.py --lr 1e-05 --name 'it'\"'\"'s; rm -rf /' "
        """--json '{"a":1}' --on true --n 3"""
    )
    assert spec.render_command({"lr": 0.1, "name": "two words", "on": False, "n": 4}) == (
        """python train.py --lr 0.1 --name 'two words' --json '{"a":1}' --on false --n 4"""
    )


def test_render_command_converts_numpy_scalars() -> None:
    np = pytest.importorskip("numpy")
    spec = parse_spec("project: a\ncommand: run {x} {k}\nparams: {x: [0.5], k: [1]}\n")
    assert spec.render_command({"x": np.float64(0.1), "k": np.int64(7)}) == "run 0.1 7"


def test_render_command_without_a_value_raises() -> None:
    spec = parse_spec("project: a\ncommand: run {x}\nparams: {x: [1, 2]}\n")
    with pytest.raises(InvalidInput, match=r"no value for 'x'"):
        spec.render_command({})


def test_unknown_placeholder_is_an_error() -> None:
    error = errors_of(
        """\
        project: a
        params:
          learning_rate: [0.1]
        command: python train.py --lr {learning_rat}
        """
    )
    assert error.message == (
        "runyard.yml:4: command uses {learning_rat}, but no param named 'learning_rat' is "
        "declared (declared: learning_rate). Did you mean 'learning_rate'? Declare it under "
        "params, or write {{learning_rat}} for literal braces."
    )


def test_escaped_braces_are_not_placeholders() -> None:
    spec = parse_spec("project: a\ncommand: echo ${{HOME}} {{x}}\n")
    assert spec.render_command({}) == "echo ${HOME} {x}"


# ------------------------------------------------------------ the error table

# (case id, yml text, field path named in the message, message fragment, line)
INVALID = [
    ("project-missing", "command: x\n", "project", "is required. Add `project: <name>`", 1),
    ("command-missing", "project: a\n", "command", "is required", 1),
    ("command-empty", "project: a\ncommand:\n", "command", "must be a non-empty shell command, but it is empty", 2),
    ("project-bad", "project: My Project\ncommand: x\n", "project", "but got 'My Project'. Use e.g. `project: my-project`", 1),
    ("project-too-long", f"project: {'a' * 65}\ncommand: x\n", "project", "must be 1–64 lowercase letters", 1),
    ("project-int", "project: 42\ncommand: x\n", "project", "must be 1–64 lowercase letters, digits, '-' or '_', but got 42", 1),
    ("name-empty", "project: a\nname: ''\ncommand: x\n", "name", "must be a non-empty string", 2),
    ("description-number", "project: a\ncommand: x\ndescription: 42\n", "description", "must be a string, but got 42", 3),
    ("unknown-top", "project: a\ncomand: x\ncommand: y\n", "comand",
     "Valid keys at the top level: name, project, description, command, params,", 2),
    ("unknown-top-dym", "project: a\ncommand: y\nparmas: {}\n", "parmas", "Did you mean 'params'?", 3),
    ("distributed-role-typo", "project: a\ncommand: x\ndistributed: {framework: pytorch, workers: 2}\n", "distributed.workers",
     "Valid keys in distributed: framework, master, worker, chief, ps, head, job. Did you mean 'worker'?", 3),
    ("distributed-role-at-top", "project: a\ncommand: x\nworker: 2\n", "worker", "'worker' belongs under distributed:", 3),
    ("key-in-wrong-section", "project: a\ncommand: x\nmax_runs: 3\n", "max_runs", "'max_runs' belongs under search:", 3),
    ("unknown-search", "project: a\ncommand: x\nsearch:\n  max_run: 3\n", "search.max_run",
     "Valid keys in search: algorithm, max_runs, parallel, metric, mode, seed. Did you mean 'max_runs'?", 4),
    ("max-runs-zero", "project: a\ncommand: x\nsearch:\n  algorithm: random\n  parallel: 2\n  max_runs: 0\n", "search.max_runs",
     "must be an integer ≥ 1, but got 0. Set it to the number of runs the search may start.", 6),
    ("max-runs-string", "project: a\ncommand: x\nsearch:\n  max_runs: '10'\n", "search.max_runs",
     "must be an integer ≥ 1, but got '10'", 4),
    ("max-runs-required", "project: a\ncommand: x {lr}\nparams:\n  lr: {uniform: [0, 1]}\n", "search.max_runs",
     "is required for algorithm random (the default, because params.lr is a range)", 4),
    ("max-runs-over-grid", "project: a\ncommand: x\nparams: {a: [1, 2]}\nsearch:\n  max_runs: 5\n", "search.max_runs",
     "is 5, but the grid has only 2 combinations", 5),
    ("parallel-zero", "project: a\ncommand: x\nsearch:\n  parallel: 0\n", "search.parallel", "must be an integer ≥ 1, but got 0", 4),
    ("algorithm-typo", "project: a\ncommand: x\nsearch:\n  algorithm: grdi\n", "search.algorithm",
     "must be one of grid, random, tpe, cmaes, but got 'grdi'. Did you mean 'grid'?", 4),
    ("mode-bad", "project: a\ncommand: x\nsearch:\n  mode: maximize\n", "search.mode", "must be min or max, but got 'maximize'", 4),
    ("seed-negative", "project: a\ncommand: x\nsearch: {seed: -1}\n", "search.seed",
     "must be an integer from 0 to 4294967295, but got -1", 3),
    ("search-not-mapping", "project: a\ncommand: x\nsearch: [grid]\n", "search", "must be a mapping with keys algorithm, max_runs", 3),
    ("grid-float-range", "project: a\ncommand: x\nsearch:\n  algorithm: grid\nparams:\n  lr: {uniform: [0, 1]}\n", "params.lr",
     "is a float range, which grid search cannot enumerate. Use a list of values", 6),
    ("grid-int-range-too-big", "project: a\ncommand: x\nsearch:\n  algorithm: grid\nparams:\n  seed: {int: [0, 5000]}\n", "params.seed",
     "is an integer range of 5001 values, more than a grid expands (1000)", 6),
    ("tpe-needs-metric", "project: a\ncommand: x\nparams: {lr: {uniform: [0, 1]}}\nsearch:\n  algorithm: tpe\n  max_runs: 9\n",
     "search.metric", "is required by algorithm tpe", 4),
    ("early-stopping-needs-metric", "project: a\ncommand: x\nearly_stopping:\n  algorithm: asha\n", "search.metric",
     "is required by early_stopping", 3),
    ("cmaes-needs-range", "project: a\ncommand: x\nparams: {a: [1, 2]}\nsearch:\n  algorithm: cmaes\n  max_runs: 4\n  metric: m\n",
     "search.algorithm", "needs at least one numeric range param", 5),
    ("param-kind-typo", "project: a\ncommand: x\nparams:\n  lr: {unifrom: [0, 1]}\n", "params.lr",
     "but has the key 'unifrom'. Did you mean 'uniform'?", 4),
    ("param-two-kinds", "project: a\ncommand: x\nparams:\n  lr: {uniform: [0, 1], int: [0, 1]}\n", "params.lr",
     "names more than one distribution (uniform, int)", 4),
    ("param-empty", "project: a\ncommand: x\nparams:\n  lr:\n", "params.lr", "is empty. Give a value", 4),
    ("param-name", "project: a\ncommand: x\nparams:\n  learning-rate: [1]\n", "params key 'learning-rate'",
     "must be a name of letters, digits and '_'", 4),
    ("uniform-one-bound", "project: a\ncommand: x\nparams:\n  lr: {uniform: [1]}\n", "params.lr.uniform",
     "must be a list of two numbers [low, high], but got [1]", 4),
    ("uniform-reversed", "project: a\ncommand: x\nparams:\n  lr: {uniform: [2, 1]}\n", "params.lr.uniform",
     "must have low < high, but got [2, 1]. Swap", 4),
    ("uniform-bound-type", "project: a\ncommand: x\nparams:\n  lr:\n    uniform:\n      - 0\n      - high\n", "params.lr.uniform[1]",
     "must be a number, but got 'high'", 7),
    ("uniform-step-misfit", "project: a\ncommand: x\nparams:\n  lr: {uniform: [0, 1], step: 0.3}\n", "params.lr.step",
     "is not a multiple of it. Set high to 0.9 or 1.2", 4),
    ("uniform-log", "project: a\ncommand: x\nparams:\n  lr: {uniform: [0, 1], log: true}\n", "params.lr.log",
     "'log' is a setting of int only", 4),
    ("loguniform-zero", "project: a\ncommand: x\nparams:\n  lr: {loguniform: [0, 1]}\n", "params.lr.loguniform", "must have low > 0", 4),
    ("loguniform-step", "project: a\ncommand: x\nparams:\n  lr: {loguniform: [0.1, 1], step: 0.1}\n", "params.lr.step",
     "cannot be used with loguniform", 4),
    ("int-float-bound", "project: a\ncommand: x\nparams:\n  n: {int: [1.5, 3]}\n", "params.n.int[0]", "must be an integer, but got 1.5", 4),
    ("int-step-misfit", "project: a\ncommand: x\nparams:\n  n: {int: [1, 10], step: 2}\n", "params.n.step", "Set high to 9 or 11", 4),
    ("int-log-zero", "project: a\ncommand: x\nparams:\n  n: {int: [0, 10], log: true}\n", "params.n.int",
     "must have low ≥ 1 with `log: true`", 4),
    ("choice-empty", "project: a\ncommand: x\nparams:\n  act: []\n", "params.act", "must be a non-empty list of values, but got []", 4),
    ("choice-duplicate", "project: a\ncommand: x\nparams:\n  act:\n    - relu\n    - relu\n", "params.act[1]",
     "repeats the value 'relu'", 6),
    ("choice-nested", "project: a\ncommand: x\nparams:\n  act: {choice: [[1, 2]]}\n", "params.act.choice[0]",
     "must be a string, number or boolean, but got [1, 2]", 4),
    ("placeholder-unknown", "project: a\ncommand: python t.py {lr}\n", "command",
     "uses {lr}, but no param named 'lr' is declared (declared: none)", 2),
    ("lone-brace", "project: a\ncommand: awk '{print $1}'\n", "command", "has '{print $1}' at character 6, which is not a placeholder", 2),
    ("early-stopping-typo", "project: a\ncommand: x\nsearch: {metric: m}\nearly_stopping:\n  algorithm: mdian\n",
     "early_stopping.algorithm", "must be one of median, asha, hyperband, but got 'mdian'. Did you mean 'median'?", 5),
    ("early-stopping-no-algorithm", "project: a\ncommand: x\nsearch: {metric: m}\nearly_stopping:\n  n_startup_runs: 3\n",
     "early_stopping.algorithm", "is required: one of median, asha, hyperband", 4),
    ("early-stopping-foreign-setting",
     "project: a\ncommand: x\nsearch: {metric: m}\nearly_stopping:\n  algorithm: median\n  min_resource: 2\n",
     "early_stopping.min_resource", "'min_resource' is a setting of asha, hyperband only", 6),
    ("hyperband-needs-max", "project: a\ncommand: x\nsearch: {metric: m}\nearly_stopping:\n  algorithm: hyperband\n",
     "early_stopping.max_resource", "is required. Hyperband needs it", 4),
    ("hyperband-max-small",
     "project: a\ncommand: x\nsearch: {metric: m}\nearly_stopping:\n  algorithm: hyperband\n  min_resource: 5\n  max_resource: 5\n",
     "early_stopping.max_resource", "must be greater than min_resource (5), but got 5", 7),
    ("asha-reduction", "project: a\ncommand: x\nsearch: {metric: m}\nearly_stopping:\n  algorithm: asha\n  reduction_factor: 1\n",
     "early_stopping.reduction_factor", "must be an integer ≥ 2, but got 1", 6),
    ("grace-negative", "project: a\ncommand: x\nsearch: {metric: m}\nearly_stopping:\n  algorithm: median\n  grace_period_s: -5\n",
     "early_stopping.grace_period_s", "must be an integer ≥ 0 (seconds), but got -5", 6),
    ("cpus-zero", "project: a\ncommand: x\nresources:\n  cpus: 0\n", "resources.cpus", "must be a number > 0, but got 0", 4),
    ("gpus-negative", "project: a\ncommand: x\nresources:\n  gpus: -1\n", "resources.gpus",
     "must be an integer ≥ 0, but got -1. Set it to 0 for CPU-only runs.", 4),
    ("memory-unit", "project: a\ncommand: x\nresources:\n  memory: 4X\n", "resources.memory",
     "must be a size like 512M, 4G or 1.5GiB, or a whole number of MB, but got '4X'", 4),
    ("memory-float", "project: a\ncommand: x\nresources:\n  memory: 1.5\n", "resources.memory", "Write the unit, e.g. `memory: 1.5G`", 4),
    ("time-limit-bad", "project: a\ncommand: x\nresources:\n  time_limit: 1h30\n", "resources.time_limit",
     "must be a duration like 90s, 30m, 2h, 1h30m or 01:30:00", 4),
    ("time-limit-zero", "project: a\ncommand: x\nresources:\n  time_limit: 0s\n", "resources.time_limit",
     "must be longer than 0 seconds", 4),
    ("env-reserved", "project: a\ncommand: x\nenv:\n  RUNYARD_RUN_ID: x\n", "env key 'RUNYARD_RUN_ID'", "is reserved", 4),
    ("env-bad-name", "project: a\ncommand: x\nenv:\n  2FAST: x\n", "env key '2FAST'", "must be a variable name", 4),
    ("env-list-value", "project: a\ncommand: x\nenv:\n  PATHS: [a, b]\n", "env.PATHS",
     "must be a string, number or boolean, but got ['a', 'b']", 4),
    ("env-empty-value", "project: a\ncommand: x\nenv:\n  TOKEN:\n", "env.TOKEN", 'is empty. Write `NAME: ""`', 4),
    ("setup-blank", "project: a\ncommand: x\nsetup:\n  - pip install .\n  - ' '\n", "setup[1]", "must be a non-empty shell command", 5),
    ("setup-mapping", "project: a\ncommand: x\nsetup: {pip: x}\n", "setup", "must be a shell command or a list of them", 3),
    ("ignore-bad-pattern", "project: a\ncommand: x\nignore:\n  - data/\n  - '!'\n", "ignore[1]", "is not a valid gitignore pattern", 5),
    ("backend-spaces", "project: a\ncommand: x\nbackend: my cluster\n", "backend", "must be a backend name", 3),
    ("max-restarts-negative", "project: a\ncommand: x\nmax_restarts: -1\n", "max_restarts", "must be an integer ≥ 0, but got -1", 3),
    ("max-restarts-bool", "project: a\ncommand: x\nmax_restarts: true\n", "max_restarts", "must be an integer ≥ 0, but got true", 3),
    ("duplicate-key", "project: a\ncommand: x\nsearch:\n  parallel: 2\n  parallel: 3\n", "search.parallel",
     "is set twice (first at line 4)", 5),
    ("not-a-mapping", "- project: a\n", "", "the file must be a mapping of keys such as `project:` and `command:`, but it is a list", 1),
    ("empty-file", "# nothing yet\n", "", "the file is empty", 1),
]


@pytest.mark.parametrize(("text", "path", "fragment", "line"), [case[1:] for case in INVALID], ids=[case[0] for case in INVALID])
def test_invalid_file(text: str, path: str, fragment: str, line: int) -> None:
    error = errors_of(text)
    prefix = f"runyard.yml:{line}: "
    matching = [m for m in error.message.splitlines() if m.startswith(prefix) and path in m and fragment in m]
    assert matching, f"expected a line {prefix}...{path}...{fragment}, got:\n{error.message}"
    assert error.hint and "docs/runyard-yml.md" in error.hint or "runyard init" in (error.hint or "")
    assert "Input should" not in error.message  # never pydantic's own text
    assert "pydantic" not in error.message


def test_invalid_table_is_large_and_distinct() -> None:
    assert len(INVALID) >= 30
    assert len({case[1] for case in INVALID}) == len(INVALID)
    assert len({case[0] for case in INVALID}) == len(INVALID)


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("project: a\ncommand: x\nsearch:\n\tmax_runs: 3\n", "4:1", "Indent with spaces"),
        ("project: a\ncommand: python x.py --opt a: b\n", "2:29", "quote the value"),
        ("project: a\ncommand: \"python x.py\n", "3:1", "Close the quote"),
        ("project: a\nparams: {a: [1, 2}\ncommand: x\n", "2:18", "expected ',' or ']'"),
        ("project: a\n---\ncommand: x\n", "2:1", "remove the '---' separators"),
    ],
)
def test_invalid_yaml_names_line_and_column(text: str, position: str, fragment: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(text)
    message = info.value.message
    assert message.startswith(f"runyard.yml:{position}: invalid YAML: ")
    assert fragment in message
    assert "Traceback" not in str(info.value)


def test_all_errors_are_reported_in_line_order() -> None:
    error = errors_of(
        """\
        project: Bad Name
        command: python t.py {x}
        search:
          parallel: 0
        resources:
          gpus: -2
        colour: blue
        """
    )
    lines = error.message.splitlines()
    assert [line.split(":")[1] for line in lines] == ["1", "2", "4", "6", "7"]
    assert lines[1].startswith("runyard.yml:2: command uses {x}, but no param named 'x' is declared")
    assert lines[4].startswith("runyard.yml:7: unknown key colour.")


def test_source_name_is_used() -> None:
    with pytest.raises(SpecError, match=r"^examples/x/runyard\.yml:2: command must be"):
        parse_spec("project: a\ncommand: ''\n", source="examples/x/runyard.yml")


# ------------------------------------------------------------- files and starter


def test_load_spec_from_directory_and_file(tmp_path: Path) -> None:
    project = tmp_path / "digits-sweep"
    project.mkdir()
    (project / "runyard.yml").write_text("project: digits\ncommand: python train.py\n")
    assert load_spec(project).name == "digits-sweep"
    assert load_spec(str(project / "runyard.yml")).project == "digits"


def test_load_spec_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such file") as info:
        load_spec(tmp_path)
    assert "runyard init" in (info.value.hint or "")
    (tmp_path / "runyard.yaml").write_text("project: a\ncommand: x\n")
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path)
    assert info.value.hint == "Rename runyard.yaml to runyard.yml."
    (tmp_path / "runyard.yml").write_text("project: a\ncommand: x\nsearch:\n  parallel: 0\n")
    with pytest.raises(SpecError, match=re.escape(f"{tmp_path / 'runyard.yml'}:4: search.parallel")):
        load_spec(tmp_path)


def test_starter_file_parses() -> None:
    text = starter_file()
    spec = parse_spec(text)
    assert spec.project == "my-project"
    assert spec.search.algorithm == "random"
    assert "{lr}" in spec.command
    assert parse_spec(starter_file("digits")).project == "digits"
    with pytest.raises(SpecError, match="lowercase"):
        starter_file("My Project")


def test_starter_file_parses_with_its_comments_removed() -> None:
    """Uncommenting the optional blocks gives a valid file too."""
    uncommented = re.sub(r"(?m)^# (?=(  |[a-z_]+:))", "", starter_file())
    uncommented = re.sub(r"(?m)^(\s+)# (?=[a-z_]+:)", r"\1", uncommented)
    spec = parse_spec(uncommented)
    assert spec.early_stopping is not None
    assert spec.env == {"PYTHONUNBUFFERED": "1"}
    assert spec.setup == ["pip install -r requirements.txt"]
    assert spec.ignore == ["data/", "*.ckpt"]
    assert spec.resources.time_limit_s == 3600


def test_choice_param_model_is_the_list_form() -> None:
    spec = parse_spec("project: a\ncommand: x\nparams: {a: [1, 2]}\n")
    assert spec.params["a"] == ChoiceParam(choice=[1, 2])


def test_exported_names_exist() -> None:
    for name in spec_module.__all__:
        assert hasattr(spec_module, name), name


def _doc_blocks() -> list[tuple[str, str]]:
    """(language, text) of every fenced block of docs/runyard-yml.md."""
    return re.findall(r"```(\w*)\n(.*?)```", DOCS.read_text(encoding="utf-8"), flags=re.S)


def test_docs_examples_parse() -> None:
    examples = [
        text
        for lang, text in _doc_blocks()
        if lang == "yaml" and re.search(r"(?m)^project:", text) and not text.startswith("# invalid")
    ]
    assert len(examples) >= 4
    for example in examples:
        parse_spec(example)


def test_docs_error_example_is_what_runyard_prints() -> None:
    blocks = _doc_blocks()
    index = next(i for i, (lang, text) in enumerate(blocks) if text.startswith("# invalid"))
    with pytest.raises(SpecError) as info:
        parse_spec(blocks[index][1])
    assert str(info.value) + "\n" == blocks[index + 1][1]
    fixed = blocks[index][1].replace("My Project", "my-project").replace("{lrr}", "{lr}")
    fixed = fixed.replace("max_runs: 0", "max_runs: 1").replace("paralel", "parallel")
    with pytest.raises(SpecError) as info:
        parse_spec(fixed)
    assert info.value.message + "\n" == blocks[index + 2][1]


@pytest.mark.parametrize("project", ["_lead", "-lead"])
def test_project_name_follows_the_store_rule(project: str) -> None:
    """The spec refuses what the store refuses: a project name starts with a letter or digit."""
    from runyard.names import project_name_problem

    assert project_name_problem(project) is not None
    error = errors_of(f"project: '{project}'\ncommand: x\n")
    assert f"runyard.yml:1: project must be 1–64 lowercase letters, digits, '-' or '_', but got {project!r}" in error.message
    assert "starts with a letter or digit. Use e.g. `project: lead`." in error.message
    with pytest.raises(SpecError, match="starting with a letter or digit"):
        starter_file(project)


def test_experiment_name_follows_the_names_rule() -> None:
    # NUL is refused in every string of the file, before the name's own rule.
    error = errors_of("project: a\nname: \"a\\x00b\"\ncommand: x\n")
    assert "runyard.yml:2: name holds a NUL character at character 1, which databases cannot store." in error.message
    error = errors_of("project: a\nname: \"a\\u202eb\"\ncommand: x\n")
    assert "runyard.yml:2: name must be a non-empty string of at most 128 characters" in error.message
