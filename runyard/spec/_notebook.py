"""``notebook:`` and ``tensorboard:`` in runyard.yml: code brought as it is.

``notebook: train.ipynb`` stands in for ``command:``: each run executes the notebook with
papermill (``python -m runyard.notebook``, the same command on every backend), its params
injected into the cell tagged ``parameters``. ``tensorboard: {logdir: logs/}`` has the runner
read the event files the run writes under ``logdir`` and log their scalars as the run's metrics;
``serve: true`` also keeps them as artifacts for ``runyard tensorboard``.
"""

from __future__ import annotations

import shlex
from typing import Annotated

from pydantic import AfterValidator

from runyard.spec._rules import Model, Rule, bad, show

__all__ = ["NOTEBOOK_MODULE", "TensorboardSpec", "check_notebook", "check_workdir_path", "notebook_command"]

NOTEBOOK_MODULE = "runyard.notebook"
_MAX_PATH = 1024


def check_workdir_path(value: str, *, what: str, example: str) -> str:
    """A relative path that stays inside the run's working directory (``/`` separated, no ``..``)."""
    text = value.strip()
    if not text or len(text) > _MAX_PATH or any(ord(c) < 32 or c == "\x7f" for c in text):
        raise bad(f"must be a path of 1–{_MAX_PATH} printable characters, but got {show(value)}. "
                  f"Write the {what} relative to the experiment's directory, e.g. `{example}`.")
    parts = text.replace("\\", "/").split("/")
    if text.startswith(("/", "~")) or ".." in parts:
        raise bad(f"is {show(value)}, which leaves the run's working directory. Write the {what} relative "
                  f"to the experiment's directory, inside it, e.g. `{example}`.")
    return text


def check_notebook(value: str) -> str:
    path = check_workdir_path(value, what="notebook", example="notebook: train.ipynb")
    if not path.endswith(".ipynb"):
        raise bad(f"is {show(value)}, but a notebook is a .ipynb file. Name the notebook, e.g. "
                  "`notebook: train.ipynb`, or run a script with `command:` instead.")
    return path


def _check_logdir(value: str) -> str:
    return check_workdir_path(value, what="event file directory", example="logdir: logs/")


def notebook_command(path: str) -> str:
    """The command a notebook run executes (params come from ``RUNYARD_PARAMS``, as for any run)."""
    return f"python -m {NOTEBOOK_MODULE} {shlex.quote(path)}"


class TensorboardSpec(Model):
    """``tensorboard:``: where the run writes TensorBoard event files, and whether to keep them."""

    logdir: Annotated[
        str,
        AfterValidator(_check_logdir),
        Rule(
            "a directory relative to the experiment's directory",
            "Name the directory your code gives its SummaryWriter, e.g. `logdir: logs/`.",
            missing="Add the directory your code writes event files to, e.g. `tensorboard: {logdir: logs/}`.",
        ),
    ]
    serve: Annotated[
        bool,
        Rule("true or false", "Set `serve: true` to keep the event files for `runyard tensorboard`."),
    ] = False
