"""What every integration shares: importing its framework, the run it logs to, params and metrics made loggable."""

from __future__ import annotations

import enum
import importlib
import math
import os
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

import runyard.names as names
from runyard.errors import RunyardError
from runyard.sdk import Run, active_run, init
from runyard.sdk._report import Reporter

__all__ = ["MissingFramework", "RunRef", "flatten_params", "numeric_metrics", "require"]


class MissingFramework(RunyardError, ImportError):
    """An integration's framework is not installed; the hint names the extra that installs it."""

    code = "missing_framework"


def require(module: str, extra: str, integration: str) -> ModuleType:
    """Import ``module`` (a framework) for ``integration``, or raise :class:`MissingFramework`.

    Only a missing ``module`` itself is turned into MissingFramework; an installed framework
    that fails to import raises its own error.
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        top = module.partition(".")[0]
        if e.name is not None and e.name != module and e.name != top and not module.startswith(e.name + "."):
            raise
        raise MissingFramework(
            f"{integration} needs {module!r}, which is not installed in this Python ({e}).",
            f"pip install 'runyard[{extra}]'") from e


class RunRef:
    """The run an integration logs to, found when it first logs (not when the integration is made).

    The run given, else the active run (the launched run, or one ``runyard.init()`` started),
    else a new ad-hoc run (``project``, ``name``), which becomes the active run: like any
    run the SDK starts by itself, it ends with ``runyard.finish()`` or with the process.
    """

    def __init__(self, run: Run | None, project: str | None, name: str, integration: str) -> None:
        if run is not None and not isinstance(run, Run):
            raise TypeError(f"{integration}: run= takes a runyard.Run (from runyard.init()), but got {type(run).__name__}.")
        self._given = run
        self._project = project
        self._name = name
        self._run: Run | None = None
        self.reporter = Reporter()
        self.integration = integration

    @property
    def run(self) -> Run:
        run = self._run
        if run is None or run._finished:
            run = self._given or active_run() or init(project=self._project, name=self._name)
            self._run = run
        return run

    def peek(self) -> Run | None:
        """The run logged to so far, or the one that would be, without starting one."""
        run = self._run
        if run is not None and not run._finished:
            return run
        return self._given or active_run()

    def should_stop(self) -> bool:
        """True once the run was stopped on the server (pruned or canceled); never starts a run."""
        run = self.peek()
        return run is not None and run.should_stop()

    def log(self, metrics: Mapping[str, Any], step: int | None) -> None:
        """Queue metric points, unless the run was stopped on the server.

        A pruned run's runner stops the code at its next point (docs/runyard-yml.md, stop_signal):
        the steps a framework still takes to stop (the rest of a batch, its end-of-training
        summary) log nothing, so the framework ends by itself and the model is still uploaded.
        """
        if metrics and not self.should_stop():
            self.run.log(metrics, step)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record ``params`` (flattened), skipping bad names or values, and those the run already has.

        A run's param cannot change; the run's own value (a launched run's ``RUNYARD_PARAMS``)
        is kept and the other reported once.
        """
        run = self.run
        have = run.params
        new: dict[str, Any] = {}
        for key, value in flatten_params(params).items():
            problem = names.key_problem(key)
            if problem is None:
                found = names.value_problem(value)
                problem = None if found is None else f"its value {found[1]}"
            if problem is not None:
                self.reporter.once(("param", key), f"{self.integration}: param {key[:80]!r} is not recorded: {problem}.")
                continue
            if key in have:
                if have[key] != value and not _same_number(have[key], value):
                    self.reporter.once(("param", key), (
                        f"{self.integration}: param {key!r} is {value!r} in training but {have[key]!r} in run {run.id}; "
                        f"the run keeps {have[key]!r} (a param cannot change once recorded)."))
                continue
            new[key] = value
        if new:
            run.log_params(new)

    def log_artifact(self, path: str | os.PathLike[str], name: str) -> list[str]:
        return self.run.log_artifact(path, name)

    def flush(self) -> None:
        """End of training: send what is buffered (the run stays open; its owner finishes it)."""
        run = self._run
        if run is not None and not run._finished:
            run.flush()


def _same_number(a: Any, b: Any) -> bool:
    return (isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool)
            and not isinstance(b, bool) and float(a) == float(b))


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optimizer": {"lr": 0.1}}`` → ``{"optimizer.lr": 0.1}``, with values made JSON-like.

    Numbers, strings, booleans and None stay; numpy and torch scalars become numbers; lists of
    those stay lists; NaN and infinities become strings (JSON has none); anything else
    (classes, functions, tensors, enums) becomes its ``str()``.
    """
    flat: dict[str, Any] = {}
    for key, value in params.items():
        full = f"{prefix}{key}"
        if isinstance(value, Mapping):
            if value:
                flat.update(flatten_params(value, full + "."))
            else:
                flat[full] = {}
        else:
            flat[full] = _plain(value)
    return flat


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        items = [_plain(v) for v in value]
        return items if all(v is None or isinstance(v, (bool, int, float, str)) for v in items) else str(value)
    number = _scalar(value)
    if number is not None:
        return _plain(number)
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    return str(value)


def _scalar(value: Any) -> int | float | bool | None:
    """A numpy, torch or TensorFlow scalar (or 0-d array or tensor) as a Python number, else None."""
    if getattr(value, "ndim", None) != 0:
        return None
    to_numpy = getattr(value, "numpy", None)  # TensorFlow's eager tensors have no item()
    item = getattr(value, "item", None)
    try:
        if not callable(item) and callable(to_numpy):
            value = to_numpy()
            item = getattr(value, "item", None)
        number = item() if callable(item) else None
    except (TypeError, ValueError, RuntimeError):
        return None
    return number if isinstance(number, (int, float, bool)) else None


def numeric_metrics(metrics: Mapping[str, Any], prefix: str = "", skip: Callable[[str], bool] | None = None) -> dict[str, float]:
    """The entries of ``metrics`` that are numbers (numpy scalars, 0-d tensors), as floats; strings and the like are left out."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if skip is not None and skip(key):
            continue
        if isinstance(value, (bool, str, bytes)):
            continue
        if isinstance(value, (int, float)):
            out[f"{prefix}{key}"] = float(value)
            continue
        number = _scalar(value)
        if number is not None and not isinstance(number, bool):
            out[f"{prefix}{key}"] = float(number)
    return out
