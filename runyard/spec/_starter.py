"""The commented starter runyard.yml that `runyard init` writes."""

from __future__ import annotations

import runyard.names as names
from runyard.errors import SpecError

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

# The container image each task runs in (or build: one from a Containerfile).
# image: python:3.11-slim

# Shell commands run before the command, in the same directory.
# setup:
#   - pip install -r requirements.txt

# Files left out of the code snapshot, as in .gitignore.
# ignore:
#   - data/
#   - "*.ckpt"

# Code that does not import runyard: metrics read from what it prints, files kept when each run ends.
# output_metrics:
#   - 'val_loss[=:]\\s*(?P<val_loss>[\\d.eE+-]+)'   # or {{preset: key=value}}, key: value, keras, json
# outputs: [model.pt, "checkpoints/**"]
# mounts: {{data: /shared/datasets/mine}}            # data outside the snapshot, linked in
"""


def starter_file(project: str = "my-project") -> str:
    """The commented ``runyard.yml`` that ``runyard init`` writes; it parses as it is.

    Raises:
        SpecError: ``project`` is not a valid project name.
    """
    if names.project_name_problem(project) is not None:
        raise SpecError(
            f"project must be {names.PROJECT_NAME_RULE}, but got {project!r}.",
            f"Use e.g. {names.suggest_project_name(project)}.",
        )
    return _STARTER.format(project=project)
